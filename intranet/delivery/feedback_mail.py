"""Feedback replies by email: each reply queued by :func:`intranet.feedback.reply` goes out once.

The reply's :class:`~intranet.models.FeedbackMail` row is the outbox entry: it is committed with
the reply (so nothing is mailed for a reply that was rolled back), then claimed by this sender
under a lease exactly as digest messages are (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), sent
through the same email channel, pacing and retry rules (:mod:`intranet.delivery.sending`), and
marked sent. The email goes to the person who wrote the feedback only: it quotes their own
comment and names who answered; the one who answered never learns who received it.

The sender owns its commits (the claim, then each result), so it takes a session of its own.
"""
from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Callable

import jinja2
from sqlmodel import Session

from intranet import languages, post_versions, preferences
from intranet.delivery.channels import PermanentFailure, RenderedDigest, TemporaryFailure
from intranet.delivery.sending import (Channel, Pacer, SendReport, claim_due, configured_channels, default_owner,
                                       finish, put_back, renew, retry_at)
from intranet.models import Employee, Feedback, FeedbackMail, FeedbackReply, Post
from intranet.settings import Settings, SiteSettings

logger = logging.getLogger(__name__)


def claim(session: Session, now: dt.datetime, owner: str, *, limit: int, lease: dt.timedelta) -> list[int]:
    """Claim up to *limit* due reply emails for *owner* (the caller commits at once); their ids."""
    return claim_due(session, FeedbackMail, now, owner, limit=limit, lease=lease)


def render(templates: jinja2.Environment, site: SiteSettings, mail: FeedbackMail, reply: FeedbackReply,
           feedback: Feedback, post: Post, writer: Employee, replier_name: str,
           language: str | None = None) -> RenderedDigest:
    """The reply email to *writer* (HTML and plain text from the app's templates, which a host may override).

    :param post: as *writer* reads it (their language's version when it has one).
    :param language: *writer*'s, for the email's own words.
    """
    base = site.base_url.rstrip("/") + site.url_prefix
    subject = languages.translate(language, "%(org)s: a reply to your feedback on “%(title)s”",
                                  org=site.org_name, title=post.title)
    context = {"subject": subject, "post_title": post.title, "comment": feedback.comment, "reply": reply.body,
               "by": replier_name, "mine_url": f"{base}/feedback/mine#feedback-{feedback.id}",
               "post_url": f"{base}/posts/{post.id}", "preferences_url": f"{base}/preferences",
               "lang": languages.supported(language) or languages.DEFAULT, **languages.message_functions(language)}
    return RenderedDigest(
        message_id=mail.message_id, recipient_email=writer.email, recipient_name=writer.display_name,
        subject=subject, html=templates.get_template("intranet/email/feedback_reply.html").render(**context),
        text=templates.get_template("intranet/email/feedback_reply.txt").render(**context), card={},
        unsubscribe_url="")


def send_due(session: Session, clock: Callable[[], dt.datetime], settings: Settings, templates: jinja2.Environment,
             *, channel: Channel, owner: str | None = None, pacer: Pacer | None = None,
             rng: random.Random | None = None) -> SendReport:
    """Claim a batch of due reply emails and send them through *channel*, committing as it goes."""
    owner = owner or default_owner()
    lease = settings.mail.lease
    pacer = pacer or Pacer(settings.mail.rate_per_minute)
    report = SendReport()
    ids = claim(session, clock(), owner, limit=settings.mail.batch, lease=lease)
    session.commit()
    for mail_pk in ids:
        now = clock()
        mail = session.get(FeedbackMail, mail_pk, populate_existing=True)
        if mail is None or mail.claimed_by != owner or mail.status != "sending":
            report.lost += 1
            continue
        if now >= mail.expires_at:
            finish(session, mail, "expired", "expired before it could be sent")
            report.expired += 1
            continue
        reply = session.get(FeedbackReply, mail.reply_id)
        feedback = session.get(Feedback, reply.feedback_id) if reply else None
        writer = session.get(Employee, feedback.employee_pk) if feedback else None
        post = session.get(Post, feedback.post_id) if feedback else None
        if reply is None or feedback is None or post is None or writer is None or not writer.active:
            finish(session, mail, "skipped", "the writer or the feedback is gone")
            report.skipped += 1
            continue
        replier = session.get(Employee, reply.author_pk) if reply.author_pk else None
        # In the writer's language (chosen, else the directory's), the post in its version for them.
        language = languages.choose(preferences.for_employee(session, writer).language, writer.language)
        rendered = render(templates, settings.site, mail, reply, feedback, post_versions.one(session, post, language),
                          writer, replier.display_name if replier else
                          languages.translate(language, "Former colleague"), language)
        pacer.wait()
        now = clock()
        if not renew(session, FeedbackMail, mail.id, owner, now, lease):
            session.rollback()
            report.lost += 1
            continue
        session.commit()
        try:
            channel.deliver(rendered, now)
        except TemporaryFailure as exc:
            again = retry_at(exc, attempts=mail.attempts, base_seconds=settings.mail.retry_seconds, now=now,
                             expires_at=mail.expires_at, rng=rng)
            if again is None:
                finish(session, mail, "expired", f"gave up: {exc.reason}")
                report.expired += 1
            else:
                put_back(session, mail, again, exc.reason)
                report.retried += 1
            logger.warning("Feedback reply mail %s failed temporarily: %s", mail.id, exc.reason)
            continue
        except PermanentFailure as exc:
            finish(session, mail, "failed", exc.reason)
            report.failed += 1
            logger.error("Feedback reply mail %s failed permanently: %s", mail.id, exc.reason)
            continue
        mail.status, mail.sent_at, mail.lease_until, mail.last_error = "sent", now, None, None
        session.add(mail)
        session.commit()
        report.sent += 1
    return report


def send_batch(sessions: Callable[[], Session], clock: Callable[[], dt.datetime], settings: Settings,
               templates: jinja2.Environment) -> SendReport:
    """Send one paced batch of due reply emails (nothing when email is not configured)."""
    channels = configured_channels(settings.mail)
    mailer = channels.get("email")
    if mailer is None:
        return SendReport()
    try:
        with sessions() as session:
            return send_due(session, clock, settings, templates, channel=mailer)
    finally:
        close = getattr(mailer, "close", None)
        if close:
            close()


def purge_job(session: Session, now: dt.datetime, settings: Settings) -> int:
    """Scheduled: forget reply emails finished more than 30 days ago (the replies themselves stay)."""
    from sqlalchemy import delete

    cutoff = now - dt.timedelta(days=30)
    result = session.execute(delete(FeedbackMail).where(FeedbackMail.status != "pending",
                                                        FeedbackMail.status != "sending",
                                                        FeedbackMail.expires_at < cutoff))
    return result.rowcount or 0  # type: ignore[attr-defined]

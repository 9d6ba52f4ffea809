"""Rendering: a composed digest or alert in every channel's form, and its unsubscribe link.

One :class:`~intranet.delivery.content.DigestContent` becomes one
:class:`~intranet.delivery.channels.RenderedDigest`: an email (HTML and plain text, from the
app's templates, which a host may override by path), an Adaptive Card for Teams, the subject
and the one-click unsubscribe URL. The in-app channel keeps only the post ids.

Rating links (one per star or thumb, and one without a value for Teams) share one token per
person and post, signed by :func:`intranet.ratings.link_token`, the one place that signs and reads
them; the star or thumb rides in the query, as a preselection only.

The unsubscribe token is signed by :func:`unsubscribe_token` and verified by
:func:`unsubscribed_employee_id`, both here, so the link in a message and the page that honours
it cannot disagree.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jinja2
from itsdangerous import BadSignature, URLSafeSerializer

from intranet import languages, preferences, ratings
from intranet.delivery.channels import RenderedDigest
from intranet.delivery.channels.teams import adaptive_card
from intranet.delivery.content import ContentItem, DigestContent
from intranet.models import Digest, Employee, OutboxMessage
from intranet.settings import SiteSettings

_UNSUBSCRIBE_SALT = "beacon-unsubscribe"


@functools.lru_cache(maxsize=8)
def _unsubscribe_serializer(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt=_UNSUBSCRIBE_SALT)  # one per key, not one per message


def unsubscribe_token(secret_key: str, employee_id: str) -> str:
    """A signed token that lets one person turn their digest off without signing in (RFC 8058)."""
    return _unsubscribe_serializer(secret_key).dumps(employee_id)


def unsubscribed_employee_id(secret_key: str, token: str) -> str | None:
    """The employee id an unsubscribe token was signed for, or None when it was not signed with *secret_key*."""
    try:
        employee_id = _unsubscribe_serializer(secret_key).loads(token)
    except BadSignature:
        return None
    return employee_id if isinstance(employee_id, str) else None


def why(digest: Digest, content: DigestContent, language: str | None = None) -> str:
    """The line that tells the person why this message came when it did, in *language*."""
    if digest.kind == "alert":
        if all(i.must_read for i in content.items):
            return languages.translate(language, "A must-read for you: sent at the first moment outside your "
                                       "quiet hours.")
        return languages.translate(language, "Sent as it happens, as you chose in your preferences (outside your "
                                   "quiet hours).")
    hour = f"{digest.local_hour:02d}:00"
    if digest.basis == "personal":
        return languages.translate(language, "Sent at %(hour)s, when you usually read.", hour=hour)
    if digest.basis == "peers":
        return languages.translate(language, "Sent at %(hour)s, when colleagues in your team usually read.", hour=hour)
    return languages.translate(language, "Sent at %(hour)s your time.", hour=hour)


@dataclasses.dataclass(frozen=True)
class Renderer:
    """Renders messages with the app's templates and signs their unsubscribe links.

    :param templates: the app's Jinja environment (``app.jinja_env``), used without the request
        context processors: messages are rendered by the scheduler, outside any request.
    :param secret_key: the app's secret key, which signs the unsubscribe token.
    :param site: the public address, URL prefix and organisation name used in links and subjects.
    """

    templates: jinja2.Environment
    secret_key: str
    site: SiteSettings

    def render(self, employee: Employee, message: OutboxMessage, content: DigestContent,
               prefs: preferences.Preferences, why: str, *, reminder: bool = False,
               notice: str | None = None, language: str | None = None) -> RenderedDigest:

        """*content* in every channel's form, for *message*.

        :param reminder: the message repeats must-reads the person has not acknowledged yet.
        :param notice: a sentence about the digest itself shown above the posts (an automatic
            cadence step down, see :mod:`intranet.delivery.fatigue`).
        """
        base = self.site.base_url.rstrip("/") + self.site.url_prefix
        items = [{"post_id": i.post_id, "title": i.title, "summary": i.summary, "topic": i.topic,
                  "must_read": i.must_read,
                  "ack_deadline": (languages.format_datetime(i.ack_deadline, languages.DATE, language=language)
                                   if i.ack_deadline else None),
                  "language": i.language,
                  "url": f"{base}/posts/{i.post_id}?d={message.id}&c={message.channel}",
                  **self._rating_links(base, employee, i, language)} for i in content.items]
        must = sum(1 for i in content.items if i.must_read)
        org = self.site.org_name
        if must:
            subject = languages.ntranslate(language, "%(org)s: %(num)d must-read and %(more)d more",
                                           "%(org)s: %(num)d must-reads and %(more)d more", must,
                                           org=org, more=len(items) - must)
        else:
            subject = languages.ntranslate(language, "%(org)s: %(num)d new post for you",
                                           "%(org)s: %(num)d new posts for you", len(items), org=org)
        if message.escalation or reminder:
            subject = languages.translate(language, "Reminder: %(subject)s", subject=subject)
        token = unsubscribe_token(self.secret_key, employee.employee_id)
        context = {"subject": subject, "heading": languages.translate(language, "Your %(org)s digest", org=org),
                   "lang": languages.supported(language) or languages.DEFAULT,
                   **languages.message_functions(language), "items": items, "more": content.more,
                   "feed_url": f"{base}/", "preferences_url": f"{base}/preferences",
                   "unsubscribe_url": f"{base}/digest/unsubscribe/{token}", "why": why,
                   "escalation": message.escalation, "compact": prefs.device == "phone",
                   "notice": notice, "held_back": content.held_back}
        return RenderedDigest(
            message_id=message.message_id, recipient_email=employee.email, recipient_name=employee.display_name,
            subject=subject, html=self._template("intranet/email/digest.html", context),
            text=self._template("intranet/email/digest.txt", context),
            card=adaptive_card(subject, items, context["feed_url"], content.more, labels={
                "must_read": languages.translate(language, "Must read:"),
                "rate": languages.translate(language, "Rate this post"),
                "more": languages.translate(language, "%(more)s more in Beacon", more=content.more)}),
            unsubscribe_url=context["unsubscribe_url"], escalation=message.escalation)

    def _rating_links(self, base: str, employee: Employee, item: ContentItem, language: str | None) -> dict[str, Any]:
        """One link per star or thumb, and one without a value (Teams, plain text), for *item*.

        Each lands on the confirmation page; only that page's POST saves (mail scanners open links).
        """
        # One signature per (person, post); the value clicked only preselects (see ratings.RatingLink).
        token = ratings.link_token(self.secret_key, ratings.RatingLink(employee.employee_id, item.post_id))
        page = f"{base}/rate/{token}"
        if item.rating_style == "thumbs":
            helpful, unhelpful = languages.translate(language, "Helpful"), languages.translate(language, "Not helpful")
            choices = [{"label": helpful, "title": helpful, "url": f"{page}?thumb=up"},
                       {"label": unhelpful, "title": unhelpful, "url": f"{page}?thumb=down"}]
        else:
            choices = [{"label": "★" * n, "title": languages.translate(language, "%(n)s of 5", n=n),
                        "url": f"{page}?stars={n}"} for n in range(1, 6)]

        return {"rate_choices": choices, "rate_url": page}

    def _template(self, name: str, context: dict[str, Any]) -> str:
        return self.templates.get_template(name).render(**context)

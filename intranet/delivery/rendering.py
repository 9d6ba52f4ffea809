"""Rendering: a composed digest or alert in every channel's form, and its unsubscribe link.

One :class:`~intranet.delivery.content.DigestContent` becomes one
:class:`~intranet.delivery.channels.RenderedDigest`: an email (HTML and plain text, from the
app's templates, which a host may override by path), an Adaptive Card for Teams, the subject
and the one-click unsubscribe URL. The in-app channel keeps only the post ids.

Rating links (one per star or thumb, and one without a value for Teams) are signed by
:func:`intranet.ratings.link_token`, the one place that signs and reads them.

The unsubscribe token is signed by :func:`unsubscribe_token` and verified by
:func:`unsubscribed_employee_id`, both here, so the link in a message and the page that honours
it cannot disagree.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jinja2
from itsdangerous import BadSignature, URLSafeSerializer

from intranet import preferences, ratings
from intranet.delivery.channels import RenderedDigest
from intranet.delivery.channels.teams import adaptive_card
from intranet.delivery.content import ContentItem, DigestContent
from intranet.models import Digest, Employee, OutboxMessage
from intranet.settings import SiteSettings

_UNSUBSCRIBE_SALT = "beacon-unsubscribe"


def unsubscribe_token(secret_key: str, employee_id: str) -> str:
    """A signed token that lets one person turn their digest off without signing in (RFC 8058)."""
    return URLSafeSerializer(secret_key, salt=_UNSUBSCRIBE_SALT).dumps(employee_id)


def unsubscribed_employee_id(secret_key: str, token: str) -> str | None:
    """The employee id an unsubscribe token was signed for, or None when it was not signed with *secret_key*."""
    try:
        employee_id = URLSafeSerializer(secret_key, salt=_UNSUBSCRIBE_SALT).loads(token)
    except BadSignature:
        return None
    return employee_id if isinstance(employee_id, str) else None


def why(digest: Digest, content: DigestContent) -> str:
    """The line that tells the person why this message came when it did."""
    if digest.kind == "alert":
        if all(i.must_read for i in content.items):
            return "A must-read for you: sent at the first moment outside your quiet hours."
        return "Sent as it happens, as you chose in your preferences (outside your quiet hours)."
    if digest.basis == "personal":
        return f"Sent at {digest.local_hour:02d}:00, when you usually read."
    if digest.basis == "peers":
        return f"Sent at {digest.local_hour:02d}:00, when colleagues in your team usually read."
    return f"Sent at {digest.local_hour:02d}:00 your time."


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
               notice: str | None = None) -> RenderedDigest:
        """*content* in every channel's form, for *message*.

        :param reminder: the message repeats must-reads the person has not acknowledged yet.
        :param notice: a sentence about the digest itself shown above the posts (an automatic
            cadence step down, see :mod:`intranet.delivery.fatigue`).
        """
        base = self.site.base_url.rstrip("/") + self.site.url_prefix
        items = [{"post_id": i.post_id, "title": i.title, "summary": i.summary, "topic": i.topic,
                  "must_read": i.must_read,
                  "ack_deadline": i.ack_deadline.strftime("%d %b %Y") if i.ack_deadline else None,
                  "url": f"{base}/posts/{i.post_id}?d={message.id}&c={message.channel}",
                  **self._rating_links(base, employee, i)} for i in content.items]
        must = sum(1 for i in content.items if i.must_read)
        org = self.site.org_name
        subject = (f"{org}: {must} must-read{'s' if must != 1 else ''} and {len(items) - must} more"
                   if must else f"{org}: {len(items)} new post{'s' if len(items) != 1 else ''} for you")
        if message.escalation or reminder:
            subject = f"Reminder: {subject}"
        token = unsubscribe_token(self.secret_key, employee.employee_id)
        context = {"subject": subject, "heading": f"Your {org} digest", "items": items, "more": content.more,
                   "feed_url": f"{base}/", "preferences_url": f"{base}/preferences",
                   "unsubscribe_url": f"{base}/digest/unsubscribe/{token}", "why": why,
                   "escalation": message.escalation, "compact": prefs.device == "phone",
                   "notice": notice, "held_back": content.held_back}
        return RenderedDigest(
            message_id=message.message_id, recipient_email=employee.email, recipient_name=employee.display_name,
            subject=subject, html=self._template("intranet/email/digest.html", context),
            text=self._template("intranet/email/digest.txt", context),
            card=adaptive_card(subject, items, context["feed_url"], content.more),
            unsubscribe_url=context["unsubscribe_url"], escalation=message.escalation)

    def _rating_links(self, base: str, employee: Employee, item: ContentItem) -> dict[str, Any]:
        """One link per star or thumb, and one without a value (Teams, plain text), for *item*.

        Each lands on the confirmation page; only that page's POST saves (mail scanners open links).
        """
        def url(**value: Any) -> str:
            link = ratings.RatingLink(employee.employee_id, item.post_id, **value)
            return f"{base}/rate/{ratings.link_token(self.secret_key, link)}"

        if item.rating_style == "thumbs":
            choices = [{"label": "Helpful", "title": "Helpful", "url": url(thumb="up")},
                       {"label": "Not helpful", "title": "Not helpful", "url": url(thumb="down")}]
        else:
            choices = [{"label": "★" * n, "title": f"{n} of 5", "url": url(stars=n)} for n in range(1, 6)]
        return {"rate_choices": choices, "rate_url": url()}

    def _template(self, name: str, context: dict[str, Any]) -> str:
        return self.templates.get_template(name).render(**context)

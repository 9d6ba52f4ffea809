"""Microsoft Teams: one Adaptive Card per person, posted to a Workflows (Power Automate) HTTP trigger.

The flow behind the trigger URL posts the card into the recipient's chat with the Flow bot; we
send the recipient's UPN (their sign-in email) with the card. Office 365 connectors are retired,
and channel webhooks are for organisation-wide announcements, not for one person's digest.
The trigger URL carries a signature: it is a secret and is never logged.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import requests

from intranet.delivery.channels import PermanentFailure, RenderedDigest, TemporaryFailure
from intranet.retry_after import retry_after_seconds


def card_payload(digest: RenderedDigest) -> dict[str, Any]:
    """The JSON body the flow receives: the recipient's UPN and the card as a message attachment."""
    return {"recipient": digest.recipient_email, "messageId": digest.message_id,
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": digest.card}]}


class TeamsWorkflow:
    def __init__(self, url: str, *, timeout: float = 15.0, session: requests.Session | None = None) -> None:
        self._url = url
        self.timeout = timeout
        self.http = session or requests.Session()

    def deliver(self, digest: RenderedDigest, now: dt.datetime) -> None:
        """POST the card.

        :raise TemporaryFailure: on 429 (honouring ``Retry-After``), 5xx, timeouts, refused connections.
        :raise PermanentFailure: on other 4xx (a deleted or disabled flow answers 400/404/410).
        """
        if not digest.recipient_email:
            raise PermanentFailure("the employee has no UPN/email for Teams")
        try:
            response = self.http.post(self._url, json=card_payload(digest), timeout=self.timeout)
        except requests.RequestException as exc:
            raise TemporaryFailure(f"Teams workflow unreachable: {exc.__class__.__name__}", outage=True) from None
        if response.status_code < 300:
            return
        if response.status_code == 429 or response.status_code >= 500:
            seconds = retry_after_seconds(response.headers.get("Retry-After"), now)
            raise TemporaryFailure(f"Teams workflow answered {response.status_code}", retry_after=seconds,
                                   outage=True)
        raise PermanentFailure(f"Teams workflow answered {response.status_code}")


def adaptive_card(title: str, items: list[dict[str, Any]], more_url: str | None, more: int,
                  labels: dict[str, str] | None = None) -> dict[str, Any]:
    """An Adaptive Card (schema 1.4) listing the digest's posts, each opening in Beacon, each with a
    button to the page where it is rated (when the item carries ``rate_url``).

    :param labels: the card's own words in the recipient's language (``must_read``, ``rate``, ``more``).
    """
    words = {"must_read": "Must read:", "rate": "Rate this post", "more": f"{more} more in Beacon", **(labels or {})}
    body: list[dict[str, Any]] = [{"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium",
                                   "wrap": True}]
    for item in items:
        prefix = words["must_read"] + " " if item["must_read"] else ""
        body.append({"type": "TextBlock", "text": f"[{prefix}{_md_escape(item['title'])}]({item['url']})",
                     "wrap": True, "spacing": "Medium"})
        if item["summary"]:
            body.append({"type": "TextBlock", "text": _md_escape(item["summary"]), "wrap": True, "isSubtle": True,
                         "spacing": "None"})
        if item.get("rate_url"):  # the confirmation page; rating happens there, by its POST
            body.append({"type": "ActionSet", "spacing": "Small", "actions": [
                {"type": "Action.OpenUrl", "title": words["rate"], "url": item["rate_url"]}]})
    actions = [{"type": "Action.OpenUrl", "title": words["more"], "url": more_url}] if more and more_url else []

    return {"type": "AdaptiveCard", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "version": "1.4", "body": body, "actions": actions}


def _md_escape(text: str) -> str:
    """Adaptive Card TextBlocks render a Markdown subset: escape its link and emphasis syntax."""
    for ch in "\\[]()*_`#>":
        text = text.replace(ch, "\\" + ch)
    return text

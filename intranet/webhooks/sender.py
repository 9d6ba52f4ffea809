"""The webhook sender: each delivery goes out at least once, signed, retried, or given up visibly.

A scheduled job (``webhooks-send``, see :mod:`intranet.jobs`) runs :func:`send_batch`. It claims
due deliveries with the mail outbox's claim (:func:`intranet.delivery.sending.claim_due`: a lease
per row, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several senders take disjoint rows), commits
the claim, then for each one makes sure its lease still holds (renewing it once half of it has gone
by), POSTs the event's stored body signed for this attempt (:mod:`.signing`) and commits the outcome:

* a 2xx answer: ``delivered``;
* 410 Gone: ``failed`` (the receiver says it will never want it);
* anything else (another status, a timeout, a refused connection): retried with the outbox's one
  retry decision (:func:`~intranet.delivery.sending.retry_at`: exponential backoff with jitter, or
  the receiver's ``Retry-After`` on 429/503 when longer), until the event is older than
  ``INTRANET_WEBHOOKS_GIVE_UP_HOURS``: then ``expired``, with the last error on the admin page;
* an address deliveries may not go to (:mod:`.network`): ``failed`` at once.

Once an endpoint fails in a round, its other deliveries claimed in that round are handed back
untried for the same retry time: a receiver that is down is not hammered, and its timeouts do not
hold up the deliveries to everyone else.

Delivery is at least once: a sender that dies between the receiver's answer and its commit leaves
the row to be claimed again when its lease runs out, and the retry carries the same
``webhook-id``, so receivers drop the duplicate. Only a short snippet of an answer is kept.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import random
import time
import uuid
from collections.abc import Callable

import requests
from sqlalchemy import delete, exists, select
from sqlmodel import Session

from intranet.delivery.channels import TemporaryFailure
from intranet.delivery.sending import SendReport, claim_due, default_owner, finish, put_back, renew, retry_at
from intranet.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from intranet.retry_after import retry_after_seconds
from intranet.settings import Settings
from intranet.webhooks import network, signing
from intranet.webhooks.sealing import SecretBox

logger = logging.getLogger(__name__)

#: How much of an answer's body is read and kept (for the admin page): enough to see an error.
SNIPPET_BYTES = 200
#: Finished events are forgotten after this long.
KEEP = dt.timedelta(days=30)


def _snippet(response: requests.Response) -> str:
    try:
        raw = next(response.iter_content(SNIPPET_BYTES), b"")
    except requests.RequestException:
        return ""
    finally:
        response.close()
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(text.split())[:SNIPPET_BYTES]


def post(http: requests.Session, url: str, secret: str, message_id: str, body: str, *, timestamp: int,
         timeout: float) -> tuple[int, str, requests.Response]:
    """POST one signed delivery; the answer's status, a snippet of its body, and the answer.

    :raise requests.RequestException: no answer (timeouts, refused connections, refused addresses).
    """
    response = http.post(url, data=body.encode("utf-8"), headers=signing.headers(secret, message_id, timestamp, body),
                         timeout=(timeout, timeout), allow_redirects=False, stream=True)
    return response.status_code, _snippet(response), response


def send_due(session: Session, clock: Callable[[], dt.datetime], settings: Settings, *, http: requests.Session,
             owner: str | None = None, wall: Callable[[], float] = time.time,
             rng: random.Random | None = None) -> SendReport:
    """Claim a batch of due deliveries and send them, committing the claim and then each outcome.

    :param clock: the current time (read again before each send).
    :param wall: seconds since the epoch for ``webhook-timestamp``: receivers compare it with their
        own clock, so it is always the real time.
    """
    owner = owner or default_owner()
    hooks = settings.webhooks
    box = SecretBox(hooks.encryption_key)
    report = SendReport()
    active = select(WebhookEndpoint.id).where(WebhookEndpoint.active.is_(True))
    # An endpoint that failed once in this round is not tried again in it: its other deliveries wait
    # for the same retry time, so one slow or failing receiver neither holds up the others nor is
    # hammered while it is down.
    failing: dict[int, dt.datetime] = {}
    ids = claim_due(session, WebhookDelivery, clock(), owner, limit=hooks.batch, lease=hooks.lease,
                    where=(WebhookDelivery.endpoint_pk.in_(active.scalar_subquery()),))
    session.commit()
    for delivery_pk in ids:
        now = clock()
        row = session.execute(
            select(WebhookDelivery, WebhookEvent, WebhookEndpoint)
            .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_pk)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_pk)
            .where(WebhookDelivery.id == delivery_pk).execution_options(populate_existing=True)).first()
        if row is None or row[0].claimed_by != owner or row[0].status != "sending":
            report.lost += 1
            continue
        delivery, event, endpoint = row
        expires_at = event.created_at + hooks.give_up_after
        if endpoint.id in failing and now < expires_at:
            _postpone(session, delivery, failing[endpoint.id])
            report.skipped += 1
            continue
        if now >= expires_at:
            finish(session, delivery, "expired", f"given up after {delivery.attempts - 1} attempts: "
                                                 f"{delivery.last_error or 'not sent in time'}")
            report.expired += 1
            continue
        try:
            secret = box.open(endpoint.secret)
        except Exception as exc:  # a missing or wrong encryption key: say so on the admin page
            _retry_or_give_up(session, delivery, TemporaryFailure(str(exc)), None, now, expires_at, settings, rng,
                              report)
            continue
        # Renew the lease only once half of it is gone: until then no other sender can have taken
        # the row over (they take expired leases only), and a round saves a write per delivery.
        if delivery.lease_until is None or delivery.lease_until - now < hooks.lease / 2:
            if not renew(session, WebhookDelivery, delivery.id, owner, now, hooks.lease):
                session.rollback()
                report.lost += 1
                continue
            session.commit()
        delivery.last_attempt_at = now
        try:
            status, snippet, response = post(http, endpoint.url, secret, event.message_id, event.payload,
                                             timestamp=int(wall()), timeout=hooks.timeout_seconds)
        except requests.RequestException as exc:
            refused = network.refusal(exc)
            if refused:
                delivery.last_status = None
                finish(session, delivery, "failed", refused)
                report.failed += 1
                logger.error("Webhook delivery %s to endpoint %s refused: %s", delivery.id, endpoint.id, refused,
                             extra={"alert": "webhook_refused_address", "endpoint": endpoint.id})
            else:
                reason = f"no answer: {exc.__class__.__name__}"
                again = _retry_or_give_up(session, delivery, TemporaryFailure(reason), None, now, expires_at,
                                          settings, rng, report)
                if again is not None:
                    failing[endpoint.id] = again
            continue
        delivery.last_status = status
        if 200 <= status < 300:
            delivery.status, delivery.delivered_at, delivery.lease_until, delivery.last_error = (
                "delivered", now, None, None)
            session.add(delivery)
            session.commit()
            report.sent += 1
            continue
        reason = f"answered {status}" + (f": {snippet}" if snippet else "")
        if status == 410:
            finish(session, delivery, "failed", reason)
            report.failed += 1
            continue
        seconds = retry_after_seconds(response.headers.get("Retry-After"), now) if status in (429, 503) else None
        again = _retry_or_give_up(session, delivery, TemporaryFailure(reason, retry_after=seconds), status, now,
                                  expires_at, settings, rng, report)
        if again is not None:
            failing[endpoint.id] = again
    return report


def _retry_or_give_up(session: Session, delivery: WebhookDelivery, failure: TemporaryFailure, status: int | None,
                      now: dt.datetime, expires_at: dt.datetime, settings: Settings, rng: random.Random | None,
                      report: SendReport) -> dt.datetime | None:
    """Put *delivery* back for a later attempt, or give it up; the time of its next attempt, if any."""
    delivery.last_status = status
    again = retry_at(failure, attempts=delivery.attempts, base_seconds=settings.webhooks.retry_seconds, now=now,
                     expires_at=expires_at, rng=rng)
    if again is None:
        finish(session, delivery, "expired", f"given up after {delivery.attempts} attempts: {failure.reason}")
        report.expired += 1
        logger.error("Webhook delivery %s to endpoint %s given up after %d attempts: %s", delivery.id,
                     delivery.endpoint_pk, delivery.attempts, failure.reason,
                     extra={"alert": "webhook_given_up", "endpoint": delivery.endpoint_pk})
        return None
    put_back(session, delivery, again, failure.reason)
    report.retried += 1
    logger.warning("Webhook delivery %s failed (%s); next attempt at %s", delivery.id, failure.reason,
                   again.isoformat())
    return again


def _postpone(session: Session, delivery: WebhookDelivery, until: dt.datetime) -> None:
    """Hand a claimed delivery back untried, due at *until* (its claim is not counted as an attempt)."""
    delivery.status, delivery.next_attempt_at, delivery.lease_until = "pending", until, None
    delivery.attempts = max(delivery.attempts - 1, 0)
    session.add(delivery)
    session.commit()


def ping(endpoint: WebhookEndpoint, settings: Settings, *, http: requests.Session, now: dt.datetime,
         wall: Callable[[], float] = time.time) -> str:
    """Send *endpoint* a signed ``webhook.test`` event now (not through the outbox), and say how it
    answered: for an admin checking a receiver's URL and signature check."""
    message_id = f"msg_test_{uuid.uuid4().hex}"
    body = json.dumps({"type": "webhook.test", "timestamp": now.astimezone(dt.timezone.utc).isoformat(
        timespec="seconds").replace("+00:00", "Z"), "data": {"endpoint_id": endpoint.id}}, separators=(",", ":"))
    secret = SecretBox(settings.webhooks.encryption_key).open(endpoint.secret)
    try:
        status, snippet, _ = post(http, endpoint.url, secret, message_id, body, timestamp=int(wall()),
                                  timeout=settings.webhooks.timeout_seconds)
    except requests.RequestException as exc:
        return network.refusal(exc) or f"no answer: {exc.__class__.__name__}"
    return f"answered {status}" + (f": {snippet}" if snippet else "")


def send_batch(sessions: Callable[[], Session], clock: Callable[[], dt.datetime], settings: Settings) -> SendReport:
    """One round of deliveries (the ``webhooks-send`` job), with a client that keeps to allowed addresses."""
    with network.client(allow_private=network.private_allowed(settings)) as http, sessions() as session:
        return send_due(session, clock, settings, http=http)


def purge_job(session: Session, now: dt.datetime, settings: Settings) -> int:
    """Scheduled: forget events older than 30 days with no delivery still waiting (and their deliveries)."""
    waiting = exists().where(WebhookDelivery.event_pk == WebhookEvent.id,
                             WebhookDelivery.status.in_(("pending", "sending")))
    result = session.execute(delete(WebhookEvent).where(WebhookEvent.created_at < now - KEEP, ~waiting))
    return result.rowcount or 0  # type: ignore[attr-defined]

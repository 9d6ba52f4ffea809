"""What each webhook event says, recorded in the transaction of the change that causes it.

:func:`record` adds the event and one pending delivery per active endpoint that subscribed to its
type, in the caller's session: the caller's commit makes the change and its event visible together
(a transactional outbox), and a rollback takes both away. With no endpoint subscribed nothing is
written. The body is serialized here, once, so every attempt sends the same bytes under the same
``webhook-id``.

Payloads are small: ids and times, enough for a host to react or to ask Beacon's API for more.

* ``post.published`` — a post became published (published now, or its scheduled time came and
  the ``posts-publish-due`` job recorded it, within a minute). No title or body: a post may be
  meant for one department, and the host can read it through the API under Beacon's targeting.
* ``post.acknowledged`` — someone acknowledged a must-read, once per person and post. It names
  the person by their HR employee number and Entra object id (stable ids a host can join with its
  own directory), never by name or email: acknowledging is the one act Beacon discloses by name
  (the post's author and admins can list it), and the host needs to know who to follow up with.
* ``digest.sent`` — one digest or alert message went out to one person on one channel, with the
  posts it carried. Its time is the send time Beacon learned for that person, which is what the
  event is; no opens, reads or dwell times are sent, ever.

Services call the three ``*_event`` functions below; they never commit.
"""
from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from intranet.db import insert_new, is_postgres
from intranet.models import (WEBHOOK_EVENT_TYPES, Digest, Employee, OutboxMessage, Post, WebhookDelivery,
                             WebhookEndpoint, WebhookEvent)


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def body(type_: str, occurred_at: dt.datetime, data: dict[str, Any]) -> str:
    """The exact JSON a delivery carries: ``{"type", "timestamp", "data"}`` (Standard Webhooks' shape)."""
    return json.dumps({"type": type_, "timestamp": _iso(occurred_at), "data": data}, separators=(",", ":"),
                      ensure_ascii=False)


def record(session: Session, type_: str, data: dict[str, Any], *, key: str, occurred_at: dt.datetime,
           now: dt.datetime, employee: Employee | None = None) -> int | None:
    """Record one event for every active endpoint subscribed to *type_*, in *session* (not committed).

    :param employee: the person the event names, if any (erasing them deletes the event).
    :param key: names the fact (say ``post.acknowledged:7:42``): recording the same fact again,
        even from a concurrent transaction, adds nothing.
    :return: the event's id, or None when no endpoint wants it or it was recorded before.
    """
    if type_ not in WEBHOOK_EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {type_!r}")
    query = select(WebhookEndpoint.id, WebhookEndpoint.event_types).where(WebhookEndpoint.active.is_(True))
    if is_postgres(session):
        # Holds off an endpoint's removal until this transaction ends, so its deliveries can be added.
        query = query.with_for_update(read=True, key_share=True)
    endpoint_ids = [pk for pk, types in session.execute(query).all() if type_ in (types or ())]
    if not endpoint_ids:
        return None
    inserted = insert_new(session, WebhookEvent.__table__, [{  # type: ignore[attr-defined]
        "message_id": f"msg_{uuid.uuid4().hex}", "type": type_, "dedupe_key": key[:128],
        "employee_pk": employee.id if employee else None, "payload": body(type_, occurred_at, data),
        "occurred_at": occurred_at, "created_at": now}],
        ("dedupe_key",), ("id",))
    if not inserted:
        return None
    event_pk = inserted[0][0]
    session.add_all(WebhookDelivery(event_pk=event_pk, endpoint_pk=pk, next_attempt_at=now) for pk in endpoint_ids)
    session.flush()
    return event_pk  # type: ignore[no-any-return]


def _person(employee: Employee) -> dict[str, Any]:
    return {"employee_id": employee.employee_id, "entra_object_id": employee.entra_object_id}


def post_published_event(session: Session, post: Post, *, now: dt.datetime) -> int | None:
    """``post.published``: *post* has just become published (call after its status is stored)."""
    published_at = post.published_at or now
    data = {"post_id": post.id, "version": post.version, "topic": post.topic, "must_read": post.must_read,
            "ack_deadline": _iso(post.ack_deadline), "published_at": _iso(published_at),
            "expires_at": _iso(post.expires_at)}
    return record(session, "post.published", data, key=f"post.published:{post.id}:{_iso(published_at)}",
                  occurred_at=published_at, now=now)


def post_acknowledged_event(session: Session, post: Post, employee: Employee, *, acknowledged_at: dt.datetime,
                            now: dt.datetime) -> int | None:
    """``post.acknowledged``: *employee* acknowledged the must-read *post* (the first time)."""
    data = {"post_id": post.id, "employee": _person(employee), "acknowledged_at": _iso(acknowledged_at)}
    return record(session, "post.acknowledged", data, key=f"post.acknowledged:{post.id}:{employee.id}",
                  occurred_at=acknowledged_at, now=now, employee=employee)


def subscribed(session: Session, type_: str) -> bool:
    """Whether any active endpoint wants *type_* now (a sender asks once per batch: with none, its
    messages record no webhook event; an endpoint added during a batch hears from the next one)."""
    return any(type_ in (types or ()) for (types,) in session.execute(
        select(WebhookEndpoint.event_types).where(WebhookEndpoint.active.is_(True))).all())


def digest_sent_event(session: Session, message: OutboxMessage, digest: Digest, employee: Employee, *,
                      post_ids: list[int], now: dt.datetime) -> int | None:
    """``digest.sent``: the outbox *message* (a digest or an alert) went out to *employee*."""
    data = {"message_id": message.id, "kind": digest.kind, "channel": message.channel, "post_ids": list(post_ids),
            "employee": _person(employee), "sent_at": _iso(now)}
    return record(session, "digest.sent", data, key=f"digest.sent:{message.id}", occurred_at=now, now=now,
                  employee=employee)


def about(session: Session, employee: Employee) -> list[dict[str, Any]]:
    """The events that name *employee* (for their own data download): what each said, when, and
    whether any endpoint received it yet. Endpoint URLs are left out: they may carry credentials."""
    delivered = select(WebhookDelivery.id).where(WebhookDelivery.event_pk == WebhookEvent.id,
                                                  WebhookDelivery.status == "delivered").exists()
    rows = session.execute(select(WebhookEvent.type, WebhookEvent.occurred_at, WebhookEvent.payload, delivered)
                           .where(WebhookEvent.employee_pk == employee.id)
                           .order_by(WebhookEvent.occurred_at, WebhookEvent.id)).all()
    return [{"type": type_, "occurred_at": _iso(occurred_at), "data": json.loads(payload)["data"],
             "delivered": bool(sent)} for type_, occurred_at, payload, sent in rows]

"""Outgoing webhooks: recorded with their change, signed per Standard Webhooks, delivered at least
once to a real receiver on loopback, retried with backoff, given up visibly, sent once by racing senders."""
from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlmodel import Session
from standardwebhooks import Webhook

from intranet import feed, jobs, posts
from intranet.errors import InvalidInput
from intranet.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from intranet.webhooks import endpoints, network, sealing, signing
from intranet.webhooks.sealing import SecretBox
from tests.delivery_support import queue_digest, send
from tests.webhook_support import Receiver, deliver, receiving, register

# The receiver listens on 127.0.0.1, which production settings refuse (see the address tests below).
pytestmark = pytest.mark.settings(INTRANET_WEBHOOKS_ALLOW_PRIVATE=True)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from receiving()


def deliveries(db: Session) -> list[WebhookDelivery]:
    db.expire_all()
    return list(db.exec(select(WebhookDelivery).order_by(WebhookDelivery.id)).scalars())


def event_count(db: Session) -> int:
    return db.execute(select(func.count()).select_from(WebhookEvent)).scalar_one()


def publish_draft(db, make_post, make_employee, clock, **attrs):  # type: ignore[no-untyped-def]
    comms = make_employee(is_comms=True)
    draft = make_post(status="draft", published_at=None, publish_at=None, **attrs)
    return posts.publish(db, draft, actor=comms, now=clock.now)


# ------------------------------------------------------------------------------------------------
# Signing
# ------------------------------------------------------------------------------------------------


def test_signature_matches_the_standard_webhooks_test_vector():
    """The specification's example secret, id, timestamp and body give its example signature."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    assert signing.signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}') == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")


def test_verify_refuses_a_changed_body_an_old_timestamp_and_another_secret():
    """The receiver's check fails for a tampered body, a replay outside the tolerance, a wrong secret."""
    secret, other = signing.new_secret(), signing.new_secret()
    headers = signing.headers(secret, "msg_1", 1_000_000, '{"a":1}')
    assert signing.verify(secret, headers, '{"a":1}', now=1_000_000)
    assert not signing.verify(secret, headers, '{"a":2}', now=1_000_000)
    assert not signing.verify(secret, headers, '{"a":1}', now=1_000_000 + 301)
    assert not signing.verify(other, headers, '{"a":1}', now=1_000_000)


# ------------------------------------------------------------------------------------------------
# Recording: in the transaction of the change
# ------------------------------------------------------------------------------------------------


def test_publishing_sends_a_signed_post_published_event(app, db, make_post, make_employee, clock, receiver):
    """A published post reaches the endpoint as post.published, verifiable with the standardwebhooks library."""
    created = register(db, receiver.url, clock.now, "post.published")
    post = publish_draft(db, make_post, make_employee, clock, must_read=True)
    db.commit()
    report = deliver(app, db, clock)
    assert report.sent == 1, report
    [got] = receiver.received
    event = Webhook(created.secret).verify(got.body, got.headers)
    assert event["type"] == "post.published"
    assert event["data"]["post_id"] == post.id and event["data"]["must_read"] is True
    assert event["data"]["published_at"] == clock.now.isoformat().replace("+00:00", "Z")
    assert "title" not in event["data"] and "body" not in json.dumps(event["data"])
    assert got.headers["webhook-id"].startswith("msg_") and got.headers["content-type"] == "application/json"
    assert [d.status for d in deliveries(db)] == ["delivered"]


def test_a_rolled_back_publication_sends_nothing(app, db, make_post, make_employee, clock, receiver):
    """The event lives in the change's transaction: rolling the change back takes the event with it."""
    register(db, receiver.url, clock.now, "post.published")
    publish_draft(db, make_post, make_employee, clock)
    assert event_count(db) == 1  # recorded, not yet committed
    db.rollback()
    assert event_count(db) == 0
    assert deliver(app, db, clock).sent == 0 and receiver.received == []


def test_no_endpoint_no_event(db, make_post, make_employee, clock):
    """Nothing is written when no active endpoint wants the event (nor for a paused one)."""
    created = register(db, "https://hooks.example.com/x", clock.now, "post.acknowledged")
    publish_draft(db, make_post, make_employee, clock)
    endpoints.set_active(db, created.endpoint, False)
    publish_draft(db, make_post, make_employee, clock)
    db.commit()
    assert event_count(db) == 0


def test_a_scheduled_post_is_announced_when_the_job_publishes_it(app, db, make_post, clock, receiver):
    """The posts-publish-due job records post.published for a scheduled post whose time came, once."""
    register(db, receiver.url, clock.now, "post.published")
    post = make_post(status="scheduled", published_at=clock.now - dt.timedelta(minutes=1))
    job = next(j for j in jobs.periodic_job_definitions() if j.id == "posts-publish-due")
    jobs.run_once(app, job)
    jobs.run_once(app, job)
    assert deliver(app, db, clock).sent == 1
    [got] = receiver.received
    assert got.event["data"]["post_id"] == post.id and got.event["type"] == "post.published"


def test_moving_a_scheduled_post_to_now_announces_it(app, db, make_post, make_employee, clock, receiver):
    """Rescheduling a scheduled post to a past time publishes it now, and says so once."""
    register(db, receiver.url, clock.now, "post.published")
    comms = make_employee(is_comms=True)
    post = posts.publish(db, make_post(status="draft", published_at=None, publish_at=None), actor=comms,
                         now=clock.now, publish_at=clock.now + dt.timedelta(days=1))
    db.commit()
    assert post.status == "scheduled" and event_count(db) == 0
    posts.update_post(db, post, posts.PostUpdate(publish_at=clock.now - dt.timedelta(minutes=1)), actor=comms,
                      now=clock.now)
    db.commit()
    assert post.status == "published"
    assert deliver(app, db, clock).sent == 1
    assert receiver.received[0].event["data"]["post_id"] == post.id


def test_acknowledging_twice_sends_one_event_naming_the_person_by_ids_only(app, db, make_post, make_employee, clock,
                                                                           receiver):
    """post.acknowledged goes once per person and post, with their employee number and Entra id, not name or email."""
    created = register(db, receiver.url, clock.now, "post.acknowledged")
    person = make_employee(entra_object_id="0f0e0d0c-aaaa-bbbb-cccc-000000000001", display_name="Ana García")
    post = make_post(must_read=True)
    feed.acknowledge(db, person, post, now=clock.now)
    db.commit()
    feed.acknowledge(db, person, post, now=clock.now + dt.timedelta(minutes=5))
    db.commit()
    assert deliver(app, db, clock).sent == 1
    [got] = receiver.received
    event = Webhook(created.secret).verify(got.body, got.headers)
    assert event["data"] == {"post_id": post.id, "acknowledged_at": "2026-11-24T09:00:00Z",
                             "employee": {"employee_id": person.employee_id,
                                          "entra_object_id": "0f0e0d0c-aaaa-bbbb-cccc-000000000001"}}
    assert person.email not in got.body and "Ana" not in got.body


def test_a_sent_digest_is_announced(app, db, config, smtp, make_post, make_employee, clock, receiver):
    """digest.sent names the outbox message, its channel, kind and posts, once it went out."""
    register(db, receiver.url, clock.now, "digest.sent")
    person = make_employee(email="ana@example.com")
    post = make_post()
    queue_digest(db, person, clock.now)
    assert send(app, db, config, clock).sent >= 1
    assert deliver(app, db, clock).sent >= 1
    events = [r.event for r in receiver.received]
    assert {e["type"] for e in events} == {"digest.sent"}
    email = next(e for e in events if e["data"]["channel"] == "email")
    assert email["data"]["post_ids"] == [post.id] and email["data"]["kind"] == "digest"
    assert email["data"]["employee"]["employee_id"] == person.employee_id


# ------------------------------------------------------------------------------------------------
# Delivery: retries, backoff, Retry-After, giving up, at least once
# ------------------------------------------------------------------------------------------------


def test_500_then_429_then_200_retries_with_backoff_and_retry_after_under_one_id(app, db, make_post, make_employee,
                                                                                 clock, receiver):
    """A 500 is retried after the first backoff (30 s +-20 %), a 429 after its Retry-After; all three
    attempts carry the same webhook-id, each freshly signed."""
    created = register(db, receiver.url, clock.now, "post.published")
    publish_draft(db, make_post, make_employee, clock)
    db.commit()
    receiver.script = [(500, {}), (429, {"Retry-After": "600"})]
    start = clock.now
    assert deliver(app, db, clock).retried == 1
    [delivery] = deliveries(db)
    assert delivery.status == "pending" and delivery.last_status == 500
    assert start + dt.timedelta(seconds=24) <= delivery.next_attempt_at <= start + dt.timedelta(seconds=36)
    assert delivery.last_error.startswith("answered 500: receiver says") and len(delivery.last_error) < 250
    assert deliver(app, db, clock).sent == 0  # not due yet
    clock.now = delivery.next_attempt_at
    assert deliver(app, db, clock).retried == 1
    [delivery] = deliveries(db)
    assert delivery.next_attempt_at >= clock.now + dt.timedelta(seconds=600)
    clock.now = delivery.next_attempt_at
    assert deliver(app, db, clock).sent == 1
    assert len(set(receiver.ids())) == 1 and len(receiver.received) == 3
    for got in receiver.received:
        Webhook(created.secret).verify(got.body, got.headers)
    [delivery] = deliveries(db)
    assert delivery.status == "delivered" and delivery.attempts == 3 and delivery.last_error is None


def test_a_receiver_that_keeps_failing_is_given_up_and_shown_on_the_admin_page(app, db, client_for, make_post,
                                                                               make_employee, clock, receiver, caplog):
    """Still failing INTRANET_WEBHOOKS_GIVE_UP_HOURS after the event: expired, with why, on the admin page."""
    register(db, receiver.url, clock.now, "post.published")
    publish_draft(db, make_post, make_employee, clock)
    db.commit()
    receiver.script = [(503, {})] * 100
    start = clock.now
    for _ in range(100):
        report = deliver(app, db, clock)
        if report.expired:
            break
        [delivery] = deliveries(db)
        clock.now = delivery.next_attempt_at
    [delivery] = deliveries(db)
    assert delivery.status == "expired" and "answered 503" in delivery.last_error
    assert [r.alert for r in caplog.records if hasattr(r, "alert")] == ["webhook_given_up"]
    assert clock.now < start + dt.timedelta(hours=24)  # never tried past the give-up time
    attempts = len(receiver.received)
    # Backoff doubles from 30 s up to an hour: about 30 tries in 24 h, not one a minute (1,440).
    assert 20 <= attempts <= 35 and delivery.attempts == attempts
    page = client_for(make_employee(is_admin=True)).get("/admin/webhooks").get_data(as_text=True)
    assert "given up" in page and "answered 503" in page


def test_410_gone_fails_without_retrying(app, db, make_post, make_employee, clock, receiver):
    """A receiver answering 410 Gone is not asked again."""
    register(db, receiver.url, clock.now, "post.published")
    publish_draft(db, make_post, make_employee, clock)
    db.commit()
    receiver.script = [(410, {})]
    assert deliver(app, db, clock).failed == 1
    clock.advance(hours=2)
    assert deliver(app, db, clock).sent == 0 and len(receiver.received) == 1


def test_a_sender_that_dies_after_sending_leads_to_one_duplicate_with_the_same_id(app, db, make_post, make_employee,
                                                                                  clock, receiver):
    """At least once: a claim whose sender died is taken over after its lease, re-sent under the same webhook-id."""
    register(db, receiver.url, clock.now, "post.published")
    publish_draft(db, make_post, make_employee, clock)
    db.commit()
    from intranet.delivery.sending import claim_due

    settings = app.extensions["intranet"].settings
    assert claim_due(db, WebhookDelivery, clock.now, "dead-sender", limit=10, lease=settings.webhooks.lease)
    db.commit()
    assert deliver(app, db, clock).sent == 0  # still leased to the dead sender
    clock.advance(seconds=settings.webhooks.lease_seconds + 1)
    assert deliver(app, db, clock).sent == 1
    assert len(receiver.received) == 1 and deliveries(db)[0].attempts == 2


def test_a_paused_endpoint_waits_and_resumes(app, db, make_post, make_employee, clock, receiver):
    """Deliveries to a paused endpoint wait, and go out once it is resumed."""
    created = register(db, receiver.url, clock.now, "post.published")
    publish_draft(db, make_post, make_employee, clock)
    db.commit()
    endpoints.set_active(db, created.endpoint, False)
    db.commit()
    assert deliver(app, db, clock).sent == 0
    endpoints.set_active(db, created.endpoint, True)
    db.commit()
    assert deliver(app, db, clock).sent == 1


def test_a_failing_endpoint_is_tried_once_a_round_and_others_still_get_theirs(app, db, make_post, make_employee,
                                                                              clock, receiver):
    """After one failure, an endpoint's other deliveries in the round wait untried for the same retry
    time; another endpoint still gets all of its events."""
    with Receiver() as healthy:
        register(db, receiver.url, clock.now, "post.published")
        register(db, healthy.url, clock.now, "post.published")
        comms = make_employee(is_comms=True)
        for n in range(3):
            posts.publish(db, make_post(status="draft", published_at=None, publish_at=None, title=f"P{n}"),
                          actor=comms, now=clock.now)
        db.commit()
        receiver.script = [(503, {})] * 10
        report = deliver(app, db, clock)
        assert len(receiver.received) == 1 and len(healthy.received) == 3
        assert report.sent == 3 and report.retried == 1 and report.skipped == 2
        waiting = [d for d in deliveries(db) if d.status == "pending"]
        assert len(waiting) == 3 and len({d.next_attempt_at for d in waiting}) == 1
        assert sorted(d.attempts for d in waiting) == [0, 0, 1]
        clock.now = waiting[0].next_attempt_at
        receiver.script = []
        assert deliver(app, db, clock).sent == 3 and len(set(receiver.ids())) == 3


def test_erasing_a_person_deletes_the_webhook_events_about_them(app, db, make_post, make_employee, clock):
    """Erasure removes acknowledgement events naming the person, sent or still waiting."""
    from intranet.directory import lifecycle

    register(db, "https://hooks.example.com/x", clock.now, "post.acknowledged", "post.published")
    person = make_employee()
    post = make_post(must_read=True)
    feed.acknowledge(db, person, post, now=clock.now)
    publish_draft(db, make_post, make_employee, clock)
    db.commit()
    assert event_count(db) == 2
    erased = lifecycle.erase(db, person, clock.now)
    db.commit()
    assert erased.deleted["webhook_events"] == 1
    assert [e.type for e in db.exec(select(WebhookEvent)).scalars()] == ["post.published"]
    assert len(deliveries(db)) == 1


def test_a_persons_data_download_lists_the_webhook_events_about_them(app, db, make_post, make_employee, clock,
                                                                      receiver):
    """The person's own export shows what was sent about them and whether it arrived (no endpoint URLs)."""
    from intranet import personal_data

    register(db, receiver.url, clock.now, "post.acknowledged")
    person, other = make_employee(), make_employee()
    post = make_post(must_read=True)
    feed.acknowledge(db, person, post, now=clock.now)
    feed.acknowledge(db, other, post, now=clock.now)
    db.commit()
    deliver(app, db, clock)
    listed = personal_data.export(db, person, now=clock.now)["webhook_events"]
    assert listed == [{"type": "post.acknowledged", "occurred_at": "2026-11-24T09:00:00Z", "delivered": True,
                       "data": {"post_id": post.id, "acknowledged_at": "2026-11-24T09:00:00Z",
                                "employee": {"employee_id": person.employee_id, "entra_object_id": None}}}]
    assert receiver.url not in json.dumps(listed)


@pytest.mark.postgres_only
def test_two_concurrent_acknowledgements_record_one_event(app, db, make_post, make_employee, clock):
    """Two acknowledgements of one must-read racing in two transactions: one post.acknowledged event."""
    register(db, "https://hooks.example.com/x", clock.now, "post.acknowledged")
    person = make_employee()
    post = make_post(must_read=True)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def acknowledge() -> None:
        try:
            with Session(db.get_bind()) as own:
                me, it = own.get(type(person), person.id), own.get(type(post), post.id)
                barrier.wait(10)
                feed.acknowledge(own, me, it, now=clock.now)
                own.commit()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=acknowledge) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert event_count(db) == 1 and len(deliveries(db)) == 1


@pytest.mark.postgres_only
def test_two_concurrent_senders_deliver_each_event_once(app, db, make_post, make_employee, clock, receiver):
    """Two senders racing over 30 due deliveries (FOR UPDATE SKIP LOCKED): 30 requests, no duplicate id."""
    register(db, receiver.url, clock.now, "post.published")
    comms = make_employee(is_comms=True)
    for n in range(30):
        posts.publish(db, make_post(status="draft", published_at=None, publish_at=None, title=f"P{n}"), actor=comms,
                      now=clock.now)
    db.commit()
    errors: list[BaseException] = []
    settings = app.extensions["intranet"].settings

    def run(owner: str) -> None:
        try:
            with Session(db.get_bind(), expire_on_commit=False) as own, network.client(allow_private=True) as http:
                from intranet.webhooks import sender

                for _ in range(30):
                    report = sender.send_due(own, clock, settings.model_copy(update={
                        "webhooks": settings.webhooks.model_copy(update={"batch": 3})}), http=http, owner=owner)
                    if report.sent == 0 and report.lost == 0:
                        break
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"S{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(receiver.ids()) == 30 and len(set(receiver.ids())) == 30
    assert {d.status for d in deliveries(db)} == {"delivered"}


# ------------------------------------------------------------------------------------------------
# Where deliveries may go
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["ftp://example.com/x", "https://user:pw@example.com/", "http:///nohost",
                                 "http://127.0.0.1:8080/", "http://10.1.2.3/", "http://169.254.169.254/latest",
                                 "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://localhost/"])
def test_unsafe_urls_are_refused_in_production(url):
    """Only http(s), no credentials, and no loopback, private or link-local address unless allowed."""
    with pytest.raises(InvalidInput):
        network.check_url(url, allow_private=False, resolve=False)


@pytest.mark.settings(INTRANET_WEBHOOKS_ALLOW_PRIVATE=False)
def test_a_delivery_reaching_a_private_address_is_refused_on_connect(app, db, make_post, make_employee, clock,
                                                                      receiver):
    """In production the connected address is checked (after DNS): loopback is refused, nothing is sent."""
    register(db, receiver.url, clock.now, "post.published")  # registered while it was allowed
    publish_draft(db, make_post, make_employee, clock)
    db.commit()
    report = deliver(app, db, clock)
    assert report.failed == 1 and receiver.received == []
    [delivery] = deliveries(db)
    assert delivery.status == "failed" and "not a public address" in delivery.last_error


# ------------------------------------------------------------------------------------------------
# Secrets at rest
# ------------------------------------------------------------------------------------------------

KEY = "r1Kx0uK2tq2dbh2U8Yy3o7nWcQ4C3Xn0y3JrVgk3cZQ="


@pytest.mark.settings(INTRANET_WEBHOOKS_ALLOW_PRIVATE=True, INTRANET_WEBHOOKS_ENCRYPTION_KEY=KEY)
def test_with_a_key_secrets_are_stored_encrypted_and_still_sign(app, db, make_post, make_employee, clock, receiver):
    """With INTRANET_WEBHOOKS_ENCRYPTION_KEY the stored secret is a Fernet token; deliveries still verify."""
    created = register(db, receiver.url, clock.now, "post.published", box=SecretBox(KEY))
    stored = db.get(WebhookEndpoint, created.endpoint.id).secret
    assert stored.startswith("fernet:") and created.secret not in stored
    publish_draft(db, make_post, make_employee, clock)
    db.commit()
    assert deliver(app, db, clock).sent == 1
    Webhook(created.secret).verify(receiver.received[0].body, receiver.received[0].headers)


def test_an_encrypted_secret_without_its_key_says_how_to_fix_it(app, db, make_post, make_employee, clock, receiver):
    """A secret sealed with a key the app no longer has is not sent, and the admin page says why."""
    register(db, receiver.url, clock.now, "post.published", box=SecretBox(sealing.new_key()))
    publish_draft(db, make_post, make_employee, clock)
    db.commit()
    assert deliver(app, db, clock).retried == 1 and receiver.received == []
    assert "INTRANET_WEBHOOKS_ENCRYPTION_KEY" in deliveries(db)[0].last_error


# ------------------------------------------------------------------------------------------------
# Admin page and command line
# ------------------------------------------------------------------------------------------------


def test_admin_registers_an_endpoint_and_sees_its_secret_once(app, db, client_for, make_employee, receiver):
    """The form shows the signing secret in its answer only; the page never shows it again."""
    admin = client_for(make_employee(is_admin=True))
    answer = admin.post("/admin/webhooks", data={"url": receiver.url, "event_types": ["post.published", "digest.sent"],
                                                 "description": "Host intranet", "csrf_token": admin.csrf})
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    [endpoint] = db.exec(select(WebhookEndpoint)).scalars().all()
    secret = SecretBox().open(endpoint.secret)
    assert secret.startswith("whsec_") and secret in page
    assert endpoint.event_types == ["post.published", "digest.sent"]
    assert secret not in admin.get("/admin/webhooks").get_data(as_text=True)


def test_admin_form_refuses_a_bad_url_and_no_events(app, client_for, make_employee):
    """A URL that is not http(s) or no event chosen is a 422 with the form kept."""
    admin = client_for(make_employee(is_admin=True))
    answer = admin.post("/admin/webhooks", data={"url": "ftp://example.com", "event_types": ["post.published"],
                                                 "csrf_token": admin.csrf})
    assert answer.status_code == 422 and "https://" in answer.get_data(as_text=True)
    answer = admin.post("/admin/webhooks", data={"url": "https://example.com", "csrf_token": admin.csrf})
    assert answer.status_code == 422


def test_admin_tests_pauses_rotates_and_removes(app, db, client_for, make_employee, clock, receiver):
    """The page's buttons: a signed test event, pause, a new secret shown once, removal."""
    created = register(db, receiver.url, clock.now, "post.published")
    admin = client_for(make_employee(is_admin=True))
    pk = created.endpoint.id
    page = admin.post(f"/admin/webhooks/{pk}/test", data={"csrf_token": admin.csrf}, follow_redirects=True)
    assert "answered 200" in page.get_data(as_text=True)
    got = receiver.received[0]
    assert Webhook(created.secret).verify(got.body, got.headers)["type"] == "webhook.test"
    admin.post(f"/admin/webhooks/{pk}/active", data={"active": "0", "csrf_token": admin.csrf})
    db.expire_all()
    assert db.get(WebhookEndpoint, pk).active is False
    page = admin.post(f"/admin/webhooks/{pk}/rotate", data={"csrf_token": admin.csrf}).get_data(as_text=True)
    db.expire_all()
    new = db.get(WebhookEndpoint, pk).secret
    assert new != created.secret and new in page
    admin.post(f"/admin/webhooks/{pk}/remove", data={"csrf_token": admin.csrf})
    db.expire_all()
    assert db.get(WebhookEndpoint, pk) is None


def test_only_admins_see_the_webhooks_page(app, client_for, make_employee):
    """Comms managers get 403."""
    assert client_for(make_employee(is_comms=True)).get("/admin/webhooks").status_code == 403


def cli(app, *args):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=["intranet", "webhooks", *args])


def test_cli_adds_lists_tests_rotates_and_removes(app, db, receiver):
    """``webhooks add|list|test|rotate-secret|remove`` through the Click runner."""
    added = cli(app, "add", receiver.url, "--event", "post.published", "--event", "digest.sent",
                "--description", "Host")
    assert added.exit_code == 0, added.output
    secret = added.output.split("shown once; give it to the receiver): ")[1].strip()
    [endpoint] = db.exec(select(WebhookEndpoint)).scalars().all()
    listed = cli(app, "list", "--json")
    assert listed.exit_code == 0
    assert json.loads(listed.output) == [{"id": endpoint.id, "url": receiver.url, "active": True,
                                          "events": ["post.published", "digest.sent"], "description": "Host",
                                          "delivered": 0, "waiting": 0, "given_up": 0}]
    assert secret not in listed.output
    tested = cli(app, "test", str(endpoint.id))
    assert tested.exit_code == 0 and "answered 200" in tested.output
    Webhook(secret).verify(receiver.received[0].body, receiver.received[0].headers)
    rotated = cli(app, "rotate-secret", str(endpoint.id))
    assert rotated.exit_code == 0 and "whsec_" in rotated.output and secret not in rotated.output
    removed = cli(app, "remove", str(endpoint.id))
    assert removed.exit_code == 0
    assert cli(app, "list", "--json").output.strip() == "[]"
    assert cli(app, "remove", str(endpoint.id)).exit_code == 1


def test_cli_send_delivers_the_due_events(app, db, make_post, make_employee, clock, receiver):
    """``webhooks send`` runs one round of the sender job."""
    register(db, receiver.url, clock.now, "post.published")
    publish_draft(db, make_post, make_employee, clock)
    db.commit()
    result = cli(app, "send")
    assert result.exit_code == 0 and "sent 1" in result.output
    assert len(receiver.received) == 1


def test_cli_test_fails_when_the_receiver_fails(app, db, clock, receiver):
    """``webhooks test`` exits 1 and says what the receiver answered."""
    created = register(db, receiver.url, clock.now, "post.published")
    receiver.script = [(500, {})]
    result = cli(app, "test", str(created.endpoint.id))
    assert result.exit_code == 1 and "answered 500" in result.output


@pytest.mark.settings(INTRANET_WEBHOOKS_ALLOW_PRIVATE=False)
def test_cli_add_refuses_a_private_address_in_production(app):
    """``webhooks add`` refuses loopback in production without INTRANET_WEBHOOKS_ALLOW_PRIVATE."""
    result = cli(app, "add", "http://127.0.0.1:9/x", "--event", "all")
    assert result.exit_code == 1 and "private address" in result.output


def test_cli_new_key_prints_a_usable_key(app):
    """``webhooks new-key`` prints a Fernet key that the settings accept."""
    result = cli(app, "new-key")
    assert result.exit_code == 0
    box = SecretBox(result.output.strip())
    assert box.open(box.seal("whsec_abc")) == "whsec_abc"

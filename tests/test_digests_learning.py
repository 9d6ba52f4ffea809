"""The read-time model's database side (incremental counts, mail scanners) and Teams escalation."""
from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
import responses
from sqlalchemy import select

from intranet import preferences
from intranet.delivery import digests, history, outbox, timing
from intranet.engagement import events
from intranet.models import Digest, OutboxMessage

T0 = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.timezone.utc)   # a Monday


def add(db, person, kind, at, post_id=None, n=[0]):  # type: ignore[no-untyped-def]
    n[0] += 1
    events.record(db, person, kind, at=at, client_id=f"t{n[0]}", post_id=post_id)


def test_incremental_refresh_matches_a_full_recount(db, make_employee):
    """Folding settled events into the stored state, then counting the rest, equals counting everything."""
    a, b = make_employee(timezone="Europe/Berlin"), make_employee(timezone="America/New_York")
    for day in range(14):
        base = T0 + dt.timedelta(days=day)
        for person, delay in ((a, 2), (b, 5)):
            add(db, person, "digest_sent", base)
            add(db, person, "digest_open", base + dt.timedelta(hours=delay, minutes=10))
            add(db, person, "session", base + dt.timedelta(hours=delay))
    db.commit()
    now = T0 + dt.timedelta(days=16)
    full, _ = history.current_counts(db, [a.id, b.id], now)
    # The events were "received" at their occurrence (record() stamps received_at = occurred_at).
    assert history.refresh(db, now - dt.timedelta(days=1)) == 2
    db.commit()
    assert history.refresh(db, now - dt.timedelta(days=1)) == 0          # nothing new: safe to run twice
    incremental, _ = history.current_counts(db, [a.id, b.id], now)
    for name in ("reads", "exposure", "activity"):
        assert np.allclose(getattr(full, name), getattr(incremental, name), rtol=1e-3, atol=1e-4), name
    assert full.reads.sum() > 20 and full.exposure.sum() > 20


def test_scanner_clicks_are_not_reads(db, make_employee, make_post):
    """A click seconds after delivery with no page view is a mail scanner; with a page view it is a read."""
    post = make_post(published_at=T0 - dt.timedelta(days=1))
    scanned, real = make_employee(), make_employee()
    for person in (scanned, real):
        add(db, person, "digest_sent", T0)
        add(db, person, "digest_click", T0 + dt.timedelta(seconds=20), post_id=post.id)
    add(db, real, "open", T0 + dt.timedelta(seconds=40), post_id=post.id)
    db.commit()
    counts, _ = history.current_counts(db, [scanned.id, real.id], T0 + dt.timedelta(days=1))
    assert counts.reads[0].sum() == 0
    assert counts.reads[1].sum() > 0
    assert events.is_scanner_click(T0 + dt.timedelta(seconds=20), T0, [])
    assert not events.is_scanner_click(T0 + dt.timedelta(minutes=5), T0, [])


def test_learned_hour_follows_a_persons_reading(db, make_employee):
    """Someone who always reads at 15:00 local gets a personal plan near 15:00 and is told why."""
    person = make_employee(timezone="Europe/Berlin")
    others = [make_employee(timezone="Europe/Berlin") for _ in range(3)]
    for day in range(28):
        base = dt.datetime(2026, 10, 26, 8, tzinfo=dt.timezone.utc) + dt.timedelta(days=day)
        if base.weekday() >= 5:
            continue
        add(db, person, "digest_sent", base)                                        # 09:00 local
        add(db, person, "digest_open", base + dt.timedelta(hours=6, minutes=5))     # 15:05 local
        add(db, person, "session", base + dt.timedelta(hours=6))
        for other in others:
            add(db, other, "digest_sent", base)
            add(db, other, "digest_open", base + dt.timedelta(minutes=30))
            add(db, other, "session", base + dt.timedelta(minutes=20))
    db.commit()
    now = dt.datetime(2026, 11, 24, 0, tzinfo=dt.timezone.utc)
    result = digests.plan_all(db, now)
    row = result.as_dicts()[result.employee_pks.index(person.id)]
    if row["basis"] == "control":
        pytest.skip("this person is in this week's control group")
    assert row["basis"] == "personal"
    assert 12 <= row["local_hours"][0] <= 15
    db.commit()
    schedule = digests.schedule_for(db, person, now)
    assert schedule["usual_read_hour"] in (14, 15, 16)
    assert "usually read around" in schedule["why"]


def test_must_read_escalates_to_teams_with_an_adaptive_card(app, db, make_employee, make_post, clock):
    """An unacknowledged must-read past the reminder time goes to a second channel (Teams, by UPN)."""
    app.config.update(INTRANET_TEAMS_WORKFLOW_URL="https://flow.example.com/trigger?sig=secret",
                      INTRANET_BASE_URL="https://news.example.com")
    person = make_employee(email="ana@example.com")
    make_post(title="Safety rules", must_read=True, published_at=clock.now - dt.timedelta(days=3),
              ack_deadline=clock.now + dt.timedelta(days=7))
    make_post(title="Canteen menu", published_at=clock.now - dt.timedelta(hours=1))
    db.add(Digest(employee_pk=person.id, local_date=clock.now.date(), ordinal=0, due_at=clock.now,
                  expires_at=clock.now + dt.timedelta(hours=12), timezone="Europe/Berlin", local_hour=10))
    db.commit()
    digests.enqueue_due(db, clock.now, teams_enabled=True)
    db.commit()
    rows = {m.channel: m for m in db.exec(select(OutboxMessage)).scalars()}
    assert set(rows) == {"email", "in_app", "teams"} and rows["teams"].escalation
    with responses.RequestsMock() as mock, app.app_context():
        mock.post("https://flow.example.com/trigger", status=202)
        from intranet.delivery.channels.in_app import InApp
        from intranet.delivery.channels.teams import TeamsWorkflow

        report = outbox.send_due(db, clock, app.config, channels={"teams": TeamsWorkflow(
            app.config["INTRANET_TEAMS_WORKFLOW_URL"]), "in_app": InApp()})
        assert report.sent == 2
        payload = json.loads(mock.calls[0].request.body)
    assert payload["recipient"] == "ana@example.com"
    card = payload["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard"
    texts = " ".join(b["text"] for b in card["body"])
    assert "Safety rules" in texts and "Canteen menu" not in texts         # the reminder carries must-reads only


def test_teams_429_is_retried_after_retry_after(app, db, make_employee, make_post, clock):
    """A throttled Teams post waits at least Retry-After; a deleted flow (404) fails without retry."""
    from intranet.delivery.channels import PermanentFailure, TemporaryFailure
    from intranet.delivery.channels.teams import TeamsWorkflow

    url = "https://flow.example.com/trigger"
    rendered = outbox.RenderedDigest(message_id="<m@x>", recipient_email="a@example.com", recipient_name="A",
                                     subject="s", html="", text="", card={}, unsubscribe_url="u")
    with responses.RequestsMock() as mock:
        mock.post(url, status=429, headers={"Retry-After": "120"})
        with pytest.raises(TemporaryFailure) as temporary:
            TeamsWorkflow(url).deliver(rendered, clock.now)
        assert temporary.value.retry_after == 120
        mock.replace(responses.POST, url, status=404)
        with pytest.raises(PermanentFailure):
            TeamsWorkflow(url).deliver(rendered, clock.now)


def test_control_and_personal_bases_are_valid_basis_values():
    """The plan's basis values are exactly the documented ones."""
    assert {b.value for b in timing.Basis} == {"personal", "peers", "default", "control"}


def test_preferences_window_maps_to_the_planner(db, make_employee, clock):
    """Preferences become the planner's window (cadence, weekly day, quiet hours, working days)."""
    person = make_employee()
    prefs = preferences.update(db, person, preferences.PreferencesIn(cadence="weekly", weekly_day=2, quiet_start=22,
                                                                     quiet_end=6, learned_timing=False), now=clock.now)
    window = preferences.delivery_window(prefs)
    assert (window.cadence, window.weekly_day, window.quiet_start, window.quiet_end, window.learned_timing) == (
        timing.Cadence.WEEKLY, 2, 22, 6, False)

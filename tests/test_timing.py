"""Learned digest timing: the read-time model, slot choice and the DST-safe planner."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import example, given, settings as hsettings, strategies as st

from intranet.delivery import timing
from intranet.delivery.timing import Basis, Cadence, DeliveryWindow, TimingSettings

NO_NOISE = TimingSettings(epsilon=0.0, control_share=0.0)
ALL_DAY = dict(quiet_start=0, quiet_end=0, working_days=tuple(range(7)))
MONDAY = datetime(2026, 6, 1, 0, tzinfo=UTC)


def flat_model(rate: float = 0.1) -> timing.PeerModel:
    """Peer curves that know nothing: the same hazard and activity in every hour."""
    flat = np.full((2, 168), rate)
    return timing.PeerModel(org_mu=flat[0], region_mu=flat, group_mu=flat,
                            group_activity=np.full((2, 168), 0.1), known=True)


def digest_history(sends: list[tuple[int, int | None]], employee: int = 0, n: int = 1,
                   weeks: int = 1) -> timing.TimingCounts:
    """Counts from weekday digests sent at local hour ``s`` and read at hour ``r`` (or never)."""
    emp, how, age, kind, pending = [], [], [], [], []
    for k, (sent, read) in enumerate(sends):
        day = k % 5
        emp += [employee]
        how += [day * 24 + sent]
        age += [k / 5 * 7 / weeks]
        kind += ["digest_sent"]
        pending += [48 if read is None else read - sent + 1]
        if read is not None:
            emp += [employee]
            how += [day * 24 + read]
            age += [k / 5 * 7 / weeks]
            kind += ["digest_open"]
            pending += [0]
    return timing.timing_counts(emp, how, age, kind, n, pending_hours=pending,
                                observed_days=np.full(n, 7.0 * weeks))


def sessions(hours_by_employee: dict[int, list[int]], n: int, weeks: int = 4
             ) -> timing.TimingCounts:
    """Counts from intranet sessions on every weekday of ``weeks`` weeks at the given hours."""
    emp, how, age = [], [], []
    for e, hours in hours_by_employee.items():
        for w in range(weeks):
            for d in range(5):
                for h in hours:
                    emp.append(e), how.append(d * 24 + h), age.append(7 * w + 1)
    return timing.timing_counts(emp, how, age, ["session"] * len(emp), n,
                                observed_days=np.where(
                                    np.isin(np.arange(n), list(hours_by_employee)),
                                    7.0 * weeks, 0.0))


def best_hour(counts: timing.TimingCounts, model: timing.PeerModel,
              window: DeliveryWindow = DeliveryWindow()) -> int:
    est = timing.estimate(counts, np.zeros(counts.reads.shape[0], int), model)
    hours = timing.choose_hours(timing.read_probability(est.mu),
                                timing.WindowArrays.from_windows([window] * len(est.mu)))
    return int(hours[0, 0])


def test_exposure_correction_beats_the_histogram_of_reads():
    """Reads at 9 only because we sent at 9 do not make 9 the best hour."""
    # Mostly sent at 9: read at once a third of the time, else never. Sent at 7 a few times:
    # read at once every time. The histogram of reads peaks at 9; the hazard at 7.
    history = [(9, 9), (9, None), (9, None)] * 10 + [(7, 7)] * 8
    counts = digest_history(history, weeks=6)
    naive = int(np.argmax(counts.reads.reshape(7, 24).sum(0)))
    assert naive == 9
    est = timing.estimate(counts, [0], flat_model())
    assert est.mu[0, 7] > est.mu[0, 9]
    assert best_hour(counts, flat_model()) == 7


def test_exposure_counts_only_hours_the_digest_was_pending():
    """A digest read three hours after its 9:00 send exposes 9, 10 and 11, burial-weighted."""
    counts = digest_history([(9, 11)])
    exposed = np.flatnonzero(counts.exposure[0])
    assert list(exposed) == [9, 10, 11]
    np.testing.assert_allclose(counts.exposure[0, 9:12], np.exp(-np.arange(3) / 8.0))
    assert counts.reads[0, 11] == 1.0


def test_decay_halves_an_event_after_the_half_life():
    """An event four weeks old counts half, and lazy decay matches decaying the events."""
    counts = timing.timing_counts([0, 0], [10, 10], [0.0, 28.0], ["session", "session"], 1)
    assert counts.activity[0, 10] == pytest.approx(1.5)
    later = counts.decayed(28.0)
    assert later.activity[0, 10] == pytest.approx(0.75)


def test_decay_lets_a_new_habit_win():
    """Someone who read at 8 months ago and at 15 lately is planned for the afternoon."""
    old = timing.timing_counts([0] * 60, [d % 5 * 24 + 8 for d in range(60)],
                               [70 + d for d in range(60)], ["session"] * 60, 1)
    new = timing.timing_counts([0] * 30, [d % 5 * 24 + 15 for d in range(30)],
                               [d / 3 for d in range(30)], ["session"] * 30, 1)
    counts = old + new
    counts.observed_weeks[:] = timing.observed_weeks(100)
    est = timing.estimate(counts, [0], flat_model())
    assert timing.usual_read_hour(est.mu[0]) == 15


def test_new_hire_gets_the_department_region_curve():
    """A new hire with no history is planned like their department x region, not the org."""
    n = 41
    # Group 0 (20 people) is active at 16:00, group 1 (20 people) at 08:00; employee 40 is new.
    active = {e: [16] if e < 20 else [8] for e in range(40)}
    counts = sessions(active, n)
    group = np.array([0] * 20 + [1] * 20 + [0])
    model = timing.fit_peers(counts, np.zeros(n, int), group)
    est = timing.estimate(counts, group, model)
    np.testing.assert_allclose(est.mu[40], model.group_mu[0])
    plan = timing.plan_digests([f"E{i}" for i in range(n)], ["UTC"] * n, [DeliveryWindow()] * n,
                               counts, group, MONDAY, region=np.zeros(n, int), settings=NO_NOISE)
    assert plan.basis[40] == Basis.PEERS
    assert 12 <= plan.hours[40, 0] <= 16
    assert plan.hours[20, 0] <= 8


def test_quiet_hours_may_wrap_midnight():
    """Quiet hours 22:00-06:00 leave 06:00-21:59; 08:00-18:00 leave the evening and night."""
    assert DeliveryWindow(quiet_start=22, quiet_end=6).allowed_hours() == list(range(6, 22))
    assert DeliveryWindow(quiet_start=8, quiet_end=18).allowed_hours() == (
        list(range(8)) + list(range(18, 24)))
    assert DeliveryWindow(quiet_start=5, quiet_end=5).allowed_hours() == list(range(24))


@hsettings(max_examples=60, deadline=None)
@given(curve=st.lists(st.floats(0.0, 1.0), min_size=168, max_size=168),
       quiet_start=st.integers(0, 23), quiet_end=st.integers(0, 23),
       cadence=st.sampled_from([Cadence.DAILY, Cadence.TWICE_DAILY, Cadence.WEEKLY]))
def test_chosen_hours_are_never_quiet(curve, quiet_start, quiet_end, cadence):
    """Whatever the curve, every chosen hour lies outside the person's quiet hours."""
    window = DeliveryWindow(cadence=cadence, weekly_day=3, quiet_start=quiet_start,
                            quiet_end=quiet_end)
    hours = timing.choose_hours(np.array([curve]), timing.WindowArrays.from_windows([window]))
    chosen = [h for h in hours[0] if h >= 0]
    assert chosen, "there is always at least one allowed hour"
    assert set(chosen) <= set(window.allowed_hours())


def test_a_peak_inside_quiet_hours_moves_to_the_nearest_allowed_hour():
    """An evening reader with quiet hours from 20:00 is sent the digest at 19:00."""
    counts = sessions({0: [21, 21, 22]}, 1)
    assert best_hour(counts, flat_model()) == 19


@hsettings(max_examples=30, deadline=None)
@given(days=st.sets(st.integers(0, 6), min_size=1))
def test_daily_digests_go_out_on_working_days_only(days):
    """Local dates of the sends are exactly the person's working days in the week ahead."""
    window = DeliveryWindow(working_days=tuple(sorted(days)))
    plan = timing.plan_digests(["E1"], ["Asia/Tokyo"], [window], timing.TimingCounts.zeros(1),
                               [0], MONDAY, region=[0], settings=NO_NOISE).plan(0)
    assert {s.local_date.weekday() for s in plan.sends} == days
    assert len(plan.sends) == len(days)


@hsettings(max_examples=60, deadline=None)
@given(curve=st.lists(st.floats(0.0, 1.0), min_size=168, max_size=168),
       gap=st.integers(1, 8))
def test_twice_daily_pair_keeps_the_minimum_gap(curve, gap):
    """Two digests a day are ordered and at least the minimum gap apart, round the clock too."""
    window = DeliveryWindow(cadence=Cadence.TWICE_DAILY, **ALL_DAY)
    hours = timing.choose_hours(np.array([curve]), timing.WindowArrays.from_windows([window]),
                                TimingSettings(min_gap_hours=gap))
    first, second = hours[0]
    assert 0 <= first < second
    assert min(second - first, 24 - (second - first)) >= gap


def test_twice_daily_picks_the_best_pair_not_the_two_best_hours():
    """With adjacent peaks at 10 and 11 and a smaller one at 16, the pair is 10/11 and 16."""
    curve = np.zeros(168)
    for d in range(7):
        curve[d * 24 + 10], curve[d * 24 + 11], curve[d * 24 + 16] = 0.9, 0.8, 0.5
    window = DeliveryWindow(cadence=Cadence.TWICE_DAILY)
    hours = timing.choose_hours(curve[None], timing.WindowArrays.from_windows([window]))
    assert hours[0, 0] in (10, 11) and hours[0, 1] == 16


def test_weekly_digest_goes_on_the_chosen_day_at_that_day_s_best_hour():
    """A weekly digest on Wednesday uses Wednesday's curve and goes out once a week."""
    curve = np.full(168, 0.01)
    curve[0 * 24 + 8] = curve[1 * 24 + 8] = 1.0  # Monday and Tuesday: 08:00
    curve[2 * 24 + 15] = 1.0                      # Wednesday: 15:00
    window = DeliveryWindow(cadence=Cadence.WEEKLY, weekly_day=2)
    wa = timing.WindowArrays.from_windows([window])
    hours = timing.choose_hours(timing.read_probability(curve[None]), wa)
    assert list(hours[0]) == [15, -1]
    sends = timing.schedule(timing.employee_keys(["E1"]), ["Europe/Paris"], hours, wa, MONDAY,
                            np.array([False]))
    assert [date.fromordinal(int(d)).weekday() for d in sends["send_local_date"]] == [2]


DST_DAYS = [
    # zone, local date, local hour, the one UTC instant it is sent at
    ("Europe/Berlin", date(2026, 3, 29), 2, datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
    ("Europe/Berlin", date(2026, 10, 25), 2, datetime(2026, 10, 25, 0, 0, tzinfo=UTC)),
    ("America/New_York", date(2026, 3, 8), 2, datetime(2026, 3, 8, 7, 0, tzinfo=UTC)),
    ("America/New_York", date(2026, 11, 1), 1, datetime(2026, 11, 1, 5, 0, tzinfo=UTC)),
    ("America/New_York", date(2026, 11, 1), 2, datetime(2026, 11, 1, 7, 0, tzinfo=UTC)),
]


@pytest.mark.parametrize(("zone", "day", "hour", "expected"), DST_DAYS)
def test_a_slot_on_a_dst_change_day_is_sent_exactly_once(zone, day, hour, expected):
    """Spring forward: the first instant after the gap; fall back: the first occurrence."""
    window = DeliveryWindow(**ALL_DAY)
    at = datetime.combine(day - timedelta(days=2), datetime.min.time(), UTC)
    plan = timing.plan_digests(["E1"], [zone], [window], timing.TimingCounts.zeros(1), [0], at,
                               region=[0], settings=TimingSettings(
                                   default_hour=hour, epsilon=0.0, control_share=0.0)).plan(0)
    that_day = [s for s in plan.sends if s.local_date == day]
    assert [s.utc for s in that_day] == [expected]
    assert len({s.utc for s in plan.sends}) == len(plan.sends) == 7


@pytest.mark.parametrize(("zone", "day", "expected"), [
    ("Europe/Berlin", date(2026, 3, 29), datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
    ("Europe/Berlin", date(2026, 10, 25), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
    ("America/New_York", date(2026, 3, 8), datetime(2026, 3, 8, 7, 0, tzinfo=UTC)),
    ("America/New_York", date(2026, 11, 1), datetime(2026, 11, 1, 7, 30, tzinfo=UTC)),
])
def test_local_0230_maps_to_one_instant(zone, day, expected):
    """02:30 local is 03:00 after a spring-forward gap and its first occurrence on fall back."""
    assert timing.local_to_utc(day, 2, zone, minute=30) == expected


@hsettings(max_examples=40, deadline=None)
@given(zone=st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Sydney",
                             "Asia/Kolkata", "America/Sao_Paulo"]),
       hour=st.integers(0, 23), offset_hours=st.integers(0, 24 * 400))
@example(zone="Australia/Sydney", hour=0, offset_hours=2222)  # the week DST ends there: 6 sends, not 7
def test_replanning_sends_each_slot_once_at_the_same_instant(zone, hour, offset_hours):
    """Plans made a day apart agree on every shared slot key; no slot is doubled or skipped."""
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=offset_hours)
    # No exploration here: a slot explored 1-2 h later can leave the 7-day window at its end,
    # which would make the count below depend on the hash rather than on DST handling.
    kwargs = dict(region=[0], settings=TimingSettings(default_hour=hour, control_share=0.0, epsilon=0.0))
    window = DeliveryWindow(**ALL_DAY)
    first = timing.plan_digests(["E1"], [zone], [window], timing.TimingCounts.zeros(1), [0], at,
                                **kwargs).plan(0)
    second = timing.plan_digests(["E1"], [zone], [window], timing.TimingCounts.zeros(1), [0],
                                 at + timedelta(days=1), **kwargs).plan(0)
    a = {(s.local_date, s.ordinal): s.utc for s in first.sends}
    b = {(s.local_date, s.ordinal): s.utc for s in second.sends}
    assert all(a[k] == b[k] for k in a.keys() & b.keys())
    dates = sorted(k[0] for k in a)
    assert len(a) == len(first.sends) and dates == sorted(set(dates))
    assert all((y - x).days == 1 for x, y in zip(dates, dates[1:]))
    assert all(at <= t < at + timedelta(days=7) for t in a.values())
    # Every local day whose send hour falls in the week is planned: usually 7, but 6 when the week
    # gains an hour (DST ends) and the last send lands exactly on its end.
    (send_hour,) = {s.local_hour for s in first.sends}
    local_start = at.astimezone(ZoneInfo(zone)).date()
    due = {day for day in (local_start + timedelta(days=n) for n in range(-1, 9))
           if at <= timing.local_to_utc(day, send_hour, zone) < at + timedelta(days=7)}
    assert set(dates) == due


def population_plan(n: int = 4000, **settings: float) -> timing.PlanBatch:
    ids = [f"E{i:05d}" for i in range(n)]
    counts = sessions({i: [10] for i in range(n)}, n, weeks=2)
    return timing.plan_digests(ids, ["Europe/Berlin"] * n, [DeliveryWindow()] * n, counts,
                               np.zeros(n, int), MONDAY, region=np.zeros(n, int),
                               settings=TimingSettings(**settings))


def test_exploration_share_is_about_epsilon_and_stays_close():
    """About epsilon of the slots are explored, 1-2 hours off, inside the allowed hours."""
    batch = population_plan(epsilon=0.1, control_share=0.0)
    share = batch.send_explored.mean()
    assert 0.08 < share < 0.12  # 20,000 slots: the binomial sd is 0.002
    shift = batch.send_local_hour - batch.hours[batch.send_employee, batch.send_ordinal]
    assert set(np.abs(shift[batch.send_explored])) <= {1, 2}
    assert not shift[~batch.send_explored].any()
    assert set(batch.send_local_hour) <= set(DeliveryWindow().allowed_hours())
    np.testing.assert_allclose(batch.send_propensity[~batch.send_explored], 0.9)


def test_exploration_is_deterministic():
    """The same people, dates and settings explore the same slots, the same way."""
    a, b = population_plan(500), population_plan(500)
    np.testing.assert_array_equal(a.send_explored, b.send_explored)
    np.testing.assert_array_equal(a.send_local_hour, b.send_local_hour)


def test_control_share_is_deterministic_and_reshuffled_weekly():
    """About control_share of employees are held out, the same ones all week, others next week."""
    keys = timing.employee_keys([f"E{i}" for i in range(20_000)])
    week = timing.in_control(keys, (2026, 23), 0.05)
    assert 0.045 < week.mean() < 0.055
    np.testing.assert_array_equal(week, timing.in_control(keys, (2026, 23), 0.05))
    assert (week & timing.in_control(keys, (2026, 24), 0.05)).sum() < 0.2 * week.sum()


def test_control_group_gets_the_default_hour_unexplored():
    """People in the holdout get the organisation's default hour, never explored."""
    batch = population_plan(2000, control_share=0.05)
    control = np.array([b == Basis.CONTROL for b in batch.basis])
    assert 0.03 < control.mean() < 0.07
    assert set(batch.hours[control, 0]) == {9}
    assert set(batch.hours[~control, 0]) == {10}
    assert not batch.send_explored[control[batch.send_employee]].any()


def test_learned_timing_off_uses_the_peers_hour():
    """Someone who turned learned timing off gets their peers' hour and basis 'peers'."""
    n = 21
    counts = sessions({e: [16] for e in range(20)} | {20: [8]}, n)
    windows = [DeliveryWindow()] * 20 + [DeliveryWindow(learned_timing=False)]
    batch = timing.plan_digests([f"E{i}" for i in range(n)], ["UTC"] * n, windows, counts,
                                np.zeros(n, int), MONDAY, region=np.zeros(n, int),
                                settings=NO_NOISE)
    assert batch.basis[20] == Basis.PEERS
    assert batch.hours[20, 0] == batch.hours[0, 0] != 8


@pytest.mark.parametrize("cadence", [Cadence.OFF, Cadence.AS_IT_HAPPENS])
def test_no_schedule_without_a_digest_cadence(cadence):
    """Cadence off or 'as it happens' plans nothing: empty lists and basis None."""
    batch = timing.plan_digests(["E1"], ["UTC"], [DeliveryWindow(cadence=cadence)],
                                timing.TimingCounts.zeros(1), [0], MONDAY, region=[0])
    assert batch.as_dicts([cadence]) == [{"employee_id": "E1", "timezone": "UTC",
                                          "cadence": cadence.value, "next_sends_utc": [],
                                          "local_hours": [], "basis": None}]


def test_basis_is_default_when_nothing_is_known_and_personal_with_evidence():
    """An empty organisation plans the default hour; enough own activity makes it personal."""
    empty = timing.plan_digests(["E1"], ["UTC"], [DeliveryWindow()],
                                timing.TimingCounts.zeros(1), [0], MONDAY, region=[0],
                                settings=NO_NOISE)
    assert (empty.basis[0], list(empty.hours[0])) == (Basis.DEFAULT, [9, -1])
    counts = sessions({0: [11]}, 2) + sessions({1: [11]}, 2, weeks=0)
    batch = timing.plan_digests(["E1", "E2"], ["UTC"] * 2, [DeliveryWindow()] * 2, counts,
                                [0, 0], MONDAY, region=[0, 0], settings=NO_NOISE)
    assert batch.basis == [Basis.PERSONAL, Basis.PEERS]


def test_incremental_replan_matches_the_full_plan():
    """Re-planning a few people against the fitted peer curves gives their full-plan result."""
    n = 300
    rng = np.random.default_rng(3)
    counts = sessions({e: [int(h)] for e, h in enumerate(rng.integers(7, 19, n))}, n)
    group, region = rng.integers(0, 6, n), np.zeros(n, int)
    ids = [f"E{i}" for i in range(n)]
    full = timing.plan_digests(ids, ["UTC"] * n, [DeliveryWindow()] * n, counts, group, MONDAY,
                               region=region)
    model = timing.fit_peers(counts, region, group)
    some = [5, 17, 250]
    part = timing.plan_digests([ids[i] for i in some], ["UTC"] * 3, [DeliveryWindow()] * 3,
                               counts.take(some), group[some], MONDAY, model=model)
    assert [full.plan(i) for i in some] == list(part)


def peaks(hazard: dict[int, float], base: float = 1e-3) -> np.ndarray:
    """A read hazard over the week with the given value at these local hours every day."""
    day = np.full(24, base)
    for hour, value in hazard.items():
        day[hour] = value
    return np.tile(day, 7)


def model_of(curve: np.ndarray) -> timing.PeerModel:
    """Peer curves equal to ``curve``: a person with no history is planned on exactly it."""
    both = np.vstack([curve, curve])
    return timing.PeerModel(org_mu=curve, region_mu=both, group_mu=both,
                            group_activity=np.full((2, 168), 0.1), known=True)


def plan_one(curve: np.ndarray, window: DeliveryWindow = DeliveryWindow(),
             settings: TimingSettings = NO_NOISE, counts: timing.TimingCounts | None = None
             ) -> timing.Plan:
    return timing.plan_digests(["E1"], ["UTC"], [window], counts or timing.TimingCounts.zeros(1),
                               [0], MONDAY, model=model_of(curve), settings=settings).plan(0)


def test_a_tie_on_read_within_a_day_goes_to_the_hour_just_before_the_reading():
    """Two hours with the same read@24h: the digest goes where it is read within 2 h, not earlier."""
    curve = peaks({9: 0.432, 13: 1.0})  # a light look at 09:00, the real read at 13:00
    p24 = timing.read_probability(curve[None])[0]
    assert 0 < p24[9] - p24[13] < TimingSettings().tie_tolerance  # a tie, nominally won by 09:00
    assert plan_one(curve).local_hours == [13]
    assert plan_one(peaks({9: 0.8, 13: 1.0})).local_hours == [9]  # a clear win stays a win


def test_the_read_hour_named_is_where_the_planned_send_is_read():
    """"You usually read around R, so it goes out at S": R is the mode of reads after S, never before."""
    curve = peaks({9: 0.8, 13: 1.0})
    assert timing.usual_read_hour(curve) == 13  # the old sentence said 13:00 above a 09:00 send
    plan = plan_one(curve)
    read_at = timing.read_hours(curve, timing.regular_hours(plan), range(5))
    assert plan.local_hours == [9] and read_at == [9]
    personal = timing.Plan(Basis.PERSONAL, plan.local_hours, plan.sends)
    assert timing.explain(personal, Cadence.DAILY, read_at=read_at).startswith(
        "You usually read around 09:00, so your digest goes out at 09:00, to be on top when you look.")
    assert timing.read_hours(peaks({7: 0.2, 10: 3.0}), [8], range(5)) == [10]


def _named(text: str, plan: timing.Plan) -> None:
    """Every send of ``plan`` is in ``text``: regular hours in the sentence, explored ones by date."""
    regular, rest = text.split("Now and then we try a nearby hour to keep learning")
    for send in plan.sends:
        if send.explored:
            assert f"{timing.day_label(send.local_date)} at {send.local_hour:02d}:00" in rest
        else:
            assert f"{send.local_hour:02d}:00" in regular


@pytest.mark.parametrize("cadence, default_hour", [(Cadence.DAILY, 11), (Cadence.TWICE_DAILY, 9)])
def test_the_sentence_names_every_listed_send_and_discloses_exploration(cadence, default_hour):
    """A daily 11:00 or twice-daily 09:00 and 13:00 with a send explored at 09:00 or 15:00 says so."""
    n = 200
    settings = TimingSettings(default_hour=default_hour, default_second_hour=13, epsilon=0.3,
                              control_share=0.0)
    batch = timing.plan_digests([f"E{i}" for i in range(n)], ["Europe/Berlin"] * n,
                                [DeliveryWindow(cadence=cadence)] * n, timing.TimingCounts.zeros(n),
                                np.zeros(n, int), MONDAY, region=np.zeros(n, int), settings=settings)
    explored = 0
    for plan in batch:
        text = timing.explain(plan, cadence)
        _named(text, plan)
        explored += sum(s.explored for s in plan.sends)
        hours = timing.regular_hours(plan)
        assert hours == ([11] if cadence == Cadence.DAILY else [9, 13])
    assert explored > 0


def test_other_explanations():
    """Peers, the control group, weekly, off, and no allowed hour."""
    peers = plan_one(peaks({8: 1.0, 14: 1.0}), DeliveryWindow(cadence=Cadence.TWICE_DAILY,
                                                              learned_timing=False))
    text = timing.explain(peers, Cadence.TWICE_DAILY, learned_timing=False)
    assert text.startswith("You turned learned timing off, so your digests go out at 08:00 and 14:00")
    weekly = plan_one(peaks({13: 1.0}), DeliveryWindow(cadence=Cadence.WEEKLY, weekly_day=4))
    assert "on Fridays at 13:00" in timing.explain(weekly, Cadence.WEEKLY)
    control = timing.Plan(Basis.CONTROL, [9], peers.sends[:0])
    assert "standard time, 09:00" in timing.explain(control, Cadence.DAILY)
    assert timing.explain(timing.Plan(None, []), Cadence.OFF) == "You have turned the digest off."
    assert "widen them" in timing.explain(timing.Plan(Basis.PEERS, []), Cadence.DAILY)


def test_quiet_hours_0000_to_0000_are_none_and_a_weekly_digest_lands_before_the_reading():
    """Weekly on Friday, quiet 00:00-00:00 (none): Friday, just before the person reads, not at night."""
    window = DeliveryWindow(cadence=Cadence.WEEKLY, weekly_day=4, quiet_start=0, quiet_end=0)
    assert window.allowed_hours() == list(range(24))
    plan = plan_one(peaks({13: 1.0}), window)
    assert plan.local_hours == [13]
    assert [(s.local_date.weekday(), s.local_hour) for s in plan.sends] == [(4, 13)]


def early_reader(hour: int = 6, weeks: int = 4) -> timing.TimingCounts:
    """Someone on the intranet at ``hour`` every weekday (e.g. 06:30) and reading digests then."""
    return sessions({0: [hour, hour]}, 1, weeks)


def test_org_default_quiet_hours_give_way_for_someone_who_reads_at_0630():
    """Quiet 20:00-07:00 by default: a 06:30 reader gets the digest by 06:00; their own quiet hours win."""
    office = peaks({9: 0.3}, base=0.05)
    default = DeliveryWindow(own_quiet_hours=False)
    assert plan_one(office, default, counts=early_reader()).local_hours[0] in (5, 6)
    assert plan_one(office, DeliveryWindow(), counts=early_reader()).local_hours == [7]  # their own
    assert plan_one(office, default).local_hours == [9]  # nobody demonstrated reading early


def test_default_quiet_hours_hold_without_the_person_s_own_evidence():
    """Peers who read early, a stray late visit or learned timing off do not open a quiet hour."""
    early_peers = peaks({5: 1.0, 9: 0.2})
    hour = plan_one(early_peers, DeliveryWindow(own_quiet_hours=False)).local_hours[0]
    assert 7 <= hour < 20
    late = timing.timing_counts([0], [22], [3], ["session"], 1)
    stray = sessions({0: [10, 10]}, 1) + late  # daily at 10:00, and once at 22:00 this month
    assert not timing.demonstrated_hours(stray)[0, 21:23].any()
    opted_out = DeliveryWindow(own_quiet_hours=False, learned_timing=False)
    assert plan_one(peaks({9: 1.0}), opted_out, counts=early_reader()).local_hours == [9]


@hsettings(max_examples=40, deadline=None)
@given(zone=st.sampled_from(["Europe/Berlin", "Asia/Kolkata", "America/Sao_Paulo"]),
       hour=st.integers(0, 23), offset_hours=st.integers(0, 24 * 400))
def test_explored_slots_are_stable_across_replans(zone, hour, offset_hours):
    """With exploration on, a slot planned twice is sent at the same instant both times."""
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=offset_hours)
    kwargs = dict(region=[0], settings=TimingSettings(default_hour=hour, control_share=0.0, epsilon=0.5))
    window = DeliveryWindow(**ALL_DAY)
    plans = [timing.plan_digests(["E1"], [zone], [window], timing.TimingCounts.zeros(1), [0], start,
                                 **kwargs).plan(0) for start in (at, at + timedelta(hours=30))]
    a, b = ({(s.local_date, s.ordinal): s.utc for s in p.sends} for p in plans)
    assert all(a[k] == b[k] for k in a.keys() & b.keys())
    assert all(s.utc.astimezone(ZoneInfo(zone)).date() == s.local_date for p in plans for s in p.sends)


def habits(people: list[tuple[int, int, int] | None], weeks: int = 4) -> timing.TimingCounts:
    """Weekday counts for people who were sent a digest at ``s``, read it at ``r`` and were on
    the intranet at ``a`` (``(s, r, a)``), every weekday for ``weeks`` weeks; ``None``: new."""
    emp, how, age, kind, pending = [], [], [], [], []
    for e, person in enumerate(people):
        if person is None:
            continue
        sent, read, active = person
        for k in range(5 * weeks):
            day, days_ago = k % 5, k / 5 * 7 + 1
            emp += [e, e, e]
            how += [day * 24 + sent, day * 24 + read, day * 24 + active]
            age += [days_ago] * 3
            kind += ["digest_sent", "digest_open", "session"]
            pending += [read - sent + 1, 0, 0]
    return timing.timing_counts(emp, how, age, kind, len(people), pending_hours=pending,
                                observed_days=[0.0 if p is None else 7.0 * weeks for p in people])


def test_peers_are_pooled_like_with_like_not_by_where_the_digests_went():
    """Two early birds sent digests at 06:00 do not make 06:00 the team's hour for a new hire.

    Eight colleagues read at 10:00 (sent at 09:00); two read at 06:00 and, planned on their own
    habits, are sent their digests at 06:00. Pooled raw, the team's 06:00 exposure is nearly all
    the early birds', so 06:00 looked about half as good as 10:00 for everyone and the new hire
    was sent theirs at 06:00; counted against how attentive each person is then, it is the early
    birds' hour, not the team's.
    """
    people = [(9, 10, 10)] * 8 + [(6, 6, 6)] * 2 + [None]
    counts = habits(people)
    n = len(people)
    group = np.zeros(n, int)
    model = timing.fit_peers(counts, np.zeros(n, int), group)
    team = model.group_mu[0].reshape(7, 24)[:5].mean(0)
    assert team[6] < 0.3 * team[10]
    plan = timing.plan_digests([f"E{i}" for i in range(n)], ["UTC"] * n,
                               [DeliveryWindow(**ALL_DAY)] * n, counts, group, MONDAY,
                               region=np.zeros(n, int), settings=NO_NOISE)
    assert plan.basis[10] == Basis.PEERS
    assert plan.hours[10, 0] in (8, 9, 10)  # the new hire: just before the team reads
    assert list(plan.hours[8:10, 0]) == [6, 6]  # the early birds keep their own hour


def test_an_evening_reader_in_an_office_team_gets_the_evening_after_one_week():
    """Five visits last week, all at 20:00, in a team that reads at 10:00: the digest goes at 20:00.

    The team is almost never on at 20:00, so those five visits are many times the team's rate;
    a prior worth a whole pseudo-visit per hour held that back and planned the team's 10:00.
    """
    n = 11
    counts = habits([(9, 10, 10)] * 10 + [None]) + sessions({10: [20]}, n, weeks=1)
    group = np.zeros(n, int)
    plan = timing.plan_digests([f"E{i}" for i in range(n)], ["UTC"] * n,
                               [DeliveryWindow(**ALL_DAY)] * n, counts, group, MONDAY,
                               region=group, settings=NO_NOISE)
    assert plan.basis[10] == Basis.PEERS  # not enough of their own yet to be "personal"
    assert plan.hours[10, 0] in (19, 20)
    assert plan.hours[0, 0] in (9, 10)

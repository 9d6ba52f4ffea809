"""Closed-loop simulator: does learned send timing get digests read?

Every simulated employee has a hidden attention curve over the 24 hours of their local day (one
or two von Mises peaks; office workers, early birds, evening readers and shift workers in four
time zones), an open propensity and a burial constant. A digest sent at local hour ``s`` is read
in hour ``t >= s`` with hazard ``rho * lambda(t) * exp(-(t - s) / tau)`` (so never before it is
sent), followed for 48 hours. Sessions arrive independently of sends, Poisson(0.3 lambda(t)).
10 % of people join on day 28 (new hires) and 10 % move their habits by +-3 h on day 35.

Policies, all under the same quiet hours (20:00-07:00) and working days (Mon-Fri), with common
random numbers (one uniform per person and hour, shared by every policy):

* fixed 09:00 local;
* the global best hour: one local hour for everybody, picked in hindsight from the true curves
  (an upper bound for any one-hour policy);
* Beacon: ``intranet.delivery.timing.plan_digests`` as shipped (exploration, weekly control
  holdout), re-planned nightly from the reads and sessions *it has observed* (never the truth);
* the oracle: knows every person's true current curve, propensity and burial constant.

Reported: read@24h and read@2h per send over weeks 3-8, for everyone, for new hires in their
first two weeks and for drifters after day 42, and the share of the oracle's read@24h gain over
fixed 09:00 that each policy captures. Run: ``python -m bench.digest_eval [--n 10000] [--seeds 2]``.
"""
from __future__ import annotations

import argparse
import time as wallclock
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

from intranet.delivery import timing

from bench import goals

DAYS = 56
EVAL_FROM = 14
JOIN_DAY = 28
DRIFT_DAY = 35
PENDING = 48
START = date(2026, 1, 5)  # a Monday; no DST change inside the run
ZONES = ("America/Los_Angeles", "America/New_York", "Europe/London", "Asia/Karachi")
N_DEPARTMENTS = 20
WEEKEND_FACTOR = 0.2
QUIET = (20, 7)
ALLOWED = np.array([h for h in range(24) if not (h >= QUIET[0] or h < QUIET[1])])


@dataclass
class World:
    """The hidden truth (only the simulator and the oracle may look)."""

    n: int
    region: np.ndarray
    group: np.ndarray
    archetype: np.ndarray
    shape_before: np.ndarray  # (n, 24) attention density per local hour, sums to 1
    shape_after: np.ndarray   # after the drift day (differs for drifters only)
    activity: np.ndarray      # checks per weekday
    rho: np.ndarray
    tau: np.ndarray
    join_day: np.ndarray
    drifter: np.ndarray
    uniforms: np.ndarray      # (n, hours) common random numbers for reads


ARCHETYPES = ("office", "early bird", "evening reader", "shift worker")


def _von_mises(mean: np.ndarray, kappa: float) -> np.ndarray:
    h = np.arange(24) + 0.5
    d = np.exp(kappa * np.cos(2 * np.pi * (h[None, :] - mean[:, None]) / 24))
    return d / d.sum(1, keepdims=True)


def make_world(n: int, seed: int) -> World:
    """A heterogeneous organisation; departments lean towards one archetype."""
    rng = np.random.default_rng(seed)
    region = rng.integers(0, len(ZONES), n)
    dept = rng.integers(0, N_DEPARTMENTS, n)
    dept_type = rng.choice(4, N_DEPARTMENTS, p=[0.5, 0.2, 0.15, 0.15])
    archetype = np.where(rng.random(n) < 0.7, dept_type[dept],
                         rng.choice(4, n, p=[.55, .2, .15, .1]))
    dept_shift = rng.normal(0, 0.7, N_DEPARTMENTS)
    shift = dept_shift[dept] + rng.normal(0, 1.0, n)
    shift_work = np.where(rng.random(n) < 0.5, -6.0, 7.0)
    dept_shift_work = np.where(rng.random(N_DEPARTMENTS) < 0.5, -6.0, 7.0)
    shift_work = np.where(rng.random(n) < 0.8, dept_shift_work[dept], shift_work)

    morning = 8.5 + shift
    afternoon = 14.5 + shift
    w_morning = rng.dirichlet([5, 3.5], n)[:, 0]
    morning = np.where(archetype == 1, morning - 2.5, morning)
    afternoon = np.where(archetype == 1, afternoon - 2.0, afternoon)
    # Evening readers: a light day peak and a main one in the evening.
    afternoon = np.where(archetype == 2, 19.5 + 0.5 * shift, afternoon)
    w_morning = np.where(archetype == 2, rng.uniform(0.15, 0.45, n), w_morning)
    morning = np.where(archetype == 3, morning + shift_work, morning)
    afternoon = np.where(archetype == 3, afternoon + shift_work, afternoon)
    one_peak = rng.random(n) < 0.3  # people have one or two peaks
    w_morning = np.where(one_peak & (archetype != 2), np.where(rng.random(n) < 0.6, 1.0, 0.0),
                         w_morning)
    base = 0.03 / 24
    shape = (w_morning[:, None] * _von_mises(morning, 4.0)
             + (1 - w_morning)[:, None] * _von_mises(afternoon, 3.0)) + base
    shape /= shape.sum(1, keepdims=True)

    drifter = rng.random(n) < 0.1
    join_day = np.where(rng.random(n) < 0.1, JOIN_DAY, 0)
    drifter &= join_day == 0
    move = np.where(rng.random(n) < 0.5, -3, 3)
    shape_after = shape.copy()
    for sign in (-3, 3):
        rows = drifter & (move == sign)
        shape_after[rows] = np.roll(shape[rows], sign, axis=1)
    return World(
        n=n, region=region, group=dept * len(ZONES) + region, archetype=archetype,
        shape_before=shape, shape_after=shape_after,
        activity=rng.lognormal(np.log(6.0), 0.5, n), rho=rng.beta(2.5, 4.0, n),
        tau=rng.lognormal(np.log(8.0), 0.4, n), join_day=join_day, drifter=drifter,
        uniforms=rng.random((n, DAYS * 24 + PENDING + 24), dtype=np.float32),
    )


def attention(world: World, day: int, n_days: int) -> np.ndarray:
    """True attention rate lambda per hour for ``n_days`` from ``day``, shape ``(n, 24 n_days)``."""
    out = []
    for d in range(day, day + n_days):
        shape = world.shape_after if d >= DRIFT_DAY else world.shape_before
        factor = WEEKEND_FACTOR if (START + timedelta(days=d)).weekday() >= 5 else 1.0
        out.append(shape * (world.activity[:, None] * factor))
    return np.hstack(out)


def read_delay(world: World, day: int, hour: np.ndarray) -> np.ndarray:
    """Hours from the send to the read (48 = unread) for digests sent on ``day`` at ``hour``.

    ``hour`` is -1 where nothing is sent (the result is then 48 as well).
    """
    lam = attention(world, day, 3)
    j = np.arange(PENDING)
    rows = np.arange(world.n)[:, None]
    s = np.clip(hour, 0, 23)[:, None]
    hazard = world.rho[:, None] * lam[rows, s + j] * np.exp(-j / world.tau[:, None])
    u = world.uniforms[rows, day * 24 + s + j]
    read = u < -np.expm1(-hazard)
    first = np.where(read.any(1), read.argmax(1), PENDING)
    return np.where(hour >= 0, first, PENDING)


def true_read24(world: World, day: int) -> np.ndarray:
    """True P(read within 24 h) for a send at each local hour of ``day``, ``(n, 24)``."""
    lam = attention(world, day, 2)
    s = np.arange(24)
    total = np.zeros((world.n, 24))
    for j in range(24):
        total += lam[:, s + j] * np.exp(-j / world.tau)[:, None]
    return -np.expm1(-world.rho[:, None] * total)


def sending_today(world: World, day: int) -> np.ndarray:
    weekday = (START + timedelta(days=day)).weekday()
    return (world.join_day <= day) & (weekday < 5)


# ----------------------------------------------------------------------------- policies


class Fixed:
    def __init__(self, world: World, hour: int, name: str):
        self.world, self.hour, self.name = world, hour, name

    def hours(self, day: int) -> np.ndarray:
        return np.where(sending_today(self.world, day), self.hour, -1)

    def observe(self, day: int, hours: np.ndarray, delay: np.ndarray) -> None:
        pass


class Oracle(Fixed):
    def __init__(self, world: World):
        super().__init__(world, -1, "oracle (true habits)")

    def hours(self, day: int) -> np.ndarray:
        # The best allowed hour for a typical weekday of the current habits.
        weekday_probs = true_read24(self.world, day - (START + timedelta(days=day)).weekday() + 1)
        best = ALLOWED[np.argmax(weekday_probs[:, ALLOWED], axis=1)]
        return np.where(sending_today(self.world, day), best, -1)


class Beacon(Fixed):
    """The shipped planner, learning from what it observes, re-planned every night."""

    def __init__(self, world: World, settings: timing.TimingSettings, name: str = "beacon"):
        super().__init__(world, -1, name)
        self.settings = settings
        n = world.n
        self.ids = [f"E{i:06d}" for i in range(n)]
        self.zones = [ZONES[r] for r in world.region]
        window = timing.DeliveryWindow(quiet_start=QUIET[0], quiet_end=QUIET[1])
        self.windows = timing.WindowArrays.from_windows([window] * n)
        self.counts = timing.TimingCounts.zeros(n)
        self.pending: list[tuple[int, np.ndarray, np.ndarray]] = []  # (day, hours, delay)
        self.rng = np.random.default_rng(1_000 + world.n)
        self.sent_explored = 0
        self.sent_total = 0
        self.control_sends = 0

    def hours(self, day: int) -> np.ndarray:
        today = START + timedelta(days=day)
        at = datetime.combine(today, datetime.min.time(), UTC) - timedelta(hours=12)
        plan = timing.plan_digests(self.ids, self.zones, self.windows, self.counts,
                                   self.world.group, at, region=self.world.region,
                                   settings=self.settings)
        mine = plan.send_local_date == today.toordinal()
        out = np.full(self.world.n, -1)
        out[plan.send_employee[mine]] = plan.send_local_hour[mine]
        live = sending_today(self.world, day)
        out[~live] = -1
        explored = np.zeros(self.world.n, bool)
        explored[plan.send_employee[mine & plan.send_explored]] = True
        self.sent_total += int(live.sum())
        self.sent_explored += int((explored & live).sum())
        self.control_sends += sum(1 for i in np.flatnonzero(live)
                                  if plan.basis[i] == timing.Basis.CONTROL)
        return out

    def observe(self, day: int, hours: np.ndarray, delay: np.ndarray) -> None:
        """Learn from everything that became visible by the end of ``day``."""
        w = self.world
        self.pending.append((day, hours, delay))
        now = (day + 1) * 24  # absolute hour at the end of the day
        emp, how, age, kind, pend = [], [], [], [], []
        keep = []  # digests still pending after today
        for sent_day, h, dl in self.pending:
            sent = h >= 0
            t0 = sent_day * 24 + h
            done_at = t0 + np.minimum(dl + 1, PENDING)
            done = sent & (done_at <= now) & (done_at > now - 24)
            wd = (START + timedelta(days=sent_day)).weekday()
            i = np.flatnonzero(done)
            emp.append(i), how.append(wd * 24 + h[i]), age.append((now - t0[i]) / 24)
            kind.append(np.full(i.size, "digest_sent")), pend.append(np.minimum(dl[i] + 1, PENDING))
            r = i[dl[i] < PENDING]
            emp.append(r), how.append((wd * 24 + h[r] + dl[r]) % 168)
            age.append((now - t0[r] - dl[r]) / 24), kind.append(np.full(r.size, "digest_open"))
            pend.append(np.zeros(r.size))
            if (sent & (done_at > now)).any():
                keep.append((sent_day, h, dl))
        self.pending = keep
        # Sessions today: send-independent activity, only for people already here.
        lam = attention(w, day, 1) * 0.3
        present = w.join_day <= day
        sessions = self.rng.poisson(lam)
        sessions[~present] = 0
        i, hr = np.nonzero(sessions)
        wd = (START + timedelta(days=day)).weekday()
        reps = sessions[i, hr]
        i, hr = np.repeat(i, reps), np.repeat(hr, reps)
        emp.append(i), how.append(wd * 24 + hr), age.append((now - (day * 24 + hr + 0.5)) / 24)
        kind.append(np.full(i.size, "session")), pend.append(np.zeros(i.size))
        new = timing.timing_counts(np.concatenate(emp), np.concatenate(how), np.concatenate(age),
                                   np.concatenate(kind), w.n, pending_hours=np.concatenate(pend),
                                   observed_days=present.astype(float), settings=self.settings)
        self.counts = self.counts.decayed(1.0, self.settings.half_life_days) + new


# ----------------------------------------------------------------------------- the run


@dataclass
class Result:
    name: str
    read24: float
    read2: float
    new24: float
    drift24: float


def run(world: World, policy: Fixed) -> Result:
    sends = {k: [0, 0, 0] for k in ("all", "new", "drift")}  # sends, read@24h, read@2h
    for day in range(DAYS):
        hours = policy.hours(day)
        delay = read_delay(world, day, hours)
        policy.observe(day, hours, delay)
        if day < EVAL_FROM:
            continue
        sent = hours >= 0
        cohorts = {"all": sent,
                   "new": sent & (world.join_day == JOIN_DAY) & (day < JOIN_DAY + 14),
                   "drift": sent & world.drifter & (day >= DRIFT_DAY + 7)}
        for k, m in cohorts.items():
            sends[k][0] += int(m.sum())
            sends[k][1] += int((delay[m] < 24).sum())
            sends[k][2] += int((delay[m] < 2).sum())
    rate = {k: (v[1] / max(v[0], 1), v[2] / max(v[0], 1)) for k, v in sends.items()}
    return Result(policy.name, rate["all"][0], rate["all"][1], rate["new"][0], rate["drift"][0])


def global_best_hour(world: World) -> int:
    probs = np.mean([true_read24(world, d)[:, ALLOWED].mean(0) for d in range(EVAL_FROM, 19)], 0)
    return int(ALLOWED[np.argmax(probs)])


def evaluate(n: int, seed: int, settings: timing.TimingSettings) -> tuple[list[Result], Beacon]:
    world = make_world(n, seed)
    beacon = Beacon(world, settings)
    policies = [Fixed(world, 9, "fixed 09:00 local"),
                Fixed(world, global_best_hour(world), "global best hour"),
                beacon, Oracle(world)]
    return [run(world, p) for p in policies], beacon


def share(policy: float, base: float, oracle: float) -> float:
    return (policy - base) / (oracle - base) if oracle != base else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="employees (default 10000)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds to average (default 2)")
    args = parser.parse_args(argv)
    settings = timing.TimingSettings()
    started = wallclock.perf_counter()
    runs = []
    for seed in range(args.seeds):
        results, beacon = evaluate(args.n, seed, settings)
        runs.append(results)
    names = [r.name for r in runs[0]]
    mean = {name: Result(name, *(float(np.mean([getattr(rs[i], f) for rs in runs]))
                                 for f in ("read24", "read2", "new24", "drift24")))
            for i, name in enumerate(names)}
    base, oracle = mean[names[0]], mean[names[-1]]
    print(f"digest timing, {args.n} employees x {DAYS} days, weeks 3-8, mean of {args.seeds} "
          f"seed(s); quiet hours {QUIET[0]:02d}-{QUIET[1]:02d}, Mon-Fri")
    head = (f"{'policy':24} {'read@24h':>8} {'read@2h':>8} {'gain@24h':>9} {'new@24h':>8} "
            f"{'new gain':>8} {'drift@24h':>9} {'drift gain':>10}")
    print(head)
    print("-" * len(head))
    for r in mean.values():
        print(f"{r.name:24} {r.read24:8.3f} {r.read2:8.3f} "
              f"{share(r.read24, base.read24, oracle.read24):9.0%} {r.new24:8.3f} "
              f"{share(r.new24, base.new24, oracle.new24):8.0%} {r.drift24:9.3f} "
              f"{share(r.drift24, base.drift24, oracle.drift24):10.0%}")
    b = mean["beacon"]
    captured = share(b.read24, base.read24, oracle.read24)
    print(f"\nBeacon captures {captured:.0%} of the oracle's read@24h gain over fixed 09:00 "
          f"(goal >= 80 %); explored {beacon.sent_explored / max(beacon.sent_total, 1):.1%} "
          f"of sends, control holdout {beacon.control_sends / max(beacon.sent_total, 1):.1%} "
          f"(last seed). {wallclock.perf_counter() - started:.0f} s")
    first = goals.mark()
    goals.goal("digest", "share of the oracle's read@24h gain over fixed 09:00", measured=f"{captured:.0%}",
               target=">= 80 %", met=captured >= 0.80)
    return goals.exit_status(goals.RECORDED[first:])


if __name__ == "__main__":
    raise SystemExit(main())

"""Closed-loop simulator: does learned send timing get digests read?

Every simulated employee has a hidden attention curve over the 24 hours of their local day (one
or two von Mises peaks; office workers, early birds, evening readers and shift workers in four
time zones), an open propensity and a burial constant. A digest sent at local hour ``s`` is read
in hour ``t >= s`` with hazard ``rho * lambda(t) * exp(-(t - s) / tau)`` (so never before it is
sent), followed for 48 hours. Sessions arrive independently of sends, Poisson(0.3 lambda(t)).
Halfway through the run some people join (new hires); a little later some move their habits by
+-3 h (drifters).

Quiet hours as in Beacon: a share of people chose their own (every policy, the oracle included,
respects them); everyone else has the organisation's default 20:00-07:00, which protects nights
from alerts but gives way for a digest in the hours a person demonstrably reads in. The oracle,
knowing the truth, may use any hour the person did not make quiet.

Organisations (:data:`SCENARIOS`): ``tuned`` is the one Beacon's settings were tuned on (seeds
0, 1, 2); the others, run on seeds 100 and up, were not used for tuning: ``early`` (a third of
people are early birds, three weeks of history, like the acceptance run), ``evening`` (many
evening readers, wider spread) and ``office`` (a homogeneous office organisation). The tables
say what share of sends go to each kind of reader, and to people best served before 07:00.

Policies, all on Mon-Fri, with common random numbers (one uniform per person and hour, shared by
every policy):

* fixed 09:00 local;
* the global best hour: one local hour (07:00-19:00) for everybody, picked in hindsight from the
  true curves;
* Beacon: ``intranet.delivery.timing.plan_digests`` as shipped (tie-break on read@2h,
  exploration, weekly control holdout), re-planned nightly from the reads and sessions *it has
  observed* (never the truth);
* Beacon with the organisation's quiet hours as a hard limit (the rule before they gave way);
* the oracle: knows every person's true current curve, propensity and burial constant.

Reported per organisation, over the evaluation days, for people outside that week's control
holdout: read@24h and read@2h per send (simulated), the expected read@24h (the true probability
of the hour chosen, which is what the share is computed from: far less noisy), the share of the
oracle's expected read@24h gain over fixed 09:00 that each policy captures, and that share by
kind of reader. Run: ``python -m bench.digest_eval [--n 1500] [--seeds 3] [--scenario early]``.
"""
from __future__ import annotations

import argparse
import time as wallclock
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

from intranet.delivery import timing

from bench import goals

PENDING = 48
START = date(2026, 1, 5)  # a Monday; no DST change inside the run
ZONES = ("America/Los_Angeles", "America/New_York", "Europe/London", "Asia/Karachi")
N_DEPARTMENTS = 20
WEEKEND_FACTOR = 0.2
ORG_QUIET = (20, 7)
#: Quiet hours people choose for themselves (every policy respects these).
OWN_QUIET = ((22, 6), (21, 7), (23, 7), (20, 8), (22, 8))
ARCHETYPES = ("office", "early bird", "evening reader", "shift worker")
GOAL = 0.85


@dataclass(frozen=True)
class Scenario:
    """An organisation: how its people read, and how long the run is."""

    name: str
    #: Archetype mix of departments and of people outside their department's habit.
    p_dept: tuple[float, float, float, float]
    p_person: tuple[float, float, float, float]
    #: Hours the early birds' morning peak lies before the office one (08:30).
    early_shift: float = 2.5
    #: Standard deviation (hours) of a person's shift within their department.
    spread: float = 1.0
    #: Share of people who chose their own quiet hours.
    own_quiet_share: float = 0.2
    days: int = 56
    eval_from: int = 14
    tuned: bool = False

    @property
    def join_day(self) -> int:
        return self.days // 2

    @property
    def drift_day(self) -> int:
        return self.days * 5 // 8


SCENARIOS = {
    "tuned": Scenario("tuned", (.5, .2, .15, .15), (.55, .2, .15, .1), tuned=True),
    "early": Scenario("early", (.35, .4, .1, .15), (.45, .35, .1, .1), early_shift=3.0,
                      days=28, eval_from=21),
    "evening": Scenario("evening", (.45, .1, .35, .1), (.5, .1, .3, .1), spread=1.5,
                        own_quiet_share=0.3, days=35, eval_from=21),
    "office": Scenario("office", (.85, .05, .05, .05), (.85, .05, .05, .05), spread=0.6,
                       own_quiet_share=0.1, days=28, eval_from=21),
}


@dataclass
class World:
    """The hidden truth (only the simulator and the oracle may look)."""

    n: int
    scenario: Scenario
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
    #: The person's own quiet hours, ``(n, 2)``; ``-1`` where they kept the default.
    own_quiet: np.ndarray
    #: Hours any policy may send at (the oracle's and global hour's limit), ``(n, 24)``.
    allowed: np.ndarray
    uniforms: np.ndarray      # (n, hours) common random numbers for reads


def _von_mises(mean: np.ndarray, kappa: float) -> np.ndarray:
    h = np.arange(24) + 0.5
    d = np.exp(kappa * np.cos(2 * np.pi * (h[None, :] - mean[:, None]) / 24))
    return d / d.sum(1, keepdims=True)


def _quiet(start: int, end: int) -> np.ndarray:
    h = np.arange(24)
    return (h >= start) | (h < end) if start > end else (h >= start) & (h < end)


def make_world(n: int, seed: int, scenario: Scenario = SCENARIOS["tuned"]) -> World:
    """A heterogeneous organisation; departments lean towards one archetype."""
    sc = scenario
    rng = np.random.default_rng(seed)
    region = rng.integers(0, len(ZONES), n)
    dept = rng.integers(0, N_DEPARTMENTS, n)
    dept_type = rng.choice(4, N_DEPARTMENTS, p=list(sc.p_dept))
    archetype = np.where(rng.random(n) < 0.7, dept_type[dept],
                         rng.choice(4, n, p=list(sc.p_person)))
    dept_shift = rng.normal(0, 0.7, N_DEPARTMENTS)
    shift = dept_shift[dept] + rng.normal(0, sc.spread, n)
    shift_work = np.where(rng.random(n) < 0.5, -6.0, 7.0)
    dept_shift_work = np.where(rng.random(N_DEPARTMENTS) < 0.5, -6.0, 7.0)
    shift_work = np.where(rng.random(n) < 0.8, dept_shift_work[dept], shift_work)

    morning = 8.5 + shift
    afternoon = 14.5 + shift
    w_morning = rng.dirichlet([5, 3.5], n)[:, 0]
    morning = np.where(archetype == 1, morning - sc.early_shift, morning)
    afternoon = np.where(archetype == 1, afternoon - sc.early_shift + 0.5, afternoon)
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
    join_day = np.where(rng.random(n) < 0.1, sc.join_day, 0)
    drifter &= join_day == 0
    move = np.where(rng.random(n) < 0.5, -3, 3)
    shape_after = shape.copy()
    for sign in (-3, 3):
        rows = drifter & (move == sign)
        shape_after[rows] = np.roll(shape[rows], sign, axis=1)
    activity = rng.lognormal(np.log(6.0), 0.5, n)
    rho, tau = rng.beta(2.5, 4.0, n), rng.lognormal(np.log(8.0), 0.4, n)
    uniforms = rng.random((n, sc.days * 24 + PENDING + 24), dtype=np.float32)
    # Drawn last, from a stream of its own, so the people above do not depend on it.
    qrng = np.random.default_rng([seed, 7])
    own = qrng.random(n) < sc.own_quiet_share
    choice = np.array(OWN_QUIET)[qrng.integers(0, len(OWN_QUIET), n)]
    own_quiet = np.where(own[:, None], choice, -1)
    allowed = np.ones((n, 24), bool)
    for start, end in OWN_QUIET:
        rows = own & (own_quiet[:, 0] == start) & (own_quiet[:, 1] == end)
        allowed[rows] = ~_quiet(start, end)
    return World(
        n=n, scenario=sc, region=region, group=dept * len(ZONES) + region, archetype=archetype,
        shape_before=shape, shape_after=shape_after, activity=activity, rho=rho, tau=tau,
        join_day=join_day, drifter=drifter, own_quiet=own_quiet, allowed=allowed,
        uniforms=uniforms,
    )


def attention(world: World, day: int, n_days: int) -> np.ndarray:
    """True attention rate lambda per hour for ``n_days`` from ``day``, shape ``(n, 24 n_days)``."""
    out = []
    for d in range(day, day + n_days):
        shape = world.shape_after if d >= world.scenario.drift_day else world.shape_before
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


def planned_at(day: int) -> datetime:
    """When the nightly plan for ``day`` runs: early enough to cover that date in every zone."""
    return datetime.combine(START + timedelta(days=day), datetime.min.time(), UTC) - timedelta(hours=12)


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
        # The best hour the person did not make quiet, for a typical weekday of current habits.
        weekday_probs = true_read24(self.world, day - (START + timedelta(days=day)).weekday() + 1)
        best = np.argmax(np.where(self.world.allowed, weekday_probs, -1.0), axis=1)
        return np.where(sending_today(self.world, day), best, -1)


class Beacon(Fixed):
    """The shipped planner, learning from what it observes, re-planned every night.

    :param org_quiet_hard: hold everyone to the organisation's default quiet hours (the rule
        before they gave way to demonstrated reading), for comparison.
    """

    def __init__(self, world: World, settings: timing.TimingSettings, name: str = "beacon",
                 org_quiet_hard: bool = False):
        super().__init__(world, -1, name)
        self.settings = settings
        n = world.n
        self.ids = [f"E{i:06d}" for i in range(n)]
        self.zones = [ZONES[r] for r in world.region]
        windows = [timing.DeliveryWindow(quiet_start=int(q[0]), quiet_end=int(q[1]))
                   if q[0] >= 0 else
                   timing.DeliveryWindow(quiet_start=ORG_QUIET[0], quiet_end=ORG_QUIET[1],
                                         own_quiet_hours=org_quiet_hard)
                   for q in world.own_quiet]
        self.windows = timing.WindowArrays.from_windows(windows)
        self.counts = timing.TimingCounts.zeros(n)
        self.pending: list[tuple[int, np.ndarray, np.ndarray]] = []  # (day, hours, delay)
        self.rng = np.random.default_rng(1_000 + world.n)
        self.sent_explored = 0
        self.sent_total = 0
        self.in_own_quiet = 0  # sends inside quiet hours the person chose (must stay 0)

    def hours(self, day: int) -> np.ndarray:
        today = START + timedelta(days=day)
        plan = timing.plan_digests(self.ids, self.zones, self.windows, self.counts,
                                   self.world.group, planned_at(day), region=self.world.region,
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
        sent = np.flatnonzero(out >= 0)
        self.in_own_quiet += int((~self.world.allowed[sent, out[sent]]).sum())
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


COHORTS = ("all", "new", "drift") + ARCHETYPES + ("best before 07:00",)


@dataclass
class Result:
    """Per cohort: sends, simulated reads within 24 h and 2 h, expected reads within 24 h."""

    name: str
    sends: dict[str, np.ndarray]

    def rate(self, cohort: str, what: int) -> float:
        v = self.sends[cohort]
        return float(v[what] / v[0]) if v[0] else float("nan")

    def read24(self, cohort: str = "all") -> float:
        return self.rate(cohort, 1)

    def read2(self, cohort: str = "all") -> float:
        return self.rate(cohort, 2)

    def expected24(self, cohort: str = "all") -> float:
        return self.rate(cohort, 3)


def control_holdout(world: World, day: int, settings: timing.TimingSettings) -> np.ndarray:
    """Who is in Beacon's control holdout on ``day`` (not counted, for any policy)."""
    keys = timing.employee_keys([f"E{i:06d}" for i in range(world.n)])
    return timing.in_control(keys, planned_at(day).isocalendar()[:2], settings.control_share)


def run(world: World, policy: Fixed, settings: timing.TimingSettings) -> Result:
    sc = world.scenario
    early = np.argmax(np.where(world.allowed, true_read24(world, sc.eval_from), -1.0), axis=1) < 7
    sends = {k: np.zeros(4) for k in COHORTS}
    for day in range(sc.days):
        hours = policy.hours(day)
        delay = read_delay(world, day, hours)
        policy.observe(day, hours, delay)
        if day < sc.eval_from:
            continue
        sent = (hours >= 0) & ~control_holdout(world, day, settings)
        expected = np.take_along_axis(true_read24(world, day), np.clip(hours, 0, 23)[:, None],
                                      axis=1)[:, 0]
        cohorts = {"all": sent,
                   "new": sent & (world.join_day == sc.join_day) & (day < sc.join_day + 14),
                   "drift": sent & world.drifter & (day >= sc.drift_day + 7),
                   "best before 07:00": sent & early}
        cohorts.update({name: sent & (world.archetype == k) for k, name in enumerate(ARCHETYPES)})
        for k, m in cohorts.items():
            sends[k] += (m.sum(), (delay[m] < 24).sum(), (delay[m] < 2).sum(), expected[m].sum())
    return Result(policy.name, sends)


def global_best_hour(world: World) -> int:
    sc = world.scenario
    probs = np.mean([true_read24(world, d).mean(0) for d in range(sc.eval_from, sc.eval_from + 5)],
                    0)
    return 7 + int(np.argmax(probs[7:20]))


def evaluate(n: int, seed: int, scenario: Scenario,
             settings: timing.TimingSettings) -> tuple[list[Result], Beacon]:
    world = make_world(n, seed, scenario)
    beacon = Beacon(world, settings)
    policies = [Fixed(world, 9, "fixed 09:00 local"),
                Fixed(world, global_best_hour(world), "global best hour"),
                Beacon(world, settings, "beacon, org quiet hard", org_quiet_hard=True),
                beacon, Oracle(world)]
    return [run(world, p, settings) for p in policies], beacon


def share(policy: float, base: float, oracle: float) -> float:
    return (policy - base) / (oracle - base) if oracle != base else float("nan")


def report(scenario: Scenario, n: int, runs: list[list[Result]]) -> list[float]:
    """Print one organisation's tables; return Beacon's share of the oracle gain per seed."""
    names = [r.name for r in runs[0]]
    seeds = len(runs)
    print(f"\n== {scenario.name}{' (tuned on)' if scenario.tuned else ' (not tuned on)'}: "
          f"{n} people, {scenario.days} days, evaluated from day {scenario.eval_from}, "
          f"{seeds} seed(s); own quiet hours {scenario.own_quiet_share:.0%}, "
          f"org default {ORG_QUIET[0]:02d}-{ORG_QUIET[1]:02d}; control holdout not counted")

    def mean(i: int, f: str, cohort: str = "all") -> float:
        return float(np.mean([getattr(rs[i], f)(cohort) for rs in runs]))

    def shares(i: int, cohort: str = "all") -> list[float]:
        return [share(rs[i].expected24(cohort), rs[0].expected24(cohort),
                      rs[-1].expected24(cohort)) for rs in runs]

    head = (f"{'policy':24} {'read@24h':>8} {'read@2h':>8} {'E read@24h':>10} {'share':>6} "
            f"{'range':>11} {'new share':>9} {'drift share':>11}")
    print(head)
    print("-" * len(head))
    for i, name in enumerate(names):
        sh = shares(i)
        print(f"{name:24} {mean(i, 'read24'):8.3f} {mean(i, 'read2'):8.3f} "
              f"{mean(i, 'expected24'):10.3f} {np.mean(sh):6.0%} "
              f"{min(sh):5.0%}-{max(sh):<5.0%} {np.mean(shares(i, 'new')):9.0%} "
              f"{np.mean(shares(i, 'drift')):11.0%}")
    kinds = ARCHETYPES + ("best before 07:00",)
    mix = runs[0][0].sends
    sizes = ", ".join(f"{k} {mix[k][0] / max(mix['all'][0], 1):.0%}" for k in kinds)
    print(f"\nshare of the oracle's expected read@24h gain by kind of reader (sends: {sizes})")
    print(f"{'policy':24} " + " ".join(f"{k:>17}" for k in kinds))
    for i, name in enumerate(names[1:-1], start=1):
        print(f"{name:24} " + " ".join(f"{np.mean(shares(i, k)):17.0%}" for k in kinds))
    return shares(names.index("beacon"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1500, help="employees (default 1500)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per organisation (default 3)")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), action="append",
                        help="organisation(s) to run (default: all)")
    args = parser.parse_args(argv)
    settings = timing.TimingSettings()
    started = wallclock.perf_counter()
    unseen: dict[str, list[float]] = {}
    explored = total = in_own_quiet = 0
    for name in args.scenario or list(SCENARIOS):
        scenario = SCENARIOS[name]
        runs = []
        for seed in range(args.seeds):
            # Organisations not tuned on also get seeds never used while tuning.
            results, beacon = evaluate(args.n, seed if scenario.tuned else 100 + seed, scenario,
                                       settings)
            runs.append(results)
            explored, total = explored + beacon.sent_explored, total + beacon.sent_total
            in_own_quiet += beacon.in_own_quiet
        shares = report(scenario, args.n, runs)
        if not scenario.tuned:
            unseen[name] = shares
    print(f"\nexplored {explored / max(total, 1):.1%} of Beacon's sends. "
          f"{wallclock.perf_counter() - started:.0f} s")
    first = goals.mark()
    goals.check("digest", "no digest inside quiet hours the person chose", passed=in_own_quiet == 0,
                detail=f"{in_own_quiet} sends")
    if unseen:
        every = [x for shares in unseen.values() for x in shares]
        print(f"Beacon captures {np.mean(every):.0%} (seeds {min(every):.0%}-{max(every):.0%}) of the oracle's "
              f"read@24h gain over fixed 09:00 on organisations it was not tuned on: "
              + ", ".join(f"{name} {np.mean(shares):.1%}" for name, shares in unseen.items())
              + f" (goal >= {GOAL:.0%} for each).")
        # One goal per organisation: a mean over organisations could hide one the planner serves badly.
        for name, shares in unseen.items():
            goals.goal("digest", f"share of the oracle's read@24h gain over fixed 09:00, {name} "
                       f"(not tuned on; mean of {len(shares)} seeds)",
                       measured=f"{np.mean(shares):.1%} (seeds {min(shares):.0%}-{max(shares):.0%})",
                       target=f">= {GOAL:.0%}", met=np.mean(shares) >= GOAL)
    return goals.exit_status(goals.RECORDED[first:])


if __name__ == "__main__":
    raise SystemExit(main())

"""Badly-received segments: precision and recall of Beacon's detector on planted problems.

A simulated organisation (DELIVERY.md part B, §4.2, content world) with hidden tastes: employees
in 20 departments, 4 regions and 8 levels; each department has its own mean affinity per topic
(so some departments always take some topics less: the case mix the detector must not flag);
posts of 12 topics with a quality; 6 % of posts carry a planted -1.5 "segment shock" for one
department. Posts reach people by digest and feed (each person is shown a post with probability
``--exposure``); a shown post is read with probability σ(2u − 1), the read is engaged when
u + N(0, 1) > 0, and 12 % of readers rate it (★ = clip(round(3 + u + N(0, 0.8)))). A good
outcome is what the product counts: an engaged read or ★ 4-5, never with ★ 1-2.

Detectors, each judging every (post, department) pair of at least 5 exposed people:

* **beacon**: :func:`intranet.segment_signals.judge`, the product's test (exposure, Beta
  shrinkage toward the rest's rate, case-mix from the department's earlier posts of the topic);
* **raw**: "the department's good rate is below 0.7 × the rest's" on raw averages;
* **ratings**: "the department's mean star rating is below 2.5" (ratings alone, at least 3).

A planted pair counts as found when flagged; every other flag is a false alarm. The first
``--warmup`` posts only build the topic history the case-mix step needs (a running intranet has
it; the simulation starts empty) and are not scored. Several organisations (seeds 200, 201, ...);
the product's constants were chosen on organisations 0 and 1 (``simulate(..., seed=0)``), never
on these.
"""
from __future__ import annotations

import argparse
import time as wallclock

import numpy as np

from bench import goals
from intranet import segment_signals

N_DEPARTMENTS, N_REGIONS, N_LEVELS, N_TOPICS = 20, 4, 8, 12
SHOCK, SHOCK_SHARE = -1.5, 0.06
GOAL_PRECISION, GOAL_RECALL = 0.8, 0.6


def simulate(n_people: int, n_posts: int, seed: int, exposure: float, *,
             strength: float = segment_signals.PRIOR_STRENGTH, drop: float = segment_signals.RELATIVE_DROP,
             threshold: float = segment_signals.THRESHOLD, warmup: int = 0) -> dict[str, dict[str, float]]:
    """One organisation: plant problems, simulate reception, run the three detectors (Beacon's with
    the product's constants unless given: ``--tune`` compares a few on organisations 0-1)."""
    rng = np.random.default_rng(seed)
    department = rng.integers(0, N_DEPARTMENTS, n_people)
    dept_taste = rng.normal(0.0, 0.7, (N_DEPARTMENTS, N_TOPICS))
    affinity = dept_taste[department] + rng.normal(0.0, 0.7, (n_people, N_TOPICS))
    topic = rng.integers(0, N_TOPICS, n_posts)
    quality = rng.normal(0.0, 0.5, n_posts)
    shocked = rng.random(n_posts) < SHOCK_SHARE
    shock_department = np.where(shocked, rng.integers(0, N_DEPARTMENTS, n_posts), -1)

    # Per (post, department): exposed, good, ratings count and star sum (people are not needed after).
    n = np.zeros((n_posts, N_DEPARTMENTS))
    y = np.zeros((n_posts, N_DEPARTMENTS))
    rated = np.zeros((n_posts, N_DEPARTMENTS))
    star_sum = np.zeros((n_posts, N_DEPARTMENTS))
    for p in range(n_posts):
        shown = rng.random(n_people) < exposure
        u = affinity[shown, topic[p]] + quality[p] + np.where(department[shown] == shock_department[p], SHOCK, 0.0)
        reads = rng.random(len(u)) < 1.0 / (1.0 + np.exp(-(2.0 * u - 1.0)))
        engaged = reads & (u + rng.normal(0.0, 1.0, len(u)) > 0)
        rates = reads & (rng.random(len(u)) < 0.12)
        stars = np.clip(np.round(3 + u + rng.normal(0.0, 0.8, len(u))), 1, 5)
        good = (engaged | (rates & (stars >= 4))) & ~(rates & (stars <= 2))
        d = department[shown]
        n[p] = np.bincount(d, minlength=N_DEPARTMENTS)
        y[p] = np.bincount(d, weights=good, minlength=N_DEPARTMENTS)
        rated[p] = np.bincount(d, weights=rates, minlength=N_DEPARTMENTS)
        star_sum[p] = np.bincount(d, weights=np.where(rates, stars, 0.0), minlength=N_DEPARTMENTS)

    truth = np.zeros((n_posts, N_DEPARTMENTS), dtype=bool)
    truth[np.flatnonzero(shocked), shock_department[shocked]] = True
    truth[:warmup] = False  # the warm-up's posts are history only: the detector is not scored on them
    flags = {name: np.zeros((n_posts, N_DEPARTMENTS), dtype=bool) for name in ("beacon", "raw", "ratings")}
    judged = np.zeros((n_posts, N_DEPARTMENTS), dtype=bool)
    small_flagged = 0
    for p in range(warmup, n_posts):
        # Case mix from this topic's earlier posts (the product reads up to 20 of them).
        earlier = np.flatnonzero(topic[:p] == topic[p])[-segment_signals.HISTORY_POSTS:]
        history = {}
        if len(earlier):
            history = {"hist_n": n[earlier].sum(0), "hist_y": y[earlier].sum(0),
                       "hist_total": (float(n[earlier].sum()), float(y[earlier].sum()))}
        keep, _expected, probability = segment_signals.judge(n[p], y[p], total=(n[p].sum(), y[p].sum()),
                                                             strength=strength, drop=drop, **history)
        judged[p] = keep
        flags["beacon"][p] = keep & (probability > threshold)
        small_flagged += int((flags["beacon"][p] & (n[p] < segment_signals.MIN_GROUP)).sum())
        rest_rate = (y[p].sum() - y[p]) / np.maximum(n[p].sum() - n[p], 1)
        flags["raw"][p] = keep & (y[p] / np.maximum(n[p], 1) < (1 - segment_signals.RELATIVE_DROP) * rest_rate)
        flags["ratings"][p] = keep & (rated[p] >= 3) & (star_sum[p] / np.maximum(rated[p], 1) < 2.5)
    out: dict[str, dict[str, float]] = {}
    for name, flagged in flags.items():
        hits = int((flagged & truth).sum())
        out[name] = {"precision": hits / flagged.sum() if flagged.sum() else float("nan"),
                     "recall": hits / truth.sum() if truth.sum() else float("nan"),
                     "flags": int(flagged.sum()), "hits": hits}
    # Where a drop can show at all: the rest of the audience did well often enough (at ~45 people a
    # department, a 4 % rate falling to 0 % is two people, indistinguishable from chance).
    rest = (y.sum(1, keepdims=True) - y) / np.maximum(n.sum(1, keepdims=True) - n, 1)
    visible = truth & (rest >= 0.2)
    out["planted"] = {"pairs": int(truth.sum()), "judged": int((truth & judged).sum()),
                      "small_flagged": small_flagged, "visible": int(visible.sum()),
                      "visible_hits": int((visible & flags["beacon"]).sum())}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=3000, help="employees (default 3000)")
    parser.add_argument("--posts", type=int, default=600, help="posts (default 600)")
    parser.add_argument("--seeds", type=int, default=3, help="organisations (default 3: seeds 200, 201, ...)")
    parser.add_argument("--warmup", type=int, default=120,
                        help="first posts that only build topic history (not scored; default 120)")
    parser.add_argument("--exposure", type=float, default=0.3,
                        help="chance a person is shown a given post (digest and feed; default 0.3)")
    args = parser.parse_args(argv)
    started = wallclock.perf_counter()
    print(f"{'seed':>5} {'detector':<9} {'flags':>6} {'hits':>5} {'precision':>10} {'recall':>7}   planted")
    totals = {name: {"flags": 0, "hits": 0} for name in ("beacon", "raw", "ratings")}
    planted = small = visible = visible_hits = 0
    per_seed = []
    for seed in range(200, 200 + args.seeds):
        result = simulate(args.people, args.posts, seed, args.exposure, warmup=args.warmup)
        planted += result["planted"]["pairs"]
        small += result["planted"]["small_flagged"]
        visible += result["planted"]["visible"]
        visible_hits += result["planted"]["visible_hits"]
        for name in totals:
            r = result[name]
            totals[name]["flags"] += r["flags"]
            totals[name]["hits"] += r["hits"]
            print(f"{seed:>5} {name:<9} {r['flags']:>6} {r['hits']:>5} {r['precision']:>10.2f} {r['recall']:>7.2f}"
                  f"   {result['planted']['pairs']} ({result['planted']['judged']} with >= 5 exposed)")
        per_seed.append(result["beacon"])
    summary = {name: (t["hits"] / t["flags"] if t["flags"] else float("nan"), t["hits"] / planted if planted else 0.0)
               for name, t in totals.items()}
    print("\nPooled over organisations:")
    for name, (precision, recall) in summary.items():
        print(f"  {name:<9} precision {precision:.2f}  recall {recall:.2f}")
    print(f"  {planted} planted problems; Beacon found {visible_hits} of the {visible} where the rest of the "
          f"audience's good rate was at least 20 % ({visible_hits / max(visible, 1):.0%}); "
          f"{wallclock.perf_counter() - started:.0f} s")
    first = goals.mark()
    precision, recall = summary["beacon"]
    goals.check("segments", "no segment under 5 exposed people is ever flagged", passed=small == 0,
                detail=f"{small} flagged")
    goals.goal("segments", "precision of badly-received segments (pooled over organisations)",
               measured=f"{precision:.2f}", target=f">= {GOAL_PRECISION:.2f}", met=precision >= GOAL_PRECISION)
    goals.goal("segments", "recall of planted problems (pooled over organisations)",
               measured=f"{recall:.2f}", target=f">= {GOAL_RECALL:.2f}", met=recall >= GOAL_RECALL)
    goals.goal("segments", "recall where the rest's good rate is >= 20 % (a drop can show)",
               measured=f"{visible_hits / max(visible, 1):.2f}", target=f">= {GOAL_RECALL:.2f}",
               met=visible_hits / max(visible, 1) >= GOAL_RECALL)
    raw_precision = summary["raw"][0]
    goals.goal("segments", "precision above the raw-average rule's", measured=f"{precision:.2f} vs {raw_precision:.2f}",
               target="higher", met=precision > raw_precision)
    return goals.exit_status(goals.RECORDED[first:])


if __name__ == "__main__":
    raise SystemExit(main())

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

* **beacon**: :func:`intranet.segment_signals.judge`, the product's test (exposure, case mix from
  the department's earlier posts of the topic, a beta-binomial tail p-value with the spread
  measured on those posts), then Benjamini-Hochberg over the post's departments, as the product
  does over a post's segments;
* **raw**: "the department's good rate is below 0.8 × the rest's" on raw averages;
* **ratings**: "the department's mean star rating is below 2.5" (ratings alone, at least 3).

A planted pair counts as found when flagged; every other flag is a false alarm. The first
``--warmup`` posts only build the topic history the case-mix step needs (a running intranet has
it; the simulation starts empty) and are not scored. Several organisations (seeds 200, 201, ...);
the product's constants were chosen on organisations 0-9 (``--tune``), never on these.

The **oracle** shows what the design allows at all: it knows each pair's true good rate with and
without the shock and ranks pairs by the likelihood ratio of their counts (the most powerful test
of one pair); its recall at Beacon's precision is the ceiling any detector of counts can reach
with this much exposure (about 45 people a department, many with an expected rate of a few %).
"""
from __future__ import annotations

import argparse
import math
import time as wallclock

import numpy as np

from bench import goals
from intranet import segment_signals

N_DEPARTMENTS, N_REGIONS, N_LEVELS, N_TOPICS = 20, 4, 8, 12
SHOCK, SHOCK_SHARE = -1.5, 0.06
GOAL_PRECISION, GOAL_RECALL = 0.8, 0.6
#: The raw-average rule flags a department whose good rate is below this share of the rest's.
RAW_RATIO = 0.8
#: Beacon's recall should reach this share of the oracle's at the same precision (the ceiling).
GOAL_OF_CEILING = 0.85
STAR_SHARE = 0.12


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(np.asarray(x) / math.sqrt(2.0)))


def good_probability(u: np.ndarray) -> np.ndarray:
    """The chance that a person with utility *u* who is shown a post has a good outcome, exactly as
    :func:`simulate` draws it (read, then engaged or ★ 4-5, never with ★ 1-2)."""
    engaged = _normal_cdf(u)
    high, low = _normal_cdf((u - 0.5) / 0.8), _normal_cdf((-0.5 - u) / 0.8)
    given_read = (1 - STAR_SHARE) * engaged + STAR_SHARE * (engaged + high - engaged * high - engaged * low)
    return given_read / (1.0 + np.exp(-(2.0 * u - 1.0)))


def ceiling_recall(log_ratio: np.ndarray, truth: np.ndarray, precision: float) -> float:
    """The oracle's recall: flag pairs in order of their likelihood ratio, as far down as the flags
    keep at least *precision* (no detector that sees only a pair's counts does better at that precision)."""
    order = np.argsort(-log_ratio, kind="stable")
    hits = np.cumsum(truth[order])
    good = hits / np.arange(1, len(order) + 1) >= precision
    return float(hits[good].max() / truth.sum()) if good.any() and truth.sum() else 0.0


def simulate(n_people: int, n_posts: int, seed: int, exposure: float, *,
             drop: float = segment_signals.RELATIVE_DROP, rate: float = segment_signals.FALSE_DISCOVERY_RATE,
             warmup: int = 0, oracle: bool = True) -> dict[str, dict[str, float]]:
    """One organisation: plant problems, simulate reception, run the three detectors (Beacon's with
    the product's constants unless given: ``--tune`` compares a few on organisations 0-9)."""
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
        history = segment_signals.History.of(n[earlier], y[earlier]) if len(earlier) else None
        keep, _expected, p_value = segment_signals.judge(n[p], y[p], total=(n[p].sum(), y[p].sum()),
                                                         history=history, drop=drop)
        judged[p] = keep
        # The product's multiple-testing step: Benjamini-Hochberg over the post's segments.
        q_value = np.ones(N_DEPARTMENTS)
        q_value[keep] = segment_signals.false_discovery_q(p_value[keep])
        flags["beacon"][p] = keep & (q_value <= rate)
        small_flagged += int((flags["beacon"][p] & (n[p] < segment_signals.MIN_GROUP)).sum())
        rest_rate = (y[p].sum() - y[p]) / np.maximum(n[p].sum() - n[p], 1)
        flags["raw"][p] = keep & (y[p] / np.maximum(n[p], 1) < RAW_RATIO * rest_rate)
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
    # The oracle knows each pair's true good rate without the shock (e0) and with it (e1): the
    # likelihood ratio of the counts is the most powerful test of one pair (Neyman-Pearson), so its
    # recall at a precision is the most any detector can reach (the "power" of the design).
    e0, e1 = np.full((n_posts, N_DEPARTMENTS), 0.5), np.full((n_posts, N_DEPARTMENTS), 0.5)
    for g in range(N_DEPARTMENTS if oracle else 0):
        u = affinity[department == g][:, topic[warmup:]] + quality[warmup:]
        e0[warmup:, g] = good_probability(u).mean(0)
        e1[warmup:, g] = good_probability(u + SHOCK).mean(0)
    e0, e1 = np.clip(e0, 1e-9, 1 - 1e-9), np.clip(e1, 1e-9, 1 - 1e-9)
    log_ratio = y * np.log(e1 / e0) + (n - y) * np.log((1 - e1) / (1 - e0))
    out["oracle"] = {"log_ratio": log_ratio[judged], "truth": truth[judged]}  # type: ignore[dict-item]
    out["planted"] = {"pairs": int(truth.sum()), "judged": int((truth & judged).sum()),
                      "small_flagged": small_flagged, "visible": int(visible.sum()),
                      "visible_hits": int((visible & flags["beacon"]).sum())}
    return out


def tune(args: argparse.Namespace) -> int:
    """Precision and recall pooled over the tuning organisations 0-9 for a few constants."""
    print(f"{'drop':>5} {'FDR':>5} {'flags':>6} {'hits':>5} {'precision':>10} {'recall':>7}")
    for drop in (0.0, 0.1, 0.2):
        for rate in (0.02, 0.05, 0.1):
            flags = hits = planted = 0
            for seed in range(10):
                result = simulate(args.people, args.posts, seed, args.exposure, drop=drop, rate=rate, warmup=args.warmup,
                                  oracle=False)
                flags, hits = flags + result["beacon"]["flags"], hits + result["beacon"]["hits"]
                planted += result["planted"]["pairs"]
            print(f"{drop:>5.2f} {rate:>5.2f} {flags:>6} {hits:>5} {hits / max(flags, 1):>10.2f} {hits / planted:>7.2f}",
                  flush=True)
    return goals.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=3000, help="employees (default 3000)")
    parser.add_argument("--posts", type=int, default=600, help="posts (default 600)")
    parser.add_argument("--seeds", type=int, default=3, help="organisations (default 3: seeds 200, 201, ...)")
    parser.add_argument("--warmup", type=int, default=120,
                        help="first posts that only build topic history (not scored; default 120)")
    parser.add_argument("--exposure", type=float, default=0.3,
                        help="chance a person is shown a given post (digest and feed; default 0.3)")
    parser.add_argument("--tune", action="store_true",
                        help="compare margins and false-discovery rates on the tuning organisations 0-9 and stop")
    args = parser.parse_args(argv)
    started = wallclock.perf_counter()
    if args.tune:
        return tune(args)
    print(f"{'seed':>5} {'detector':<9} {'flags':>6} {'hits':>5} {'precision':>10} {'recall':>7}   planted")
    totals = {name: {"flags": 0, "hits": 0} for name in ("beacon", "raw", "ratings")}
    planted = small = visible = visible_hits = 0
    per_seed = []
    oracle_ratio, oracle_truth = [], []
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
        oracle_ratio.append(result["oracle"]["log_ratio"])
        oracle_truth.append(result["oracle"]["truth"])
    summary = {name: (t["hits"] / t["flags"] if t["flags"] else float("nan"), t["hits"] / planted if planted else 0.0)
               for name, t in totals.items()}
    print("\nPooled over organisations:")
    for name, (precision, recall) in summary.items():
        print(f"  {name:<9} precision {precision:.2f}  recall {recall:.2f}")
    print(f"  {planted} planted problems; Beacon found {visible_hits} of the {visible} where the rest of the "
          f"audience's good rate was at least 20 % ({visible_hits / max(visible, 1):.0%}); "
          f"{wallclock.perf_counter() - started:.0f} s")
    precision, recall = summary["beacon"]
    ceiling = {level: ceiling_recall(np.concatenate(oracle_ratio), np.concatenate(oracle_truth), level)
               for level in (GOAL_PRECISION, precision)}
    print(f"  the oracle (knows every pair's true rates; the most powerful test per pair) reaches recall "
          f"{ceiling[GOAL_PRECISION]:.2f} at precision {GOAL_PRECISION:.2f} and {ceiling[precision]:.2f} at Beacon's "
          f"{precision:.2f}: Beacon has {recall / max(ceiling[precision], 1e-9):.0%} of what the exposure allows")
    first = goals.mark()
    goals.check("segments", "no segment under 5 exposed people is ever flagged", passed=small == 0,
                detail=f"{small} flagged")
    goals.goal("segments", "precision of badly-received segments (pooled over organisations)",
               measured=f"{precision:.2f}", target=f">= {GOAL_PRECISION:.2f}", met=precision >= GOAL_PRECISION)
    goals.goal("segments", "recall of planted problems (pooled over organisations)",
               measured=f"{recall:.2f}", target=f">= {GOAL_RECALL:.2f}", met=recall >= GOAL_RECALL)
    goals.goal("segments", "recall where the rest's good rate is >= 20 % (a drop can show)",
               measured=f"{visible_hits / max(visible, 1):.2f}", target=f">= {GOAL_RECALL:.2f}",
               met=visible_hits / max(visible, 1) >= GOAL_RECALL)
    goals.goal("segments", "recall as a share of the oracle's at Beacon's precision (the design's power)",
               measured=f"{recall / max(ceiling[precision], 1e-9):.0%}", target=f">= {GOAL_OF_CEILING:.0%}",
               met=recall >= GOAL_OF_CEILING * ceiling[precision])
    raw_precision = summary["raw"][0]
    goals.goal("segments", "precision above the raw-average rule's", measured=f"{precision:.2f} vs {raw_precision:.2f}",
               target="higher", met=precision > raw_precision)
    return goals.exit_status(goals.RECORDED[first:])


if __name__ == "__main__":
    raise SystemExit(main())

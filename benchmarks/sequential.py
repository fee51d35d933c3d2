"""Is --repeats auto valid, and does it pay? A/A calibration, power and trainings saved, by simulation and on real runs.

  python benchmarks/sequential.py [--studies 2000] [--data-root DIR ...]

1. A/A calibration: simulated studies of 50 comparisons, each a method equal to random, judged as the sweep
   judges them (rounds of 5 repeats, at most 100, the error split as kwsprune.study registers a first sweep).
   The differences are Gaussian with a spread of 2, 5 or 10 points, and, for each --data-root, drawn from the
   accuracies of that store's real random runs (the difference of two runs picked at random from one
   configuration: the real shape, skew and runs at chance included, with no true difference). Printed: the
   fraction of studies with any wrong verdict (better or worse, or by less than the margin), against alpha.
2. A real A/A study: each --data-root's random runs of one configuration paired with each other (repeat 2i
   against 2i + 1), judged round by round as the sweep would.
3. Power: the repeats a comparison takes to a verdict for true differences of 0.5, 1, 2 and 5 points at the
   spread of paired differences measured in each --data-root (and at 5 points), median and 90th percentile.
4. Savings: for each --data-root holding an auto sweep, the trainings it used against the fixed design at the
   same maximum (every comparison run to its maximum).
5. The original's N-scan under --repeats auto: the share of its trainings it would use if its comparisons were
   like the real ones of the --data-root stores (docs/cost.md turns it into hours).
"""

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kwsprune.results import WHOLE_SET, read_runs  # noqa: E402
from kwsprune.sequential import (ALPHA, DECIDED, EQUIVALENT, MARGIN, UNDECIDED, batch_alpha,  # noqa: E402
                                 confidence_sequences, verdict)
from kwsprune.verdicts import differences, paired  # noqa: E402

COMPARISONS = 50
MAX_REPEATS = 100
ROUND = 5
DIFFERENCES = (0.005, 0.01, 0.02, 0.05)


def first_verdicts(differences: np.ndarray, alpha: float, margin: float = MARGIN, round_size: int = ROUND):
    """Each sequence judged after every round as the sweep does: (the verdict it stopped with, the repeats used);
    differences (n_sequences, max_repeats)."""
    low, high = confidence_sequences(differences, alpha)
    n, most = differences.shape
    calls, used, still_open = np.full(n, UNDECIDED, dtype=object), np.full(n, most), np.ones(n, bool)
    for end in sorted({*range(round_size, most, round_size), most}):
        lo, hi = low[:, end - 1], high[:, end - 1]
        now = still_open & ((lo > 0) | (hi < 0) | ((lo >= -margin) & (hi <= margin)))
        for i in np.flatnonzero(now):
            calls[i], used[i] = verdict(lo[i], hi[i], margin), end
        still_open &= ~now
    return calls, used


def wrong(calls) -> np.ndarray:
    """Verdicts that contradict a true difference of 0: better or worse, of any size."""
    return np.array([c in DECIDED and c != EQUIVALENT for c in calls])


def aa_error(draw, studies: int, rng, alpha: float = ALPHA) -> float:
    """The fraction of simulated A/A studies of COMPARISONS comparisons with any wrong verdict; draw(rng, shape)
    gives differences with a true mean of 0."""
    share = batch_alpha(alpha, 1) / COMPARISONS
    failures = 0
    for _ in range(studies):
        calls, _ = first_verdicts(draw(rng, (COMPARISONS, MAX_REPEATS)), share)
        failures += wrong(calls).any()
    return failures / studies


def real_accuracies(data_root: Path) -> dict[tuple, np.ndarray]:
    """{(ratio, n): accuracies by repeat} of the random runs in a store, configurations with 10 or more."""
    by_config: dict[tuple, dict] = {}
    with open(data_root / "results" / "runs.csv") as f:
        for row in csv.DictReader(f):
            if row["method"] == "random":
                by_config.setdefault((row["ratio"], row["n"]), {})[int(row["repeat"])] = float(row["test_acc"])
    return {key: np.array([acc[r] for r in sorted(acc)]) for key, acc in by_config.items() if len(acc) >= 10}


def paired_differences(data_root: Path) -> dict[tuple, list]:
    """{comparison: paired differences method - random, by repeat} of a store's comparisons (kwsprune.verdicts)."""
    rows = read_runs(data_root / "results")
    found = dict.fromkeys((r["method"], r["ratio"], r["k"], r["n"]) for r in rows
                          if r["method"] != "random" and r["kept"] != WHOLE_SET)
    return {comparison: differences(*paired(rows, comparison)) for comparison in found}


def paired_spread(data_root: Path) -> float:
    """The median spread (sd) of the paired differences method - random over a store's comparisons."""
    return float(np.median([np.std(d, ddof=1) for d in paired_differences(data_root).values() if len(d) >= 5]))


def n_scan_projection(roots, rng, sequences: int = 400) -> str:
    """The original's N-scan (18 N x 6 comparisons with random, at most 100 repeats) under --repeats auto, its
    comparisons drawn from the real ones of the stores (their mean and spread of paired differences): the
    trainings against the fixed design's 18 x 7 x 100, and the repeats per comparison."""
    real = [(np.mean(d), np.std(d, ddof=1)) for root in roots for d in paired_differences(root).values() if len(d) >= 5]
    if not real:
        return "no comparison with 5 or more repeats in the stores"
    share = batch_alpha(ALPHA, 1) / (18 * 6)
    repeats = []
    for mean, spread in real:
        _, used = first_verdicts(rng.normal(mean, spread, (sequences, MAX_REPEATS)), share)
        repeats.append(used)
    repeats = np.array(repeats)  # (comparisons, sequences)
    fractions = []
    for _ in range(2000):  # an N: six comparisons drawn from the real ones; random runs as long as the longest
        picked = repeats[rng.integers(len(real), size=6), rng.integers(sequences, size=6)]
        fractions.append((picked.sum() + picked.max()) / (7 * MAX_REPEATS))
    return (f"{len(real)} real comparisons as the model: a comparison uses {repeats.mean():.1f} repeats on average "
            f"(median {np.median(repeats):.0f}); an N of the scan trains {np.mean(fractions):.0%} of the fixed "
            f"design's 700 runs (5th-95th percentile {np.percentile(fractions, 5):.0%}-{np.percentile(fractions, 95):.0%})")


def savings(data_root: Path) -> str:
    """Trainings of an auto sweep against the fixed design at its maximum, from the store and its ledger."""
    import json

    rows = list(csv.DictReader(open(data_root / "results" / "runs.csv")))
    lines = []
    for path in sorted((data_root / "results" / "studies").glob("*.json")):
        for batch in json.loads(path.read_text())["batches"]:
            sweep = batch["sweep"]
            if not sweep or sweep["repeats"] != "auto":
                continue
            most = sweep["max_repeats"]
            configs = {(r["method"], r["ratio"], r["n"]) for r in rows if r["method"] in sweep["methods"]
                       and r["n"] in sweep["ns"] and (r["ratio"] in map(repr, sweep["ratios"]) or r["method"] == "random")}
            used = sum(1 for r in rows if (r["method"], r["ratio"], r["n"]) in configs and int(r["repeat"]) < most)
            lines.append(f"{data_root.name}: {len(batch['comparisons'])} comparisons, {used} trainings used against "
                         f"{len(configs) * most} for the fixed design at {most} repeats ({used / (len(configs) * most):.0%})")
    return "\n".join(lines) or f"{data_root.name}: no auto sweep in its ledger"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=2000, help="simulated A/A studies a row (default: %(default)s)")
    parser.add_argument("--data-root", type=Path, nargs="*", default=[], help="stores of real runs (FSDD, Arabic ...)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)

    print(f"1. A/A: studies of {COMPARISONS} comparisons, rounds of {ROUND}, at most {MAX_REPEATS} repeats, alpha "
          f"{ALPHA} family-wise ({batch_alpha(ALPHA, 1) / COMPARISONS:.1e} a comparison)")
    print(f"{'differences drawn from':<58s} {'studies':>8s} {'any wrong verdict':>18s}")
    for spread in (0.02, 0.05, 0.10):
        error = aa_error(lambda g, shape, s=spread: g.normal(0, s, shape), args.studies, rng)
        print(f"{f'Gaussian, spread {spread:g}':<58s} {args.studies:8d} {error:18.4f}")
    print("where the assumption fails: the method's runs collapse to chance (40 points down) in 5% of repeats, random's "
          "never, so the true difference is -0.02; the share of sequences that ever miss it, at a comparison's alpha:")
    for spread in (0.02, 0.05):
        d = rng.normal(0, spread, (4000, MAX_REPEATS)) - 0.4 * (rng.random((4000, MAX_REPEATS)) < 0.05)
        low, high = confidence_sequences(d, batch_alpha(ALPHA, 1) / COMPARISONS)
        print(f"  spread {spread:g}: {((low > -0.02) | (high < -0.02)).any(axis=1).mean():.3f} "
              f"(nominal {batch_alpha(ALPHA, 1) / COMPARISONS:.1e})")
    real = {root: real_accuracies(root) for root in args.data_root}
    for root, configs in real.items():
        for (ratio, n), accuracies in configs.items():
            def draw(g, shape, acc=accuracies):
                return g.choice(acc, shape) - g.choice(acc, shape)
            error = aa_error(draw, args.studies, rng)
            label = f"{root.name} random ratio {ratio} N {n} ({len(accuracies)} runs, sd {accuracies.std(ddof=1):.3f})"
            print(f"{label:<58s} {args.studies:8d} {error:18.4f}")

    print("\n2. Real A/A studies: random's runs of a configuration, repeat 2i against 2i + 1")
    for root, configs in real.items():
        share = batch_alpha(ALPHA, 1) / max(len(configs), 1)
        for (ratio, n), accuracies in configs.items():
            pairs = len(accuracies) // 2
            d = (accuracies[0:2 * pairs:2] - accuracies[1:2 * pairs:2])[None, :]
            low, high = confidence_sequences(d, share)
            calls, used = first_verdicts(d, share)
            print(f"{root.name} ratio {ratio} N {n}: {pairs} pairs, mean {d.mean():+.4f}, sequence "
                  f"[{low[0, -1]:+.3f}, {high[0, -1]:+.3f}]: {calls[0]} after {used[0]}")

    print(f"\n3. Power: repeats to a verdict (median / 90th percentile; rounds of {ROUND}, at most {MAX_REPEATS}; "
          f"{COMPARISONS} comparisons share alpha)")
    spreads = {"5 points": 0.05, **{f"{root.name} (measured)": paired_spread(root) for root in args.data_root}}
    share = batch_alpha(ALPHA, 1) / COMPARISONS
    print(f"{'spread of paired differences':<32s} " + " ".join(f"{f'diff {d:g}':>18s}" for d in DIFFERENCES))
    for label, spread in spreads.items():
        cells = []
        for difference in DIFFERENCES:
            calls, used = first_verdicts(rng.normal(difference, spread, (2000, MAX_REPEATS)), share)
            decided = np.isin(calls, DECIDED)
            cells.append(f"{np.median(used):.0f} / {np.percentile(used, 90):.0f} ({decided.mean():.0%})")
        print(f"{f'{label}: {spread:.3f}':<32s} " + " ".join(f"{c:>18s}" for c in cells))
    print("(in brackets: the share decided by the maximum)")

    if args.data_root:
        print("\n4. Savings")
        for root in args.data_root:
            print(savings(root))
        print("\n5. The original's N-scan (18 N x 6 comparisons, at most 100 repeats) under --repeats auto, its "
              "comparisons like the real ones above")
        print(n_scan_projection(args.data_root, rng))


if __name__ == "__main__":
    main()

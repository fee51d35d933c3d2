"""Do verdicts that carry the test set's noise hold at their rate? Calibration that can fail, by simulation and on speech.

  python benchmarks/test_set_calibration.py                                   # simulation only (about a minute)
  python benchmarks/test_set_calibration.py --data-root /data/arabic --methods herding keep_hard --ratio 0.5 --n 1600

Two random arms cannot test the test set's term: their expected difference is zero on every test set, by symmetry.
So both parts use two arms that get different clips wrong, on a large pool, and draw small test sets from the pool:

1. Simulation: 1,000 speakers of 200 clips; each arm's chance of getting each clip right, the method's shifted from
   random's by a speaker's share and a clip's own, the pool's difference 0 (equal accuracy) or 2 points. Test sets
   of 20 clips from each of 6 or 48 speakers; every repeat trains both arms anew (Bernoulli outcomes on every clip).
2. Real speech (--data-root): the head (--model logreg) trained --repeats times on each arm (a method's kept clips
   at --ratio against random, --n clips a draw), scored on the pool of the validation and test clips (Arabic Speech
   Commands: 12 speakers, 4,800 clips); the pool's difference is the mean over every repeat and pool clip. Test sets
   of 3 speakers x 100 clips drawn from the pool (a third of it would be drawn without replacement: the interval
   is then about 15% wider than it needs to be).

Each test set is judged as the sweep judges (kwsprune.verdicts.interval and kwsprune.sequential.verdict: rounds
of 5 repeats, at most 20, the error split between the repeats' sequence and the test set's gap). Printed per
setting: how often the gap's interval holds the gap at its final repeat (against 1 - alpha / 2), how often the
verdict's interval holds the population's difference (against 1 - alpha), the wrong verdicts (better or worse when
the arms are equal on the pool; any verdict that contradicts the pool's difference), the share decided, the share
stopped by the test set alone, the gap's mean half-width, and its share of the verdict's interval. Claims: new
speakers (the pool's difference), and new clips of the test speakers (the difference on those speakers' pool clips).
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kwsprune.sequential import BETTER, EQUIVALENT, OPEN, SLIGHTLY_BETTER, SLIGHTLY_WORSE, WORSE, verdict  # noqa: E402
from kwsprune.test_set import CLIPS, SPEAKERS, HeldOut, population  # noqa: E402
from kwsprune.verdicts import interval  # noqa: E402

MARGIN = 0.01
ROUND, MAX_REPEATS = 5, 20


def judged(d: np.ndarray, where, alpha: float) -> tuple[str, int, float, float, float]:
    """The sweep's rule on one test set's per-clip differences d (repeats, clips): (verdict, repeats used, low,
    high, gap) at the round it stopped."""
    for end in range(ROUND, MAX_REPEATS + 1, ROUND):
        low, high, gap = interval(d[:end].mean(axis=1), alpha, d[:end], where)
        call = verdict(low, high, MARGIN, end >= MAX_REPEATS, gap)
        if call != OPEN:
            return call, end, low - gap, high + gap, gap
    raise AssertionError("the last round is at the maximum: never open")


def contradicts(call: str, truth: float) -> bool:
    """Whether a verdict says what the population's difference denies."""
    return {BETTER: truth <= 0, WORSE: truth >= 0, SLIGHTLY_BETTER: not 0 < truth <= MARGIN,
            SLIGHTLY_WORSE: not -MARGIN <= truth < 0, EQUIVALENT: abs(truth) > MARGIN}.get(call, False)


def summarise(results: list[tuple], alpha: float) -> dict:
    """results: (verdict, repeats, low, high, gap, gap held, truth) per test set -> the table's numbers."""
    calls = [r[0] for r in results]
    return {"test sets": len(results), "alpha": alpha,
            "gap held": np.mean([r[5] for r in results]),
            "interval held": np.mean([r[2] <= r[6] <= r[3] for r in results]),
            "wrong": np.mean([contradicts(c, r[6]) for c, r in zip(calls, results)]),
            "decided": np.mean([c in (BETTER, WORSE, SLIGHTLY_BETTER, SLIGHTLY_WORSE, EQUIVALENT) for c in calls]),
            "floor": np.mean([c == "undecided" and r[1] < MAX_REPEATS for c, r in zip(calls, results)]),
            "gap points": 100 * np.mean([r[4] for r in results if np.isfinite(r[4])]),
            "share": np.mean([2 * r[4] / (r[3] - r[2]) for r in results if np.isfinite(r[4]) and r[3] > r[2]]),
            "repeats": np.mean([r[1] for r in results])}


def simulate(rng, speakers: int, claim: str, shift: float, alpha: float, test_sets: int) -> dict:
    """Part 1: test sets of `speakers` x 20 clips from a simulated pool whose difference is `shift`."""
    p_random = rng.beta(6, 2, size=(1000, 200))
    p_method = np.clip(p_random + rng.normal(0, 0.08, (1000, 1)) + rng.normal(0, 0.15, (1000, 200)), 0, 1)
    for _ in range(20):  # the clip at 0 and 1 moves the mean: shift until the pool's difference is `shift`
        p_method = np.clip(p_method + shift - (p_method - p_random).mean(), 0, 1)
    mu = p_method - p_random
    who = np.repeat(np.arange(speakers), 20).astype(str)
    where = population(HeldOut(np.zeros(len(who), int), who), claim)
    results = []
    for _ in range(test_sets):
        chosen = rng.choice(1000, speakers, replace=False)
        picked = np.take_along_axis(np.arange(mu.size).reshape(mu.shape)[chosen],
                                    rng.random((speakers, 200)).argsort(axis=1)[:, :20], axis=1).ravel()
        shape = (MAX_REPEATS, len(picked))
        d = (rng.random(shape) < p_method.ravel()[picked]).astype(float) - (rng.random(shape) < p_random.ravel()[picked])
        truth = mu.mean() if claim == SPEAKERS else mu[chosen].mean()
        call, used, low, high, gap = judged(d, where, alpha)
        results.append((call, used, low, high, gap, abs(mu.ravel()[picked].mean() - truth) <= gap, truth))
    return {"source": f"simulated, pool difference {100 * mu.mean():+.1f} points", "claim": claim,
            "test set": f"{speakers} speakers x 20 clips", **summarise(results, alpha)}


def speech_outcomes(data_root, method: str, ratio: float, n: int, repeats: int, seed: int = 0):
    """Part 2's trainings: per-clip right (1) / wrong (0) of each arm on the validation + test pool, (repeats, clips)
    each, and the pool's speakers."""
    from kwsprune.paths import DATASET_DIR, step_dir
    from kwsprune.pruning import PruningSetup, load_kept
    from kwsprune.runs import draw, model_seed
    from kwsprune.recipe import RECIPES
    from kwsprune.training import train_runs
    from kwsprune.training_data import load_training_data

    data = load_training_data(data_root, "logreg")
    x_pool = np.concatenate([data["x_valid"], data["x_test"]])
    y_pool = np.concatenate([data["y_valid"], data["y_test"]])
    folder = step_dir(data_root, DATASET_DIR)
    speakers = np.concatenate([np.load(folder / f"{split}_speakers.npy") for split in ("valid", "test")])
    kept, _ = load_kept(data_root, PruningSetup(10, 10, seed, None), method, ratio)
    everything = np.arange(len(data["y_train"]))
    subsets = ([draw(kept, str(n), seed, r) for r in range(repeats)] +
               [draw(everything, str(n), seed, r) for r in range(repeats)])
    seeds = [model_seed(seed, r) for r in range(repeats)] * 2
    runs = train_runs(data["x_train"], data["y_train"], subsets, data["x_valid"], data["y_valid"], x_pool, y_pool,
                      data["n_classes"], seeds, RECIPES["head"], "cpu")
    right = np.stack([(run["predicted"] == y_pool).astype(float) for run in runs])
    return right[:repeats], right[repeats:], speakers


def on_speech(rng, method_right, random_right, speakers, claim: str, alpha: float, test_sets: int, label: str) -> dict:
    """Part 2: test sets of 3 speakers x 100 clips from the pool, repeats in a random order each time."""
    mu = (method_right - random_right).mean(axis=0)
    names = np.unique(speakers)
    who = np.repeat(np.arange(3), 100).astype(str)
    where = population(HeldOut(np.zeros(len(who), int), who), claim)
    results = []
    for _ in range(test_sets):
        chosen = rng.choice(names, 3, replace=False)
        picked = np.concatenate([rng.choice(np.flatnonzero(speakers == s), 100, replace=False) for s in chosen])
        order = rng.permutation(len(method_right))[:MAX_REPEATS]
        d = method_right[order][:, picked] - random_right[order][:, picked]
        truth = mu.mean() if claim == SPEAKERS else mu[np.isin(speakers, chosen)].mean()
        call, used, low, high, gap = judged(d, where, alpha)
        results.append((call, used, low, high, gap, abs(mu[picked].mean() - truth) <= gap, truth))
    return {"source": f"{label}, pool difference {100 * mu.mean():+.2f} points", "claim": claim,
            "test set": "3 speakers x 100 clips", **summarise(results, alpha)}


def table(rows: list[dict]) -> str:
    out = ["| source | claim | test set | alpha | gap held | interval held | wrong verdicts | decided | stopped by the test set | "
           "gap ± (points) | test set's share of the interval | repeats |",
           "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        out.append(f"| {r['source']} | new {r['claim']} | {r['test set']} | {r['alpha']:g} | {r['gap held']:.3f} | "
                   f"{r['interval held']:.3f} | {r['wrong']:.3f} | {r['decided']:.2f} | {r['floor']:.2f} | "
                   f"{r['gap points']:.2f} | {r['share']:.2f} | {r['repeats']:.1f} |")
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test-sets", type=int, default=400, help="test sets drawn per setting (default: %(default)s)")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.05, 0.2],
                        help="a comparison's error share (0.05 / 2 / 10: one of 10 in a first sweep at alpha 0.05 is 0.0025)")
    parser.add_argument("--data-root", help="a data root with embeddings and kept sets (part 2)")
    parser.add_argument("--methods", nargs="+", default=["herding", "keep_hard"])
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--n", type=int, default=1600)
    parser.add_argument("--repeats", type=int, default=40, help="trainings of each arm (part 2)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = [simulate(rng, speakers, claim, shift, alpha, args.test_sets)
            for alpha in args.alphas for shift in (0.0, 0.02) for speakers in (6, 48) for claim in (SPEAKERS, CLIPS)]
    print(table(rows), flush=True)
    if args.data_root:
        speech = []
        for method in args.methods:
            method_right, random_right, speakers = speech_outcomes(args.data_root, method, args.ratio, args.n, args.repeats)
            label = f"{Path(args.data_root).name}, head, {method} at {1 - args.ratio:.0%} kept vs random, N {args.n}"
            speech += [on_speech(rng, method_right, random_right, speakers, claim, alpha, args.test_sets, label)
                       for alpha in args.alphas for claim in (SPEAKERS, CLIPS)]
        print(table(speech))


if __name__ == "__main__":
    main()

"""How repeatable is one training? The spread of test accuracy split into the draw of clips, the training and the
test set, and the spread of paired differences that decides how many repeats a verdict needs.

  python benchmarks/noise.py --data-root arabic --n 1600 --model tiny                     # the kwsprune recipe
  python benchmarks/noise.py --data-root arabic --n 1600 --model tiny --recipe steady
  python benchmarks/noise.py --data-root arabic --n 1600 --model logreg --methods keep_hard ssp_hard --ratio 0.5
  python benchmarks/noise.py --data-root fsdd --n 2160 --model logreg --out noise.jsonl   # FSDD, 90% kept
  python benchmarks/noise.py --data-root arabic_logmel --n 1600 --model bc-resnet-1 --max-epochs 20 --models-per-job 1

The recipe is chosen as the training scripts choose it (--model, --recipe and the same recipe flags).

For one data root, model and recipe at N training clips, all trained in batched jobs:
1. A crossed grid: --draws draws of N clips from the whole training split, each trained under --seeds model seeds.
   Its variance components (kwsprune.variance.crossed_components): draw, seed and residual (the draw x seed
   interaction: training noise that no seed shares), with 95% intervals, as standard deviations in points.
2. Two random arms, --pairs pairs: arm A draws as the sweep's random runs do (runs.draw with the study's seed),
   arm B with the next seed; both trained under the same model seed. The sd of their paired differences, with
   its chi-square interval: what `--repeats auto` sees between two arms that differ by nothing but their draw.
3. For each of --methods: its kept clips at --ratio against random, --pairs pairs as the sweep pairs them (same
   repeat, same model seed): the sd of the paired differences (needs pruning.py's kept sets).
4. The test set: the sd of one run's accuracy and of one paired difference over test sets resampled from this one,
   by speaker where the data root knows the test clips' speakers (kwsprune.variance.spread_over_test_sets).
Prints a table (accuracies and spreads in points, 1 point = 0.01 accuracy); --out appends one JSON line a row;
--summarise FILE prints those lines as one Markdown table (what docs/measurements.md shows).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kwsprune.cli import RECIPE_FLAGS, add_training_flags, at_least, training_config  # noqa: E402
from kwsprune.models import is_head, model_spec  # noqa: E402
from kwsprune.pruning import PruningSetup, load_kept  # noqa: E402
from kwsprune.recipe import recipe_text  # noqa: E402
from kwsprune.runs import draw, model_seed  # noqa: E402
from kwsprune.test_set import load_test_set  # noqa: E402
from kwsprune.training import train_runs  # noqa: E402
from kwsprune.training_data import load_training_data  # noqa: E402
from kwsprune.variance import crossed_components, sd_interval, spread_over_test_sets  # noqa: E402

GRID_OFFSET = 1000  # the grid's draws and seeds use repeats from here, apart from the pairs' 0 .. pairs - 1


def train_all(data, subsets, seeds, config, device, per_job: int) -> list[dict]:
    """Every (subset, seed) trained, per_job models at once; each run's metrics and test predictions."""
    out = []
    for start in range(0, len(subsets), per_job):
        out += train_runs(data["x_train"], data["y_train"], subsets[start:start + per_job], data["x_valid"],
                          data["y_valid"], data["x_test"], data["y_test"], data["n_classes"],
                          seeds[start:start + per_job], config, device)
    return out


def measure(data_root, n: int, config, label: str, draws: int, seeds: int, pairs: int, methods, ratio: float, k: int,
            seed: int, device: str, per_job: int = 100) -> dict:
    """One row of the table: config (named `label`) at n clips on data_root."""
    data = load_training_data(data_root, config.model)
    n_train = len(data["y_train"])
    pool = np.arange(n_train)
    speakers = load_test_set(data_root).speakers  # checked against the dataset manifest
    plan = []  # (label, subset, model seed)
    for d in range(draws):
        for s in range(seeds):
            plan.append((("grid", d, s), draw(pool, str(n), seed, GRID_OFFSET + d), model_seed(seed, GRID_OFFSET + s)))
    for r in range(pairs):
        plan.append((("random", r), draw(pool, str(n), seed, r), model_seed(seed, r)))
        plan.append((("other random", r), draw(pool, str(n), seed + 1, r), model_seed(seed, r)))
    for method in methods:
        kept, _ = load_kept(data_root, PruningSetup(k, 10, seed, None), method, ratio)
        for r in range(pairs):
            plan.append(((method, r), draw(kept, str(n), seed, r), model_seed(seed, r)))
    began = time.perf_counter()
    results = train_all(data, [p[1] for p in plan], [p[2] for p in plan], config, device, per_job)
    seconds = (time.perf_counter() - began) / len(plan)
    by_label = {label: result for (label, _, _), result in zip(plan, results)}
    y_test = np.asarray(data["y_test"])
    right = {label: (r["predicted"] == y_test).astype(np.float64) for label, r in by_label.items()}
    grid = np.array([[by_label[("grid", d, s)]["test_acc"] for s in range(seeds)] for d in range(draws)])
    components = crossed_components(grid)
    row = {"data_root": str(data_root), "n": n, "model": config.model, "recipe_name": label, "recipe": recipe_text(config),
           "epochs": config.max_epochs, "n_test": len(y_test), "test_speakers": None if speakers is None else
           int(len(np.unique(speakers))), "mean_acc": float(grid.mean()), "grid_sd": float(grid.std(ddof=1)),
           "seconds_per_training": seconds, "runs": len(plan), "grid": [draws, seeds]}
    for name, (estimate, low, high) in components.items():  # an interval it could not give is null, not NaN
        row[f"sd_{name}"] = [None if np.isnan(v) else float(np.sqrt(v)) for v in (estimate, low, high)]
    row["pairs"] = pairs
    random_acc = np.array([by_label[("random", r)]["test_acc"] for r in range(pairs)])
    aa = random_acc - np.array([by_label[("other random", r)]["test_acc"] for r in range(pairs)])
    row["aa_mean"], row["sd_aa"] = float(aa.mean()), [float(v) for v in sd_interval(aa)]

    def over_test_sets(arm: str, other: str | None = None) -> float:
        """The test set's spread of one arm's accuracy (or of arm - other), averaged over the first 10 pairs."""
        return float(np.mean([spread_over_test_sets(right[(arm, r)] - (right[(other, r)] if other else 0), speakers)
                              for r in range(min(pairs, 10))]))

    row["test_sd_run"], row["test_sd_aa"] = over_test_sets("random"), over_test_sets("random", "other random")
    row["methods"] = {}
    for method in methods:
        diff = np.array([by_label[(method, r)]["test_acc"] for r in range(pairs)]) - random_acc
        row["methods"][method] = {"ratio": ratio, "mean": float(diff.mean()), "sd": [float(v) for v in sd_interval(diff)],
                                  "test_sd": over_test_sets(method, "random")}
    return row


def points(values) -> str:
    """An sd [low, high] in points."""
    return f"{100 * values[0]:.2f} [{100 * values[1]:.2f}, {100 * values[2]:.2f}]"


def seeded(row: dict) -> bool:
    """Whether the row's model has a seed at all (a head's fit has none: its seed and training columns say so)."""
    return not is_head(row["model"])


def pairs_of(row: dict) -> int:
    """The A/A pairs behind a row (older rows did not record them: every pair is 2 + one run a method)."""
    if "pairs" in row:
        return row["pairs"]
    draws, seeds = row["grid"]
    return (row["runs"] - draws * seeds) // (2 + len(row["methods"]))


def print_row(row: dict) -> None:
    name = Path(row["data_root"]).name
    print(f"\n{name}, N = {row['n']}, {row['model']} ({row['runs']} trainings, {row['seconds_per_training']:.2f} s each "
          f"on this machine); recipe: {row['recipe']}")
    print(f"  test accuracy over the {row['grid'][0]} x {row['grid'][1]} grid: mean {row['mean_acc']:.3f}, "
          f"sd {100 * row['grid_sd']:.2f} points")
    print(f"  {'source':<34s} {'sd, points [95% interval]':>28s}")
    for label, key in (("draw of clips", "sd_draw"), ("model seed (shared across draws)", "sd_seed"),
                       ("training (seed x draw)", "sd_residual")):
        print(f"  {label:<34s} {points(row[key]) if seeded(row) or key == 'sd_draw' else 'none: no seed':>28s}")
    print(f"  {'two random arms, paired':<34s} {points(row['sd_aa']):>28s}  (mean {100 * row['aa_mean']:+.2f})")
    unit = "speakers" if row["test_speakers"] else "clips"
    print(f"  {'test set: one run':<34s} {100 * row['test_sd_run']:>10.2f}  ({row['n_test']} clips, resampled by {unit})")
    print(f"  {'test set: one paired difference':<34s} {100 * row['test_sd_aa']:>10.2f}")
    for method, m in row["methods"].items():
        print(f"  {method + ' - random, paired':<34s} {points(m['sd']):>28s}  (mean {100 * m['mean']:+.2f}, "
              f"test set {100 * m['test_sd']:.2f})")


def summarise(path: Path) -> None:
    """The JSON lines of earlier runs as one Markdown table, one row each, in the order run."""
    print("| data, N | model, recipe | epochs | test accuracy | sd draw | sd seed | sd training | sd A/A paired (pairs) | "
          "test set: run, paired | s a training |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        seed, training = ((points(row["sd_seed"]), points(row["sd_residual"])) if seeded(row) else ("none", "none"))
        epochs = row["epochs"] if seeded(row) else ""
        print(f"| {Path(row['data_root']).name}, {row['n']:,} | {row['model']}, {row['recipe_name']} | {epochs} | "
              f"{row['mean_acc']:.3f} | {points(row['sd_draw'])} | {seed} | {training} | "
              f"**{points(row['sd_aa'])}** ({pairs_of(row)}) | {100 * row['test_sd_run']:.2f}, {100 * row['test_sd_aa']:.2f} | "
              f"{row['seconds_per_training']:.2f} |")
    if any(row["methods"] for row in rows):
        print("\n| data, N | model, recipe | method, fraction kept | mean paired difference | sd paired (pairs) | "
              "test set: paired |")
        print("| --- | --- | --- | ---: | ---: | ---: |")
        for row in rows:
            for method, m in row["methods"].items():
                print(f"| {Path(row['data_root']).name}, {row['n']:,} | {row['model']}, {row['recipe_name']} | {method}, "
                      f"{1 - m['ratio']:g} | {100 * m['mean']:+.2f} | {points(m['sd'])} ({pairs_of(row)}) | "
                      f"{100 * m['test_sd']:.2f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--summarise", type=Path, help="print the JSON lines of --out as a Markdown table, and stop")
    parser.add_argument("--data-root", type=Path)
    parser.add_argument("--n", type=int, nargs="+", help="training clips per run")
    add_training_flags(parser, model="tiny", recipe=None, seed_default=0, engine="torch", device="cpu")
    parser.add_argument("--models-per-job", type=at_least(1), default=100,
                        help="models trained at once (1 for BC-ResNet on a CPU: batched, its kernels are slower a model)")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--methods", nargs="*", default=[])
    parser.add_argument("--ratio", type=float, default=0.5, help="the methods' fraction removed")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", type=Path, help="append each row as one JSON line")
    args = parser.parse_args(argv)
    if args.summarise:
        summarise(args.summarise)
        return
    if not args.data_root or not args.n:
        parser.error("--data-root and --n are needed (or --summarise)")
    if args.engine != "torch":
        parser.error("--engine keras: the benchmark trains with the torch engine only")
    config = training_config(args)
    changed = [f"{name}={getattr(args, name)}" for name in RECIPE_FLAGS if getattr(args, name, None) is not None]
    label = ", ".join([args.recipe or model_spec(args.model).recipe, *changed])
    for n in args.n:
        row = measure(args.data_root, n, config, label, args.draws, args.seeds, args.pairs, args.methods, args.ratio, args.k,
                      args.seed, args.device, args.models_per_job)
        print_row(row)
        if args.out:
            with open(args.out, "a") as out:
                out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

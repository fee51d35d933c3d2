"""What killing a sweep costs, and whether a row depends on the runs that shared its job.

  python benchmarks/kill_resume.py --data-root DIR [--kills 10] [--sweep ...]

On temporary copies of DIR (after steps 0-2), the same sweep (default: 3 methods x N 400, 800 x 6 repeats =
36 runs, kwsprune's recipe) runs
1. uninterrupted;
2. killed with SIGKILL `--kills` times, each attempt after a random time in `--kill-after LOW HIGH` seconds
   (uniform), restarted each time, then left to finish; it prints each attempt, the time lost (all attempts
   together minus the uninterrupted run) and whether its final rows equal the uninterrupted ones;
3. in two halves, the first half of the repeats, then all of them, so that the runs of the first half train
   in other jobs than in (1): it prints how far their rows are from (1), the float32 tolerance of a row
   whose job-mates differ.
"""

import argparse
import csv
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from kwsprune.paths import DATASET_DIR, EMBEDDINGS_DIR, MFCC_DIR, PRUNED_DIR  # noqa: E402
from kwsprune.results import IDENTITY_FIELDS  # noqa: E402

SWEEP = ["--model", "tiny", "--methods", "keep_hard", "keep_easy", "random", "--n", "800", "1600", "all", "--ratios", "0.3",
         "--repeats", "6"]


def copy_root(source: Path, target: Path) -> Path:
    for folder in (DATASET_DIR, MFCC_DIR, EMBEDDINGS_DIR, PRUNED_DIR):
        if (source / folder).exists():
            shutil.copytree(source / folder, target / folder)
    return target


def sweep_command(root: Path, sweep: list[str]) -> list[str]:
    return [sys.executable, str(REPO / "run_all_classifications.py"), "--data-root", str(root), "--device", "cpu", *sweep]


def rows(root: Path) -> dict:
    with open(root / "results" / "runs.csv") as f:
        return {tuple(row[k] for k in IDENTITY_FIELDS): row for row in csv.DictReader(f)}


def timed_run(command) -> float:
    began = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - began


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, help="a data root after steps 0-2")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--kill-after", type=float, nargs=2, default=[20.0, 120.0], metavar=("LOW", "HIGH"),
                        help="seconds an attempt runs before its kill, drawn uniformly (default: 20 120)")
    parser.add_argument("--seed", type=int, default=0, help="of the kill moments")
    parser.add_argument("--sweep", nargs=argparse.REMAINDER, default=SWEEP, help="run_all_classifications.py flags")
    args = parser.parse_args(argv)
    source = Path(args.data_root)
    with tempfile.TemporaryDirectory() as tmp:
        whole_root = copy_root(source, Path(tmp) / "whole")
        whole_seconds = timed_run(sweep_command(whole_root, args.sweep))
        whole = rows(whole_root)
        print(f"uninterrupted: {len(whole)} runs in {whole_seconds:.1f} s")

        killed_root = copy_root(source, Path(tmp) / "killed")
        moments = random.Random(args.seed)
        spent = []
        for attempt in range(args.kills):
            wait = moments.uniform(*args.kill_after)
            began = time.perf_counter()
            process = subprocess.Popen(sweep_command(killed_root, args.sweep), stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            try:
                process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()
            spent.append(time.perf_counter() - began)
            done = len(rows(killed_root)) if (killed_root / "results" / "runs.csv").exists() else 0
            print(f"attempt {attempt + 1}: killed after {spent[-1]:.1f} s, {done} runs in runs.csv")
        spent.append(timed_run(sweep_command(killed_root, args.sweep)))
        killed = rows(killed_root)
        same = killed.keys() == whole.keys() and all(
            (killed[key]["test_acc"], killed[key]["test_loss"], killed[key]["epochs"]) ==
            (whole[key]["test_acc"], whole[key]["test_loss"], whole[key]["epochs"]) for key in whole)
        print(f"killed {args.kills} times: {sum(spent):.1f} s in all, {sum(spent) - whole_seconds:.1f} s lost "
              f"({(sum(spent) - whole_seconds) / 60:.1f} min); final rows equal to the uninterrupted run's: {same}")

        halves_root = copy_root(source, Path(tmp) / "halves")
        repeats = int(args.sweep[args.sweep.index("--repeats") + 1])
        first = [*args.sweep[:args.sweep.index("--repeats")], "--repeats", str(repeats // 2),
                 *args.sweep[args.sweep.index("--repeats") + 2:]]
        timed_run(sweep_command(halves_root, first))
        timed_run(sweep_command(halves_root, args.sweep))
        halves = rows(halves_root)
        shared = [key for key in whole if int(key[IDENTITY_FIELDS.index("repeat")]) < repeats // 2]
        loss_gap = max(abs(float(halves[key]["test_loss"]) - float(whole[key]["test_loss"])) for key in shared)
        acc_moved = [abs(float(halves[key]["test_acc"]) - float(whole[key]["test_acc"])) for key in shared]
        print(f"trained in other jobs: {len(shared)} runs; largest test_loss difference {loss_gap:.2g}; "
              f"{sum(gap > 0 for gap in acc_moved)} test accuracies differ, the largest by {max(acc_moved):.3f}; "
              f"{sum(halves[key]['epochs'] != whole[key]['epochs'] for key in shared)} epoch counts differ")


if __name__ == "__main__":
    main()

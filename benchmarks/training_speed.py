"""Seconds per training run: one fresh interpreter per run (the original's way) vs one batched job of many runs.

  make demo                                   # steps 0-3 on the demo data first (or any data root)
  python benchmarks/training_speed.py [--data-root DIR] [--n 400] [--runs 100] [--process-runs 3]

Both sides train the original's configuration (batch 512, up to 170 epochs, early stopping) on N
random clips, on a temporary copy of the data root (its results/ stays untouched): `--process-runs`
runs each as `python classification_pruning.py` in a new process, timed from the command's start to its
end; then `--runs` runs as one `run_all_classifications.py` command. Prints seconds per run of each
and their ratio.
"""

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from kwsprune.paths import DATASET_DIR, EMBEDDINGS_DIR, MFCC_DIR, PRUNED_DIR  # noqa: E402


def timed(command: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, *command], cwd=REPO, check=True, capture_output=True)
    return time.perf_counter() - began


def mean_epochs(root: Path, engine_rows: int) -> float:
    with open(root / "results" / "runs.csv") as f:
        rows = list(csv.DictReader(f))[-engine_rows:]
    return sum(int(r["epochs"]) for r in rows) / len(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(REPO), help="a data root after steps 0-2 (default: the repository)")
    parser.add_argument("--n", default="400", help="training clips per run (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=100, help="runs in the batched job (default: %(default)s)")
    parser.add_argument("--process-runs", type=int, default=3, help="runs timed one process each (default: %(default)s)")
    parser.add_argument("--max-epochs", type=int, default=170)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for folder in (DATASET_DIR, MFCC_DIR, EMBEDDINGS_DIR, PRUNED_DIR):
            if (Path(args.data_root) / folder).exists():
                shutil.copytree(Path(args.data_root) / folder, root / folder)
        common = ["--data-root", str(root), "--model", "tiny", "--n", args.n, "--max-epochs", str(args.max_epochs), "--device", "cpu",
                  "--recipe", "original"]
        per_process = [timed(["classification_pruning.py", *common, "--method", "random", "--seed", str(1000 + run)])
                       for run in range(args.process_runs)]
        process_epochs = mean_epochs(root, args.process_runs)
        batched = timed(["run_all_classifications.py", *common, "--methods", "random", "--repeats", str(args.runs)])
        batched_epochs = mean_epochs(root, args.runs)

    alone, together = sum(per_process) / len(per_process), batched / args.runs
    print(f"{'how':<36s} {'runs':>5s} {'mean epochs':>12s} {'s/run':>8s}")
    print(f"{'one process per run':<36s} {args.process_runs:5d} {process_epochs:12.1f} {alone:8.2f}")
    print(f"{'one batched job':<36s} {args.runs:5d} {batched_epochs:12.1f} {together:8.2f}")
    print(f"speed-up of the batched job: {alone / together:.1f}x")


if __name__ == "__main__":
    main()

"""Step 6: accuracy and loss against N and against the fraction kept, per method, from results/runs.csv.

  python Plots/plot_results.py [--data-root DIR] [--method keep_hard --ratio 0.3]

Draws mean test accuracy and loss with a 95% confidence band over repeats into Plots/ (PNG + SVG),
prints per N each method's mean accuracy, its difference to random and a paired t-test across
repeats, and draws the training clips in 2-D (PCA of the embeddings) coloured by k-means cluster,
with the clips one method and ratio prune marked.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kwsprune.cli import run_step  # noqa: E402
from kwsprune.paths import REPO_ROOT  # noqa: E402
from kwsprune.plots import plot_results  # noqa: E402

DATA_ROOT = REPO_ROOT
METHOD = "keep_hard"   # for the 2-D picture of pruned clips
RATIO = 0.3
K = 10


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=DATA_ROOT, help="folder holding the step folders (default: the repository)")
    parser.add_argument("--method", default=METHOD)
    parser.add_argument("--ratio", type=float, default=RATIO)
    parser.add_argument("--k", type=int, default=K)
    args = parser.parse_args(argv)
    table = run_step(plot_results, args.data_root, args.method, args.ratio, args.k)
    print(table)


if __name__ == "__main__":
    main()

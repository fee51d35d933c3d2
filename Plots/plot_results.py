"""Step 6: the verdicts against random, and accuracy and loss against N and the fraction kept, from results/runs.csv.

  python Plots/plot_results.py [--data-root DIR] [--method keep_hard --ratio 0.3] [--include-set-aside]

Per study (recipe, data and pruning set-up): prints the table of means and the verdict table, each
method against random (better, worse, equivalent, open or undecided, with its anytime-valid confidence
sequence: docs/verdicts.md); draws the verdicts and the mean test accuracy and loss with a 95% confidence
interval over repeats into Plots/ (PNG + SVG), each point marked by its verdict, hollow where the result is
not clearly above chance; writes Plots/report.md with the tables and figures; and draws the training clips
in 2-D (PCA of the embeddings) coloured by k-means cluster, with the clips one method and ratio prune
marked. Rows trained on inputs that are no longer the current ones are set aside, and counted in one line,
unless --include-set-aside.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kwsprune.cli import add_data_root, at_least, run_step, seed, step_parser  # noqa: E402
from kwsprune.paths import REPO_ROOT  # noqa: E402
from kwsprune.plots import plot_results  # noqa: E402
from kwsprune.pruning import PruningSetup  # noqa: E402

DATA_ROOT = REPO_ROOT
METHOD = "keep_hard"   # for the 2-D picture of pruned clips
RATIO = 0.3
K = 10                 # the picture's pruning set-up: k, k-means starts, seed, PCA
N_INIT = 10
SEED = 0
PCA = None


def main(argv=None):
    parser = step_parser(__doc__)
    add_data_root(parser, DATA_ROOT)
    parser.add_argument("--method", default=METHOD, help="the method of the cluster picture (default: %(default)s)")
    parser.add_argument("--ratio", type=float, default=RATIO, help="its ratio (default: %(default)s)")
    parser.add_argument("--k", type=at_least(1), default=K)
    parser.add_argument("--n-init", type=at_least(1), default=N_INIT)
    parser.add_argument("--seed", type=seed, default=SEED)
    parser.add_argument("--pca", type=at_least(1), default=PCA)
    parser.add_argument("--include-set-aside", action="store_true",
                        help="also draw rows trained on inputs that are no longer the current ones")
    args = parser.parse_args(argv)
    table = run_step(plot_results, args.data_root, args.method, args.ratio,
                     PruningSetup(args.k, args.n_init, args.seed, args.pca), args.include_set_aside)
    print(table)


if __name__ == "__main__":
    main()

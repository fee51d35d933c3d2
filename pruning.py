"""Step 3: score the training clips with each method, then per method and ratio the kept clips -> y_pruned/.

  python pruning.py                                   # k = 10, the original's ratios and methods
  python pruning.py --k 20 --ratios 0.1 0.3 --methods keep_hard ssp_hard semdedup random
  python pruning.py --methods ssp_hard supervised_prototypes --class-balanced

Writes y_pruned/y_{method}_pruning_k{k}_{ratio}.npy (sorted indices into train_y's order),
scores_{method}_k{k}.npy, clusters_k{k}.npy and pruning_k{k}.json. A ratio is the fraction removed.
"""

import argparse

from kwsprune.cli import run_step
from kwsprune.paths import REPO_ROOT
from kwsprune.methods import ALIASES, BALANCED, METHODS
from kwsprune.pruning import run_pruning

DATA_ROOT = REPO_ROOT
K = 10                                   # k-means clusters (the original's)
SEED = 0                                 # k-means and random draws
RATIOS = [0.05, 0.1, 0.15, 0.2, 0.3]     # fractions removed (the original's)
METHOD_NAMES = ["keep_hard", "keep_easy", "random"]  # the original's "simple", "hard", "normal"; more in --help
CLASS_BALANCED = False                   # remove the fraction within each class (adds _balanced to the names)
PCA = None                               # optional PCA dimension before k-means


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=DATA_ROOT, help="folder holding the step folders (default: the repository)")
    parser.add_argument("--k", type=int, default=K, help="k-means clusters (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--ratios", type=float, nargs="+", default=RATIOS, help="fractions removed")
    parser.add_argument("--methods", nargs="+", default=METHOD_NAMES, help=f"of {list(METHODS)} or aliases {list(ALIASES)}")
    parser.add_argument("--class-balanced", action="store_true", default=CLASS_BALANCED,
                        help=f"the class-balanced variant of every method (<name>{BALANCED})")
    parser.add_argument("--pca", type=int, default=PCA, help="PCA dimension before k-means (default: none)")
    args = parser.parse_args(argv)
    methods = [m + BALANCED if args.class_balanced and not m.endswith(BALANCED) else m for m in args.methods]
    manifest = run_step(run_pruning, args.data_root, methods, args.ratios, args.k, args.seed, args.pca)
    print(f"{'file':40s} {'kept':>7s}")
    for name, record in manifest["files"].items():
        if name.startswith("y_"):
            print(f"{name:40s} {record['shape'][0]:7d}")


if __name__ == "__main__":
    main()

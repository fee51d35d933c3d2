"""Step 3: score the training clips with each method, then per method and ratio the kept clips -> y_pruned/.

  python pruning.py                                   # k = 10, the original's ratios and methods
  python pruning.py --k 20 --ratios 0.1 0.3 --methods keep_hard ssp_hard semdedup random
  python pruning.py --methods ssp_hard supervised_prototypes --class-balanced
  python pruning.py --k 5 15 25 --original-names      # a K scan, also under the original's file names

Writes, for each k, y_pruned/k{k}_ninit{n}_seed{s}/: y_{method}_pruning_k{k}_{ratio}.npy (sorted indices
into train_y's order), scores_{method}_k{k}.npy, clusters_k{k}.npy and manifest.json. A ratio is the
fraction removed. --original-names also writes y_pruned/y_{simple,hard}_pruning_FULL_k{k}_{ratio}.npy.
"""

from kwsprune.cli import add_data_root, add_pruning_flags, run_step, seed, step_parser
from kwsprune.methods import ALIASES, BALANCED, METHODS, with_balance
from kwsprune.paths import REPO_ROOT, pruning_folder
from kwsprune.pruning import run_pruning

DATA_ROOT = REPO_ROOT
K = [10]                                 # k-means clusters (the original's); several values give a K scan
N_INIT = 10                              # k-means starts, the best kept (the original's scikit-learn ran 10)
SEED = 0                                 # k-means and random draws
RATIOS = [0.05, 0.1, 0.15, 0.2, 0.3]     # fractions removed (the original's)
METHOD_NAMES = ["keep_hard", "keep_easy", "random"]  # the original's "simple", "hard", "normal"; more in --help
CLASS_BALANCED = False                   # remove the fraction within each class (adds _balanced to the names)
PCA = None                               # optional PCA dimension before k-means


def main(argv=None):
    parser = step_parser(__doc__)
    add_data_root(parser, DATA_ROOT)
    parser.add_argument("--seed", type=seed, default=SEED)
    parser.add_argument("--ratios", type=float, nargs="+", default=RATIOS, help="fractions removed, in [0, 1)")
    parser.add_argument("--methods", nargs="+", default=METHOD_NAMES, help=f"of {list(METHODS)} or aliases {list(ALIASES)}")
    parser.add_argument("--class-balanced", action="store_true", default=CLASS_BALANCED,
                        help=f"the class-balanced variant of every method (<name>{BALANCED})")
    add_pruning_flags(parser, K, N_INIT, PCA)
    args = parser.parse_args(argv)
    manifests = run_step(run_pruning, args.data_root, with_balance(args.methods, args.class_balanced), args.ratios,
                         args.k, args.seed, args.n_init, args.pca, args.original_names)
    print(f"{'file':56s} {'kept':>7s}")
    for manifest in manifests:
        folder = pruning_folder(**manifest["params"])
        for name, record in manifest["files"].items():
            if name.startswith("y_"):
                print(f"{folder + '/' + name:56s} {record['shape'][0]:7d}")


if __name__ == "__main__":
    main()

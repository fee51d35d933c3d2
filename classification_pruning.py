"""Step 4: train a classifier on the kept clips of one configuration; report test loss and accuracy. By default a
logistic-regression head on extract_embeddings.py's vectors (--model logreg); --model tiny: the original's CNN on MFCCs.

  python classification_pruning.py --n 400 --k 10 --method keep_hard --ratio 0.2
  python classification_pruning.py --n all --method random --ratio 0.3 --repeats 5
  python classification_pruning.py --n all --method random --ratio 1.0    # the whole training set
  python classification_pruning.py --n 400 --method simple --ratio 0.2 --model tiny --recipe original --original-names

Rows go to results/runs.csv (a run already there is not trained again) and to the original's
per-configuration CSVs under results/history/. The CNNs are early-stopped on the validation split (recipe kwsprune).
"""

from kwsprune.classify import run_classifications
from kwsprune.cli import add_data_root, add_pruning_flags, add_training_flags, at_least, run_step, step_parser, study_from_flags
from kwsprune.methods import method_name
from kwsprune.paths import REPO_ROOT
from kwsprune.runs import parse_n, run_for

DATA_ROOT = REPO_ROOT
N = "400"              # clips drawn from the kept ones, or "all"
K = [10]               # k-means clusters of the pruning to use
N_INIT = 10            # k-means starts of the pruning to use
PCA = None             # PCA dimension of the pruning to use
METHOD = "keep_hard"   # any of pruning.py's methods (aliases: simple, hard, normal)
RATIO = 0.2            # fraction removed by the pruning; random at 1.0 (and random with a number N): the whole training set
REPEATS = 1            # independent runs (repeat 0, 1, ...), trained together
MODEL = "logreg"         # kwsprune.models.MODELS: logreg (a head on extract_embeddings.py's vectors), tiny (the original's CNN), ...
RECIPE = None            # None: the model's own; kwsprune | original | steady | ds-cnn | bc-resnet | bc-resnet-3 | head
SEED = 0               # the pruning's seed, and the draws' and models'
ENGINE = "torch"       # torch: runs batched in one network | keras: the original's model.fit (KERAS_BACKEND picks tensorflow or torch)
DEVICE = "auto"        # auto | cpu | cuda


def main(argv=None):
    parser = step_parser(__doc__)
    add_data_root(parser, DATA_ROOT)
    parser.add_argument("--n", default=N, help="training clips per run, or 'all' (default: %(default)s)")
    parser.add_argument("--method", default=METHOD)
    parser.add_argument("--ratio", type=float, default=RATIO)
    parser.add_argument("--repeats", type=at_least(1), default=REPEATS)
    add_pruning_flags(parser, K, N_INIT, PCA)
    add_training_flags(parser, MODEL, RECIPE, SEED, ENGINE, DEVICE)
    args = parser.parse_args(argv)

    def classify():
        n, method = parse_n(args.n), method_name(args.method)
        runs = list(dict.fromkeys(run_for(method, args.ratio, k, n, repeat) for k in args.k for repeat in range(args.repeats)))
        return run_classifications(args.data_root, runs, study_from_flags(args))

    rows = run_step(classify)
    print(f"{'k':>4s} {'repeat':>6s} {'n_used':>7s} {'test_loss':>10s} {'test_acc':>9s} {'epochs':>7s}")
    for row in rows:
        print(f"{row['k'] or '-':>4s} {row['repeat']:>6s} {row['n_used']:>7s} {row['test_loss']:>10s} {row['test_acc']:>9s} "
              f"{row['epochs']:>7s}")


if __name__ == "__main__":
    main()

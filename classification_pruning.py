"""Step 4: train the Tiny CNN on MFCCs of the kept clips of one configuration; report test loss and accuracy.

  python classification_pruning.py --n 400 --k 10 --method keep_hard --ratio 0.2
  python classification_pruning.py --n all --method random --ratio 0.3 --repeats 5

Rows go to results/runs.csv and results/history_tiny_prune_{n}_K{k}_{method}_{ratio}.csv (as the
original: test_loss, test_acc, epochs; no header). Early-stopped on the validation split.
"""

import argparse

from kwsprune.classify import Run, parse_n, run_classifications
from kwsprune.cli import add_training_flags, run_step, training_config
from kwsprune.paths import REPO_ROOT
from kwsprune.methods import method_name
from kwsprune.training import TrainConfig

DATA_ROOT = REPO_ROOT
N = "400"              # clips drawn from the kept ones, or "all"
K = 10                 # k-means clusters of the pruning to use
METHOD = "keep_hard"   # keep_hard | keep_easy | random (aliases: simple, hard, normal)
RATIO = 0.2            # fraction removed by the pruning (random with a number N: the whole training set)
REPEATS = 1            # independent runs (repeat 0, 1, ...), trained together
SEED = 0
ENGINE = "torch"         # torch: runs batched in one network | keras: the original's model.fit (KERAS_BACKEND picks tensorflow or torch)
DEVICE = "auto"        # auto | cpu | cuda
MAX_EPOCHS = TrainConfig.max_epochs  # 170, early-stopped on validation loss
BATCH_SIZE = TrainConfig.batch_size  # 512, the original's


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=DATA_ROOT, help="folder holding the step folders (default: the repository)")
    parser.add_argument("--n", default=N, help="training clips per run, or 'all' (default: %(default)s)")
    parser.add_argument("--k", type=int, default=K)
    parser.add_argument("--method", default=METHOD)
    parser.add_argument("--ratio", type=float, default=RATIO)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    add_training_flags(parser, SEED, ENGINE, DEVICE, MAX_EPOCHS, BATCH_SIZE)
    args = parser.parse_args(argv)

    def classify():
        method = method_name(args.method)
        ratio = 1.0 if method == "random" and args.n != "all" else args.ratio
        runs = [Run(method, ratio, args.k, parse_n(args.n), repeat) for repeat in range(args.repeats)]
        return run_classifications(args.data_root, runs, args.seed, args.engine, args.device,
                                   training_config(args), skip_done=False)

    rows = run_step(classify)
    print(f"{'repeat':>6s} {'n_used':>7s} {'test_loss':>10s} {'test_acc':>9s} {'epochs':>7s}")
    for row in rows:
        print(f"{row['repeat']:>6} {row['n_used']:>7} {row['test_loss']:>10s} {row['test_acc']:>9s} {row['epochs']:>7}")


if __name__ == "__main__":
    main()

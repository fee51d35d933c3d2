"""Step 5: the sweep over N x methods x ratios x repeats -> results/runs.csv (+ the original's CSVs).

  python run_all_classifications.py                         # the original's example: 100 repeats
  python run_all_classifications.py --n 100 200 --repeats 3 --max-epochs 40

Runs the pruning it needs that y_pruned/ lacks. Resumable: runs already in results/runs.csv are
skipped, so a killed sweep restarts where it stopped. Runs of the same size train as one batched job.
"""

import argparse

from kwsprune.classify import sweep
from kwsprune.cli import add_training_flags, run_step, training_config
from kwsprune.paths import REPO_ROOT
from kwsprune.methods import ALIASES, BALANCED, METHODS
from kwsprune.training import TrainConfig

DATA_ROOT = REPO_ROOT
N = ["200", "400", "600", "800"]        # clips per run ("all": every kept clip)
RATIOS = [0.1, 0.2, 0.3]                # fractions removed
METHOD_NAMES = ["keep_hard", "keep_easy", "random"]
K = 10
CLASS_BALANCED = False                  # the class-balanced variant of every method
REPEATS = 100
SEED = 0
ENGINE = "torch"         # torch: runs batched in one network | keras: the original's model.fit (KERAS_BACKEND picks tensorflow or torch)
DEVICE = "auto"
MAX_EPOCHS = TrainConfig.max_epochs  # 170, early-stopped on validation loss
BATCH_SIZE = TrainConfig.batch_size  # 512, the original's


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=DATA_ROOT, help="folder holding the step folders (default: the repository)")
    parser.add_argument("--n", nargs="+", default=N, help="training clips per run, or 'all' (default: %(default)s)")
    parser.add_argument("--ratios", type=float, nargs="+", default=RATIOS)
    parser.add_argument("--methods", nargs="+", default=METHOD_NAMES, help=f"of {list(METHODS)} or aliases {list(ALIASES)}")
    parser.add_argument("--class-balanced", action="store_true", default=CLASS_BALANCED,
                        help=f"the class-balanced variant of every method (<name>{BALANCED})")
    parser.add_argument("--k", type=int, default=K)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    add_training_flags(parser, SEED, ENGINE, DEVICE, MAX_EPOCHS, BATCH_SIZE)
    args = parser.parse_args(argv)
    methods = [m + BALANCED if args.class_balanced and not m.endswith(BALANCED) else m for m in args.methods]
    rows = run_step(sweep, args.data_root, args.n, methods, args.ratios, args.k, args.repeats, args.seed,
                    engine=args.engine, device=args.device, config=training_config(args))
    print(f"{len(rows)} runs trained; results in {args.data_root}/results/runs.csv")


if __name__ == "__main__":
    main()

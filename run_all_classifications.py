"""Step 5: the sweep over N x methods x ratios x K x repeats -> results/runs.csv (+ the original's CSVs).

  python run_all_classifications.py                         # the original's example: 100 repeats
  python run_all_classifications.py --n 100 200 --repeats 3 --max-epochs 40
  python run_all_classifications.py --n all --ratios 0.1 0.3 0.5 --methods ssp_hard ccs random --class-balanced
  python run_all_classifications.py --recipe original --original-names   # the original's recipe and file names
  python run_all_classifications.py --backend dask --scheduler tcp://HOST:8786   # on a Dask cluster

Prunes the kept sets it needs that y_pruned/ lacks. Resumable: a run whose identity (configuration,
recipe and inputs) is already in results/runs.csv is not trained again, so a killed sweep restarts
where it stopped. Runs of the same size train as one batched job.
"""

from kwsprune.classify import sweep
from kwsprune.cli import add_data_root, add_pruning_flags, add_training_flags, at_least, run_step, step_parser, training_config
from kwsprune.methods import ALIASES, BALANCED, METHODS, with_balance
from kwsprune.paths import REPO_ROOT, RESULTS_DIR, RUNS_FILE

DATA_ROOT = REPO_ROOT
N = ["200", "400", "600", "800"]        # clips per run ("all": every kept clip)
RATIOS = [0.1, 0.2, 0.3]                # fractions removed
METHOD_NAMES = ["keep_hard", "keep_easy", "random"]
K = [10]                                # k-means clusters; several values give the original's K scan
N_INIT = 10                             # k-means starts (the original's scikit-learn ran 10)
PCA = None                              # PCA dimension before the original's k-means
CLASS_BALANCED = False                  # the class-balanced variant of every method
REPEATS = 100
RECIPE = "kwsprune"      # kwsprune | original: the defaults of --model, --batch-size, --learning-rate, --max-epochs, --restore-best
SEED = 0                 # the pruning's seed, and the draws' and models'
ENGINE = "torch"         # torch: runs batched in one network | keras: the original's model.fit (KERAS_BACKEND picks tensorflow or torch)
DEVICE = "auto"
BACKEND = "local"        # local | dask (pip install .[dask]): the jobs on Dask distributed workers
SCHEDULER = None         # dask: a scheduler's address; None starts a local cluster of WORKERS processes
WORKERS = 2
MODELS_PER_JOB = 100     # runs of one size trained together in one batched job (a job is also the unit a Dask worker takes)


def main(argv=None):
    parser = step_parser(__doc__)
    add_data_root(parser, DATA_ROOT)
    parser.add_argument("--n", nargs="+", default=N, help="training clips per run, or 'all' (default: %(default)s)")
    parser.add_argument("--ratios", type=float, nargs="+", default=RATIOS)
    parser.add_argument("--methods", nargs="+", default=METHOD_NAMES, help=f"of {list(METHODS)} or aliases {list(ALIASES)}")
    parser.add_argument("--class-balanced", action="store_true", default=CLASS_BALANCED,
                        help=f"the class-balanced variant of every method (<name>{BALANCED})")
    parser.add_argument("--repeats", type=at_least(1), default=REPEATS)
    add_pruning_flags(parser, K, N_INIT, PCA)
    add_training_flags(parser, RECIPE, SEED, ENGINE, DEVICE)
    parser.add_argument("--backend", default=BACKEND, choices=("local", "dask"),
                        help="local: the jobs in this process; dask: on Dask distributed workers (default: %(default)s)")
    parser.add_argument("--scheduler", default=SCHEDULER,
                        help="dask: the scheduler's address, e.g. tcp://10.0.0.5:8786 (default: a local cluster)")
    parser.add_argument("--workers", type=at_least(1), default=WORKERS,
                        help="dask without --scheduler: worker processes of the local cluster (default: %(default)s)")
    parser.add_argument("--models-per-job", type=at_least(1), default=MODELS_PER_JOB,
                        help="at most this many runs of one size trained together; fewer makes more, shorter jobs for "
                             "more workers (default: %(default)s)")
    args = parser.parse_args(argv)
    rows = run_step(lambda: sweep(args.data_root, args.n, with_balance(args.methods, args.class_balanced), args.ratios,
                                  args.k, args.repeats, args.seed, args.n_init, args.pca, args.original_names,
                                  engine=args.engine, device=args.device, config=training_config(args),
                                  backend=args.backend, scheduler=args.scheduler, workers=args.workers,
                                  models_per_job=args.models_per_job))
    print(f"{len(rows)} runs in {args.data_root}/{RESULTS_DIR}/{RUNS_FILE}; Plots/plot_results.py draws them")


if __name__ == "__main__":
    main()

"""Step 5: the sweep over N x methods x ratios x K x repeats -> results/runs.csv (+ the original's CSVs).

  python run_all_classifications.py                         # the original's example: 100 repeats
  python run_all_classifications.py --n 100 200 --repeats 3 --model tiny --max-epochs 40   # the original's CNN
  python run_all_classifications.py --n all --ratios 0.1 0.3 0.5 --methods ssp_hard ccs random --class-balanced
  python run_all_classifications.py --model tiny --recipe original --original-names   # the original's model, recipe, names
  python run_all_classifications.py --backend dask --scheduler tcp://HOST:8786   # on a Dask cluster
  python run_all_classifications.py --n all --ratios 0.9 0.1 --methods ssp_easy keep_hard random --repeats auto
  python run_all_classifications.py --n all --repeats auto --plan                 # what it would train, and hours
  python run_all_classifications.py --upgrade-store              # an older kwsprune's runs.csv in today's columns

Prunes the kept sets it needs that y_pruned/ lacks. Resumable: a run whose identity (configuration,
recipe and inputs) is already in results/runs.csv is not trained again, so a killed sweep restarts
where it stopped. Runs of the same size train as one batched job. The default instrument is a logistic-regression
head on extract_embeddings.py's vectors (--model logreg: repeatable to about 1 point, 0.90 on Arabic Speech
Commands); --model tiny trains the original's CNN on MFCCs, --model bc-resnet-1 the field's (docs/pipeline.md).

--repeats auto trains in rounds (--round-size repeats for every comparison still open) and stops each
comparison of a method with random as soon as its anytime-valid confidence sequence decides it: better,
worse, equivalent (within --margin) or, at --max-repeats, undecided. A verdict also carries the test set's own
noise (its gap from new speakers, or with --generalise-to clips from new clips of its speakers, measured from
every run's per-clip outcomes): where the test set alone cannot decide a comparison it is called undecided at
once, with the resolution the test set allows. The study's family-wise error is --alpha, across all its
comparisons and those a later sweep adds (docs/verdicts.md).
"""

from kwsprune.classify import sweep, sweep_verdicts
from kwsprune.cli import add_data_root, add_pruning_flags, add_training_flags, at_least, run_step, step_parser, study_from_flags
from kwsprune.device import available_cores
from kwsprune.methods import ALIASES, BALANCED, METHODS
from kwsprune.paths import REPO_ROOT, RESULTS_DIR, RUNS_FILE, step_dir
from kwsprune.results import upgrade_runs
from kwsprune.plan import plan
from kwsprune.study import AUTO
from kwsprune.test_set import GENERALISE_TO as GENERALISE_TO_CHOICES

DATA_ROOT = REPO_ROOT
N = ["200", "400", "600", "800"]        # clips per run ("all": every kept clip)
RATIOS = [0.1, 0.2, 0.3]                # fractions removed
METHOD_NAMES = ["keep_hard", "keep_easy", "random"]
K = [10]                                # k-means clusters; several values give the original's K scan
N_INIT = 10                             # k-means starts (the original's scikit-learn ran 10)
PCA = None                              # PCA dimension before the original's k-means
CLASS_BALANCED = False                  # the class-balanced variant of every method
REPEATS = 100           # a number, or "auto": rounds until each comparison with random is decided
ALPHA = 0.05            # auto: the study's family-wise error (any wrong better / worse / equivalent)
MARGIN = 0.01           # auto: "equivalent" is surely within this accuracy difference of random
MAX_REPEATS = 100       # auto: a comparison still open after this many repeats is "undecided"
GENERALISE_TO = "speakers"  # verdicts speak of new speakers (test speakers resampled) or "clips": new clips of the test speakers
ROUND_SIZE = 5          # auto: repeats added to every open comparison each round
MODEL = "logreg"         # kwsprune.models.MODELS: logreg (a head on extract_embeddings.py's vectors), tiny (the original's CNN), ...
RECIPE = None            # None: the model's own; kwsprune | original | steady | ds-cnn | bc-resnet | bc-resnet-3 | head
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
    parser.add_argument("--repeats", type=repeats, default=REPEATS,
                        help=f"runs of each configuration, or {AUTO!r}: until each comparison with random is decided "
                             "(default: %(default)s)")
    parser.add_argument("--alpha", type=float, default=ALPHA,
                        help="auto: the chance that any verdict of the study is wrong (default: %(default)s)")
    parser.add_argument("--margin", type=float, default=MARGIN,
                        help="auto: equivalent means surely within this of random's accuracy (default: %(default)s)")
    parser.add_argument("--generalise-to", choices=GENERALISE_TO_CHOICES, default=GENERALISE_TO,
                        help="what a verdict speaks of: new speakers (the test speakers resampled; needs speakers that "
                             "training never heard) or new clips of the test speakers; fixed for a study by its first "
                             "sweep (default: %(default)s)")
    parser.add_argument("--max-repeats", type=at_least(2), default=MAX_REPEATS,
                        help="auto: undecided after this many repeats (default: %(default)s)")
    parser.add_argument("--round-size", type=at_least(1), default=ROUND_SIZE,
                        help="auto: repeats added to every open comparison a round (default: %(default)s)")
    add_pruning_flags(parser, K, N_INIT, PCA)
    add_training_flags(parser, MODEL, RECIPE, SEED, ENGINE, DEVICE)
    parser.add_argument("--backend", default=BACKEND, choices=("local", "dask"),
                        help="local: the jobs in this process; dask: on Dask distributed workers (default: %(default)s)")
    parser.add_argument("--scheduler", default=SCHEDULER,
                        help="dask: the scheduler's address, e.g. tcp://10.0.0.5:8786 (default: a local cluster)")
    parser.add_argument("--workers", type=at_least(1, most=available_cores()), default=WORKERS,
                        help="dask without --scheduler: worker processes of the local cluster (default: %(default)s)")
    parser.add_argument("--models-per-job", type=at_least(1), default=MODELS_PER_JOB,
                        help="at most this many runs of one size trained together; fewer makes more, shorter jobs for "
                             "more workers (default: %(default)s)")
    parser.add_argument("--plan", action="store_true",
                        help="print what the sweep would train and its hours on this machine, and train nothing")
    parser.add_argument("--upgrade-store", action="store_true",
                        help="rewrite an older kwsprune's results/runs.csv in the current columns (says what it changes, "
                             "keeps the old file as runs.csv.before-upgrade) and train nothing")
    args = parser.parse_args(argv)
    if args.upgrade_store:
        print(run_step(upgrade_runs, step_dir(args.data_root, RESULTS_DIR)))
        return
    study = run_step(study_from_flags, args)
    if args.plan:
        print(run_step(plan, args.data_root, study))
        return
    rows = run_step(lambda: sweep(args.data_root, study))
    if study.sequential:
        print(run_step(lambda: sweep_verdicts(args.data_root, study, rows)))
    print(f"{len(rows)} runs in {args.data_root}/{RESULTS_DIR}/{RUNS_FILE}; Plots/plot_results.py draws them with "
          "each comparison's verdict")


def repeats(text: str):
    """argparse type of --repeats: a whole number >= 1, or 'auto'."""
    return AUTO if text == AUTO else at_least(1)(text)


if __name__ == "__main__":
    main()

"""The cost of a sweep before it runs: its runs, model-epochs and hours on this machine, for the fixed design and,
from the run-to-run spread of runs already in the store, for --repeats auto."""

import math

import numpy as np

from kwsprune.models import is_head
from kwsprune.paths import DATASET_DIR, RESULTS_DIR, format_ratio, labels_file, step_dir
from kwsprune.pruning import PruningSetup, is_made, load_kept
from kwsprune.results import current_inputs, read_runs, set_aside
from kwsprune.runs import run_for
from kwsprune.sequential import batch_alpha
from kwsprune.study import Study, comparison_runs, comparisons
from kwsprune.validation import InputError, load_npy
from kwsprune.verdicts import differences, paired, repeats_to_decide

# Measured by benchmarks/full_scale.py on this machine (2 cores, no GPU; docs/cost.md): a Tiny CNN epoch alone
# costs 1.16e-4 s a training clip plus 2.8e-5 s a validation clip; in a batched job a run costs 0.41 of that.
TRAIN_SECONDS_PER_CLIP = 1.16e-4
VALID_SECONDS_PER_CLIP = 2.8e-5
BATCH_GAIN = 0.41
EPOCHS = 62               # a run's epochs when the store has none of the recipe: the median at N >= 1,600 measured
# A head is fitted, not trained by epochs: one fit of speech-embedding's logistic regression in a batched solve costs
# about this much a training clip (9-13 s at 7,200 clips, 0.5-1.7 s at 1,600: docs/measurements.md).
HEAD_SECONDS_PER_CLIP = 1.5e-3
ASSUMED_DIFFERENCE = 0.05  # auto without paired runs in the store: repeats to decide a 5-point difference, and none


def epoch_seconds(n_clips: int, n_valid: int) -> float:
    """Seconds of one epoch of one run in a batched job (training and validation), at the measured rates."""
    return (TRAIN_SECONDS_PER_CLIP * n_clips + VALID_SECONDS_PER_CLIP * n_valid) * BATCH_GAIN


def _split_size(data_root, split: str) -> int:
    path = step_dir(data_root, DATASET_DIR) / labels_file(split)
    if not path.exists():
        raise InputError(f"{path} is missing: run prepare_dataset.py first (the plan needs the split sizes)")
    return len(load_npy(path, "re-run prepare_dataset.py"))


def _clips(data_root, study: Study, run, n_train: int) -> int:
    """Clips a run trains on: N, or the kept set's size (estimated from the ratio where it is not pruned yet); an N
    above the clips it would draw from is refused, as the sweep refuses it."""
    if run.k is None:
        pool, what = n_train, f"the {n_train} training clips"
    else:
        setup = PruningSetup(run.k, study.n_init, study.seed, study.pca)
        if is_made(data_root, setup, run.method, run.ratio):
            pool = len(load_kept(data_root, setup, run.method, run.ratio)[0])
            what = f"the {pool} clips {run.method} kept at ratio {run.ratio}"
        else:
            pool = round(n_train * (1 - run.ratio))
            what = f"the {pool} or so clips {run.method} will keep at ratio {run.ratio}"
    if run.n == "all":
        return pool
    if int(run.n) > pool:
        raise InputError(f"--n {run.n} is more than {what}: lower --n or the ratio")
    return int(run.n)


def plan(data_root, study: Study) -> str:
    """What the study would train and its hours here, as a few lines of text."""
    n_train, n_valid = _split_size(data_root, "train"), _split_size(data_root, "valid")
    rows = read_runs(step_dir(data_root, RESULTS_DIR))
    if rows:
        rows = set_aside(rows, current_inputs(data_root))[0]
    config = study.config
    rows = [r for r in rows if (r["model"], r["max_epochs"], r["seed"], r["restore_best"], r["dtype"]) ==
            (config.model, str(config.max_epochs), str(study.seed), config.restore_best, config.dtype)]
    head = is_head(config.model)
    epochs = float(np.median([int(r["epochs"]) for r in rows])) if rows else min(EPOCHS, config.max_epochs)
    if head:
        epochs, taken = 1, f"a run taken as one fit of the head ({HEAD_SECONDS_PER_CLIP * 1e3:g} ms a training clip, measured)"
    else:
        taken = (f"a run taken as {epochs:g} epochs ("
                 f"{'the median of the store' if rows else 'no runs of this recipe in the store yet'})")
    done = {(r["method"], r["ratio"], r["k"], r["n"], int(r["repeat"])) for r in rows}
    repeats = study.most_repeats
    every = list(dict.fromkeys(run_for(m, ratio, k, n, rep) for rep in range(repeats) for n in study.ns
                               for m in study.methods for k in study.ks for ratio in study.ratios))
    clips = {}

    def cost(runs) -> tuple[int, float]:
        todo = [r for r in runs if (r.method, format_ratio(r.ratio), "" if r.k is None else str(r.k), r.n, r.repeat) not in done]
        seconds = 0.0
        for run in todo:
            key = (run.method, run.ratio, run.k, run.n)
            if key not in clips:
                clips[key] = _clips(data_root, study, run, n_train)
            seconds += HEAD_SECONDS_PER_CLIP * clips[key] if head else epochs * epoch_seconds(clips[key], n_valid)
        return len(todo), seconds

    n_todo, seconds = cost(every)
    lines = [f"plan: {len(study.ns)} N x {len(study.methods)} methods x {len(study.ratios)} ratios x {len(study.ks)} K "
             f"on {n_train} training and {n_valid} validation clips; {taken}",
             f"fixed, {repeats} repeats: {len(every)} runs, {n_todo} to train ({len(every) - n_todo} in the store), "
             + ("" if head else f"{n_todo * epochs:,.0f} model-epochs, ")
             + f"{seconds / 3600:.2f} hours on this machine (2 cores, measured rates)"]
    pairs = comparisons(study)
    if not pairs:
        return "\n".join(lines)
    low, high, seen, blind = [], [], 0, 0
    alpha = batch_alpha(study.alpha, 1) / len(pairs)  # each comparison's share when a first sweep registers them
    for comparison in pairs:
        seen_differences = differences(*paired(rows, comparison))
        if len(seen_differences) >= 2:
            seen += 1
            spread = float(np.std(seen_differences, ddof=1))
            guesses = [float(np.mean(seen_differences))]
        else:
            spread = _random_spread(rows, comparison)
            guesses = [ASSUMED_DIFFERENCE, 0.0]
            blind += math.isnan(spread)
        needed = [_rounded(repeats_to_decide(g, spread, alpha, study.margin), study) if not math.isnan(spread)
                  else study.max_repeats for g in guesses]
        low.append((comparison, min(needed)))
        high.append((comparison, max(needed)))
    best, worst = (cost(list(dict.fromkeys(r for c, t in chosen for r in comparison_runs(c, range(t))))) for chosen in (low, high))
    lines.append(f"auto, at most {study.max_repeats} repeats, alpha {study.alpha} over {len(pairs)} comparisons: "
                 f"{best[0]} to {worst[0]} runs to train, {best[1] / 3600:.2f} to {worst[1] / 3600:.2f} hours "
                 f"({seen} comparisons projected from their own paired runs in the store, "
                 f"{len(pairs) - seen - blind} from random's spread there, between a {ASSUMED_DIFFERENCE:g} difference "
                 f"and none; {blind} taken to --max-repeats, with no runs in the store to estimate from)")
    return "\n".join(lines)


def _rounded(needed: int | None, study: Study) -> int:
    """Repeats a comparison trains under auto: the projection, in whole rounds, capped at --max-repeats."""
    if needed is None:
        return study.max_repeats
    return min(study.max_repeats, math.ceil(needed / study.round_size) * study.round_size)


def _random_spread(rows, comparison) -> float:
    """The spread of a paired difference guessed from random's runs at the comparison's N: sqrt(2) x their sd; nan
    when the store has fewer than two."""
    n = comparison[3]
    accuracies = [float(r["test_acc"]) for r in rows if r["method"] == "random" and r["n"] == n]
    return math.sqrt(2) * float(np.std(accuracies, ddof=1)) if len(accuracies) >= 2 else math.nan

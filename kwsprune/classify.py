"""Steps 4-5: runs (kwsprune.runs) of the CNN trained in batched jobs under one recipe, evaluated on the full test
split, their rows in the results store (kwsprune.results); and the resumable sweep over many runs.
"""

import functools
import hashlib
import logging
import math
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from kwsprune import __version__
from kwsprune.artefacts import check_writable, folder_lock, short_id
from kwsprune.claims import claiming, run_key, store_lock, waiting_line
from kwsprune.chance import chance_level, verdict
from kwsprune.dask_backend import check_scheduler
from kwsprune.embeddings import features_sha
from kwsprune.engines import start_engine, train_job
from kwsprune.methods import method_name
from kwsprune.models import is_head, model_spec, n_weights
from kwsprune.outcomes import save_outcomes
from kwsprune.paths import RESULTS_DIR, RUNS_FILE, format_ratio, step_dir
from kwsprune.pruning import PruningSetup, check_setup, export_original_names, is_made, load_kept, run_pruning
from kwsprune.recipe import recipe_text
from kwsprune.results import (WHOLE_SET, append_rows, current_inputs, describe_set_aside, describe_study, identity,
                              read_runs, refresh_history, set_aside, studies, study_id, study_key,
                              write_original_history)
from kwsprune.runs import Run, draw, model_seed, parse_n, run_for
from kwsprune.sequential import OPEN
from kwsprune.study import (Study, check_stopping, comparison_runs, comparisons, generalises_to, read_ledger, register,
                            shares)
from kwsprune.training_data import load_training_data
from kwsprune.validation import InputError
from kwsprune.verdicts import evidence, format_table, judge

log = logging.getLogger(__name__)
BACKENDS = ("local", "dask")
CHECKPOINT_DIR = ".checkpoints"  # under results/: the training state of the jobs in flight
FREE_BYTES_NEEDED = 256 << 20  # a sweep starts only with this much free: rows, history CSVs and checkpoints
WAIT_SECONDS = 2.0  # how often a sweep whose runs left are all another sweep's looks at runs.csv again


def run_classifications(data_root, runs: list[Run], study: Study) -> list[dict]:
    """Train every run whose identity is not yet in results/runs.csv, in batched jobs of runs of one size, and
    append their rows as each job ends; return the rows of all `runs`, trained now or before, in order. The study
    gives the recipe, the pruning set-up the kept sets come from (its ks, n_init, seed, pca), whether to write the
    original's history files too, and the backend: "local" (this process) or "dask" (the jobs on Dask workers: the
    scheduler at study.scheduler, or a LocalCluster of study.workers processes; kwsprune.dask_backend). The
    comparisons with random that the runs make are registered in the study's ledger (kwsprune.study) first."""
    if study.backend not in BACKENDS:
        raise InputError(f"--backend {study.backend!r}: choose one of {', '.join(BACKENDS)}")
    check_scheduler(study.scheduler, study.backend)
    seed, engine, config, n_init, pca, backend = study.seed, study.engine, study.config, study.n_init, study.pca, study.backend
    # on Dask each worker resolves the device itself: a driver without a GPU may send jobs to workers with one
    train, engine_label, device, engine_per_job = start_engine(engine, study.device if backend == "local" else "auto",
                                                               config)
    models_per_job = study.models_per_job if engine == "torch" else engine_per_job  # keras: one a job
    data = load_training_data(data_root, config.model)
    n_train, n_classes = len(data["y_train"]), data["n_classes"]
    chance = chance_level(data["y_test"], n_classes)
    log.info("%s (%s): %d weights for %d classes; chance on the test split is %.3f", config.model,
             model_spec(config.model).about, n_weights(config.model, n_classes, data["x_train"].shape[1:]), n_classes,
             chance)
    results_dir = step_dir(data_root, RESULTS_DIR)
    check_writable(results_dir, need_bytes=FREE_BYTES_NEEDED)
    stored = read_runs(results_dir)
    line = describe_set_aside(set_aside(stored, current_inputs(data_root))[1], results_dir / RUNS_FILE)
    if line:
        log.warning("%s; Plots/plot_results.py --include-set-aside shows them", line)
    done = {identity(row): row for row in stored}

    pools: dict[tuple, tuple] = {}  # (method, ratio, k) -> (indices, kept id, embeddings id): each loaded once

    def pool_of(run: Run):
        key = (run.method, run.ratio, run.k)
        if key not in pools:
            if run.k is None:
                pools[key] = np.arange(n_train), WHOLE_SET, ""
            else:
                indices, kept_id = load_kept(data_root, PruningSetup(run.k, n_init, seed, pca), run.method, run.ratio)
                pools[key] = indices, kept_id, short_id(features_sha(data_root))  # load_kept checked they match
        return pools[key]

    recipe = {"seed": seed, "model": config.model, "engine": engine_label, "learning_rate": repr(config.learning_rate),
              "batch_size": config.batch_size, "max_epochs": config.max_epochs, "restore_best": config.restore_best,
              "dtype": config.dtype, "recipe": recipe_text(config), "data": data["id"]}
    rows, waiting = [], []
    for run in runs:
        indices, kept_id, features = pool_of(run)
        subset = draw(indices, run.n, seed, run.repeat)
        pruned = run.k is not None
        row = {"method": run.method, "ratio": format_ratio(run.ratio), "k": run.k if pruned else "", "n": run.n,
               "repeat": run.repeat, **recipe, "batch_used": config.batch_for(len(subset)), "kept": kept_id,
               "features": features, "n_init": n_init if pruned else "", "prune_seed": seed if pruned else "",
               "pca": pca if pruned and pca else "", "n_used": len(subset),
               "fraction_kept": round(len(indices) / n_train, 6), "n_classes": n_classes, "n_test": len(data["y_test"]),
               "chance": f"{chance:.6f}"}
        row = {field: str(value) for field, value in row.items()}
        rows.append(row)
        if identity(row) not in done:
            waiting.append((run, row, subset))
    register_comparisons(results_dir, rows, study, done)
    log.info("%d runs to train, %d already in %s", len(waiting), len(runs) - len(waiting), results_dir / RUNS_FILE)
    with claiming(results_dir) as claims, tqdm(total=len(waiting), desc="runs", unit="run") as bar:
        while waiting:
            job_list = _claim_jobs(results_dir, claims, waiting, models_per_job, backend, bar)
            if not job_list:
                time.sleep(WAIT_SECONDS)
                continue
            specs = [([subset for _, _, subset in job], [model_seed(seed, run.repeat) for run, _, _ in job],
                      checkpoint_file(results_dir, [row for _, row, _ in job])) for job in job_list]
            show = _progress(bar, job_list)
            if backend == "local":
                finished = ((index, (*train_job(train, data, subsets, seeds, config, device, checkpoint,
                                                on_epoch=functools.partial(show, index)), device))
                            for index, (subsets, seeds, checkpoint) in enumerate(specs))
                _store(results_dir, claims, job_list, finished, show, waiting, bar)
            else:
                from kwsprune.dask_backend import open_client, train_jobs

                with open_client(study.scheduler, study.workers) as client:
                    _store(results_dir, claims, job_list, train_jobs(client, Path(data_root).resolve(), data["id"],
                                                                     engine, study.device, config, specs, show), show,
                           waiting, bar)
    refresh_history(results_dir)
    done = {identity(row): row for row in read_runs(results_dir)}
    rows = [done[identity(row)] for row in rows]
    if study.original_names:
        for members in studies(rows).values():
            written = write_original_history(results_dir, members, list(study.ks))
            log.info("wrote %d CSVs under the original's names into %s", len(written), results_dir)
    report_chance(rows)
    return rows


def _progress(bar, job_list):
    """show(job, epoch, models training): the jobs in flight, as the bar's postfix; epoch None: the job ended."""
    in_flight, ended = {}, set()

    def show(index: int, epoch: int | None = None, training: int = 0) -> None:
        if epoch is None:
            in_flight.pop(index, None)
            ended.add(index)
        elif index not in ended:  # a worker's report may arrive after its job's result
            job = job_list[index]
            in_flight[index] = f"N={len(job[0][2])} epoch {epoch}, {training}/{len(job)} training"
        bar.set_postfix_str("; ".join(in_flight[i] for i in sorted(in_flight)))

    return show


def _claim_jobs(results_dir, claims, waiting: list, models_per_job: int, backend: str, bar) -> list[list]:
    """The jobs this sweep trains next, its runs claimed: those of `waiting` that no live sweep has claimed and
    none has stored, in jobs of runs of one size (the first job on the local backend, all of them on Dask). Runs
    another sweep stored meanwhile leave `waiting` (and count on the bar); an empty list: every run left is another
    sweep's."""
    with store_lock(results_dir):
        stored = {identity(row) for row in read_runs(results_dir)}
        before = len(waiting)
        waiting[:] = [entry for entry in waiting if identity(entry[1]) not in stored]
        bar.update(before - len(waiting))
        others = claims.others()
        free = [entry for entry in waiting if run_key(identity(entry[1])) not in others]
        by_size: dict[int, list] = {}
        for entry in free:
            by_size.setdefault(len(entry[2]), []).append(entry)
        job_list = [members[start:start + models_per_job] for members in by_size.values()
                    for start in range(0, len(members), models_per_job)]
        job_list = job_list[:1] if backend == "local" else job_list
        claims.take(run_key(identity(row)) for job in job_list for _, row, _ in job)
    if waiting and not job_list:
        line = waiting_line(others, len(waiting))
        bar.set_postfix_str(line)
        if not claims.told_waiting:
            claims.told_waiting = True
            log.info("%s", line)
    return job_list


def _store(results_dir, claims, job_list, finished, show, waiting: list, bar) -> None:
    """Fill in and append the rows of each job as it finishes, then free their claims, write the history CSVs again
    and take the job's runs off `waiting`: finished yields (job index, (metrics, seconds, device))."""
    for index, (metrics, seconds, device) in finished:
        job = job_list[index]
        for (_, row, _), m in zip(job, metrics):
            row.update(test_loss=f"{m['test_loss']:.6f}", test_acc=f"{m['test_acc']:.6f}", epochs=str(m["epochs"]),
                       seconds=f"{seconds / len(job):.3f}", device=device, code_version=__version__,
                       outcomes=save_outcomes(results_dir, m["predicted"]))
        with store_lock(results_dir):
            lost = claims.lost(run_key(identity(row)) for _, row, _ in job)
            if lost:
                log.warning("%d runs of this sweep were taken over by another while it did not renew its claims "
                            "(stopped or hung): their rows are that sweep's to store", len(lost))
            append_rows(results_dir, [row for _, row, _ in job if run_key(identity(row)) not in lost])
            claims.release(run_key(identity(row)) for _, row, _ in job)
            refresh_history(results_dir)
        stored = {id(row) for _, row, _ in job if run_key(identity(row)) not in lost}  # lost runs: waited for
        waiting[:] = [entry for entry in waiting if id(entry[1]) not in stored]
        show(index)
        bar.update(len(stored))


def checkpoint_file(results_dir, rows) -> Path:
    """Where a job's training state is saved while it runs: results/.checkpoints/, named by its runs' identities."""
    digest = hashlib.sha256("\n".join("\x1f".join(identity(row)) for row in rows).encode()).hexdigest()[:16]
    return Path(results_dir) / CHECKPOINT_DIR / f"job_{digest}.pt"


def report_chance(rows) -> None:
    """Log every configuration whose accuracy is not clearly above chance (kwsprune.chance), with what to change."""
    configs: dict[tuple, list[dict]] = {}
    for row in rows:
        configs.setdefault((row["method"], row["ratio"], row["k"], row["n"]), []).append(row)
    for (method, ratio, k, n), members in configs.items():
        accuracies = [float(row["test_acc"]) for row in members]
        first = members[0]
        flag = verdict(accuracies, int(first["n_test"]), float(first["chance"]))
        if not flag:
            continue
        steps = math.ceil(int(first["n_used"]) / int(first["batch_used"]))
        if is_head(first["model"]):  # fitted to convergence: no epochs or batches to change
            hint = "more clips (N) may help; see 'Results at chance' in docs/pipeline.md"
        elif steps <= 2 and first["batch_size"] == "auto":
            hint = (f"{first['n_used']} clips are {steps} step(s) an epoch even at auto's smallest batch "
                    f"({first['batch_used']}), too few to learn {first['n_classes']} classes from: raise --n")
        elif steps <= 2:
            hint = (f"an epoch of {first['n_used']} clips is {steps} step(s) at batch {first['batch_used']}, so early "
                    "stopping can end a run before it learns: try --batch-size auto or smaller")
        elif all(row["epochs"] == row["max_epochs"] for row in members):
            hint = f"every run used all {first['max_epochs']} epochs: raise --max-epochs"
        else:
            hint = "more clips (N) may help; see 'Results at chance' in docs/pipeline.md"
        where = f"{method} ratio {ratio}" + (f" k {k}" if k else "") + f" N {n}"
        log.warning("%s: %s (mean test accuracy %.3f over %d runs, chance %.3f): %s", where,
                    "not clearly above chance" if flag == "CHANCE" else flag, np.mean(accuracies), len(members),
                    float(first["chance"]), hint)


def register_comparisons(results_dir, rows, study: Study, done: dict) -> None:
    """Register the comparisons with random that these rows make (a method's runs at a ratio, k and N) in their
    study's ledger, before anything is trained or judged: each gets its share of the study's error once. `done`:
    the stored rows by identity (those with outcomes prove a ledger was kept)."""
    by_study: dict[tuple, list] = {}
    trained: dict[tuple, int] = {}
    for row in rows:
        if row["method"] != "random" and row["kept"] != WHOLE_SET:
            key = study_key(row)
            by_study.setdefault(key, []).append((row["method"], row["ratio"], row["k"], row["n"]))
            trained[key] = trained.get(key, 0) + bool(done.get(identity(row), {}).get("outcomes"))
    for key, found in by_study.items():
        register(results_dir, study_id(key), describe_study(key), found, study, trained[key])


def check_sweep(data_root, study: Study) -> Study:
    """The study with method names and sizes in their canonical spelling, every value checked."""
    study = replace(study, methods=tuple(method_name(m) for m in study.methods), ns=tuple(parse_n(n) for n in study.ns))
    check_stopping(study)
    check_scheduler(study.scheduler, study.backend)
    for ratio in study.ratios:
        if not (0 <= ratio < 1 or (ratio == 1.0 and set(study.methods) == {"random"})):
            raise InputError(f"--ratios {ratio}: a ratio is the fraction removed, in [0, 1) (1.0, the whole training "
                             "set, is for --methods random alone)")
    for k in study.ks:
        check_setup(PruningSetup(k, study.n_init, study.seed, study.pca))
    return study


def sweep(data_root, study: Study) -> list[dict]:
    """Step 5: every (n, method, ratio, k, repeat) of the study, pruning first the kept sets that are missing;
    resumable. With repeats AUTO, in rounds until each comparison with random is decided (sequential_sweep)."""
    study = check_sweep(data_root, study)
    needed = {(k, method, ratio) for method in study.methods for ratio in study.ratios for k in study.ks
              for n in study.ns if run_for(method, ratio, k, n, 0).k is not None}

    def unmade():
        return [(k, method, ratio) for k, method, ratio in needed
                if not is_made(data_root, PruningSetup(k, study.n_init, study.seed, study.pca), method, ratio)]

    with ExitStack() as locks:  # a sweep beside this one pruning the same kept sets: wait, then use its; no lock is
        missing = unmade()      # taken where nothing is to be pruned (a stopped pruner's lock does not stop this sweep)
        if missing:
            for k in sorted(study.ks):
                locks.enter_context(folder_lock(PruningSetup(k, study.n_init, study.seed, study.pca).folder(data_root)))
            missing = unmade()
        if missing:
            run_pruning(data_root, sorted({m for _, m, _ in missing}), sorted({r for _, _, r in missing}),
                        sorted({k for k, _, _ in missing}), study.seed, study.n_init, study.pca)
    if study.original_names:
        for k in study.ks:
            export_original_names(data_root, PruningSetup(k, study.n_init, study.seed, study.pca), list(study.methods),
                                  [r for r in study.ratios if r < 1])
    if study.sequential:
        return sequential_sweep(data_root, study)
    runs = list(dict.fromkeys(run_for(method, ratio, k, n, repeat) for repeat in range(study.repeats) for n in study.ns
                              for method in study.methods for k in study.ks for ratio in study.ratios))
    return run_classifications(data_root, runs, study)


def sequential_sweep(data_root, study: Study) -> list[dict]:
    """--repeats auto: rounds of study.round_size repeats for every comparison still open, until each is decided, at
    study.max_repeats, or left undecided by the test set alone (kwsprune.sequential.out_of_reach). A comparison is
    judged after each round on its pairs of the repeats trained so far; the decision rests on the rows and their
    outcomes alone, so a killed or re-run sweep makes the same decisions and trains nothing twice.
    Random's runs at an N go on while any comparison there needs them; a round's runs of one size train as one job.
    Returns the rows of every comparison."""
    every = comparisons(study)
    if not every:
        raise InputError("--repeats auto compares methods with random: add a method to --methods besides random, or "
                         "give a number of repeats")
    pending, end, collected = every, 0, {}
    while end < study.max_repeats and pending:
        new_end = min(end + study.round_size, study.max_repeats)
        runs = list(dict.fromkeys(run for c in pending for run in comparison_runs(c, range(new_end))))
        rows = run_classifications(data_root, runs, study)
        collected.update((identity(row), row) for row in rows)
        judged = judge_study(data_root, rows, pending, study, below=new_end)
        pending = [c for c in pending if judged[c]["verdict"] == OPEN]
        log.info("after %d repeats: %d of the %d comparisons are still open", new_end, len(pending), len(every))
        end = new_end
    return list(collected.values())


def sweep_verdicts(data_root, study: Study, rows) -> str:
    """The verdict table of a sweep's comparisons (kwsprune.verdicts.format_table), from its rows, with the study's
    family-wise error from its ledger."""
    study = check_sweep(data_root, study)
    judged = judge_study(data_root, rows, comparisons(study), study)
    ledger = _ledger_of(data_root, rows)
    return format_table(list(judged.values()), ledger["alpha"] if ledger else None)


def _ledger_of(data_root, rows) -> dict | None:
    key = next((study_key(row) for row in rows if row["kept"] != WHOLE_SET), None)
    return read_ledger(step_dir(data_root, RESULTS_DIR), study_id(key), describe_study(key)) if key else None


def judge_study(data_root, rows, chosen: list, study: Study, below: int | None = None) -> dict:
    """{comparison: its verdict line (kwsprune.verdicts.judge)} on the rows' repeats below `below`, each at the
    error share, margin and maximum of repeats its study's ledger recorded (as the report judges it; a line says
    where the sweep's flags differ), read with the test split's per-clip outcomes."""
    ledger = _ledger_of(data_root, rows)
    batches, seen = shares(ledger), evidence(data_root, generalises_to(ledger))
    rules = {c: (batches[c]["margin"], batches[c]["max_repeats"] or study.most_repeats) for c in chosen}
    differ = [c for c in chosen if rules[c] != (study.margin, study.most_repeats)]
    if differ and below in (None, study.round_size):  # said at a sweep's first round and its table
        margin, most = rules[differ[0]]
        log.warning("%d comparisons are judged with the margin (%g) and the most repeats (%d) their study's ledger "
                    "recorded when they were registered, not --margin %g / --max-repeats %d: a study's rule is fixed "
                    "with its comparisons", len(differ), margin, most, study.margin, study.most_repeats)
    return {c: judge(rows, c, batches[c]["alpha_each"], *rules[c], below=below, seen=seen) for c in chosen}

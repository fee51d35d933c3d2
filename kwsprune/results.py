"""The results store: results/runs.csv, one row per trained run, keyed by everything the run was computed from.

A row's identity is its configuration (method, ratio, k, n, repeat), its recipe (model, engine, learning
rate, batch size, epoch cap, restore policy, dtype, seed) and its inputs: the training data (MFCCs and
labels of every split), the kept set it drew from (by content) and what that came from (embeddings,
k-means starts, pruning seed, PCA). A run is done when a row of its identity exists. Rows whose inputs are
not the current ones stay in the file (a study's history is kept) but are set aside: not counted, plotted
or summarised unless asked for. The original's per-configuration CSVs are derived from the rows, in one
folder per study, so that they never mix recipes or inputs.
"""

import csv
import hashlib
import io
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from kwsprune.artefacts import short_id, write_text
from kwsprune.claims import store_lock
from kwsprune.methods import ORIGINAL_NAMES
from kwsprune.models import MODELS, is_head
from kwsprune.paths import HISTORY_DIR, RUNS_FILE, history_file, kept_file, pruning_folder
from kwsprune.validation import InputError

log = logging.getLogger(__name__)

WHOLE_SET = "all"  # the kept column of runs that draw from the whole training set
IDENTITY_FIELDS = ["method", "ratio", "k", "n", "repeat", "seed", "model", "engine", "learning_rate", "batch_size",
                   "batch_used", "max_epochs", "restore_best", "dtype", "recipe", "data", "kept", "features", "n_init",
                   "prune_seed", "pca"]
RESULT_FIELDS = ["n_used", "fraction_kept", "n_classes", "n_test", "chance", "test_loss", "test_acc", "epochs",
                 "seconds", "device", "code_version", "outcomes"]
RUN_FIELDS = IDENTITY_FIELDS + RESULT_FIELDS
# a study: one recipe on one dataset with one pruning set-up; its rows are compared with each other
RECIPE_FIELDS = ["model", "engine", "learning_rate", "batch_size", "max_epochs", "restore_best", "dtype", "recipe", "seed",
                 "data"]
SETUP_FIELDS = ["features", "n_init", "prune_seed", "pca"]
# what the kwsprune before run identities always trained with: its rows are moved to the current columns with these
# the recipe column of every row written before it existed: until then every run trained with these fields
PLATEAU_RECIPE = ("dropout=0.1;lr_factor=0.5;lr_patience=3;stop_patience=15;min_delta=0.0001;adam_betas=0.9,0.999;"
                  "adam_epsilon=1e-07;optimizer=adam;momentum=0.9;schedule=plateau;warmup_epochs=0;early_stopping=true;"
                  "weights=best;ema_decay=0.999;weight_decay=0.0;label_smoothing=0.0;time_masks=0,0;freq_masks=0,0;"
                  "standardise=false;penalty=1.0")
OLDER_RECIPE = {"model": "tiny", "learning_rate": "0.005", "restore_best": "always", "dtype": "float32",
                "recipe": PLATEAU_RECIPE}
BEFORE_OUTCOMES = [field for field in RUN_FIELDS if field != "outcomes"]  # runs.csv before per-clip outcomes
PREVIOUS_FIELDS = [field for field in BEFORE_OUTCOMES if field != "recipe"]  # runs.csv before the recipe column
ORIGINAL_HISTORY_RECORD = "history_original_names.json"  # results/: which study the original-name CSVs hold

OLDER_SCHEMA = "written by an older kwsprune, with no record of their kept set"
OTHER_DATA = "trained on other MFCCs or labels than the current ones"
OLDER_FEATURES = "trained on kept sets of older embeddings"
REPRUNED = "trained on kept sets that have been pruned again or removed since"


def identity(row) -> tuple:
    return tuple(str(row[field]) for field in IDENTITY_FIELDS)


def _csv_text(rows, header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, RUN_FIELDS, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _parse(path) -> tuple[list[dict], list[str]]:
    text = path.read_text()
    reader = csv.DictReader(io.StringIO(text[:text.rfind("\n") + 1]))
    rows = list(reader)
    return rows, reader.fieldnames or []


def read_runs(results_dir) -> list[dict]:
    """Rows of results/runs.csv. A last line cut off by a kill (or being appended by another sweep) is not read;
    rows of an older kwsprune's columns are moved to the current ones (their new columns empty, so they are set
    aside)."""
    path = Path(results_dir) / RUNS_FILE
    if not path.exists():
        return []
    rows, header = _parse(path)
    if header != RUN_FIELDS:
        with store_lock(results_dir):  # read again under the lock: no other sweep's row is lost in the move
            rows, header = _parse(path)
            unknown = [field for field in header if field not in RUN_FIELDS]
            if unknown or "test_acc" not in header:
                raise InputError(f"{path} is not a kwsprune runs.csv (columns {unknown or header} are not ours): "
                                 f"move it aside and rerun, a new one is started")
            if header == BEFORE_OUTCOMES:  # every field kept; their test clips' outcomes were never stored
                rows = [{**row, "outcomes": ""} for row in rows]
                why = "the outcomes column added, empty: their per-clip outcomes were not kept"
            elif header == PREVIOUS_FIELDS:  # every field kept; the recipe column says what they trained with
                rows = [{**row, "recipe": PLATEAU_RECIPE, "outcomes": ""} for row in rows]
                why = "the recipe column added: they trained with the plateau recipe, as every run did then"
            else:
                rows = [{**{field: row.get(field) or "" for field in RUN_FIELDS}, **OLDER_RECIPE,
                         "batch_used": row.get("batch_size") or ""} for row in rows]
                why = OLDER_SCHEMA
            write_text(path, _csv_text(rows, header=True))
        log.warning("%s: %d rows of an older kwsprune moved to the current columns (%s)", path, len(rows), why)
    broken = [row for row in rows if not _is_accuracy(row["test_acc"])]
    if broken and (str(path), len(broken)) not in _WARNED:
        _WARNED.add((str(path), len(broken)))
        log.warning("%s: %d rows have a test_acc that is not an accuracy in [0, 1] (the first: %r): they are not read, "
                    "and their runs train again; delete those lines to silence this", path, len(broken),
                    broken[0]["test_acc"])
    return [row for row in rows if _is_accuracy(row["test_acc"])]


_WARNED: set = set()  # (runs.csv, rows broken): said once a process


def _is_accuracy(text) -> bool:
    try:
        return 0 <= float(text) <= 1
    except (TypeError, ValueError):
        return False


def append_rows(results_dir, rows: list[dict]) -> list[dict]:
    """Append to runs.csv the rows whose identity it does not hold yet, in one write flushed to disk (or none of
    them, if the write fails), under the store's lock (kwsprune.claims); return those appended."""
    path = Path(results_dir) / RUNS_FILE
    with store_lock(results_dir):
        held = {identity(row) for row in read_runs(results_dir)}
        rows = list({identity(row): row for row in rows if identity(row) not in held}.values())
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":  # a line cut by a kill: cut back to the last whole row
                text = path.read_bytes()
                size = text.rfind(b"\n") + 1
                os.ftruncate(fd, size)
            data = _csv_text(rows, header=size == 0).encode()
            try:
                written = 0
                while written < len(data):
                    written += os.write(fd, data[written:])
                os.fsync(fd)
            except BaseException:  # a full disk, a Ctrl-C: no half row may stay for the next rows to follow
                os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)
    return rows


@dataclass(frozen=True)
class CurrentInputs:
    """What rows are checked against; None where the data root cannot tell (that check is then skipped)."""
    data: dict          # {"mfcc": id, "embeddings": id} of the training data a model of each kind reads (or None)
    features: str | None
    kept: dict | None  # (set-up folder, kept file) -> kept id


def current_inputs(data_root) -> CurrentInputs:
    """The current training data, embeddings and kept sets of a data root, from their manifests."""
    from kwsprune.embeddings import features_sha
    from kwsprune.pruning import current_kept_ids
    from kwsprune.training_data import data_id

    def attempt(get):
        try:
            return get()
        except InputError:
            return None

    data = {inputs: attempt(lambda: data_id(data_root, inputs)) for inputs in ("mfcc", "embeddings")}
    return CurrentInputs(data, attempt(lambda: short_id(features_sha(data_root))),
                         current_kept_ids(data_root))


def _number(text: str):
    return int(text) if text else None


def set_aside_reason(row, current: CurrentInputs) -> str | None:
    """Why a row does not describe the current inputs, or None when it does."""
    if not row["kept"]:
        return OLDER_SCHEMA
    spec = MODELS.get(row["model"])
    data = current.data.get("embeddings" if spec and spec.inputs == "embeddings" else "mfcc")
    if data is not None and row["data"] != data:
        return OTHER_DATA
    if row["kept"] == WHOLE_SET or current.kept is None:
        return None
    if row["features"] != current.features:
        return OLDER_FEATURES
    folder = pruning_folder(int(row["k"]), int(row["n_init"]), int(row["prune_seed"]), _number(row["pca"]))
    if current.kept.get((folder, kept_file(row["method"], int(row["k"]), float(row["ratio"])))) != row["kept"]:
        return REPRUNED
    return None


def set_aside(rows, current: CurrentInputs) -> tuple[list[dict], Counter]:
    """(the rows of the current inputs, how many others there are by reason)."""
    reasons = Counter()
    kept = []
    for row in rows:
        reason = set_aside_reason(row, current)
        if reason is None:
            kept.append(row)
        else:
            reasons[reason] += 1
    return kept, reasons


def describe_set_aside(reasons: Counter, path) -> str | None:
    """One line on the rows set aside, or None when there are none."""
    if not reasons:
        return None
    parts = "; ".join(f"{count} {reason}" for reason, count in reasons.most_common())
    return f"{path}: {sum(reasons.values())} rows set aside ({parts}); they stay in the file"


def study_key(row) -> tuple:
    return tuple(str(row[field]) for field in RECIPE_FIELDS + SETUP_FIELDS)


def studies(rows) -> dict[tuple, list[dict]]:
    """Rows by study: one recipe on one dataset with one pruning set-up. Runs on the whole training set (random
    at ratio 1.0) have no set-up: they belong to every study of their recipe."""
    by_recipe: dict[tuple, list[dict]] = {}
    for row in rows:
        by_recipe.setdefault(tuple(str(row[f]) for f in RECIPE_FIELDS), []).append(row)
    out = {}
    for recipe, members in by_recipe.items():
        whole = [row for row in members if row["kept"] == WHOLE_SET]
        setups: dict[tuple, list[dict]] = {}
        for row in members:
            if row["kept"] != WHOLE_SET:
                setups.setdefault(tuple(str(row[f]) for f in SETUP_FIELDS), []).append(row)
        for setup, pruned in (setups or {("",) * len(SETUP_FIELDS): []}).items():
            out[recipe + setup] = pruned + whole
    return out


def study_id(key: tuple) -> str:
    return hashlib.sha256("\x1f".join(key).encode()).hexdigest()[:12]


def describe_study(key: tuple) -> str:
    """A study in words, e.g. 'tiny, torch, lr 0.005, batch auto, <= 170 epochs, restore always, float32, seed 0;
    data 1a2b3c4d5e6f; embeddings 0a1b2c3d4e5f, k-means n_init 10, pruning seed 0'."""
    f = dict(zip(RECIPE_FIELDS + SETUP_FIELDS, key))
    if is_head(f["model"]):  # solved to convergence: no learning rate, batch or epochs to name
        text = f"{f['model']}, a head ({f['recipe']}), {f['dtype']}, the draws' seed {f['seed']}; data {f['data']}"
    else:
        text = (f"{f['model']}, {f['engine']}, lr {f['learning_rate']}, batch {f['batch_size']}, <= {f['max_epochs']} "
                f"epochs, restore {f['restore_best']}, {f['dtype']}, seed {f['seed']}; data {f['data']}")
    if f["features"]:
        text += f"; embeddings {f['features']}, k-means n_init {f['n_init']}, pruning seed {f['prune_seed']}"
        text += f", PCA {f['pca']}" if f["pca"] else ""
    return text


def _history_line(row) -> str:
    return f"{row['test_loss']},{row['test_acc']},{row['epochs']}\n"


def refresh_history(results_dir) -> None:
    """Write the original's per-configuration CSVs again from runs.csv, under the store's lock, so that they always
    agree with it (a sweep ends with this, even when it trained nothing: a full disk may have stopped the last)."""
    with store_lock(results_dir):
        write_history(results_dir, read_runs(results_dir))


def write_history(results_dir, rows) -> None:
    """The original's per-configuration CSVs (test_loss, test_acc, epochs; no header), derived from the rows:
    results/history/{study id}/history_{model}_prune_{n}_K{k}_{method}_{ratio}.csv, with study.json beside them."""
    for key, members in studies(rows).items():
        folder = Path(results_dir) / HISTORY_DIR / study_id(key)
        folder.mkdir(parents=True, exist_ok=True)
        record = {**dict(zip(RECIPE_FIELDS + SETUP_FIELDS, key)), "description": describe_study(key)}
        write_text(folder / "study.json", json.dumps(record, indent=1) + "\n")
        files: dict[str, list[str]] = {}
        for row in members:
            name = history_file(row["model"], row["n"], _number(row["k"]), row["method"], row["ratio"])
            files.setdefault(name, []).append(_history_line(row))
        for name, lines in files.items():
            write_text(folder / name, "".join(lines))


def write_original_history(results_dir, rows, ks) -> list[str]:
    """The original's own files for one study's rows, where its Plots/plot_all.jl reads them:
    results/history_tiny_prune_{N}_K{K}_{simple|hard|normal}_{ratio}.csv (runs on the whole training set once
    for each K of `ks`, as the original wrote them). Methods the original did not have are left out; the files
    are rewritten whole, and results/history_original_names.json says which study they hold."""
    files: dict[str, list[str]] = {}
    for row in rows:
        if row["method"] not in ORIGINAL_NAMES:
            continue
        for k in [row["k"]] if row["k"] else ks:
            name = history_file(row["model"], row["n"], k, ORIGINAL_NAMES[row["method"]], row["ratio"])
            files.setdefault(name, []).append(_history_line(row))
    for name, lines in files.items():
        write_text(Path(results_dir) / name, "".join(lines))
    keys = {study_key(row) for row in rows if row["kept"] != WHOLE_SET} or {study_key(row) for row in rows}
    record = {"studies": sorted(describe_study(key) for key in keys), "files": sorted(files)}
    write_text(Path(results_dir) / ORIGINAL_HISTORY_RECORD, json.dumps(record, indent=1) + "\n")
    return sorted(files)

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

from kwsprune.artefacts import command_line, short_id, write_text
from kwsprune.claims import store_lock
from kwsprune.methods import ORIGINAL_NAMES
from kwsprune.models import MODELS, is_head
from kwsprune.paths import HISTORY_DIR, RUNS_FILE, history_file, kept_file, pruning_folder
from kwsprune.row_schema import row_problem
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


def _parse(path) -> tuple[list[tuple[int, dict]], list[str]]:
    """(line number, row) pairs and the header of a runs.csv; a last line cut off by a kill (or being appended by
    another sweep) is not read, a byte-order mark is read as one, an empty file holds no rows."""
    text = path.read_text(encoding="utf-8-sig")
    reader = csv.DictReader(io.StringIO(text[:text.rfind("\n") + 1]), restkey=EXTRA, restval=None)
    header, rows = reader.fieldnames or [], []
    last = reader.line_num
    for row in reader:  # a row's line is where it starts: a quoted value may span lines
        rows.append((last + 1, row))
        last = reader.line_num
    return rows, header


EXTRA = "\x00extra"  # where csv puts the values of a row longer than its header


def _older(header: list[str]) -> str | None:
    """How an older kwsprune's runs.csv differs from the current one (what --upgrade-store changes), or None when
    the header is not one kwsprune ever wrote."""
    if header == BEFORE_OUTCOMES:
        return "the outcomes column added, empty: their per-clip outcomes were not kept"
    if header == PREVIOUS_FIELDS:
        return "the recipe column added: they trained with the plateau recipe, as every run did then"
    if sorted(header) == sorted(RUN_FIELDS):
        return "its columns put back in kwsprune's order (each value stays in its column)"
    if "kept" not in header and "test_acc" in header and not [field for field in header if field not in RUN_FIELDS]:
        return f"the missing columns added ({OLDER_SCHEMA}: set aside, not counted)"  # before run identities
    return None


def upgrade_hint(results_dir) -> str:
    return command_line("run_all_classifications.py", Path(results_dir).parent, {"--upgrade-store": True})


def read_runs(results_dir) -> list[dict]:
    """Rows of results/runs.csv, each checked against kwsprune.row_schema, no run twice. Refused in one line naming
    the file (and the line) and the fix: a header of an older kwsprune (`--upgrade-store` moves it, saying what it
    changes), a file that is not kwsprune's, a row that breaks its columns' rules, two rows of one run."""
    path = Path(results_dir) / RUNS_FILE
    if not path.exists():
        return []
    rows, header = _parse(path)
    if not header:
        return []
    if header != RUN_FIELDS:
        why = _older(header)
        missing = [field for field in RUN_FIELDS if field not in header]
        if why is None and missing and not [field for field in header if field not in RUN_FIELDS]:
            raise InputError(f"{path} lacks the columns {missing[:5]}, which no kwsprune left out: restore runs.csv "
                             f"from a copy")
        if why is None:
            unknown = [field for field in header if field not in RUN_FIELDS] or header
            raise InputError(f"{path} is not a kwsprune runs.csv (columns {unknown[:5]} are not ours): move it aside "
                             f"and rerun, a new one is started")
        raise InputError(f"{path} was written by an older kwsprune or edited ({why}): run {upgrade_hint(results_dir)} "
                         f"to rewrite it so, a copy kept beside it")
    _check_shapes(path, rows)
    return _checked(path, rows)


FIX_ROW = "restore runs.csv from a copy, or delete that line (its run trains again)"


def _check_shapes(path, rows: list[tuple[int, dict]]) -> None:
    for line, row in rows:
        if EXTRA in row or None in row.values():
            raise InputError(f"{path}, line {line}: the row has {'more' if EXTRA in row else 'fewer'} values than the "
                             f"header has columns: {FIX_ROW}")


def _checked(path, rows: list[tuple[int, dict]]) -> list[dict]:
    first_line: dict[tuple, int] = {}
    for line, row in rows:
        problem = row_problem(row)
        if problem is not None:
            raise InputError(f"{path}, line {line}: the row {problem}: {FIX_ROW}")
        key = identity(row)
        if key in first_line:
            raise InputError(f"{path}, lines {first_line[key]} and {line}: two rows of one run ({row['method']} at ratio "
                             f"{row['ratio']}, n {row['n']}, repeat {row['repeat']}): keep the one you trust, delete the other")
        first_line[key] = line
    return [row for _, row in rows]


def upgrade_runs(results_dir) -> str:
    """Rewrite an older kwsprune's runs.csv in the current columns (a copy of the old one kept as
    runs.csv.before-upgrade), every row checked; what it changed, in one line."""
    path = Path(results_dir) / RUNS_FILE
    if not path.exists():
        return f"{path} does not exist: nothing to upgrade"
    with store_lock(results_dir):
        rows, header = _parse(path)
        _check_shapes(path, rows)
        if header == RUN_FIELDS:
            _checked(path, rows)
            return f"{path} is in the current columns: nothing to upgrade"
        why = _older(header)
        if why is None:
            raise InputError(f"{path} is not a kwsprune runs.csv (columns {header[:5]}): move it aside and rerun")
        if header == BEFORE_OUTCOMES:
            moved = [{**row, "outcomes": ""} for _, row in rows]
        elif header == PREVIOUS_FIELDS:
            moved = [{**row, "recipe": PLATEAU_RECIPE, "outcomes": ""} for _, row in rows]
        elif sorted(header) == sorted(RUN_FIELDS):
            moved = [row for _, row in rows]
        else:
            moved = [{**{field: row.get(field) or "" for field in RUN_FIELDS}, **OLDER_RECIPE,
                      "batch_used": row.get("batch_size") or ""} for _, row in rows]
        _checked(path, [(line, row) for (line, _), row in zip(rows, moved)])
        write_text(path.with_name(RUNS_FILE + ".before-upgrade"), path.read_text(encoding="utf-8-sig"))
        write_text(path, _csv_text([{field: row[field] for field in RUN_FIELDS} for row in moved], header=True))
    return f"{path}: {len(moved)} rows moved to the current columns ({why}); the old file is {path.name}.before-upgrade"


def append_rows(results_dir, rows: list[dict]) -> list[dict]:
    """Append to runs.csv the rows whose identity it does not hold yet, in one write flushed to disk (or none of
    them, if the write fails), under the store's lock (kwsprune.claims); return those appended."""
    path = Path(results_dir) / RUNS_FILE
    for row in rows:
        if (problem := row_problem(row)) is not None:  # a bug of kwsprune's: a row it would refuse to read back
            raise ValueError(f"a row to append to {path} {problem}")
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

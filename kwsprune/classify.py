"""Steps 4-5: runs of the Tiny CNN on pruned training sets, their CSV rows, and the resumable sweep.

A run is (method, ratio, k, n, repeat): draw n clips at random from the clips kept by `method` at
`ratio` (the original's equal-N comparison; n = "all" trains on every kept clip), train, evaluate on
the full test split. `random` draws from the whole training set (ratio 1.0 in the CSV names, as the
original) in equal-N runs, and from a random subset as large as the other methods' in "all" runs.
Runs with the same repeat share their model initialisation across methods, so comparisons are paired.
"""

import csv
import io
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from kwsprune import __version__
from kwsprune.artefacts import read_manifest, verify_file, write_text
from kwsprune.dataset import MADE_BY as DATASET_MADE_BY
from kwsprune.dataset import class_names
from kwsprune.mfcc import MADE_BY as MFCC_MADE_BY
from kwsprune.mfcc import load_mfccs
from kwsprune.paths import DATASET_DIR, MFCC_DIR, PRUNED_DIR, RESULTS_DIR, step_dir
from kwsprune.methods import method_name
from kwsprune.pruning import format_ratio, kept_file, load_kept, run_pruning
from kwsprune.training import TrainConfig, n_parameters, train_runs
from kwsprune.validation import InputError

log = logging.getLogger(__name__)
RUNS_FILE = "runs.csv"
RUN_FIELDS = ["method", "ratio", "k", "n", "repeat", "seed", "engine", "batch_size", "max_epochs", "data", "n_used",
              "fraction_kept", "test_loss", "test_acc", "epochs", "seconds", "device", "code_version"]
# a run is done when a row with the same key exists; `data` is the start of the train MFCCs' sha256
KEY_FIELDS = ["method", "ratio", "k", "n", "repeat", "seed", "engine", "batch_size", "max_epochs", "data"]
MAX_MODELS_PER_JOB = 100  # torch engine: models trained together in one batched network
ENGINES = ("torch", "keras")


@dataclass(frozen=True)
class Run:
    method: str
    ratio: float
    k: int
    n: str  # a number of clips, or "all"
    repeat: int


def parse_n(value) -> str:
    """'all' or a positive whole number of clips, as the text used in file names."""
    text = str(value)
    if text != "all" and not (text.isdigit() and int(text) > 0):
        raise InputError(f"--n {text!r}: give a positive number of clips or 'all'")
    return text


def csv_ratio(run: Run) -> float:
    """The ratio in the original's file names: 1.0 for random runs of equal N."""
    return 1.0 if run.method == "random" and run.n != "all" else run.ratio


def load_data(data_root) -> dict:
    """MFCCs and labels of every split, checked fresh against the clips; plus the class count."""
    dataset_dir = step_dir(data_root, DATASET_DIR)
    data = {"n_classes": len(class_names(data_root))}
    for split in ("train", "valid", "test"):
        data[f"x_{split}"] = np.array(load_mfccs(data_root, split))  # in memory once for the whole sweep
        data[f"y_{split}"] = np.load(dataset_dir / f"{split}_y.npy")
        verify_file(dataset_dir, f"{split}_y.npy", DATASET_MADE_BY)
        if len(data[f"x_{split}"]) != len(data[f"y_{split}"]):
            raise InputError(f"MFCCs/{split}_MFCCs.npy and {split}_y.npy disagree in length: re-run extract_mfccs.py")
    data["id"] = _recorded_mfcc_id(data_root)  # load_mfccs just checked train_MFCCs.npy against it
    return data


def _recorded_mfcc_id(data_root) -> str:
    return read_manifest(step_dir(data_root, MFCC_DIR), MFCC_MADE_BY)["files"]["train_MFCCs.npy"]["sha256"][:12]


def mfcc_id(data_root) -> str:
    """The id that rows and caches record for the train MFCCs (the start of their sha256), checked fresh."""
    load_mfccs(data_root, "train")
    return _recorded_mfcc_id(data_root)


def training_pool(data_root, run: Run, n_train: int) -> np.ndarray:
    """The training indices a run draws from."""
    if run.method == "random" and run.n != "all":
        return np.arange(n_train)
    return load_kept(data_root, run.method, run.k, run.ratio)


def draw(pool: np.ndarray, n: str, seed: int, repeat: int) -> np.ndarray:
    """n indices from `pool`, uniformly and seeded by (seed, repeat), sorted; every index can be drawn."""
    if n == "all":
        return np.sort(pool)
    if int(n) > len(pool):
        raise InputError(f"--n {n} is more than the {len(pool)} clips kept: lower --n or the ratio")
    return np.sort(np.random.default_rng([seed, repeat]).choice(pool, size=int(n), replace=False))


def model_seed(seed: int, repeat: int) -> int:
    return seed * 1_000_003 + repeat


def read_runs(results_dir) -> list[dict]:
    """Rows of results/runs.csv; a last line cut off by a kill is dropped."""
    path = Path(results_dir) / RUNS_FILE
    if not path.exists():
        return []
    text = path.read_text()
    if text and not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
        write_text(path, text)
    return list(csv.DictReader(io.StringIO(text)))


def run_key(row) -> tuple:
    return tuple(str(row[field]) for field in KEY_FIELDS)


def append_rows(results_dir, rows: list[dict]) -> None:
    """Append whole rows to runs.csv in one write each, flushed to disk, then refresh the original's CSVs."""
    path = Path(results_dir) / RUNS_FILE
    new_file = not path.exists()
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, RUN_FIELDS, lineterminator="\n")
    if new_file:
        writer.writeheader()
    writer.writerows(rows)
    with open(path, "a") as f:
        f.write(buffer.getvalue())
        f.flush()
        os.fsync(f.fileno())
    write_history_files(results_dir)


def write_history_files(results_dir) -> None:
    """The original's per-configuration CSVs (test_loss, test_acc, epochs; no header), derived from runs.csv."""
    groups: dict[str, list[str]] = {}
    for row in read_runs(results_dir):
        name = f"history_tiny_prune_{row['n']}_K{row['k']}_{row['method']}_{row['ratio']}.csv"
        groups.setdefault(name, []).append(f"{row['test_loss']},{row['test_acc']},{row['epochs']}\n")
    for name, lines in groups.items():
        write_text(Path(results_dir) / name, "".join(lines))


def start_engine(engine: str, device: str):
    """The training function of an engine, the label its rows carry, the device it runs on, and runs per job."""
    if engine == "torch":
        from kwsprune.embeddings import pick_device

        return train_runs, "torch", pick_device(device), MAX_MODELS_PER_JOB
    if engine == "keras":
        try:
            from kwsprune.keras_engine import backend_name, keras_device, train_keras_runs

            label = f"keras-{backend_name()}"
        except ImportError as err:
            raise InputError(f"--engine keras needs Keras 3 and a backend ({err}): pip install .[tensorflow]") from None
        return train_keras_runs, label, keras_device(device), 1  # one run a job: each row lands as its run ends
    raise InputError(f"--engine {engine!r}: choose one of {', '.join(ENGINES)}")


def run_classifications(data_root, runs: list[Run], seed: int = 0, engine: str = "torch", device: str = "auto",
                        config: TrainConfig = TrainConfig(), skip_done: bool = True) -> list[dict]:
    """Train every run not already in results/runs.csv, grouped into batched jobs; append their rows.

    engine: "torch" (the batched engine) or "keras" (the original's model.fit, run by run; its rows say
    which Keras backend ran them, e.g. keras-tensorflow)."""
    train, engine, device, models_per_job = start_engine(engine, device)
    data = load_data(data_root)
    n_train = len(data["y_train"])
    log.info("Tiny CNN: %d parameters for %d classes", n_parameters(data["n_classes"]), data["n_classes"])
    results_dir = step_dir(data_root, RESULTS_DIR)
    results_dir.mkdir(parents=True, exist_ok=True)
    done = {run_key(row) for row in read_runs(results_dir)} if skip_done else set()

    pools: dict[tuple, np.ndarray] = {}  # each pool loaded (and its chain of hashes checked) once

    def pool_of(run: Run) -> np.ndarray:
        key = (run.method, run.ratio, run.k, run.n == "all")
        if key not in pools:
            pools[key] = training_pool(data_root, run, n_train)
        return pools[key]

    jobs: dict[int, list[tuple[Run, np.ndarray]]] = {}
    for run in runs:
        key = run_key({**asdict(run), "ratio": format_ratio(csv_ratio(run)), "seed": seed, "engine": engine,
                       "batch_size": config.batch_size, "max_epochs": config.max_epochs, "data": data["id"]})
        if key in done:
            continue
        subset = draw(pool_of(run), run.n, seed, run.repeat)
        jobs.setdefault(len(subset), []).append((run, subset))
    todo = sum(len(v) for v in jobs.values())
    log.info("%d runs to train, %d already in %s", todo, len(runs) - todo, results_dir / RUNS_FILE)
    rows = []
    with tqdm(total=todo, desc="runs", unit="run") as bar:
        for size, members in jobs.items():
            for start in range(0, len(members), models_per_job):
                job = members[start:start + models_per_job]
                began = time.perf_counter()
                metrics = train(data["x_train"], data["y_train"], [s for _, s in job], data["x_valid"],
                                     data["y_valid"], data["x_test"], data["y_test"], data["n_classes"],
                                     [model_seed(seed, run.repeat) for run, _ in job], config, device)
                seconds = (time.perf_counter() - began) / len(job)
                job_rows = [{"method": run.method, "ratio": format_ratio(csv_ratio(run)), "k": run.k, "n": run.n,
                             "repeat": run.repeat, "seed": seed, "engine": engine, "batch_size": config.batch_size,
                             "max_epochs": config.max_epochs, "data": data["id"], "n_used": size,
                             "fraction_kept": round(len(pool_of(run)) / n_train, 6),
                             "test_loss": f"{m['test_loss']:.6f}", "test_acc": f"{m['test_acc']:.6f}",
                             "epochs": m["epochs"], "seconds": f"{seconds:.3f}", "device": device,
                             "code_version": __version__} for (run, _), m in zip(job, metrics)]
                append_rows(results_dir, job_rows)
                rows += job_rows
                bar.update(len(job))
    return rows


def sweep(data_root, ns, methods, ratios, k: int = 10, repeats: int = 100, seed: int = 0, **kwargs) -> list[dict]:
    """Step 5: every (n, method, ratio, repeat), pruning first what y_pruned/ lacks; resumable."""
    methods = [method_name(m) for m in methods]
    ns = [parse_n(n) for n in ns]
    missing = [r for r in ratios for m in methods if not (step_dir(data_root, PRUNED_DIR) / kept_file(m, k, r)).exists()]
    if missing:
        run_pruning(data_root, methods, sorted(set(ratios)), k, seed)
    runs = []
    for repeat in range(repeats):
        for n in ns:
            for method in methods:
                method_ratios = [1.0] if method == "random" and n != "all" else ratios
                runs += [Run(method, ratio, k, n, repeat) for ratio in method_ratios]
    return run_classifications(data_root, runs, seed=seed, **kwargs)

"""Per-test-clip outcomes: the class each run gave every test clip, kept beside its row, so that any two runs on one
test set can be paired clip by clip, now or later (the test set's share of a verdict's noise).

A run's outcomes are one int16 array (n_test,), saved as results/outcomes/<sha256 of the file>.npy; its row's
`outcomes` column holds that sha256. The name is the content's hash, so a file is checked by hashing it, two runs
that predict alike share one file, and no path is ever built from anything but 64 hexadecimal digits.
"""

import hashlib
import io
import re
from pathlib import Path

import numpy as np

from kwsprune.artefacts import atomic_output
from kwsprune.validation import InputError

OUTCOMES_DIR = "outcomes"  # under results/
_SHA = re.compile(r"[0-9a-f]{64}")


def save_outcomes(results_dir, predicted) -> str:
    """Store one run's predicted class of each test clip; return the sha256 its row records."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(predicted, dtype=np.int16), allow_pickle=False)
    data = buffer.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    folder = Path(results_dir) / OUTCOMES_DIR
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise InputError(f"{folder} is not a folder of this results store (a link or a file): move it aside and rerun")
    path = folder / f"{sha}.npy"
    if not path.exists():
        folder.mkdir(exist_ok=True)
        with atomic_output(path) as tmp:
            Path(tmp).write_bytes(data)
    return sha


def run_in_words(row: dict) -> str:
    """A run of runs.csv in words, for messages (any field may be missing from a stranger's row)."""
    return f"the run {row.get('method')} ratio {row.get('ratio')} N {row.get('n')} repeat {row.get('repeat')}"


def load_outcomes(results_dir, row: dict) -> np.ndarray:
    """The predicted class of each test clip of the run in `row`, checked against its sha256, its test set's size and
    its class count; a missing, altered or foreign file is refused in one line."""
    sha = row.get("outcomes") or ""
    fix = "delete its row from runs.csv and rerun the sweep: the run trains again and keeps its outcomes"
    where = run_in_words(row)
    if not sha:
        raise InputError(f"{where} in {Path(results_dir) / 'runs.csv'} has no per-clip outcomes (an older kwsprune's "
                         f"row): {fix}")
    if not _SHA.fullmatch(sha):
        raise InputError(f"{where} in {Path(results_dir) / 'runs.csv'}: its outcomes column {sha[:80]!r} is not a "
                         f"sha256: {fix}")
    path = Path(results_dir) / OUTCOMES_DIR / f"{sha}.npy"
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"{path} (outcomes of {where}) cannot be read ({err.strerror or err}): {fix}") from None
    if hashlib.sha256(data).hexdigest() != sha:
        raise InputError(f"{path} (outcomes of {where}) is not what its row recorded (its sha256 differs): {fix}")
    try:
        predicted = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as err:
        raise InputError(f"{path}: not a numpy array ({err}): {fix}") from None
    try:
        n_test, n_classes = int(row["n_test"]), int(row["n_classes"])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{where} in {Path(results_dir) / 'runs.csv'}: its n_test or n_classes is not a whole number: "
                         f"{fix}") from None
    if predicted.dtype != np.int16 or predicted.shape != (n_test,) or (predicted.size and not
                                                                       0 <= predicted.min() <= predicted.max() < n_classes):
        raise InputError(f"{path}: {predicted.dtype} {predicted.shape}, not {n_test} class ids below {n_classes} as its "
                         f"row says: {fix}")
    return predicted

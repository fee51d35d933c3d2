"""Checks on the arrays that flow between steps; each failure is one line naming the fix."""

import numpy as np


class InputError(ValueError):
    """Bad input from the user or a stale artefact: the message says what and how to fix it."""


def check_waveforms(x, name: str, n_samples: int | None = None) -> None:
    """`x` must be a finite float array of shape (n_clips, n_samples)."""
    if x.ndim != 2:
        raise InputError(f"{name} has shape {x.shape}, expected (n_clips, n_samples)")
    if n_samples is not None and x.shape[1] != n_samples:
        raise InputError(
            f"{name} has clips of {x.shape[1]} samples, expected {n_samples} (one second at 16 kHz): "
            "re-run prepare_dataset.py"
        )
    if not np.issubdtype(x.dtype, np.floating):
        raise InputError(f"{name} has dtype {x.dtype}, expected float32 audio")
    check_finite(x, name)


def check_finite(x, name: str, chunk_rows: int = 4096) -> None:
    """No NaN or inf anywhere in `x`; scans in chunks so memory maps stay cheap."""
    for start in range(0, len(x), chunk_rows):
        block = np.asarray(x[start:start + chunk_rows])
        if not np.isfinite(block).all():
            row = start + int(np.argwhere(~np.isfinite(block).reshape(len(block), -1).all(axis=1))[0, 0])
            raise InputError(f"{name} has NaN or inf values (first in row {row}): fix or remove that clip")


def check_labels(y, name: str, n_classes: int | None = None) -> None:
    """`y` must be a 1-d integer array of class ids in [0, n_classes)."""
    if y.ndim != 1:
        raise InputError(f"{name} has shape {y.shape}, expected (n_clips,)")
    if not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"{name} has dtype {y.dtype}, expected integer class ids")
    if len(y) and y.min() < 0:
        raise InputError(f"{name} has a negative class id {int(y.min())}")
    if n_classes is not None and len(y) and y.max() >= n_classes:
        raise InputError(f"{name} has class id {int(y.max())} but only {n_classes} classes are named")


def check_same_length(a, a_name: str, b, b_name: str, fix: str) -> None:
    """Two arrays that describe the same clips must have as many rows."""
    if len(a) != len(b):
        raise InputError(f"{a_name} has {len(a)} rows but {b_name} has {len(b)}: {fix}")

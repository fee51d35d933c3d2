"""Checks on the clips and arrays that flow into and between steps; each failure is one line naming the fix."""

import numpy as np


MIN_CLIP_SECONDS = 0.1  # shorter holds no word (FSDD's shortest real clip is 0.14 s)
SILENCE_PEAK = 1e-4     # -80 dBFS, about 3 steps of 16-bit audio: a clip no louder is silence


class InputError(ValueError):
    """Bad input from the user or a stale artefact: the message says what and how to fix it."""


class BadClip(InputError):
    """A source file that cannot be a clip; prepare_dataset.py --skip-bad-files skips it instead of stopping."""


def check_clip(audio, rate: int, path, truncation: str | None = None) -> None:
    """A decoded file (n_samples, channels) must be whole, finite, at least MIN_CLIP_SECONDS long and not silent,
    also once its channels are mixed to mono. `truncation`: what the decoder reported of a cut-off file."""
    fix = "remove or replace it, or pass --skip-bad-files to leave such files out"
    if truncation:
        raise BadClip(f"{path} is truncated ({truncation}): {fix}")
    if len(audio) == 0:
        raise BadClip(f"{path} holds no audio (a header without samples): {fix}")
    if not np.isfinite(audio).all():
        raise BadClip(f"{path} has NaN or inf samples: {fix}")
    if len(audio) < MIN_CLIP_SECONDS * rate:
        raise BadClip(f"{path} is {len(audio)} samples ({len(audio) / rate:.3f} s) long, shorter than "
                      f"{MIN_CLIP_SECONDS} s: {fix}")
    if np.ptp(audio, axis=0).max() <= 2 * SILENCE_PEAK:  # a constant offset (DC) carries no sound either
        raise BadClip(f"{path} is silent (no sample further than {SILENCE_PEAK} from a constant level): {fix}")
    if np.ptp(audio.mean(axis=1)) <= 2 * SILENCE_PEAK:
        raise BadClip(f"{path} is silent once its channels are mixed to mono (they cancel out): {fix}")


def is_number(value) -> bool:
    """Whether a value parsed from JSON is a real number (not a bool, not NaN): what a stranger's file must hold."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def load_npy(path, fix: str) -> np.ndarray:
    """A .npy file memory-mapped; a missing, truncated, junk or object-dtype file is one line naming it and `fix`."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"{path} is missing: {fix}") from None
    except (ValueError, OSError, EOFError) as err:
        raise InputError(f"{path} is not a readable .npy array of numbers ({err}): {fix}") from None


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

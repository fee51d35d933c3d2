"""Reading clips into one-second, 16 kHz, normalised float32 waveforms."""

import io

import numpy as np
import soundfile
import soxr

from kwsprune.paths import CLIP_SAMPLES, SAMPLE_RATE
from kwsprune.validation import BadClip, InputError, check_clip


def _truncation(decoder_log: str) -> str | None:
    """libsndfile logs 'data : 32000 (should be 15978)' for a file cut off before its header's length."""
    for line in decoder_log.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "data" and "should be" in value:
            promised, held = value.split("(should be")
            return f"its header promises {promised.strip()} bytes of audio, the file holds {held.strip(' )')}"
    return None


def read_clip(path, resample: bool = True, name=None) -> np.ndarray:
    """A file (a path, or the bytes of one, named `name` in messages) as mono float32 at 16 kHz, (n_samples,);
    resampled with soxr when `resample`. A file that is unreadable, truncated, empty, not finite, too short or
    silent is refused (BadClip)."""
    if isinstance(path, bytes):
        path, data = name, path
        opened = lambda: io.BytesIO(data)  # noqa: E731
    else:
        opened = lambda: path  # noqa: E731
    try:
        audio, rate = soundfile.read(opened(), dtype="float32", always_2d=True)
        truncation = _truncation(soundfile.info(opened()).extra_info)
    except (soundfile.LibsndfileError, RuntimeError) as err:
        reason = getattr(err, "error_string", err)
        raise BadClip(f"{path} is not readable audio ({reason}): remove it or convert it to WAV, or pass "
                      "--skip-bad-files to leave such files out") from None
    check_clip(audio, rate, path, truncation)
    audio = audio.mean(axis=1)
    if rate != SAMPLE_RATE:
        if not resample:
            raise InputError(
                f"{path} is sampled at {rate} Hz, not {SAMPLE_RATE}: drop --no-resample to resample it"
            )
        audio = soxr.resample(audio, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return audio


def fit_length(audio: np.ndarray, n_samples: int = CLIP_SAMPLES) -> np.ndarray:
    """Zero-pad a short clip at its end; crop a long one to its centre (the word is rarely at the edge)."""
    if len(audio) >= n_samples:
        start = (len(audio) - n_samples) // 2
        return audio[start:start + n_samples]
    return np.pad(audio, (0, n_samples - len(audio)))


def peak_normalise(audio: np.ndarray) -> np.ndarray:
    """Scale each clip (the last axis) so that its largest absolute sample is 1; silence stays silence."""
    audio = np.asarray(audio)
    peak = np.abs(audio).max(axis=-1, keepdims=True, initial=0.0)
    return (audio / np.where(peak > 0, peak, 1)).astype(np.float32)


def minmax_normalise(audio: np.ndarray) -> np.ndarray:
    """The original's normalize(): each clip (the last axis) mapped to [0, 1] by (x - min) / (max - min + 1e-8)."""
    audio = np.asarray(audio, np.float64)
    low, high = audio.min(axis=-1, keepdims=True), audio.max(axis=-1, keepdims=True)
    return ((audio - low) / (high - low + 1e-8)).astype(np.float32)


NORMALISERS = {"peak": peak_normalise, "minmax": minmax_normalise, "none": lambda audio: np.asarray(audio, np.float32)}


def normaliser(how: str):
    """The per-clip normalisation --normalise names: peak (kwsprune's default), minmax (the original's) or none."""
    if how not in NORMALISERS:
        raise InputError(f"--normalise {how!r}: choose one of {', '.join(NORMALISERS)}")
    return NORMALISERS[how]


def load_clip(path, resample: bool = True, how: str = "peak", name=None) -> np.ndarray:
    """A file (or its bytes, see read_clip) as the pipeline stores it: (16000,) float32, normalised as `how` says."""
    return normaliser(how)(fit_length(read_clip(path, resample, name)))

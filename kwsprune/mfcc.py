"""Step 2: MFCCs (or log-mel energies) of every split, a whole batch of clips at once.

The numbers are those of `python_speech_features.mfcc(signal, 16000, numcep=32, nfilt=32)`, the
original project's features (25 ms frames every 10 ms, nfft 512, pre-emphasis 0.97, a mel filterbank
from 0 Hz to Nyquist, log, orthonormal DCT-II, cepstral lifter 22, c0 replaced by the log frame
energy), computed with NumPy over (batch, frames, fft bins) arrays instead of clip by clip. With
features="logmel" they are `python_speech_features.logfbank(signal, 16000, nfilt=40)`: the log mel energies
before the DCT, what BC-ResNet reads (its paper's 40 bands).
"""

import functools
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.fft
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from kwsprune.artefacts import (check_computed_from, check_writable, command_line, input_key, load_verified, open_output, recorded_sha,
                                rerun, short_id, staged, verify_file, write_manifest)
from kwsprune.dataset import MADE_BY as DATASET_MADE_BY
from kwsprune.device import available_cores
from kwsprune.memory import keep_freed_memory
from kwsprune.paths import DATASET_DIR, MFCC_DIR, SAMPLE_RATE, SPLITS, clips_file, labels_file, mfcc_file, step_dir
from kwsprune.validation import InputError, check_waveforms, load_npy

MADE_BY = "extract_mfccs.py"
FEATURES = ("mfcc", "logmel")
DEFAULTS = dict(sample_rate=SAMPLE_RATE, winlen=0.025, winstep=0.01, numcep=32, nfilt=32, nfft=512,
                preemph=0.97, ceplifter=22, features="mfcc")
_EPS = np.finfo(float).eps  # python_speech_features replaces zeros by float64 eps before the log
_BAND_BINS = 64  # a band of filters spans at most this many FFT bins (or one filter's width)


def _hz_to_mel(hz):
    return 2595 * np.log10(1 + hz / 700.0)


def _mel_to_hz(mel):
    return 700 * (10 ** (mel / 2595.0) - 1)


def mel_filterbank(nfilt: int, nfft: int, sample_rate: int) -> np.ndarray:
    """Triangular filters on the mel scale, (nfilt, nfft // 2 + 1), bins rounded as python_speech_features does."""
    mel_points = np.linspace(_hz_to_mel(0), _hz_to_mel(sample_rate / 2), nfilt + 2)
    bins = np.floor((nfft + 1) * _mel_to_hz(mel_points) / sample_rate).astype(int)
    bank = np.zeros((nfilt, nfft // 2 + 1))
    for j in range(nfilt):
        left, centre, right = bins[j], bins[j + 1], bins[j + 2]
        bank[j, left:centre] = (np.arange(left, centre) - left) / (centre - left)
        bank[j, centre:right] = (right - np.arange(centre, right)) / (right - centre)
    return bank


def n_frames(n_samples: int, winlen=DEFAULTS["winlen"], winstep=DEFAULTS["winstep"], sample_rate=SAMPLE_RATE) -> int:
    """Frames per clip: 99 for one second at the defaults (the last frame zero-padded)."""
    frame_len = int(math.floor(winlen * sample_rate + 0.5))
    frame_step = int(math.floor(winstep * sample_rate + 0.5))
    if n_samples <= frame_len:
        return 1
    return 1 + int(math.ceil((n_samples - frame_len) / frame_step))


def _filter_bands(bank: np.ndarray) -> list:
    """The filterbank (nfilt, bins) cut into bands of neighbouring filters: (first filter, last + 1, first bin,
    last bin + 1, weights (bins, filters)). A triangle covers few bins: by bands the mel step is ~4x fewer
    multiplications than the dense (257, 32) product, over the same terms."""
    covered = [np.flatnonzero(row) if row.any() else np.array([0]) for row in bank]
    widest = max(c[-1] + 1 - c[0] for c in covered)
    bands, first = [], 0
    for j in range(1, len(bank) + 1):
        if j == len(bank) or covered[j][-1] + 1 - min(c[0] for c in covered[first:j + 1]) > max(_BAND_BINS, widest):
            low, high = min(c[0] for c in covered[first:j]), max(c[-1] for c in covered[first:j]) + 1
            bands.append((first, j, low, high, np.ascontiguousarray(bank[first:j, low:high].T)))
            first = j
    return bands


@functools.cache
def _plan(n_samples, sample_rate, winlen, winstep, numcep, nfilt, nfft, preemph, ceplifter, features) -> dict:
    """Everything about the MFCCs of clips of n_samples that does not depend on the clips."""
    frame_len = int(math.floor(winlen * sample_rate + 0.5))
    frame_step = int(math.floor(winstep * sample_rate + 0.5))
    frames_per_clip = n_frames(n_samples, winlen, winstep, sample_rate)
    bank = mel_filterbank(nfilt, nfft, sample_rate) / nfft  # the power spectrum's 1 / nfft folded in
    # log mel energies and log frame energy (nfilt + 1) -> cepstra: orthonormal DCT-II, lifter, c0 = log energy
    lifter = 1 + (ceplifter / 2.0) * np.sin(np.pi * np.arange(numcep) / ceplifter) if ceplifter > 0 else 1.0
    cepstral = np.zeros((nfilt + 1, numcep))
    cepstral[:nfilt] = scipy.fft.dct(np.eye(nfilt), type=2, axis=-1, norm="ortho")[:, :numcep] * lifter
    cepstral[:, 0] = 0
    cepstral[nfilt, 0] = 1
    if features == "logmel":  # the log mel energies themselves: the identity in place of the DCT, no energy column
        cepstral, numcep = np.eye(nfilt + 1)[:, :nfilt], nfilt
    return dict(frame_len=frame_len, frame_step=frame_step, frames_per_clip=frames_per_clip, nfft=nfft,
                padded_len=(frames_per_clip - 1) * frame_step + frame_len, preemph=preemph, nfilt=nfilt,
                bands=_filter_bands(bank), cepstral=cepstral, numcep=numcep)


def _mfccs_into(x, out, plan: dict, chunk: int = 8) -> None:
    """MFCCs of clips x (n, n_samples) into out (n, n_frames, numcep), chunk clips at a time through buffers
    allocated once: each step's arrays stay in cache, and no memory goes back and forth to the kernel."""
    frames_per_clip, nfft, nfilt = plan["frames_per_clip"], plan["nfft"], plan["nfilt"]
    width = min(plan["frame_len"], nfft)  # python_speech_features truncates frames longer than nfft
    n_samples = x.shape[1]
    padded = np.zeros((chunk, plan["padded_len"]))
    shifted = np.empty((chunk, n_samples - 1))
    frames = np.zeros((chunk, frames_per_clip, nfft))
    spectrum = np.empty((chunk, frames_per_clip, nfft // 2 + 1), complex)
    power = np.empty((chunk * frames_per_clip, nfft // 2 + 1))
    mel_energy = np.empty((chunk * frames_per_clip, nfilt + 1))  # the last column: the frame's energy
    cepstra = np.empty((chunk * frames_per_clip, plan["numcep"]))
    for start in range(0, len(x), chunk):
        clips = x[start:start + chunk]
        n, rows = len(clips), len(clips) * frames_per_clip
        padded[:n, :n_samples] = clips
        np.multiply(padded[:n, :n_samples - 1], plan["preemph"], out=shifted[:n])
        padded[:n, 1:n_samples] -= shifted[:n]  # pre-emphasis
        windows = np.lib.stride_tricks.sliding_window_view(padded[:n], plan["frame_len"], axis=1)
        frames[:n, :, :width] = windows[:, ::plan["frame_step"], :width]
        np.fft.rfft(frames[:n], axis=-1, out=spectrum[:n])
        squares = spectrum[:n].view(np.float64).reshape(rows, -1)
        np.square(squares, out=squares)
        np.add(squares[:, 0::2], squares[:, 1::2], out=power[:rows])
        for first, end, low, high, weights in plan["bands"]:
            np.matmul(power[:rows, low:high], weights, out=mel_energy[:rows, first:end])
        power[:rows].sum(axis=-1, out=mel_energy[:rows, nfilt])
        mel_energy[:rows, nfilt] /= nfft
        mel_energy[:rows][mel_energy[:rows] == 0] = _EPS
        np.log(mel_energy[:rows], out=mel_energy[:rows])
        np.matmul(mel_energy[:rows], plan["cepstral"], out=cepstra[:rows])
        out[start:start + n] = cepstra[:rows].reshape(n, frames_per_clip, -1)


def _plan_for(x, params: dict) -> dict:
    return _plan(x.shape[1], **{**DEFAULTS, **params})


def mfcc_batch(x, **params) -> np.ndarray:
    """MFCCs of equal-length clips, (n_clips, n_samples) -> (n_clips, n_frames, numcep) float64, one thread.

    All in float64 as python_speech_features: even the FFT alone in float32 misses it by 1.8e-4 on the Speech
    Commands sample, whose quiet bands fall below float32's noise floor.
    """
    plan = _plan_for(x, params)
    out = np.empty((len(x), plan["frames_per_clip"], plan["numcep"]))
    with threadpool_limits(1, user_api="blas"):
        _mfccs_into(x, out, plan)
    return out


def mfccs(x, n_threads: int | None = None, out=None, **params) -> np.ndarray:
    """MFCCs of many clips, (n_clips, n_samples) -> (n_clips, n_frames, numcep) float32, one thread a core;
    written into out (a memory-mapped file's rows, say) when it is given.

    The FFT and NumPy let go of the GIL; BLAS is held to one thread per thread (its small products would
    otherwise fight over the cores).
    """
    keep_freed_memory()
    plan = _plan_for(x, params)
    if out is None:
        out = np.empty((len(x), plan["frames_per_clip"], plan["numcep"]), np.float32)
    share = 256  # clips a task: enough to pay for its buffers, few enough to balance the threads

    def fill(start):
        _mfccs_into(x[start:start + share], out[start:start + share], plan)

    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(n_threads or available_cores()) as pool:
        list(pool.map(fill, range(0, len(x), share)))
    return out


def extract_mfccs(data_root, batch_size: int = 1024, **params) -> dict:
    """Step 2: `MFCCs/{split}_MFCCs.npy` (n, 99, 32) float32 for every split, with a manifest; features="logmel":
    (n, 99, nfilt) log mel energies in the same files (the manifest's params say which)."""
    params = {**DEFAULTS, **params}
    if params["features"] not in FEATURES:
        raise InputError(f"--features {params['features']!r}: choose one of {', '.join(FEATURES)}")
    if params["features"] == "logmel":
        params["numcep"] = params["nfilt"]
    elif params["numcep"] > params["nfilt"]:
        raise InputError(f"--numcep {params['numcep']} is more than the {params['nfilt']} mel filters (--nfilt): "
                         "a cepstrum has at most as many coefficients as filters")
    dataset_dir = step_dir(data_root, DATASET_DIR)
    check_writable(step_dir(data_root, MFCC_DIR))
    inputs, files = {}, []
    with staged(step_dir(data_root, MFCC_DIR), replaces_listed=True) as out_dir:
        for split in SPLITS:
            name = clips_file(split)
            inputs[input_key(dataset_dir, name)] = verify_file(dataset_dir, name, DATASET_MADE_BY)
            x = load_npy(dataset_dir / name, rerun(dataset_dir, DATASET_MADE_BY))
            check_waveforms(x, str(dataset_dir / name))
            shape = (len(x), n_frames(x.shape[1], params["winlen"], params["winstep"], params["sample_rate"]),
                     params["numcep"])
            out = open_output(out_dir / mfcc_file(split), np.float32, shape)
            for start in tqdm(range(0, len(x), batch_size), desc=f"{split} MFCCs", unit="batch"):
                mfccs(x[start:start + batch_size], out=out[start:start + batch_size], **params)
            out.flush()
            del out
            files.append(mfcc_file(split))
        command = command_line(MADE_BY, data_root, {"--features": params["features"], "--numcep": params["numcep"],
                                                    "--nfilt": params["nfilt"]})
        return write_manifest(out_dir, "extract_mfccs", params, inputs, files, command=command)


def load_mfccs(data_root, split: str) -> np.ndarray:
    """MFCCs of one split (n, 99, 32), memory-mapped, checked against their manifest; refused if Dataset_as_Numpy
    now holds other clips than they were computed from (compared by the manifests: the clips are not read)."""
    dataset_dir, mfcc_dir = step_dir(data_root, DATASET_DIR), step_dir(data_root, MFCC_DIR)
    name = clips_file(split)
    check_computed_from(mfcc_dir, MADE_BY, dataset_dir, name, recorded_sha(dataset_dir, name, DATASET_MADE_BY))
    return load_verified(mfcc_dir, mfcc_file(split), MADE_BY)


def data_id(data_root) -> str:
    """The id that rows and caches record for the training data: the MFCCs and labels of every split, taken
    from their manifests (nothing is read)."""
    dataset_dir, mfcc_dir = step_dir(data_root, DATASET_DIR), step_dir(data_root, MFCC_DIR)
    return short_id(*[recorded_sha(mfcc_dir, mfcc_file(split), MADE_BY) for split in SPLITS],
                    *[recorded_sha(dataset_dir, labels_file(split), DATASET_MADE_BY) for split in SPLITS])

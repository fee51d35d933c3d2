"""Step 2: MFCCs of every split, a whole batch of clips at once.

The numbers are those of `python_speech_features.mfcc(signal, 16000, numcep=32, nfilt=32)`, the
original project's features (25 ms frames every 10 ms, nfft 512, pre-emphasis 0.97, a mel filterbank
from 0 Hz to Nyquist, log, orthonormal DCT-II, cepstral lifter 22, c0 replaced by the log frame
energy), computed with NumPy over (batch, frames, fft bins) arrays instead of clip by clip.
"""

import math

import numpy as np
import scipy.fft
from tqdm import tqdm

from kwsprune.artefacts import (check_computed_from, command_line, input_key, load_verified, open_output, recorded_sha,
                                short_id, staged, verify_file, write_manifest)
from kwsprune.dataset import MADE_BY as DATASET_MADE_BY
from kwsprune.dataset import class_names
from kwsprune.paths import DATASET_DIR, MFCC_DIR, SAMPLE_RATE, SPLITS, clips_file, labels_file, mfcc_file, step_dir
from kwsprune.validation import InputError, check_same_length, check_waveforms

MADE_BY = "extract_mfccs.py"
DEFAULTS = dict(sample_rate=SAMPLE_RATE, winlen=0.025, winstep=0.01, numcep=32, nfilt=32, nfft=512,
                preemph=0.97, ceplifter=22)
_EPS = np.finfo(float).eps  # python_speech_features replaces zeros by float64 eps before the log


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


def mfcc_batch(x, sample_rate=SAMPLE_RATE, winlen=0.025, winstep=0.01, numcep=32, nfilt=32, nfft=512,
               preemph=0.97, ceplifter=22) -> np.ndarray:
    """MFCCs of equal-length clips, (n_clips, n_samples) -> (n_clips, n_frames, numcep) float64.

    All in float64 as python_speech_features: a float32 FFT is twice as fast but misses it by up to
    8e-4 on real clips, whose quiet high bands (8 kHz recordings, say) fall below float32's noise floor.
    """
    x = np.asarray(x, dtype=np.float64)
    frame_len = int(math.floor(winlen * sample_rate + 0.5))
    frame_step = int(math.floor(winstep * sample_rate + 0.5))
    frames_per_clip = n_frames(x.shape[1], winlen, winstep, sample_rate)
    padded = np.zeros((len(x), (frames_per_clip - 1) * frame_step + frame_len))
    padded[:, 0] = x[:, 0]
    np.subtract(x[:, 1:], preemph * x[:, :-1], out=padded[:, 1:x.shape[1]])
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame_len, axis=1)[:, ::frame_step]
    spectrum = scipy.fft.rfft(frames, nfft, axis=-1, workers=-1)  # the transforms spread over every core
    power = spectrum.real**2
    power += spectrum.imag**2
    power /= nfft
    energy = power.sum(axis=-1)
    energy[energy == 0] = _EPS
    mel_energy = power @ mel_filterbank(nfilt, nfft, sample_rate).T
    mel_energy[mel_energy == 0] = _EPS
    cepstra = scipy.fft.dct(np.log(mel_energy), type=2, axis=-1, norm="ortho")[..., :numcep]
    if ceplifter > 0:
        cepstra *= 1 + (ceplifter / 2.0) * np.sin(np.pi * np.arange(numcep) / ceplifter)
    cepstra[..., 0] = np.log(energy)
    return cepstra


def mfccs(x, chunk: int = 32, **params) -> np.ndarray:
    """MFCCs of many clips, (n_clips, n_samples) -> (n_clips, n_frames, numcep) float32.

    Chunks of 32 clips keep each FFT's working set in cache: twice as fast as one big batch here.
    """
    return np.concatenate([mfcc_batch(x[s:s + chunk], **params).astype(np.float32) for s in range(0, len(x), chunk)])


def extract_mfccs(data_root, batch_size: int = 1024, **params) -> dict:
    """Step 2: `MFCCs/{split}_MFCCs.npy` (n, 99, 32) float32 for every split, with a manifest."""
    params = {**DEFAULTS, **params}
    if params["numcep"] > params["nfilt"]:
        raise InputError(f"--numcep {params['numcep']} is more than the {params['nfilt']} mel filters (--nfilt): "
                         "a cepstrum has at most as many coefficients as filters")
    dataset_dir = step_dir(data_root, DATASET_DIR)
    inputs, files = {}, []
    with staged(step_dir(data_root, MFCC_DIR), replaces_listed=True) as out_dir:
        for split in SPLITS:
            name = clips_file(split)
            inputs[input_key(dataset_dir, name)] = verify_file(dataset_dir, name, DATASET_MADE_BY)
            x = np.load(dataset_dir / name, mmap_mode="r")
            check_waveforms(x, str(dataset_dir / name))
            shape = (len(x), n_frames(x.shape[1], params["winlen"], params["winstep"], params["sample_rate"]),
                     params["numcep"])
            out = open_output(out_dir / mfcc_file(split), np.float32, shape)
            for start in tqdm(range(0, len(x), batch_size), desc=f"{split} MFCCs", unit="batch"):
                out[start:start + batch_size] = mfccs(x[start:start + batch_size], **params)
            out.flush()
            del out
            files.append(mfcc_file(split))
        command = command_line(MADE_BY, data_root, {"--numcep": params["numcep"], "--nfilt": params["nfilt"]})
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


def load_training_data(data_root) -> dict:
    """MFCCs (x_train, x_valid, x_test) and labels (y_*) of every split in memory, each file checked once
    against its manifest; with the class count (labels.json) and the data id."""
    dataset_dir = step_dir(data_root, DATASET_DIR)
    data = {"n_classes": len(class_names(data_root)), "id": data_id(data_root)}
    for split in SPLITS:
        x = np.array(load_mfccs(data_root, split))
        y = np.array(load_verified(dataset_dir, labels_file(split), DATASET_MADE_BY))
        check_same_length(x, f"{MFCC_DIR}/{mfcc_file(split)}", y, labels_file(split), "re-run extract_mfccs.py")
        data[f"x_{split}"], data[f"y_{split}"] = x, y
    return data

"""Step 2: the batched MFCCs equal python_speech_features.mfcc, the original's features."""

import numpy as np
import pytest
from python_speech_features import mfcc

import extract_mfccs
import prepare_dataset
from kwsprune.mfcc import load_mfccs, mfcc_batch, mfccs
from kwsprune.validation import InputError


def reference(clips):
    return np.array([mfcc(clip.astype(np.float64), 16000, numcep=32, nfilt=32) for clip in clips])


@pytest.mark.parametrize("dataset", ["fsdd", "speech_commands"])
def test_equal_to_python_speech_features_on_real_clips(dataset, fsdd_dir, speech_commands_dir, tmp_path):
    source = {"fsdd": fsdd_dir, "speech_commands": speech_commands_dir}[dataset]
    prepare_dataset.main(["--data-root", str(tmp_path), "--source", dataset, "--path", str(source), "--words", "all"])
    clips = np.load(tmp_path / "Dataset_as_Numpy" / "train_x.npy")[:100]
    expected = reference(clips)
    assert np.abs(mfcc_batch(clips) - expected).max() < 1e-9
    stored = mfccs(clips)
    assert stored.dtype == np.float32 and stored.shape == (100, 99, 32)
    assert np.abs(stored - expected).max() < 1e-4  # float32 rounding of values up to ~100


def test_log_mel_bands_equal_python_speech_features_logfbank(speech_commands_dir, tmp_path):
    """--features logmel: BC-ResNet's 40 log-mel bands, the same numbers as logfbank on real clips."""
    from python_speech_features import logfbank

    prepare_dataset.main(["--data-root", str(tmp_path), "--source", "speech_commands", "--path", str(speech_commands_dir),
                          "--words", "all"])
    clips = np.load(tmp_path / "Dataset_as_Numpy" / "train_x.npy")[:40]
    expected = np.array([logfbank(clip.astype(np.float64), 16000, nfilt=40) for clip in clips])
    assert np.abs(mfcc_batch(clips, features="logmel", nfilt=40) - expected).max() < 1e-9
    extract_mfccs.main(["--data-root", str(tmp_path), "--features", "logmel", "--nfilt", "40"])
    stored = load_mfccs(tmp_path, "train")
    assert stored.shape[1:] == (99, 40)
    np.testing.assert_allclose(stored[:40], expected, atol=1e-4)


def test_silence_and_a_single_clip():
    clips = np.zeros((2, 16000), np.float32)
    clips[1, 3000:3400] = np.hanning(400)
    np.testing.assert_allclose(mfcc_batch(clips), reference(clips), atol=1e-9)
    np.testing.assert_allclose(mfcc_batch(clips[1:]), reference(clips[1:]), atol=1e-9)


@pytest.mark.parametrize("params", [
    dict(nfft=256),  # frames of 400 samples truncated to the FFT size, as python_speech_features does
    dict(nfilt=40, numcep=13, ceplifter=0),
    dict(winlen=0.04, winstep=0.02, preemph=0.5),
])
def test_other_parameters_and_lengths_match_python_speech_features(params):
    clips = np.random.default_rng(0).standard_normal((3, 12345)).astype(np.float32)
    expected = np.array([mfcc(clip.astype(np.float64), 16000, **{"numcep": 32, "nfilt": 32, **params}) for clip in clips])
    np.testing.assert_allclose(mfcc_batch(clips, **params), expected, atol=1e-9)
    # spread over threads, in chunks of 8 that do not divide the clip count: the same numbers
    many = np.repeat(clips, 100, axis=0)  # 300 clips: two tasks of up to 256
    np.testing.assert_allclose(mfccs(many, **params), np.repeat(expected, 100, axis=0), atol=1e-4)


def test_step_writes_every_split_and_refuses_stale_mfccs(fresh_demo_root, capsys):
    root = fresh_demo_root
    extract_mfccs.main(["--data-root", str(root), "--batch-size", "64"])
    train = load_mfccs(root, "train")
    clips = np.load(root / "Dataset_as_Numpy" / "train_x.npy")
    assert train.shape == (len(clips), 99, 32)
    np.testing.assert_allclose(train[:5], reference(clips[:5]), atol=1e-4)
    # new clips in Dataset_as_Numpy: the MFCCs no longer describe them
    prepare_dataset.main(["--data-root", str(root), "--source", "synth", "--n-speakers", "40", "--seed", "3"])
    with pytest.raises(InputError, match="computed from a different Dataset_as_Numpy/train_x.npy"):
        load_mfccs(root, "train")


def test_a_tampered_dataset_is_refused(fresh_demo_root, capsys):
    path = fresh_demo_root / "Dataset_as_Numpy" / "valid_x.npy"
    x = np.load(path)
    x[0, 0] += 0.5
    np.save(path, x)
    with pytest.raises(SystemExit):
        extract_mfccs.main(["--data-root", str(fresh_demo_root)])
    assert "valid_x.npy does not match" in capsys.readouterr().err
    assert not (fresh_demo_root / "MFCCs" / "manifest.json").exists()

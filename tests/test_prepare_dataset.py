"""Step 0: audio into Dataset_as_Numpy/, on the demo data and on real audio."""

import io
import json
import tarfile
from collections import Counter

import numpy as np
import pytest
import soundfile

import prepare_dataset
from kwsprune.artefacts import file_sha256, read_manifest
from kwsprune.sources import download_speech_commands, speaker_hash_split, speech_commands_clips

SPLITS = ("train", "valid", "test")


def load(root, name):
    return np.load(root / "Dataset_as_Numpy" / name)


def files(root, split):
    return (root / "Dataset_as_Numpy" / f"{split}_files.txt").read_text().splitlines()


def fail(argv, capsys) -> str:
    """Run prepare_dataset.py expecting a one-line error; return that line."""
    with pytest.raises(SystemExit) as exit_info:
        prepare_dataset.main(argv)
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("error: ")
    return message


def test_demo_data_is_one_second_peak_normalised_and_sorted(demo_root):
    total = 0
    for split in SPLITS:
        x, y = load(demo_root, f"{split}_x.npy"), load(demo_root, f"{split}_y.npy")
        names = files(demo_root, split)
        assert x.dtype == np.float32 and x.shape == (len(y), 16000) and y.dtype == np.int64
        np.testing.assert_allclose(np.abs(x).max(axis=1), 1.0, rtol=1e-6)
        assert names == sorted(names) and len(names) == len(y)
        total += len(y)
    assert total == 400  # 40 speakers x 10 words
    labels = json.loads((demo_root / "Dataset_as_Numpy" / "labels.json").read_text())
    assert labels == ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
    assert set(load(demo_root, "train_y.npy")) == set(range(10))


def test_demo_split_keeps_each_speaker_in_one_split(demo_root):
    speakers = {split: set(load(demo_root, f"{split}_speakers.npy")) for split in SPLITS}
    assert not speakers["train"] & speakers["valid"] and not speakers["train"] & speakers["test"]
    assert not speakers["valid"] & speakers["test"]
    for split, names in speakers.items():
        assert all(speaker_hash_split(s) == split for s in names)


def test_demo_data_is_deterministic_for_a_seed(demo_root, tmp_path):
    prepare_dataset.main(["--data-root", str(tmp_path), "--source", "synth", "--n-speakers", "40", "--seed", "2"])
    again = read_manifest(tmp_path / "Dataset_as_Numpy", "prepare_dataset.py")["files"]
    first = read_manifest(demo_root / "Dataset_as_Numpy", "prepare_dataset.py")["files"]
    assert again == first


def test_speaker_hash_split_is_about_80_10_10():
    counts = Counter(speaker_hash_split(f"speaker{i}") for i in range(20000))
    assert abs(counts["valid"] / 20000 - 0.1) < 0.01 and abs(counts["test"] / 20000 - 0.1) < 0.01


def test_fsdd_official_split(fsdd_dir, tmp_path):
    prepare_dataset.main(["--data-root", str(tmp_path), "--source", "fsdd", "--path", str(fsdd_dir)])
    assert [len(load(tmp_path, f"{s}_y.npy")) for s in SPLITS] == [2400, 300, 300]
    assert all(int(name.split("_")[2][:-4]) < 5 for name in files(tmp_path, "test"))
    assert all(5 <= int(name.split("_")[2][:-4]) < 10 for name in files(tmp_path, "valid"))
    assert np.bincount(load(tmp_path, "test_y.npy")).tolist() == [30] * 10  # 6 speakers x 5 per digit
    first = files(tmp_path, "train")[0]
    assert load(tmp_path, "train_y.npy")[0] == int(first[0])
    # an 8 kHz clip was resampled: nothing above 4 kHz but the resampler's tail
    spectrum = np.abs(np.fft.rfft(load(tmp_path, "train_x.npy")[:50], axis=1)) ** 2
    assert spectrum[:, 4100:].sum() < 1e-3 * spectrum.sum()


def test_speech_commands_official_lists(speech_commands_dir, tmp_path):
    prepare_dataset.main(["--data-root", str(tmp_path), "--source", "speech_commands",
                          "--path", str(speech_commands_dir), "--words", "all"])
    assert [len(load(tmp_path, f"{s}_y.npy")) for s in SPLITS] == [205, 44, 51]
    listed = set((speech_commands_dir / "validation_list.txt").read_text().split())
    assert set(files(tmp_path, "valid")) <= listed
    assert not set(files(tmp_path, "train")) & listed
    assert len(json.loads((tmp_path / "Dataset_as_Numpy" / "labels.json").read_text())) == 30


def test_speech_commands_core_words_by_default(speech_commands_dir):
    clips, names = speech_commands_clips(speech_commands_dir)
    assert names[:3] == ["yes", "no", "up"] and len(names) == 10
    assert len(clips) == 100 and {c.label for c in clips} == set(names)


def test_folder_source_splits_by_speaker_hash(speech_commands_dir, tmp_path):
    prepare_dataset.main(["--data-root", str(tmp_path), "--source", "folder", "--path", str(speech_commands_dir)])
    for split in SPLITS:
        assert all(speaker_hash_split(s) == split for s in load(tmp_path, f"{split}_speakers.npy"))
    assert sum(len(load(tmp_path, f"{s}_y.npy")) for s in SPLITS) == 300


def write_tone_folder(root, rate, n_speakers=40):
    """A folder source of 3 classes of tones, one clip per speaker and class (each speaker's at its own phase, so no
    two files are copies), at `rate` Hz."""
    t = np.arange(int(0.5 * rate)) / rate
    for k, label in enumerate(("low", "mid", "high")):
        (root / label).mkdir(parents=True)
        for s in range(n_speakers):
            tone = 0.3 * np.sin(2 * np.pi * 300 * (k + 1) * t + 0.1 * s)
            soundfile.write(root / label / f"spk{s}_nohash_0.wav", tone, rate)


def test_folder_source_resamples_to_16k(tmp_path, capsys):
    write_tone_folder(tmp_path / "tones", 8000)
    prepare_dataset.main(["--data-root", str(tmp_path), "--source", "folder", "--path", str(tmp_path / "tones")])
    x, y = load(tmp_path, "train_x.npy"), load(tmp_path, "train_y.npy")
    high = x[y == 0][0]  # 'high' sorts first: a 900 Hz tone, half a second then zeros
    peak_hz = np.argmax(np.abs(np.fft.rfft(high))) * 16000 / len(high)
    assert abs(peak_hz - 900) < 5 and np.all(high[8100:] == 0)
    message = fail(["--data-root", str(tmp_path / "other"), "--source", "folder",
                    "--path", str(tmp_path / "tones"), "--no-resample"], capsys)
    assert "8000 Hz" in message and "--no-resample" in message and ".wav" in message


def test_bad_sources_get_one_clear_line(tmp_path, capsys):
    assert "is not a folder" in fail(["--data-root", str(tmp_path), "--source", "fsdd", "--path", str(tmp_path / "nope")], capsys)
    write_tone_folder(tmp_path / "tones", 16000)
    (tmp_path / "tones" / "empty").mkdir()
    assert "['empty'] have no training clips" in fail(
        ["--data-root", str(tmp_path), "--source", "folder", "--path", str(tmp_path / "tones")], capsys)


def test_a_file_that_is_not_audio_leaves_the_old_dataset_intact(demo_root, tmp_path, capsys):
    import shutil

    shutil.copytree(demo_root / "Dataset_as_Numpy", tmp_path / "Dataset_as_Numpy")
    before = read_manifest(tmp_path / "Dataset_as_Numpy", "prepare_dataset.py")
    write_tone_folder(tmp_path / "tones", 16000)
    (tmp_path / "tones" / "mid" / "spk3_nohash_1.wav").write_text("not audio")
    message = fail(["--data-root", str(tmp_path), "--source", "folder", "--path", str(tmp_path / "tones")], capsys)
    assert "spk3_nohash_1.wav is not readable audio" in message
    folder = tmp_path / "Dataset_as_Numpy"
    assert read_manifest(folder, "prepare_dataset.py") == before
    assert not [p.name for p in folder.iterdir() if "partial" in p.name]
    from kwsprune.dataset import load_split

    x, y = load_split(tmp_path, "train")  # still matches its manifest
    assert len(x) == len(y)


def test_numpy_source_checks_your_arrays(tmp_path, capsys):
    source = tmp_path / "mine"
    source.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 20), ("valid", 5), ("test", 5)):
        np.save(source / f"{split}_x.npy", rng.uniform(-1, 1, (n, 16000)).astype(np.float32))
        np.save(source / f"{split}_y.npy", np.arange(n) % 3)
    prepare_dataset.main(["--data-root", str(tmp_path), "--source", "numpy", "--path", str(source)])
    np.testing.assert_array_equal(load(tmp_path, "train_x.npy"), np.load(source / "train_x.npy"))  # as they are
    prepare_dataset.main(["--data-root", str(tmp_path), "--source", "numpy", "--path", str(source), "--normalise", "peak"])
    np.testing.assert_allclose(np.abs(load(tmp_path, "train_x.npy")).max(axis=1), 1.0, rtol=1e-6)
    bad = np.load(source / "valid_x.npy")
    bad[2, 7] = np.nan
    np.save(source / "valid_x.npy", bad)
    assert "NaN" in fail(["--data-root", str(tmp_path), "--source", "numpy", "--path", str(source)], capsys)
    np.save(source / "valid_x.npy", bad[:4, :8000])
    assert "8000 samples" in fail(["--data-root", str(tmp_path), "--source", "numpy", "--path", str(source)], capsys)
    np.save(source / "valid_x.npy", np.zeros((4, 16000), np.float32))
    assert "valid_x.npy has 4 rows but valid_y.npy has 5" in fail(
        ["--data-root", str(tmp_path), "--source", "numpy", "--path", str(source)], capsys)


def test_download_extracts_the_archive(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (("validation_list.txt", b"yes/a_nohash_0.wav\n"), ("testing_list.txt", b"")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    archive = tmp_path / "speech_commands_v0.02.tar.gz"
    archive.write_bytes(buffer.getvalue())
    download_speech_commands(tmp_path / "sc", url=archive.as_uri())
    assert (tmp_path / "sc" / "validation_list.txt").read_text() == "yes/a_nohash_0.wav\n"


def test_download_without_network_says_what_to_fetch(tmp_path):
    from kwsprune.validation import InputError

    with pytest.raises(InputError, match="download it and extract it into"):
        download_speech_commands(tmp_path / "sc", url=(tmp_path / "missing.tar.gz").as_uri())


def test_folder_split_by_speaker_when_the_hash_leaves_a_split_empty(tmp_path, capsys):
    write_tone_folder(tmp_path / "tones", 16000, n_speakers=3)  # spk0-2 all hash to train
    prepare = ["--data-root", str(tmp_path), "--source", "folder", "--path", str(tmp_path / "tones")]
    message = fail(prepare, capsys)
    assert "the valid split is empty" in message and "--split speakers" in message
    prepare_dataset.main([*prepare, "--split", "speakers"])  # the fix the message names works
    speakers = {split: set(load(tmp_path, f"{split}_speakers.npy")) for split in SPLITS}
    assert all(len(names) == 1 for names in speakers.values())  # 3 speakers: one in each split
    assert set.union(*speakers.values()) == {"spk0", "spk1", "spk2"}
    assert read_manifest(tmp_path / "Dataset_as_Numpy", "prepare_dataset.py")["params"]["split"] == \
        "seeded speaker-grouped 80/10/10"
    prepare_dataset.main([*prepare, "--split", "speakers", "--seed", "1"])
    assert {split: set(load(tmp_path, f"{split}_speakers.npy")) for split in SPLITS} != speakers
    write_tone_folder(tmp_path / "two", 16000, n_speakers=2)
    assert "needs at least 3 speakers, found 2" in fail(
        ["--data-root", str(tmp_path), "--source", "folder", "--path", str(tmp_path / "two"), "--split", "speakers"], capsys)


def test_folder_split_by_lists(tmp_path, capsys):
    write_tone_folder(tmp_path / "tones", 16000, n_speakers=4)
    (tmp_path / "tones" / "mid").rename(tmp_path / "tones" / "zoom in")  # as in Arabic Speech Commands
    prepare = ["--data-root", str(tmp_path), "--source", "folder", "--path", str(tmp_path / "tones"), "--split", "lists"]
    assert "validation_list.txt is missing" in fail(prepare, capsys)
    (tmp_path / "tones" / "validation_list.txt").write_text("low/spk1_nohash_0.wav\nzoom in/spk1_nohash_0.wav\n")
    (tmp_path / "tones" / "testing_list.txt").write_text("high/spk2_nohash_0.wav\n")
    prepare_dataset.main(prepare)
    assert files(tmp_path, "valid") == ["low/spk1_nohash_0.wav", "zoom in/spk1_nohash_0.wav"]
    assert files(tmp_path, "test") == ["high/spk2_nohash_0.wav"] and len(files(tmp_path, "train")) == 9


def test_a_larger_evaluation_set_from_lists_kept_elsewhere(tmp_path, capsys, caplog):
    write_tone_folder(tmp_path / "tones", 16000, n_speakers=4)
    clips = lambda *speakers: "".join(f"{word}/{s}_nohash_0.wav\n" for s in speakers for word in ("low", "mid", "high"))
    (tmp_path / "valid.txt").write_text(clips("spk1"))
    (tmp_path / "test.txt").write_text("\ufeff" + clips("spk2", "spk3"), encoding="utf-8")  # a byte-order mark, as Excel saves
    prepare = ["--data-root", str(tmp_path), "--source", "folder", "--path", str(tmp_path / "tones"), "--split", "lists",
               "--valid-list", str(tmp_path / "valid.txt")]
    prepare_dataset.main([*prepare, "--test-list", str(tmp_path / "test.txt")])
    assert len(files(tmp_path, "test")) == 6 and len(files(tmp_path, "train")) == 3  # half the speakers evaluate
    params = read_manifest(tmp_path / "Dataset_as_Numpy", "prepare_dataset.py")["params"]
    assert params["test_list"] == {"path": str(tmp_path / "test.txt"), "sha256": file_sha256(tmp_path / "test.txt")}
    assert "also speak in training" not in caplog.text

    (tmp_path / "some.txt").write_text("high/spk2_nohash_0.wav\n")  # one of spk2's clips: spk2 stays in training too
    prepare_dataset.main([*prepare, "--test-list", str(tmp_path / "some.txt")])
    assert "1 of the 1 test speakers also speak in training (the first: 'spk2')" in caplog.text
    assert "tones/testing_list.txt is missing" in fail([*prepare], capsys)  # no --test-list: the folder's own
    assert "is for --source speech_commands or --source folder --split lists" in fail(
        ["--data-root", str(tmp_path), "--source", "folder", "--path", str(tmp_path / "tones"),
         "--test-list", str(tmp_path / "test.txt")], capsys)


def test_a_speaker_spelled_in_two_unicode_forms_is_one_speaker_in_one_split(tmp_path):
    import unicodedata

    write_tone_folder(tmp_path / "tones", 16000, n_speakers=6)
    for label, form in (("low", "NFC"), ("mid", "NFD"), ("high", "NFC")):  # macOS writes NFD, Linux keeps what it gets
        (tmp_path / "tones" / label / "spk0_nohash_0.wav").rename(
            tmp_path / "tones" / label / unicodedata.normalize(form, "José_nohash_0.wav"))
    prepare_dataset.main(["--data-root", str(tmp_path), "--source", "folder", "--path", str(tmp_path / "tones"),
                          "--split", "speakers"])
    holding = [split for split in SPLITS if "José" in set(load(tmp_path, f"{split}_speakers.npy"))]
    assert len(holding) == 1 and list(load(tmp_path, f"{holding[0]}_speakers.npy")).count("José") == 3


def test_normalise_peak_minmax_or_none(tmp_path):
    write_tone_folder(tmp_path / "tones", 16000)
    peaks = {}
    for how in ("peak", "minmax", "none"):
        prepare_dataset.main(["--data-root", str(tmp_path / how), "--source", "folder", "--path", str(tmp_path / "tones"),
                              "--normalise", how])
        x = load(tmp_path / how, "train_x.npy")
        peaks[how] = (x.min(axis=1), x.max(axis=1), np.abs(x).max(axis=1))
        assert read_manifest(tmp_path / how / "Dataset_as_Numpy", "prepare_dataset.py")["params"]["normalise"] == how
    np.testing.assert_allclose(peaks["peak"][2], 1.0, rtol=1e-6)
    np.testing.assert_allclose(peaks["minmax"][0], 0.0, atol=1e-6)  # the original's: into [0, 1]
    np.testing.assert_allclose(peaks["minmax"][1], 1.0, rtol=1e-6)
    np.testing.assert_allclose(peaks["none"][2], 0.3, rtol=1e-3)  # the tones as written: amplitude 0.3

"""Hostile input and faults, one test per family: each is refused (or skipped) with one line and its exit code,
and no good file written before changes."""

import csv
import errno
import io
import os

import numpy as np
import pytest
import soundfile

import extract_embeddings
import extract_mfccs
import prepare_dataset
import pruning
import run_all_classifications
from conftest import a_run_row
from kwsprune.artefacts import FOLDER_LOCK, file_sha256

SPEECH = "yes/439c84f4_nohash_1.wav"  # a real one-second clip of the Speech Commands sample


def fail(main, argv, capsys, code=2) -> str:
    """Run a step expecting exit status `code` and one line on stderr (after any progress bars); return it."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == code
    lines = [line for line in capsys.readouterr().err.strip().splitlines() if "it/s]" not in line and "%|" not in line]
    assert lines and "Traceback" not in "\n".join(lines)
    return lines[-1]


def fingerprint(folder) -> dict:
    """Every file of a step folder by its content: what must not change when a step fails (its lock and the record
    of who holds it are the running step's, not outputs)."""
    return {p.name: file_sha256(p) for p in sorted(folder.iterdir())
            if p.is_file() and p.name not in (FOLDER_LOCK, f"{FOLDER_LOCK}.holder")}


def hostile_files(folder, speech_commands_dir):
    """One of each broken file, made from a real clip."""
    data = (speech_commands_dir / SPEECH).read_bytes()
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, 16000)
    (folder / "truncated.wav").write_bytes(data[:len(data) // 2])
    (folder / "header_only.wav").write_bytes(data[:44])
    soundfile.write(folder / "channels_cancel.wav", np.stack([noise, -noise], axis=1), 16000)
    soundfile.write(folder / "one_sample.wav", np.array([0.5]), 16000)
    with_nan = noise.astype(np.float32)
    with_nan[100] = np.nan
    soundfile.write(folder / "nan.wav", with_nan, 16000, subtype="FLOAT")
    soundfile.write(folder / "silent.wav", np.zeros(16000), 16000)
    return {"truncated.wav": "is truncated", "header_only.wav": "is truncated", "channels_cancel.wav": "they cancel out",
            "one_sample.wav": "is 1 samples", "nan.wav": "NaN or inf", "silent.wav": "is silent"}


def speakers_folder(root, speech_commands_dir, n_speakers=6):
    """A folder source of two words, one real clip per speaker and word (the same clip, scaled per speaker)."""
    audio, rate = soundfile.read(speech_commands_dir / SPEECH)
    for word, scale in (("one", 1.0), ("two", -0.5)):
        (root / word).mkdir(parents=True)
        for s in range(n_speakers):
            soundfile.write(root / word / f"spk{s}_nohash_0.wav", scale * audio * (0.5 + s / 10), rate)
    return root


def test_broken_audio_is_refused_one_file_at_a_time_or_skipped(speech_commands_dir, tmp_path, capsys):
    source = speakers_folder(tmp_path / "words", speech_commands_dir)
    prepare = ["--data-root", str(tmp_path), "--source", "folder", "--path", str(source), "--split", "speakers"]
    prepare_dataset.main(prepare)
    good = fingerprint(tmp_path / "Dataset_as_Numpy")
    bad = tmp_path / "bad"
    bad.mkdir()
    problems = hostile_files(bad, speech_commands_dir)
    for name, problem in problems.items():
        (bad / name).rename(source / "two" / name)
        line = fail(prepare_dataset.main, prepare, capsys)
        assert line.startswith("error: ") and name in line and problem in line and "--skip-bad-files" in line
        assert fingerprint(tmp_path / "Dataset_as_Numpy") == good  # the dataset of before is untouched
        (source / "two" / name).rename(bad / name)
    for name in problems:
        (bad / name).rename(source / "two" / f"spk9_nohash_{name}")
    prepare_dataset.main([*prepare, "--skip-bad-files"])
    skipped = (tmp_path / "Dataset_as_Numpy" / "skipped_files.txt").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in skipped) == sorted(f"two/spk9_nohash_{name}" for name in problems)
    assert sum(len(np.load(tmp_path / "Dataset_as_Numpy" / f"{s}_y.npy")) for s in ("train", "valid", "test")) == 12


def test_labels_must_be_every_class_of_training_and_more_than_one(tmp_path, capsys):
    source = tmp_path / "arrays"
    source.mkdir()
    rng = np.random.default_rng(0)

    def arrays(train, valid, test):
        for split, labels in (("train", train), ("valid", valid), ("test", test)):
            np.save(source / f"{split}_x.npy", rng.uniform(-1, 1, (len(labels), 16000)).astype(np.float32))
            np.save(source / f"{split}_y.npy", np.array(labels))
        return ["--data-root", str(tmp_path), "--source", "numpy", "--path", str(source)]

    assert "no clip of 12 class ids (1, 2, 3, 4, 6, 7, 8, 9, ...)" in fail(prepare_dataset.main,
                                                                          arrays([0, 5, 10, 15], [0], [5]), capsys)
    assert "no clip of 1 class ids (2)" in fail(prepare_dataset.main, arrays([0, 1, 0, 1], [0], [2]), capsys)
    assert "1 class: a classifier needs at least 2" in fail(prepare_dataset.main, arrays([0, 0, 0], [0], [0]), capsys)
    prepare = arrays([0, 1], [0], [1])
    np.save(source / "valid_x.npy", np.array([["a"] * 16000], dtype=object))
    assert "valid_x.npy is not a readable .npy array" in fail(prepare_dataset.main, prepare, capsys)
    prepare = arrays([0, 1], [0], [1])
    (source / "test_y.npy").write_bytes(b"junk")
    assert "test_y.npy is not a readable .npy array" in fail(prepare_dataset.main, prepare, capsys)
    prepare = arrays([0, 1], [0], [1])
    np.save(source / "test_x.npy", np.zeros((0, 16000), np.float32))
    assert "test_x.npy holds no clips" in fail(prepare_dataset.main, prepare, capsys)


def test_flag_values_are_checked_before_any_work(fresh_features_root, tmp_path, capsys):
    root = str(fresh_features_root)
    for argv, flag in ((["--k", "0"], "--k"), (["--k", "-3"], "--k"), (["--max-epochs", "0"], "--max-epochs"),
                       (["--repeats", "0"], "--repeats"), (["--repeats", "-2"], "--repeats"),
                       (["--batch-size", "0"], "--batch-size"), (["--n-init", "0"], "--n-init")):
        line = fail(run_all_classifications.main, ["--data-root", root, *argv], capsys)
        assert flag in line
    assert "--pca 500 is more than the 96 dimensions" in fail(pruning.main, ["--data-root", root, "--pca", "500"], capsys)
    assert "--pca" in fail(pruning.main, ["--data-root", root, "--pca", "0"], capsys)
    assert "drop --layer" in fail(extract_embeddings.main, ["--data-root", root, "--model", "speech-embedding",
                                                            "--layer", "50"], capsys)
    (tmp_path / "a_file").write_text("")
    assert "is a file" in fail(pruning.main, ["--data-root", str(tmp_path / "a_file")], capsys)
    assert not (fresh_features_root / "y_pruned" / "k0_ninit10_seed0").exists()


def test_ctrl_c_and_a_full_disk_end_in_one_line_and_keep_the_old_outputs(fresh_features_root, capsys, monkeypatch):
    root = fresh_features_root
    before = fingerprint(root / "MFCCs")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr("kwsprune.mfcc.mfccs", interrupt)
        assert "interrupted" in fail(extract_mfccs.main, ["--data-root", str(root)], capsys, code=130)
    assert fingerprint(root / "MFCCs") == before and not list((root / "MFCCs").glob(".staging*"))

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:
        patch.setattr("os.posix_fallocate", full)
        line = fail(extract_mfccs.main, ["--data-root", str(root)], capsys, code=1)  # the README's status of a full disk
        assert "no space left on the device for" in line and "train_MFCCs.npy" in line
    assert fingerprint(root / "MFCCs") == before and not list((root / "MFCCs").glob(".staging*"))


def test_a_failed_pruning_keeps_the_kept_sets_of_before(fresh_features_root, capsys, monkeypatch):
    root = fresh_features_root
    prune = ["--data-root", str(root), "--k", "4", "--ratios", "0.3"]
    pruning.main(prune)
    folder = root / "y_pruned" / "k4_ninit10_seed0"
    before = fingerprint(folder)

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr("kwsprune.pruning.run_method", broken)
        fail(pruning.main, [*prune, "--ratios", "0.3", "0.5"], capsys, code=130)
    assert fingerprint(folder) == before
    # a kept file on disk that the manifest does not list: the sweep prunes it again instead of stopping
    np.save(folder / "y_keep_hard_pruning_k4_0.2.npy", np.arange(3))
    run_all_classifications.main(["--data-root", str(root), "--model", "tiny", "--n", "all", "--k", "4", "--ratios", "0.2",
                                  "--methods", "keep_hard", "--repeats", "1", "--max-epochs", "1"])
    assert len(np.load(folder / "y_keep_hard_pruning_k4_0.2.npy")) > 3


def test_a_move_in_killed_half_way_is_undone_by_the_next_run(tmp_path):
    from kwsprune.artefacts import PREVIOUS, STAGING, recover

    folder = tmp_path / "MFCCs"
    folder.mkdir()
    (folder / "manifest.json").write_text("old")
    (folder / "a.npy").write_text("old a")
    # the kill came after a.npy was replaced and before the manifest was: old files aside, new manifest still staged
    (folder / PREVIOUS).mkdir()
    (folder / STAGING).mkdir()
    os.replace(folder / "manifest.json", folder / PREVIOUS / "manifest.json")
    os.replace(folder / "a.npy", folder / PREVIOUS / "a.npy")
    (folder / "a.npy").write_text("new a")
    (folder / STAGING / "manifest.json").write_text("new")
    recover(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["a.npy", "manifest.json"]
    assert (folder / "a.npy").read_text() == "old a" and (folder / "manifest.json").read_text() == "old"


def test_a_full_disk_while_appending_rows_leaves_no_half_row(fresh_features_root, monkeypatch):
    from kwsprune.results import append_rows, read_runs

    results = fresh_features_root / "results"
    results.mkdir()
    row = a_run_row()
    append_rows(results, [row])
    before = (results / "runs.csv").read_bytes()
    real_write = os.write

    def half_then_full(fd, data):
        real_write(fd, data[:len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:
        patch.setattr("os.write", half_then_full)
        with pytest.raises(OSError):
            append_rows(results, [{**row, "repeat": "2"}, {**row, "repeat": "3"}])
    assert (results / "runs.csv").read_bytes() == before and len(read_runs(results)) == 1


SMALL_SWEEP = ["--model", "tiny", "--n", "40", "--k", "4", "--ratios", "0.3", "--methods", "keep_hard", "random", "--repeats", "1",
               "--max-epochs", "1"]


def plot_main():
    import importlib.util

    from kwsprune.paths import REPO_ROOT

    spec = importlib.util.spec_from_file_location("plot_results", REPO_ROOT / "Plots" / "plot_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_numeric_flags_refuse_non_finite_and_out_of_range_values(fresh_features_root, capsys):
    root = ["--data-root", str(fresh_features_root)]
    for argv, words in ((["--learning-rate", "inf"], "--learning-rate inf"), (["--learning-rate", "nan"], "--learning-rate"),
                        (["--seed", "-1"], "--seed"), (["--seed", str(2**64)], "--seed"), (["--alpha", "nan"], "--alpha"),
                        (["--ratios", "inf"], "--ratios"), (["--margin", "-inf"], "--margin")):
        assert words in fail(run_all_classifications.main, [*root, *SMALL_SWEEP, *argv], capsys)
    assert "--seed" in fail(pruning.main, [*root, "--seed", "-1"], capsys)
    assert "--seed" in fail(prepare_dataset.main, [*root, "--seed", str(2**64)], capsys)
    assert not (fresh_features_root / "results").exists() and not (fresh_features_root / "y_pruned").exists()


def test_an_offline_hub_fails_at_once_with_how_to_get_the_model(fresh_features_root, capsys, monkeypatch):
    import transformers

    asked = []

    def from_pretrained(name, local_files_only=False, **kwargs):
        asked.append(local_files_only)
        raise OSError(f"{name} is not in the cache")

    monkeypatch.setattr("kwsprune.embeddings.hub_reachable", lambda: False)
    monkeypatch.setattr(transformers.AutoFeatureExtractor, "from_pretrained", from_pretrained)
    line = fail(extract_embeddings.main, ["--data-root", str(fresh_features_root), "--model", "no-such-model"], capsys)
    assert asked == [True]  # the cache alone: no minute of retries against an unreachable hub
    assert "'no-such-model'" in line and "cannot be reached" in line and "save_pretrained" in line


def test_a_read_only_data_root_is_refused_before_any_work(fresh_features_root, capsys, monkeypatch):
    root = fresh_features_root
    pruning.main(["--data-root", str(root), "--k", "4", "--ratios", "0.3", "--methods", "keep_hard"])
    run_all_classifications.main(["--data-root", str(root), *SMALL_SWEEP])
    before = (root / "results" / "runs.csv").read_bytes()
    real = type(root).write_bytes

    def read_only(path, data):
        if path.name.startswith(".write-probe"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real(path, data)

    monkeypatch.setattr(type(root), "write_bytes", read_only)
    trained = []
    monkeypatch.setattr("kwsprune.classify.train_job", lambda *args, **kwargs: trained.append(1))
    for main, argv in ((run_all_classifications.main, [*SMALL_SWEEP, "--repeats", "2"]),
                       (pruning.main, ["--k", "4", "--ratios", "0.5"]), (extract_mfccs.main, []),
                       (prepare_dataset.main, ["--source", "synth", "--n-speakers", "3"]), (plot_main(), [])):
        line = fail(main, ["--data-root", str(root), *argv], capsys)
        assert "cannot be written (Read-only file system)" in line and "--data-root" in line
    assert not trained and (root / "results" / "runs.csv").read_bytes() == before


def test_a_full_disk_is_found_before_a_sweep_trains(fresh_features_root, capsys, monkeypatch):
    import collections
    import shutil

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10**6, 10**6))
    line = fail(run_all_classifications.main, ["--data-root", str(fresh_features_root), *SMALL_SWEEP], capsys, code=1)
    assert "no space left on the device" in line and "MB needed" in line
    assert not (fresh_features_root / "results" / "runs.csv").exists()


def test_history_csvs_come_back_after_a_full_disk_stopped_them(fresh_features_root, capsys, monkeypatch):
    from kwsprune.results import read_runs

    argv = ["--data-root", str(fresh_features_root), *SMALL_SWEEP]

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:
        patch.setattr("kwsprune.results.write_history", full)
        fail(run_all_classifications.main, argv, capsys, code=1)
    rows = read_runs(fresh_features_root / "results")
    assert len(rows) == 2 and not list((fresh_features_root / "results").glob("history/*/history_*.csv"))
    run_all_classifications.main(argv)  # space freed: nothing to train, the CSVs are written from runs.csv
    histories = list((fresh_features_root / "results").glob("history/*/history_*.csv"))
    assert sorted(len(path.read_text().splitlines()) for path in histories) == [1, 1]


def test_a_row_whose_accuracy_is_not_a_number_is_refused_naming_its_line(fresh_features_root, capsys):
    from kwsprune.results import RUN_FIELDS, read_runs

    argv = ["--data-root", str(fresh_features_root), *SMALL_SWEEP]
    run_all_classifications.main(argv)
    path = fresh_features_root / "results" / "runs.csv"
    rows = read_runs(path.parent)
    lines = path.read_text().splitlines(keepends=True)
    values = next(csv.reader([lines[1]]))
    values[RUN_FIELDS.index("test_acc")] = "nan"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    lines[1] = out.getvalue()
    path.write_text("".join(lines))
    message = fail(run_all_classifications.main, argv, capsys)
    assert f"{path}, line 2: the row has test_acc 'nan', which is not an accuracy in [0, 1]" in message
    assert "delete that line (its run trains again)" in message
    path.write_text("".join(lines[:1] + lines[2:]))  # the fix the line names works
    run_all_classifications.main(argv)
    again = read_runs(path.parent)
    assert len(again) == 2 and sorted(row["method"] for row in again) == sorted(row["method"] for row in rows)


def test_a_fix_command_in_a_copied_data_root_names_the_copy(fresh_features_root, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(fresh_features_root, copy)
    (copy / "MFCCs" / "train_MFCCs.npy").write_bytes(b"changed")
    line = fail(pruning.main, ["--data-root", str(copy), "--k", "4", "--ratios", "0.3", "--methods", "el2n"], capsys)
    assert f"--data-root {copy} " in line and str(fresh_features_root) not in line


def test_the_chance_hint_never_advises_what_is_in_use(caplog):
    from kwsprune.classify import report_chance

    row = {"model": "tiny", "method": "random", "ratio": "1.0", "k": "", "n": "1", "n_used": "1", "batch_used": "16",
           "batch_size": "auto", "epochs": "20", "max_epochs": "170", "n_test": "400", "chance": "0.1",
           "n_classes": "10", "test_acc": "0.1"}
    report_chance([{**row, "repeat": str(r)} for r in range(3)])
    assert "raise --n" in caplog.text and "try --batch-size auto" not in caplog.text
    caplog.clear()
    report_chance([{**row, "batch_size": "512", "batch_used": "512", "n": "600", "n_used": "600", "repeat": "0"}])
    assert "try --batch-size auto" in caplog.text
    caplog.clear()
    report_chance([{**row, "model": "logreg", "epochs": "170", "repeat": "0"}])  # a head: fitted, no epochs or batches
    assert "more clips (N) may help" in caplog.text and "--batch-size" not in caplog.text and "--max-epochs" not in caplog.text

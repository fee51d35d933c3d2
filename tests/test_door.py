"""The door of prepare_dataset.py: folders and lists as users make them (symlinks, copies, odd file names, lists in
another spelling) give every clip one label and one split, or one line that says what to fix."""

import os
import unicodedata

import numpy as np
import pytest
import soundfile

import prepare_dataset
from kwsprune.paths import DATASET_DIR
from test_hostile import fail

RATE = 16000


def word_folder(root, words=("one", "two"), n_speakers=6, name="spk{s}_nohash_0.wav"):
    """A folder source: each word a tone of its own, each speaker's clip at its own phase (no two files alike)."""
    t = np.arange(RATE) / RATE
    for w, word in enumerate(words):
        (root / word).mkdir(parents=True, exist_ok=True)
        for s in range(n_speakers):
            soundfile.write(root / word / name.format(s=s), 0.3 * np.sin(2 * np.pi * 300 * (w + 1) * t + 0.1 * s), RATE)
    return root


def prepare(tmp_path, source, *flags):
    return ["--data-root", str(tmp_path / "root"), "--source", "folder", "--path", str(source), "--split", "speakers",
            *flags]


def rows_and_names(tmp_path, split="train"):
    folder = tmp_path / "root" / DATASET_DIR
    x = np.load(folder / f"{split}_x.npy")
    names = (folder / f"{split}_files.txt").read_text(encoding="utf-8").splitlines()
    return len(x), names


def test_a_class_folder_that_links_to_another_is_not_a_second_class(tmp_path, capsys):
    source = word_folder(tmp_path / "words")
    (source / "three").symlink_to(source / "one", target_is_directory=True)
    line = fail(prepare_dataset.main, prepare(tmp_path, source), capsys)
    assert "byte-identical across classes" in line and "one/spk0_nohash_0.wav (class one" in line
    assert "three/spk0_nohash_0.wav (class three" in line and "symlinked folder" in line
    assert not (tmp_path / "root" / DATASET_DIR / "manifest.json").exists()


def test_a_folder_linked_inside_its_own_class_is_read_once(tmp_path):
    source = word_folder(tmp_path / "words")
    (source / "one" / "again").symlink_to(source / "one", target_is_directory=True)  # rglob does not loop on it
    (source / "two" / "more").mkdir()
    (source / "two" / "more" / "spk0_nohash_0.wav").symlink_to(source / "two" / "spk0_nohash_0.wav")
    prepare_dataset.main(prepare(tmp_path, source))
    counts = [rows_and_names(tmp_path, split)[0] for split in ("train", "valid", "test")]
    assert sum(counts) == 12  # 2 words x 6 speakers, each real file once


def test_a_training_clip_copied_into_the_test_split_is_refused_or_left_out(tmp_path, capsys):
    source = word_folder(tmp_path / "words")
    (source / "one" / "leaked_nohash_0.wav").write_bytes((source / "one" / "spk0_nohash_0.wav").read_bytes())
    lists = ["--split", "lists"]
    (source / "validation_list.txt").write_text("one/spk1_nohash_0.wav\ntwo/spk1_nohash_0.wav\n")
    (source / "testing_list.txt").write_text("one/leaked_nohash_0.wav\ntwo/spk2_nohash_0.wav\none/spk2_nohash_0.wav\n")
    argv = ["--data-root", str(tmp_path / "root"), "--source", "folder", "--path", str(source), *lists]
    line = fail(prepare_dataset.main, argv, capsys)
    assert "one/leaked_nohash_0.wav (class one, test) = one/spk0_nohash_0.wav (class one, train)" in line
    assert "--drop-duplicates" in line

    prepare_dataset.main([*argv, "--drop-duplicates"])
    _, train = rows_and_names(tmp_path, "train")
    _, test = rows_and_names(tmp_path, "test")
    assert "one/spk0_nohash_0.wav" not in train and "one/leaked_nohash_0.wav" not in test
    skipped = (tmp_path / "root" / DATASET_DIR / "skipped_files.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in skipped] == ["one/leaked_nohash_0.wav", "one/spk0_nohash_0.wav"]


def test_a_clip_under_two_labels_is_refused(tmp_path, capsys):
    source = word_folder(tmp_path / "words")
    (source / "two" / "odd_nohash_0.wav").write_bytes((source / "one" / "spk3_nohash_0.wav").read_bytes())
    line = fail(prepare_dataset.main, prepare(tmp_path, source), capsys)
    assert "(class one," in line and "two/odd_nohash_0.wav (class two," in line


@pytest.mark.parametrize("odd_name, why", [("new\nline_nohash_0.wav", "newline"),
                                           (os.fsdecode(b"caf\xe9_nohash_0.wav"), "not UTF-8")])
def test_a_file_name_a_list_cannot_hold_is_refused_or_skipped_never_misaligned(tmp_path, capsys, odd_name, why):
    source = word_folder(tmp_path / "words")
    os.replace(source / "one" / "spk0_nohash_0.wav", os.fsencode(source / "one") + b"/" + os.fsencode(odd_name))
    line = fail(prepare_dataset.main, prepare(tmp_path, source), capsys)
    assert why in line and "--skip-bad-files" in line

    prepare_dataset.main(prepare(tmp_path, source, "--skip-bad-files"))
    for split in ("train", "valid", "test"):
        n_rows, names = rows_and_names(tmp_path, split)
        assert n_rows == len(names)  # one line a row: row i is the clip named on line i
    skipped = (tmp_path / "root" / DATASET_DIR / "skipped_files.txt").read_text(encoding="utf-8")
    assert ascii("one/" + odd_name) in skipped


def test_a_clip_of_constant_offset_is_silent(tmp_path, capsys):
    source = word_folder(tmp_path / "words")
    soundfile.write(source / "one" / "dc_nohash_0.wav", np.full(RATE, 0.25), RATE)
    line = fail(prepare_dataset.main, prepare(tmp_path, source), capsys)
    assert "dc_nohash_0.wav is silent" in line and "constant level" in line


def test_a_clip_in_both_lists_is_named(tmp_path, capsys):
    source = word_folder(tmp_path / "words")
    (source / "validation_list.txt").write_text("one/spk1_nohash_0.wav\ntwo/spk1_nohash_0.wav\n")
    (source / "testing_list.txt").write_text("one/spk1_nohash_0.wav\ntwo/spk2_nohash_0.wav\n")
    line = fail(prepare_dataset.main, ["--data-root", str(tmp_path / "root"), "--source", "folder", "--path",
                                       str(source), "--split", "lists"], capsys)
    assert f"{source}/validation_list.txt and {source}/testing_list.txt: 1 entries are in both lists" in line
    assert "one/spk1_nohash_0.wav" in line


def test_lists_of_absolute_paths_match_and_lists_that_match_nothing_say_so(tmp_path, capsys):
    source = word_folder(tmp_path / "words")
    argv = ["--data-root", str(tmp_path / "root"), "--source", "folder", "--path", str(source), "--split", "lists"]
    (source / "validation_list.txt").write_text(f"{source}/one/spk1_nohash_0.wav\n{source}/two/spk1_nohash_0.wav\n")
    (source / "testing_list.txt").write_text(f"{source}/one/spk2_nohash_0.wav\n{source}/two/spk2_nohash_0.wav\n")
    prepare_dataset.main(argv)
    assert rows_and_names(tmp_path, "valid")[1] == ["one/spk1_nohash_0.wav", "two/spk1_nohash_0.wav"]

    (source / "testing_list.txt").write_text("/elsewhere/one/spk2_nohash_0.wav\n")
    line = fail(prepare_dataset.main, argv, capsys)
    assert "testing_list.txt: none of its 1 entries names a file" in line and "/elsewhere/one/spk2_nohash_0.wav" in line


def test_list_entries_match_whatever_unicode_form_they_are_written_in(tmp_path):
    source = word_folder(tmp_path / "words", words=("café", "thé"))
    nfd = lambda text: unicodedata.normalize("NFD", text)  # noqa: E731 - as macOS writes names
    (source / "validation_list.txt").write_text(nfd("café/spk1_nohash_0.wav\nthé/spk1_nohash_0.wav\n"))
    (source / "testing_list.txt").write_text(nfd("café/spk2_nohash_0.wav\nthé/spk2_nohash_0.wav\n"))
    prepare_dataset.main(["--data-root", str(tmp_path / "root"), "--source", "folder", "--path", str(source),
                          "--split", "lists"])
    assert rows_and_names(tmp_path, "valid")[0] == rows_and_names(tmp_path, "test")[0] == 2
    assert rows_and_names(tmp_path, "train")[0] == 8


def test_copies_within_a_class_and_split_are_counted_and_kept_once_with_drop_duplicates(tmp_path, caplog):
    source = word_folder(tmp_path / "words")
    for copy in range(3):  # a speaker's clip saved four times under four names, as the Bengali digits hold them
        (source / "one" / f"spk0_nohash_{copy + 1}.wav").write_bytes((source / "one" / "spk0_nohash_0.wav").read_bytes())
    prepare_dataset.main(prepare(tmp_path, source))
    assert "4 files are byte-identical copies within their class and split (1 groups" in caplog.text
    assert sum(rows_and_names(tmp_path, split)[0] for split in ("train", "valid", "test")) == 15

    prepare_dataset.main(prepare(tmp_path, source, "--drop-duplicates"))
    names = [name for split in ("train", "valid", "test") for name in rows_and_names(tmp_path, split)[1]]
    assert len(names) == 12 and "one/spk0_nohash_0.wav" in names


def test_lists_beside_folders_without_audio_say_so_in_one_line(tmp_path, capsys):
    source = tmp_path / "words"
    for word in ("one", "two"):
        (source / word).mkdir(parents=True)
    (source / "validation_list.txt").write_text("one/a.wav\n")
    (source / "testing_list.txt").write_text("two/b.wav\n")
    line = fail(prepare_dataset.main, ["--data-root", str(tmp_path / "root"), "--source", "folder", "--path",
                                       str(source), "--split", "lists"], capsys)
    assert "none of its 1 entries names a file" in line


def test_flags_and_arrays_that_cannot_be_meant_are_refused_before_any_work(tmp_path, capsys):
    source = word_folder(tmp_path / "words")
    line = fail(prepare_dataset.main, prepare(tmp_path, source, "--speaker-regex", "([a-z"), capsys)
    assert "--speaker-regex '([a-z' is not a regular expression" in line and "the default" in line
    line = fail(prepare_dataset.main, ["--data-root", str(tmp_path / "root"), "--source", "synth", "--n-speakers",
                                       "100000000"], capsys)
    assert "--n-speakers 100000000: the demo's voices make at most" in line
    arrays = tmp_path / "arrays"
    arrays.mkdir()
    for split in ("train", "valid", "test"):
        np.save(arrays / f"{split}_x.npy", np.zeros((3, 16000), np.float32) + np.arange(3)[:, None] * 0.1)
        np.save(arrays / f"{split}_y.npy", np.array([0, 1, 1_000_000_000]))  # a typo: no billion-entry set is built
    line = fail(prepare_dataset.main, ["--data-root", str(tmp_path / "root"), "--source", "numpy", "--path", str(arrays)],
                capsys)
    assert "has no clip of 999999998 class ids (2, 3, 4, 5, 6, 7, 8, 9, ...)" in line
    assert not (tmp_path / "root" / DATASET_DIR / "train_x.npy").exists()


def test_a_speaker_regex_that_reads_the_class_is_named_with_the_fix(tmp_path, capsys):
    source = tmp_path / "digits"
    t = np.arange(RATE) / RATE
    for digit in range(3):  # FSDD's names, digit_speaker_index.wav: the default regex reads the digit
        (source / str(digit)).mkdir(parents=True)
        for s in range(6):
            soundfile.write(source / str(digit) / f"{digit}_spk{s}_0.wav", 0.3 * np.sin(2 * np.pi * 300 * (digit + 1) * t
                                                                                        + 0.1 * s), RATE)
    line = fail(prepare_dataset.main, prepare(tmp_path, source), capsys)
    assert "--speaker-regex '^([^_]+)_' finds 3 speakers, each in one class only" in line and "'^[^_]+_([^_]+)_'" in line
    prepare_dataset.main(prepare(tmp_path, source, "--speaker-regex", "^[^_]+_([^_]+)_"))  # the fix the line names works

"""Step folders as a stranger may leave them: nothing in one is followed out of the data root, so no step moves,
empties or deletes files elsewhere."""

import json

import extract_mfccs
from test_hostile import fail, fingerprint


def outside_folder(tmp_path):
    """A folder outside the data root holding a file a step would move if it followed a link there."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "train_MFCCs.npy").write_bytes(b"not yours")
    return outside


def test_a_previous_folder_that_links_out_is_refused_before_anything_moves(fresh_features_root, tmp_path, capsys):
    outside, mfccs = outside_folder(tmp_path), fresh_features_root / "MFCCs"
    before = fingerprint(mfccs)
    (mfccs / ".previous").symlink_to(outside)  # with a staging folder left by a kill, recovery would empty it into MFCCs/
    (mfccs / ".staging-1").mkdir()
    (mfccs / ".staging-1" / "x.npy").write_bytes(b"new")
    line = fail(extract_mfccs.main, ["--data-root", str(fresh_features_root)], capsys)
    assert f"{mfccs}/.previous is a symbolic link (to {outside})" in line and "remove the link" in line
    assert (outside / "train_MFCCs.npy").read_bytes() == b"not yours" and fingerprint(mfccs) == before


def test_a_step_folder_that_is_a_link_is_refused(fresh_features_root, tmp_path, capsys):
    outside, mfccs = outside_folder(tmp_path), fresh_features_root / "MFCCs"
    mfccs.rename(tmp_path / "moved")
    mfccs.symlink_to(outside)
    line = fail(extract_mfccs.main, ["--data-root", str(fresh_features_root)], capsys)
    assert f"{mfccs} is a symbolic link" in line
    assert sorted(p.name for p in outside.iterdir()) == ["train_MFCCs.npy"]


def test_a_manifest_listing_a_path_out_of_its_folder_moves_nothing_there(fresh_features_root, tmp_path):
    outside, mfccs = outside_folder(tmp_path), fresh_features_root / "MFCCs"
    manifest = json.loads((mfccs / "manifest.json").read_text())
    manifest["files"]["../../elsewhere/train_MFCCs.npy"] = manifest["files"]["train_MFCCs.npy"]
    (mfccs / "manifest.json").write_text(json.dumps(manifest))
    extract_mfccs.main(["--data-root", str(fresh_features_root)])  # a crafted manifest: the step makes its files again
    assert (outside / "train_MFCCs.npy").read_bytes() == b"not yours"


def plant_objects(folder, name):
    """An object-dtype .npy (a pickle inside) in place of `name`, its manifest made to match: only loading can tell."""
    import numpy as np

    from kwsprune.artefacts import file_sha256

    np.save(folder / name, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][name]["sha256"] = file_sha256(folder / name)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_an_object_array_planted_in_a_step_folder_is_refused_in_one_line(fresh_features_root, capsys):
    import pruning
    import run_all_classifications

    root = fresh_features_root
    sweep = ["--data-root", str(root), "--model", "tiny", "--n", "40", "--k", "4", "--ratios", "0.3", "--methods",
             "random", "--repeats", "1", "--max-epochs", "1"]
    for folder, name, step, argv in (
            ("MFCCs", "train_MFCCs.npy", run_all_classifications.main, sweep),
            ("Dataset_as_Numpy", "test_y.npy", run_all_classifications.main, sweep),
            ("wav2vec_features", "train_features.npy", pruning.main, ["--data-root", str(root), "--k", "4", "--ratios",
                                                                     "0.5", "--methods", "herding"])):
        saved = (root / folder / name).read_bytes(), (root / folder / "manifest.json").read_bytes()
        plant_objects(root / folder, name)
        line = fail(step, argv, capsys)
        assert f"{root / folder / name} is not a readable .npy array of numbers" in line, line
        (root / folder / name).write_bytes(saved[0])
        (root / folder / "manifest.json").write_bytes(saved[1])


def test_a_manifest_that_is_not_one_is_refused_and_one_no_sweep_uses_stops_nothing(fresh_features_root, capsys,
                                                                                  caplog):
    import run_all_classifications

    root = fresh_features_root
    sweep = ["--data-root", str(root), "--model", "tiny", "--n", "40", "--k", "4", "--ratios", "0.3", "--methods",
             "keep_hard", "random", "--repeats", "1", "--max-epochs", "1"]
    unused = root / "y_pruned" / "k7_ninit10_seed0"
    unused.mkdir(parents=True)
    (unused / "manifest.json").write_text("[1, 2]")  # a set-up no sweep here uses
    run_all_classifications.main(sweep)
    assert "y_pruned/k7_ninit10_seed0/manifest.json is not a manifest kwsprune writes (a JSON list" in caplog.text
    mfccs = root / "MFCCs" / "manifest.json"
    for text, problem in (("[1, 2]", "a JSON list, not an object"),
                          ('{"files": {"../x.npy": {"sha256": "' + "0" * 64 + '"}}}', "which is not a file name"),
                          ('{"files": {"train_MFCCs.npy": {}}}', "holds no sha256")):
        mfccs.write_text(text)
        line = fail(run_all_classifications.main, sweep, capsys)
        assert f"{mfccs} is not a manifest kwsprune writes" in line and problem in line and "re-run extract_mfccs.py" in line


def test_a_step_waiting_for_a_folder_names_who_holds_it(tmp_path, caplog):
    import subprocess
    import sys
    import time

    from kwsprune.artefacts import FOLDER_LOCK, folder_lock
    from kwsprune.paths import REPO_ROOT

    folder = tmp_path / "y_pruned"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom kwsprune.artefacts import folder_lock\n"
                               f"with folder_lock({str(folder)!r}):\n    print('held', flush=True)\n    time.sleep(3)"],
                              cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    began = time.monotonic()
    with folder_lock(folder):  # waits for the other step, saying whom it waits for
        assert time.monotonic() - began > 1
    holder.wait()
    assert f"waiting for another step writing into {folder}" in caplog.text and f"pid {holder.pid}" in caplog.text
    assert "continue it (kill -CONT) or end it" in caplog.text and (folder / f"{FOLDER_LOCK}.holder").exists()

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

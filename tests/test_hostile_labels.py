"""Dataset_as_Numpy/labels.json as a stranger may leave it: checked against its manifest and read as a list of
distinct names, so a sweep never trains with another number of classes than its labels hold."""

import json

import run_all_classifications
from test_hostile import fail

SWEEP = ["--model", "tiny", "--n", "40", "--k", "4", "--ratios", "0.3", "--methods", "random", "--repeats", "1",
         "--max-epochs", "1"]


def test_a_class_name_added_or_removed_is_refused_naming_labels_json(fresh_features_root, capsys):
    path = fresh_features_root / "Dataset_as_Numpy" / "labels.json"
    names = json.loads(path.read_text())
    argv = ["--data-root", str(fresh_features_root), *SWEEP]
    for changed in ([*names, "eleventh"], names[:2]):
        path.write_text(json.dumps(changed))
        line = fail(run_all_classifications.main, argv, capsys)
        assert f"{path} does not match" in line and "prepare_dataset.py" in line
    assert not (fresh_features_root / "results" / "runs.csv").exists()  # nothing trained with 11 (or 2) classes


def test_labels_json_that_is_not_a_list_of_names_is_refused_even_with_a_matching_manifest(fresh_features_root, capsys):
    from kwsprune.artefacts import file_sha256

    folder = fresh_features_root / "Dataset_as_Numpy"
    manifest = json.loads((folder / "manifest.json").read_text())
    for text, expected in (('{"a": 1}', "is not a list of two or more distinct class names"),
                           ('["yes", "yes"]', "is not a list of two or more distinct class names"),
                           ('["yes", "no"]', "has class id 9 but only 2 classes are named")):
        (folder / "labels.json").write_text(text)
        manifest["files"]["labels.json"]["sha256"] = file_sha256(folder / "labels.json")
        (folder / "manifest.json").write_text(json.dumps(manifest))
        assert expected in fail(run_all_classifications.main, ["--data-root", str(fresh_features_root), *SWEEP], capsys)

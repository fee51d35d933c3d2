"""results/studies/{study}.json, a study's ledger of error shares, as a stranger may leave it: it must prove itself
(this study's, shares by the rule, each comparison once), and a deleted one is not silently made again."""

import json

import pytest

from kwsprune.study import Study, read_ledger, register
from kwsprune.validation import InputError

COMPARISONS = [("keep_hard", "0.3", "4", "40"), ("keep_easy", "0.3", "4", "40")]


def ledger_file(tmp_path, study_id="abc123abc123"):
    """A ledger as a sweep at alpha 0.05 writes it, two batches; its path."""
    register(tmp_path, study_id, "tiny, a study", COMPARISONS[:1], Study(repeats="auto"))
    register(tmp_path, study_id, "tiny, a study", COMPARISONS, Study(repeats="auto"))
    return tmp_path / "studies" / f"{study_id}.json"


def refusal(tmp_path, study_id="abc123abc123", description="tiny, a study") -> str:
    with pytest.raises(InputError) as error:
        read_ledger(tmp_path, study_id, description)
    return str(error.value)


def test_a_ledger_as_kwsprune_writes_it_proves_itself(tmp_path):
    path = ledger_file(tmp_path)
    ledger = read_ledger(tmp_path, "abc123abc123", "tiny, a study")
    assert ledger["id"] == "abc123abc123" and [b["alpha"] for b in ledger["batches"]] == [0.025, 0.0125]
    assert path.exists()


@pytest.mark.parametrize("change, expected", [
    (lambda l: l["batches"][0].update(alpha_each=0.9999), "batch 1 gives each comparison 0.9999, where an equal share"),
    (lambda l: l["batches"][1].update(alpha=0.05), "batch 2 spends 0.05, where the rule gives 0.0125 (alpha / 2^2)"),
    (lambda l: l.update(alpha=0.999), "batch 1 spends 0.025, where the rule gives 0.4995"),
    (lambda l: l.update(alpha="0.05"), "alpha '0.05' is not a family-wise error in (0, 1)"),
    (lambda l: l.update(alpha=-1), "alpha '-1' is not a family-wise error in (0, 1)"),
    (lambda l: l["batches"][0].update(margin="a lot"), "batch 1's margin 'a lot' is not in [0, 1)"),
    (lambda l: l["batches"][1].update(comparisons=[["keep_hard", "0.3", "4", "40"]], alpha_each=0.0125),
     "the comparison ['keep_hard', '0.3', '4', '40'] is in two batches (it would spend two shares)"),
    (lambda l: l.update(id="fedcba987654"), "it is the ledger of study 'fedcba987654', not of this study"),
    (lambda l: l.update(batches={}), "not a ledger"),
])
def test_a_ledger_that_does_not_prove_itself_is_refused_naming_the_file(tmp_path, change, expected):
    path = ledger_file(tmp_path)
    ledger = json.loads(path.read_text())
    change(ledger)
    path.write_text(json.dumps(ledger))
    line = refusal(tmp_path)
    assert line.startswith(f"{path}: ") and expected in line and "restore it from a backup" in line


def test_an_older_ledger_without_its_id_must_describe_this_study(tmp_path):
    path = ledger_file(tmp_path)
    ledger = json.loads(path.read_text())
    del ledger["id"]
    path.write_text(json.dumps(ledger))
    assert read_ledger(tmp_path, "abc123abc123", "tiny, a study")["alpha"] == 0.05
    assert "it describes another study than this one" in refusal(tmp_path, description="lenet, another study")


def test_a_deleted_ledger_is_not_made_again_over_trained_runs(tmp_path):
    path = ledger_file(tmp_path)
    path.unlink()
    with pytest.raises(InputError, match="is missing, yet the store holds 3 runs of this study's comparisons"):
        register(tmp_path, "abc123abc123", "tiny, a study", COMPARISONS, Study(repeats="auto"), trained=3)
    assert not path.exists()
    register(tmp_path, "abc123abc123", "tiny, a study", COMPARISONS, Study(repeats="auto"))  # no runs yet: a new study
    assert json.loads(path.read_text())["batches"][0]["alpha"] == 0.025

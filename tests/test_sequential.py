"""--repeats auto: the confidence sequence's coverage, the verdict rules, the error shares, and the sweep that stops
each comparison when it is decided, resumes and leaves the fixed design as it was."""

import csv
import json
import math

import numpy as np
import pytest

import extract_embeddings
import extract_mfccs
import prepare_dataset
import run_all_classifications
from kwsprune.plots import plot_results
from kwsprune.sequential import (
    BETTER,
    EQUIVALENT,
    OPEN,
    SLIGHTLY_BETTER,
    SLIGHTLY_WORSE,
    UNDECIDED,
    WORSE,
    batch_alpha,
    confidence_sequence,
    confidence_sequences,
    verdict,
)
from kwsprune.study import Study, comparisons, study_from_record, study_record
from kwsprune.verdicts import repeats_to_decide


def lai_martingale(differences, m, c=1.0):
    """Lai's test martingale for mean m, written as the issue states it."""
    d = np.asarray(differences) - m
    t, s, v = len(d), d.sum(), (d ** 2).sum()
    return math.sqrt(c / (c + t)) * (1 - s ** 2 / ((c + t) * v)) ** (-t / 2)


def test_the_closed_form_is_the_set_where_lais_martingale_stays_below_one_over_alpha():
    differences = np.random.default_rng(3).normal(0.04, 0.05, 30)
    alpha = 0.01
    low, high = confidence_sequences(differences[None, :], alpha)
    # the last set alone (the sequence intersects every prefix's, so it can only be narrower)
    inside = [m for m in np.linspace(-0.2, 0.3, 5001) if lai_martingale(differences, m) < 1 / alpha]
    assert low[0, -1] == pytest.approx(min(inside), abs=2e-4) or low[0, -1] > min(inside)
    assert high[0, -1] == pytest.approx(max(inside), abs=2e-4) or high[0, -1] < max(inside)
    assert confidence_sequence(differences, alpha) == pytest.approx((low[0, -1], high[0, -1]))


def test_few_differences_decide_nothing_and_the_ends_stay_in_minus_one_to_one():
    assert confidence_sequence([], 0.05) == (-1.0, 1.0)
    assert confidence_sequence([0.5], 0.05) == (-1.0, 1.0)  # one difference says nothing about its spread
    low, high = confidence_sequence([-0.9] * 3 + [-0.95] * 7, 0.05)
    assert -1.0 <= low < high < 0


@pytest.mark.parametrize("shape", ["gaussian", "runs at chance in both arms"])
def test_the_sequence_covers_the_true_mean_at_every_repeat_at_least_1_minus_alpha_of_the_time(shape):
    rng = np.random.default_rng(0)
    alpha, n, t = 0.1, 4000, 60
    if shape == "gaussian":
        differences, mean = rng.normal(0.02, 0.05, (n, t)), 0.02
    else:  # A/A: now and then a run of either arm stuck at chance, 40 points down: long tails on both sides
        def arm():
            return rng.normal(0.6, 0.03, (n, t)) - 0.4 * (rng.random((n, t)) < 0.05)
        differences, mean = arm() - arm(), 0.0
    low, high = confidence_sequences(differences, alpha)
    ever_missed = ((low > mean) | (high < mean)).any(axis=1).mean()
    assert ever_missed <= alpha


def test_the_verdict_rules():
    assert verdict(0.02, 0.08) == BETTER
    assert verdict(0.002, 0.008) == SLIGHTLY_BETTER  # surely better, by less than the margin of 0.01
    assert verdict(-0.08, -0.02) == WORSE
    assert verdict(-0.009, -0.001) == SLIGHTLY_WORSE
    assert verdict(-0.006, 0.009) == EQUIVALENT
    assert verdict(-0.02, 0.03) == OPEN
    assert verdict(-0.02, 0.03, at_max=True) == UNDECIDED
    assert verdict(-0.02, 0.03, margin=0.05) == EQUIVALENT


def test_every_later_batch_has_a_share_and_all_of_them_never_exceed_alpha():
    shares = [batch_alpha(0.05, b) for b in range(1, 60)]
    assert shares[0] == 0.025 and all(s > 0 for s in shares) and sum(shares) <= 0.05


def test_a_clear_difference_needs_few_repeats_and_a_tie_many():
    assert repeats_to_decide(0.5, 0.05, 0.001, 0.01) < 10
    assert repeats_to_decide(0.0, 0.05, 0.001, 0.01) > 200  # equivalence within one point at 5 points of spread
    assert repeats_to_decide(0.5, 0.05, 0.001, 0.01, done=20) == 21  # never fewer than the repeats that did not decide


def test_a_study_is_one_frozen_description_recorded_and_rebuilt():
    study = Study(ns=("400", "all"), methods=("keep_hard", "random"), ratios=(0.3,), repeats="auto")
    again = study_from_record(json.loads(json.dumps(study_record(study))))
    assert again == study
    assert comparisons(study) == [("keep_hard", "0.3", "10", "400"), ("keep_hard", "0.3", "10", "all")]
    with pytest.raises(AttributeError):
        study.ns = ("800",)


def rows(root):
    with open(root / "results" / "runs.csv") as f:
        return list(csv.DictReader(f))


AUTO = ["--model", "tiny", "--n", "40", "--ratios", "0.3", "--k", "4", "--max-epochs", "2", "--methods", "keep_hard", "random",
        "--repeats", "auto", "--max-repeats", "4", "--round-size", "2"]


def test_an_auto_sweep_stops_at_its_maximum_registers_its_comparisons_and_resumes(fresh_features_root, capsys):
    root = fresh_features_root
    run_all_classifications.main(["--data-root", str(root), *AUTO])
    first = rows(root)
    # 2 epochs on 40 clips decide nothing: both arms train to the maximum, random's runs shared
    assert sorted((r["method"], int(r["repeat"])) for r in first) == [(m, i) for m in ("keep_hard", "random") for i in range(4)]
    [ledger] = (root / "results" / "studies").glob("*.json")
    [batch] = json.loads(ledger.read_text())["batches"]
    assert batch["comparisons"] == [["keep_hard", "0.3", "4", "40"]] and batch["alpha_each"] == 0.025
    assert batch["sweep"]["repeats"] == "auto" and batch["sweep"]["max_repeats"] == 4

    # killed after its first round: the rerun trains the second round alone, to the same rows
    text = (root / "results" / "runs.csv").read_text().splitlines(keepends=True)
    (root / "results" / "runs.csv").write_text("".join(text[:5]))
    run_all_classifications.main(["--data-root", str(root), *AUTO])
    again = rows(root)
    key = lambda r: (r["method"], r["repeat"])  # noqa: E731
    assert [(key(r), r["test_acc"]) for r in sorted(again, key=key)] == [(key(r), r["test_acc"]) for r in sorted(first, key=key)]
    run_all_classifications.main(["--data-root", str(root), *AUTO])
    assert len(rows(root)) == 8  # nothing more to do
    assert len(json.loads(ledger.read_text())["batches"]) == 1  # the same comparison: no second share

    capsys.readouterr()
    table = plot_results(root)
    assert "verdicts against random" in table and "undecided" in table
    assert "the study's family-wise error: 0.05 (its ledger), each verdict's share of it from 0.025 to 0.025" in table
    report = (root / "Plots" / "report.md").read_text()
    assert "| keep_hard | N 40 from 70% kept, k 4 | 4 |" in report and "![verdicts](verdicts.png)" in report


def test_a_later_sweep_adding_comparisons_gets_half_of_what_is_left(fresh_features_root):
    root = fresh_features_root
    run_all_classifications.main(["--data-root", str(root), *AUTO[:-4], "--max-repeats", "2", "--round-size", "2"])
    run_all_classifications.main(["--data-root", str(root), *AUTO[:-4], "--max-repeats", "2", "--round-size", "2",
                                  "--methods", "keep_easy", "keep_hard", "random"])
    [ledger] = (root / "results" / "studies").glob("*.json")
    first, second = json.loads(ledger.read_text())["batches"]
    assert first["alpha"] == 0.025 and second["alpha"] == 0.0125
    assert second["comparisons"] == [["keep_easy", "0.3", "4", "40"]]
    with pytest.raises(SystemExit):  # the study's error rate is fixed once registered
        run_all_classifications.main(["--data-root", str(root), *AUTO, "--alpha", "0.1", "--methods", "ssp_hard", "random"])
    with pytest.raises(SystemExit):  # and what its verdicts speak of: not chosen after seeing them
        run_all_classifications.main(["--data-root", str(root), *AUTO, "--generalise-to", "clips"])
    assert json.loads(ledger.read_text())["generalise_to"] == "speakers"
    crafted = json.loads(ledger.read_text())
    ledger.write_text(json.dumps({**crafted, "generalise_to": "everyone"}))  # a stranger's claim: refused, not read
    with pytest.raises(SystemExit):
        run_all_classifications.main(["--data-root", str(root), *AUTO])


def test_a_fixed_sweep_trains_exactly_its_repeats_and_its_alpha_is_shown_with_its_verdicts(fresh_features_root):
    root = fresh_features_root
    run_all_classifications.main(["--data-root", str(root), "--model", "tiny", "--n", "40", "--ratios", "0.3", "--k", "4",
                                  "--max-epochs", "2", "--methods", "keep_hard", "random", "--repeats", "3",
                                  "--alpha", "0.2"])
    assert sorted((r["method"], r["repeat"]) for r in rows(root)) == [(m, str(i)) for m in ("keep_hard", "random")
                                                                      for i in range(3)]
    assert "the study's family-wise error: 0.2 (its ledger)" in plot_results(root)
    assert "The study's family-wise error (its ledger): 0.2." in (root / "Plots" / "report.md").read_text()


def test_the_plan_counts_runs_and_hours_before_training(fresh_features_root, capsys):
    root = fresh_features_root
    run_all_classifications.main(["--data-root", str(root), "--n", "40", "80", "--ratios", "0.3", "--k", "4",
                                  "--methods", "keep_hard", "random", "--repeats", "10", "--plan"])
    out = capsys.readouterr().out
    assert "fixed, 10 repeats: 40 runs, 40 to train (0 in the store)" in out and "hours on this machine" in out
    assert "a run taken as one fit of the head" in out  # the default instrument is priced as what it is
    with pytest.raises(SystemExit):  # an N no kept set holds is refused, as the sweep refuses it, not priced
        run_all_classifications.main(["--data-root", str(root), "--n", "99999", "--ratios", "0.3", "--k", "4",
                                      "--methods", "keep_hard", "random", "--repeats", "10", "--plan"])
    assert "--n 99999 is more than the 231 or so clips keep_hard will keep at ratio 0.3: lower --n" in capsys.readouterr().err
    assert "auto, at most 100 repeats" in out
    run_all_classifications.main(["--data-root", str(root), "--model", "tiny", "--n", "40", "--ratios", "0.3", "--k", "4",
                                  "--methods", "keep_hard", "random", "--repeats", "10", "--plan"])
    assert "a run taken as 62 epochs" in capsys.readouterr().out  # a CNN: priced by its epochs
    assert not (root / "results" / "runs.csv").exists()  # nothing trained


def test_on_fsdd_a_clear_case_is_decided_in_a_handful_of_repeats(fsdd_dir, tmp_path):
    root = tmp_path / "fsdd"
    prepare_dataset.main(["--data-root", str(root), "--source", "fsdd", "--path", str(fsdd_dir)])
    extract_embeddings.main(["--data-root", str(root), "--model", "speech-embedding"])
    extract_mfccs.main(["--data-root", str(root)])
    # 10% kept: ssp_easy keeps clusters' cores and loses digits; random keeps 0.6 accuracy (README, docs/results.md)
    run_all_classifications.main(["--data-root", str(root), "--model", "tiny", "--n", "all", "--ratios", "0.9",
                                  "--methods", "ssp_easy", "random", "--repeats", "auto", "--max-repeats", "20"])
    trained = rows(root)
    assert len(trained) <= 2 * 10
    table = plot_results(root, "ssp_easy", 0.9)
    [line] = [line for line in table.splitlines() if line.strip().startswith("ssp_easy")]
    assert " worse" in line
    assert "verdicts on new clips of these 6 test speakers, who also speak in training (300 test clips)" in table
    assert "at --n all, random's kept clips are one draw (its pruning seed)" in table  # said, not hidden


def test_an_auto_sweep_stops_where_the_test_set_alone_keeps_a_comparison_undecided(fresh_features_root, capsys):
    """The demo's test split is a few dozen clips of a few speakers: no number of repeats decides a small difference
    on new speakers there, so the sweep stops training it as soon as its repeats show that, far before --max-repeats."""
    root = fresh_features_root
    run_all_classifications.main(["--data-root", str(root), "--n", "40", "--ratios", "0.3", "--k", "4", "--methods",
                                  "keep_hard", "random", "--repeats", "auto", "--max-repeats", "50"])
    out = capsys.readouterr().out
    trained = rows(root)
    assert all(r["outcomes"] for r in trained) and len(trained) < 2 * 50
    assert "undecided: the test set resolves only about ±" in out and "verdicts on new speakers (" in out


def test_a_studys_verdicts_read_as_a_grid_of_methods_by_fraction_kept():
    from kwsprune.plots import verdict_grid

    def line(method, ratio, floor=False):
        return {"method": method, "ratio": ratio, "k": "10", "n": "all", "floor": floor, "verdict": UNDECIDED if floor
                else WORSE, "mean_difference": -0.02, "low": -0.05, "high": -0.01, "gap": 0.01, "repeats": 5}
    # ratio: the fraction removed
    grid = verdict_grid([line("keep_hard", "0.9"), line("keep_hard", "0.1", floor=True), line("herding", "0.1")])
    assert grid.splitlines() == [
        "| method | 90% kept | 10% kept |", "| --- | --- | --- |",
        "| keep_hard | **undecided: test set** -0.020 [-0.050, -0.010] ±0.010, 5 | **worse** -0.020 [-0.050, -0.010] ±0.010, 5 |",
        "| herding | **worse** -0.020 [-0.050, -0.010] ±0.010, 5 |  |"]
    assert verdict_grid([line("keep_hard", "0.1")]) is None  # one column: the table says it all

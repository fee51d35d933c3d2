"""The test set's share of a verdict: what a verdict may speak of, the gap between the difference on the test set and
on its population (estimated without counting the training twice, and covering at its rate), and verdicts that a
small test set keeps undecided however many repeats are added."""

import numpy as np
import pytest

from kwsprune.outcomes import save_outcomes
from kwsprune.sequential import BETTER, EQUIVALENT, OPEN, UNDECIDED
from kwsprune.test_set import CLIPS, SPEAKERS, Population, HeldOut, gap_half_width, gap_variance, population
from kwsprune.validation import InputError
from kwsprune.verdicts import Evidence, judge, verdict_text


def speakers_pool(rng, speakers=2000, clips=20, speaker_sd=0.08, clip_sd=0.15):
    """A population of speakers x clips: random's chance of getting each clip right, and the method's (its
    difference from random's made of a speaker's share and a clip's own)."""
    p_random = rng.beta(6, 2, size=(speakers, clips))
    shift = rng.normal(0, speaker_sd, size=(speakers, 1)) + rng.normal(0, clip_sd, size=(speakers, clips))
    return p_random, np.clip(p_random + shift, 0, 1)


def repeats_on(rng, p_random, p_method, repeats):
    """(repeats, clips) of method's correct minus random's: every repeat a new training of both arms."""
    shape = (repeats, *p_random.shape)
    return (rng.random(shape) < p_method).astype(float) - (rng.random(shape) < p_random)


def test_a_verdict_speaks_of_new_speakers_only_where_training_never_heard_them():
    labels, speakers = np.zeros(6, int), np.array(["a", "a", "b", "b", "c", "c"])
    unseen = population(HeldOut(labels, speakers, speakers_in_training=False))
    assert unseen.covers == "new speakers (6 test clips of 3 speakers)" and len(set(unseen.clusters)) == 3
    heard = population(HeldOut(labels, speakers, speakers_in_training=True))  # FSDD: the same 6 speakers everywhere
    assert heard.covers.startswith("new clips of these 3 test speakers, who also speak in training")
    assert len(set(heard.clusters)) == 6 and len(set(heard.strata)) == 3
    asked = population(HeldOut(labels, speakers), CLIPS)
    assert asked.covers == "new clips of these 3 test speakers (6 test clips)"
    assert population(HeldOut(labels), SPEAKERS).covers == "new clips like these 6 (speakers unknown)"


def test_the_gap_is_the_test_sets_share_and_does_not_count_the_training_twice():
    """Each clip's outcome varies from training to training far more than the clips' true differences vary: the
    spread of the clips' mean outcomes (what a bootstrap of the runs measures) is mostly that noise."""
    rng = np.random.default_rng(0)
    n, repeats = 400, 10
    clips = Population(np.arange(n), np.zeros(n, int), "clips")
    estimates, bootstrap, truth = [], [], []
    for _ in range(300):
        p_random, p_method = (p[0] for p in speakers_pool(rng, speakers=1, clips=n, speaker_sd=0))
        mu = p_method - p_random
        truth.append(mu.var(ddof=1) / n)
        d = repeats_on(rng, p_random, p_method, repeats)
        estimates.append(gap_variance(d, clips)[0])
        bootstrap.append(d.mean(axis=0).var(ddof=1) / n)
    assert np.mean(estimates) == pytest.approx(np.mean(truth), rel=0.1)
    assert np.mean(bootstrap) > 1.5 * np.mean(truth)  # the training noise counted once more


@pytest.mark.parametrize("generalise_to, speakers", [(SPEAKERS, 12), (CLIPS, 12), (SPEAKERS, 40)])
def test_the_gap_interval_holds_the_populations_difference_at_its_rate(generalise_to, speakers):
    """Test sets of 20 clips from each of a few speakers, drawn from 1,000 speakers of 200 clips: the difference on
    the test set (the training's expectation) lies within the interval of the population's 90% of the time: every
    speaker's, or these speakers' every clip."""
    rng = np.random.default_rng(1)
    p_random, p_method = speakers_pool(rng, speakers=1000, clips=200)
    mu = p_method - p_random
    who = np.repeat(np.arange(speakers), 20).astype(str)
    where = population(HeldOut(np.zeros(len(who), int), who), generalise_to)
    alpha, held = 0.1, []
    for _ in range(300):
        chosen = rng.choice(len(mu), speakers, replace=False)
        clips = rng.random((speakers, 200)).argsort(axis=1)[:, :20]
        picked = np.take_along_axis(np.arange(mu.size).reshape(mu.shape)[chosen], clips, axis=1)
        target = mu.mean() if generalise_to == SPEAKERS else mu[chosen].mean()
        d = repeats_on(rng, p_random.ravel()[picked], p_method.ravel()[picked], 8).reshape(8, -1)
        held.append(abs(mu.ravel()[picked].mean() - target) <= gap_half_width(d, where, alpha))
    assert np.mean(held) >= 1 - alpha - 0.04


def rows_of(results, labels, right_method, right_random, n="40"):
    """runs.csv rows of a comparison: keep_hard and random, one pair a repeat, each with its outcomes stored."""
    def row(method, ratio, k, repeat, right):
        predicted = np.where(right, labels, (labels + 1) % 10)
        return {"method": method, "ratio": ratio, "k": k, "n": n, "repeat": str(repeat), "fraction_kept": "0.7",
                "test_acc": f"{right.mean():.6f}", "n_test": str(len(labels)), "n_classes": "10", "chance": "0.1",
                "outcomes": save_outcomes(results, predicted)}
    return [r for repeat, (a, b) in enumerate(zip(right_method, right_random))
            for r in (row("keep_hard", "0.3", "4", repeat, a), row("random", "1.0", "", repeat, b))]


def test_a_fixed_difference_on_a_small_test_set_stays_undecided_however_many_repeats(tmp_path):
    """50 test clips: the method gets 3 more of them right than random in every repeat, give or take one. Repeats
    pin that difference on these clips down; they say nothing about clips the test set does not hold."""
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 10, 50)
    evidence = Evidence(tmp_path, labels, population(HeldOut(labels)))
    base = np.arange(50) < 30
    random_right = [base ^ (np.arange(50) == rng.integers(50)) for _ in range(80)]
    method_right = [base | ((np.arange(50) >= 30) & (np.arange(50) < 33)) for _ in range(80)]
    rows = rows_of(tmp_path, labels, method_right, random_right)
    comparison = ("keep_hard", "0.3", "4", "40")
    alone = judge(rows, comparison, 0.05)  # the repeats alone: sure of a difference on these 50 clips
    assert alone["verdict"] == BETTER and alone["covers"].startswith("this test set only")
    for repeats in range(5, 81, 5):  # never decided, and stopped as soon as the repeats pin the difference down
        line = judge(rows, comparison, 0.05, below=repeats, max_repeats=100, seen=evidence)
        assert line["verdict"] == (UNDECIDED if line["test_high"] < line["gap"] else OPEN) and line["needs"] is None
    assert line["verdict"] == UNDECIDED and line["floor"] and line["low"] < 0 < line["test_low"] and line["gap"] > 0.06
    assert verdict_text(line) == f"undecided: the test set resolves only about ±{100 * line['gap']:.1f} points"


def test_identical_arms_are_equivalent_and_an_arm_that_never_changes_is_judged(tmp_path):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 10, 2000)
    evidence = Evidence(tmp_path, labels, population(HeldOut(labels)))
    same = [rng.random(2000) < 0.8 for _ in range(10)]
    line = judge(rows_of(tmp_path, labels, same, same), ("keep_hard", "0.3", "4", "40"), 0.05, seen=evidence)
    assert line["verdict"] == EQUIVALENT and line["gap"] == 0 and line["mean_difference"] == 0
    # a head on one kept set gives the same predictions every repeat; random's draws vary
    fixed = [np.arange(2000) % 10 < 8] * 20
    varied = [rng.random(2000) < 0.5 for _ in range(20)]
    line = judge(rows_of(tmp_path, labels, fixed, varied), ("keep_hard", "0.3", "4", "40"), 0.05, seen=evidence)
    assert line["verdict"] == BETTER and 0 < line["gap"] < 0.05


def test_one_test_speaker_says_nothing_of_new_speakers(tmp_path):
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 10, 200)
    alone = Evidence(tmp_path, labels, population(HeldOut(labels, np.array(["only"] * 200))))
    assert alone.population.covers == "new speakers (200 test clips of 1 speaker)"
    rows = rows_of(tmp_path, labels, [rng.random(200) < 0.9 for _ in range(10)], [rng.random(200) < 0.5 for _ in range(10)])
    line = judge(rows, ("keep_hard", "0.3", "4", "40"), 0.05, seen=alone)  # a 40-point difference, on one speaker
    assert line["verdict"] == UNDECIDED and line["floor"] and (line["low"], line["high"]) == (-1.0, 1.0)
    assert "one speaker (or clip) a stratum says nothing of the others" in verdict_text(line)


def test_outcomes_that_disagree_with_their_row_or_are_of_another_test_set_are_refused(tmp_path):
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 10, 100)
    right = [rng.random(100) < 0.7 for _ in range(3)]
    rows = rows_of(tmp_path, labels, right, right)
    evidence = Evidence(tmp_path, labels, population(HeldOut(labels)))
    rows[0]["test_acc"] = "0.990000"
    with pytest.raises(InputError, match="records test_acc 0.990000 but its outcomes give"):
        judge(rows, ("keep_hard", "0.3", "4", "40"), 0.05, seen=evidence)
    other = Evidence(tmp_path, labels[:90], population(HeldOut(labels[:90])))
    with pytest.raises(InputError, match="tested on 100 clips, this data root's test split has 90"):
        judge(rows_of(tmp_path, labels, right, right), ("keep_hard", "0.3", "4", "40"), 0.05, seen=other)


def test_the_test_splits_speakers_are_read_against_the_manifest(fresh_demo_root):
    from kwsprune.test_set import load_test_set

    held = load_test_set(fresh_demo_root)
    assert held.speakers is not None and len(held.speakers) == len(held.labels) and not held.speakers_in_training
    assert population(held).covers.startswith("new speakers (")
    path = fresh_demo_root / "Dataset_as_Numpy" / "test_speakers.npy"
    np.save(path, np.array(["one speaker"] * len(held.labels)))  # a planted file: every clip one speaker
    with pytest.raises(InputError, match="test_speakers.npy"):
        load_test_set(fresh_demo_root)

"""The methods beyond the original, each on a hand-made 2-D case whose answer is worked out in the comments."""

import numpy as np
import pytest

from kwsprune.embedding_scores import kcenter_order
from kwsprune.methods import METHODS, Inputs, run_method
from kwsprune.model_scores import el2n_scores, forgetting_scores
from kwsprune.selection import coverage_centric
from kwsprune.training import TrainConfig


def at_angles(degrees, radii=None):
    """2-D embeddings pointing at the given angles; the radii (their lengths) must not matter to cosine methods."""
    radians = np.radians(degrees)
    radii = np.ones(len(degrees)) if radii is None else np.asarray(radii)
    return (radii[:, None] * np.stack([np.cos(radians), np.sin(radians)], axis=1)).astype(np.float32)


def kept(method, features, labels, ratio, k=2, seed=0):
    inputs = Inputs(features, np.asarray(labels), k=k, seed=seed)
    return run_method(method, inputs, ratio, np.random.default_rng(seed))[1].tolist()


# two directions: A at 0, 10, -20 degrees (mean direction -3.3), B at 90, 95, 60 (mean 81.8); lengths vary
TWO_GROUPS = at_angles([0, 10, -20, 90, 95, 60], radii=[1, 5, 2, 3, 1, 4])
GROUP_LABELS = [0, 0, 0, 1, 1, 1]


def test_ssp_prunes_globally_by_cosine_distance_to_the_nearest_centroid():
    # angles to the own centroid: 3.3, 13.3, 16.7 | 8.2, 13.2, 21.8; a third (floor(2.04) = 2 clips) goes
    assert kept("ssp_hard", TWO_GROUPS, GROUP_LABELS, 0.34) == [1, 2, 4, 5]  # the two most typical go: 0 and 90
    assert kept("ssp_easy", TWO_GROUPS, GROUP_LABELS, 0.34) == [0, 1, 3, 4]  # the two least typical go: -20 and 60


def test_supervised_prototypes_use_the_class_not_a_cluster():
    # clip 3 points at 85 degrees but is labelled class 0 (0, 10, -10 degrees): the farthest from its prototype
    features = at_angles([0, 10, -10, 85, 90, 100])
    labels = [0, 0, 0, 0, 1, 1]
    scores, kept_clips = run_method("supervised_prototypes", Inputs(features, np.array(labels)), 0.5, None)
    assert np.argmax(scores) == 3 and 3 in kept_clips and len(kept_clips) == 3


def test_semdedup_removes_one_of_each_near_duplicate_pair_keeping_the_less_typical():
    # cluster A: 0 and 0.5 degrees are near duplicates, 30 is apart (mean direction 10.2): 0 is farther, kept
    # cluster B: 90 and 90.2 likewise (mean 100.1): 90 is kept
    features = at_angles([0, 0.5, 30, 90, 90.2, 120])
    scores, kept_clips = run_method("semdedup", Inputs(features, np.zeros(6, int), k=2), 0.34, None)
    assert kept_clips.tolist() == [0, 2, 3, 5]
    assert scores[1] > 0.9999 and scores[4] > 0.9999  # their similarity to the clip visited before them


def test_kcenter_picks_farthest_first():
    # points on a line at 0, 1, 2, 10, 11, 20; from 0 the farthest is 20, then 10 (10 from both), then 2
    # (2 from 0, 8 from 10), then 11 and 1 tie at 1: the lower index, 1, then 11
    line = np.array([[0, 0], [1, 0], [2, 0], [10, 0], [11, 0], [20, 0]], dtype=np.float32)
    seed = next(s for s in range(100) if np.random.default_rng(s).integers(6) == 0)  # a seed that starts at 0
    assert kcenter_order(line, seed).tolist() == [0, 5, 3, 2, 1, 4]
    assert kept("kcenter", line, [0] * 6, 0.5, seed=seed) == [0, 3, 5]


def farthest_first_one_pick_at_a_time(features, seed):
    """The definition, one pass over all clips per pick."""
    nearest = np.full(len(features), np.inf)
    order = [int(np.random.default_rng(seed).integers(len(features)))]
    while len(order) < len(features):
        nearest = np.minimum(nearest, ((features - features[order[-1]]) ** 2).sum(axis=1))
        nearest[order] = -np.inf
        order.append(int(np.argmax(nearest)))
    return order


def test_kcenter_rounds_of_many_picks_give_the_one_at_a_time_order():
    features = np.random.default_rng(0).standard_normal((300, 4)).astype(np.float32)
    assert kcenter_order(features, 1, n_candidates=32).tolist() == farthest_first_one_pick_at_a_time(features, 1)


def fake_record(rng, labels, n_classes=3, epochs=14, width=5, n_valid=12) -> dict:
    """A training record (kwsprune.model_scores.training_record) of the right shapes, as if a model had trained."""
    n = len(labels)
    return {"true_probability": rng.random((epochs, n)).astype(np.float32),
            "change": rng.random((epochs, n)).astype(np.float32),
            "train_last_inputs": rng.standard_normal((n, width)).astype(np.float32),
            "valid_last_inputs": rng.standard_normal((n_valid, width)).astype(np.float32),
            "last_weight": rng.standard_normal((width, n_classes)).astype(np.float32),
            "last_bias": rng.standard_normal(n_classes).astype(np.float32),
            "valid_labels": np.arange(n_valid) % n_classes}


MODEL_METHODS = ["least_confidence", "margin", "entropy", "dyn_unc", "tdds", "grand", "deepfool", "cal",
                 "contextual_diversity", "craig", "gradmatch", "glister"]


@pytest.mark.parametrize("method", ["ssp_hard", "ssp_easy", "supervised_prototypes", "semdedup", "kcenter", "el2n",
                                    "forgetting", "ccs", "keep_hard", "herding", "facility_location", "graph_cut",
                                    "moderate", "d2", *MODEL_METHODS])
def test_exact_counts_class_balance_and_determinism(method):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [30, 20, 10])
    features = (rng.standard_normal((3, 8))[labels] + 0.5 * rng.standard_normal((60, 8))).astype(np.float32)
    model_scores = {"el2n": rng.random(60), "forgetting": rng.integers(0, 5, 60).astype(float),  # as if trained
                    "grand": rng.random(60), "record": fake_record(rng, labels)}

    def kept(name):
        inputs = Inputs(features, labels, k=3, cache=dict(model_scores))
        return run_method(name, inputs, 0.3, np.random.default_rng(0))[1].tolist()

    plain = kept(method)
    if method != "keep_hard":  # keep_hard removes floor(0.3 x size) per cluster; the others over the whole set
        assert len(plain) == 60 - 18
        for ratio in (0.1, 0.5, 0.9):  # exact at every ratio
            inputs = Inputs(features, labels, k=3, cache=dict(model_scores))
            assert len(run_method(method, inputs, ratio, np.random.default_rng(0))[1]) == 60 - int(ratio * 60 + 1e-9)
    balanced = kept(method + "_balanced")
    assert np.bincount(labels[balanced]).tolist() == [21, 14, 7]  # 30 - 9, 20 - 6, 10 - 3
    assert kept(method) == plain  # same seed, same clips


def test_every_registered_method_is_covered():
    assert set(METHODS) == {"keep_hard", "keep_easy", "random", "ssp_hard", "ssp_easy", "supervised_prototypes",
                            "semdedup", "kcenter", "el2n", "forgetting", "ccs", "herding", "facility_location",
                            "graph_cut", "moderate", "d2", *MODEL_METHODS}


def test_ccs_drops_the_hardest_then_covers_the_score_range_evenly():
    # scores 0..99; beta 0.1 drops 90..99; 2 bins over 0..89 ([0, 44.5) and [44.5, 89]) of 45 clips each;
    # keeping 20: 10 from each bin
    kept_clips = coverage_centric(np.arange(100.0), 20, np.random.default_rng(0), beta=0.1, n_bins=2)
    assert len(kept_clips) == 20 and kept_clips.max() < 90
    assert (kept_clips < 45).sum() == 10
    # a sparse bin gives all it has, the rest comes from the full one: 3 clips in [50, 100], 57 below
    skewed = np.concatenate([np.linspace(0, 10, 57), [60.0, 80.0, 100.0]])
    kept_clips = coverage_centric(skewed, 30, np.random.default_rng(0), beta=0.0, n_bins=2)
    assert len(kept_clips) == 30 and {57, 58, 59} <= set(kept_clips.tolist())


def mislabelled_toy():
    """Easy MFCC-shaped clips (see test_training.toy_mfccs) with the labels of clips 0-4 changed."""
    from test_training import toy_mfccs

    x, y = toy_mfccs(240, 4, 0)
    x_valid, y_valid = toy_mfccs(80, 4, 1)
    y = y.copy()
    y[:5] = (y[:5] + 1) % 4
    return x, y, x_valid, y_valid


def test_el2n_and_forgetting_rank_mislabelled_clips_hardest():
    x, y, x_valid, y_valid = mislabelled_toy()
    config = TrainConfig(batch_size=32, max_epochs=12, stop_patience=4)
    el2n = el2n_scores(x, y, x_valid, y_valid, 4, seed=0, epochs=6, n_models=3, config=config)
    assert set(np.argsort(-el2n)[:5].tolist()) == {0, 1, 2, 3, 4}
    assert el2n.shape == (240,) and np.all((el2n >= 0) & (el2n <= np.sqrt(2)))
    forgotten = forgetting_scores(x, y, x_valid, y_valid, 4, seed=0, config=config)
    assert forgotten[:5].min() >= np.sort(forgotten)[-5]  # the five mislabelled clips lead (never learned)
    np.testing.assert_array_equal(forgotten, forgetting_scores(x, y, x_valid, y_valid, 4, seed=0, config=config))


def test_herding_keeps_a_mean_closer_to_the_data_mean_than_random():
    rng = np.random.default_rng(0)
    features = rng.standard_normal((400, 6)) * [5, 3, 2, 1, 1, 1] + 10
    for ratio in (0.5, 0.9):
        herded = kept("herding", features, np.zeros(400, int), ratio)
        gap = np.linalg.norm(features[herded].mean(axis=0) - features.mean(axis=0))
        random_gaps = [np.linalg.norm(features[rng.choice(400, len(herded), replace=False)].mean(axis=0)
                                      - features.mean(axis=0)) for _ in range(200)]
        assert gap < np.min(random_gaps)


def test_herding_picks_the_clip_that_brings_the_mean_closest():
    # on a line at 0, 1, 2, 6 (mean 2.25): 2 first (0.25 away); then the pair mean nearest 2.25 is (2 + 1) / 2 = 1.5
    # (0.75 away; with 0: 1, with 6: 4); then (2 + 1 + 6) / 3 = 3 (0.75 away) beats (2 + 1 + 0) / 3 = 1; 0 last
    from kwsprune.greedy_orders import herding_order

    assert herding_order(np.array([[0.0], [1.0], [2.0], [6.0]])).tolist() == [2, 1, 3, 0]


def facility_value(sim, chosen) -> float:
    return sim[:, list(chosen)].max(axis=1).sum() if len(chosen) else 0.0


def test_facility_location_is_within_1_minus_1_over_e_of_the_best_subset():
    from itertools import combinations

    from kwsprune.greedy_orders import facility_location_order, similarity

    rng = np.random.default_rng(1)
    for trial in range(5):
        sim = similarity(rng.standard_normal((10, 3)))
        order, gains = facility_location_order(sim)
        for m in (2, 3, 4):
            best = max(facility_value(sim, subset) for subset in combinations(range(10), m))
            assert facility_value(sim, order[:m]) >= (1 - 1 / np.e) * best
        np.testing.assert_allclose(np.cumsum(gains)[:4], [facility_value(sim, order[:m]) for m in range(1, 5)], rtol=1e-6)
        assert np.all(np.diff(gains) <= 1e-9)  # submodular: the greedy gains only fall


def test_graph_cut_gains_are_the_objectives_increments():
    from kwsprune.greedy_orders import graph_cut_order, similarity

    sim = similarity(np.random.default_rng(2).standard_normal((12, 4))).astype(np.float64)

    def value(chosen):
        chosen = list(chosen)
        return sim[:, chosen].sum() - sim[np.ix_(chosen, chosen)].sum()

    order, gains = graph_cut_order(sim)
    np.testing.assert_allclose(np.cumsum(gains), [value(order[:m]) for m in range(1, 13)], rtol=1e-5, atol=1e-5)
    # each pick is the best single addition to the picks before it
    for m in range(6):
        best = max(value([*order[:m], j]) for j in set(range(12)) - set(order[:m].tolist()))
        assert value(order[:m + 1]) >= best - 1e-5


def test_submodular_orders_merge_across_clusters_as_one_greedy_over_their_union():
    from kwsprune.greedy_orders import facility_location_order, merged_order, similarity

    rng = np.random.default_rng(3)
    features = np.concatenate([rng.standard_normal((8, 3)) + 20, rng.standard_normal((8, 3)) - 20])
    block = np.zeros((16, 16), np.float32)  # similarity only within each half: the function sums over the halves
    parts = [np.arange(8), np.arange(8, 16)]
    for part in parts:
        block[np.ix_(part, part)] = similarity(features[part])
    whole, _ = facility_location_order(block)
    results = [facility_location_order(similarity(features[part])) for part in parts]
    merged = merged_order(parts, [r[0] for r in results], [r[1] for r in results])
    assert merged.tolist() == whole.tolist()


def test_moderate_keeps_the_band_around_the_median_distance():
    # one class on a line at 0..8: median 4, distances 4 3 2 1 0 1 2 3 4, ranked (ties by index) 7 5 3 1 0 2 4 6 8;
    # the middle rank, 4, is clip 6 (distance 2), then ranks 3 and 5: clips 2 and 1 (distances 2 and 3)
    features = np.arange(9.0)[:, None]
    assert kept("moderate", features, np.zeros(9, int), 6 / 9) == [1, 2, 6]


def test_d2_spreads_its_picks_over_the_graph():
    from kwsprune.greedy_orders import d2_order

    # two tight groups of hard clips and one easy clip far away: forward passing makes the groups' members the
    # highest; after the first pick, reverse passing lowers its group, so the second pick is in the other group
    rng = np.random.default_rng(4)
    features = np.concatenate([rng.normal([1, 0, 0], 0.01, (5, 3)), rng.normal([0, 1, 0], 0.01, (5, 3)), [[0, 0, 1]]])
    difficulty = np.array([1.0] * 10 + [0.5])
    order = d2_order(difficulty, features, n_neighbors=4)
    assert {order[0] // 5, order[1] // 5} == {0, 1}


def test_uncertainty_keeps_the_clips_the_model_is_least_sure_of():
    import kwsprune.model_methods as mm

    p = np.array([[0.98, 0.01, 0.01], [0.5, 0.45, 0.05], [0.4, 0.3, 0.3], [0.6, 0.2, 0.2]])
    # top-2 gaps 0.97, 0.05, 0.1, 0.4: margin keeps clips 1 and 2; largest probability 0.98, 0.5, 0.4, 0.6
    assert np.argsort(-mm.margin(p))[:2].tolist() == [1, 2]
    assert np.argsort(-mm.least_confidence(p))[:2].tolist() == [2, 1]
    assert np.argmax(mm.entropy(p)) == 2 and np.argmin(mm.entropy(p)) == 0


def test_grand_is_the_norm_of_the_output_layers_gradient():
    import torch

    import kwsprune.model_methods as mm
    from kwsprune.model_scores import grand_scores

    rng = np.random.default_rng(5)
    hidden = rng.standard_normal((6, 4))
    weight, bias = rng.standard_normal((4, 3)), rng.standard_normal(3)
    labels = np.array([0, 1, 2, 0, 1, 2])
    p = mm.probabilities(hidden, weight, bias)
    early = {"probabilities": p[:, None, :], "last_inputs": hidden[:, None, :]}
    closed = grand_scores(None, labels, None, None, 3, 0, early=early)
    for i in range(6):
        w = torch.tensor(weight, requires_grad=True)
        b = torch.tensor(bias, requires_grad=True)
        loss = torch.nn.functional.cross_entropy((torch.tensor(hidden[i]) @ w + b)[None], torch.tensor([labels[i]]))
        loss.backward()
        assert closed[i] == pytest.approx(np.sqrt((w.grad ** 2).sum().item() + (b.grad ** 2).sum().item()), rel=1e-9)


def test_the_gradient_gram_is_that_of_the_gradients_written_out():
    import kwsprune.model_methods as mm

    rng = np.random.default_rng(6)
    p = mm.probabilities(rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), np.zeros(3))
    error, extended = mm.gradient_factors(p, rng.standard_normal((5, 4)), np.array([0, 1, 2, 0, 1]))
    written = np.stack([np.outer(h, e).ravel() for h, e in zip(extended, error)])
    np.testing.assert_allclose(mm.gradient_gram(error, extended), written @ written.T, rtol=1e-10)


def test_deepfool_distance_is_the_step_to_the_nearest_boundary():
    import kwsprune.model_methods as mm

    # two classes with logits x0 and x1 (weights the identity, no bias): the boundary is x0 = x1, so the distance
    # of (3, 1) is |3 - 1| / ||(1, -1)|| = sqrt(2); with three classes the nearest boundary wins
    weight = np.eye(2)
    assert mm.deepfool_distance(np.array([[3.0, 1.0]]), [0], weight, np.zeros(2))[0] == pytest.approx(np.sqrt(2))
    weight3 = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]])
    distance = mm.deepfool_distance(np.array([[3.0, 1.0]]), [0], weight3, np.zeros(3))[0]
    assert distance == pytest.approx(min(2 / np.sqrt(2), 1 / np.linalg.norm([0.5, -0.5])))


def test_dynamic_uncertainty_and_tdds_rank_a_wavering_clip_above_a_steady_one():
    import kwsprune.model_methods as mm

    epochs = np.arange(30)
    steady = np.linspace(0.2, 0.95, 30)
    wavering = 0.5 + 0.3 * np.sin(epochs)
    assert np.argmax(mm.dynamic_uncertainty(np.stack([steady, wavering], axis=1))) == 1
    change = np.stack([np.full(30, 0.01), np.abs(np.sin(epochs))], axis=1)
    assert np.argmax(mm.temporal_dual_depth(change)) == 1


def test_cal_ranks_a_clip_whose_neighbours_predict_otherwise_highest():
    import kwsprune.model_methods as mm

    # clips 0-3 close together; clip 2 is predicted class 1 while its neighbours say class 0
    features = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [0.1, 0.1], [5.0, 5.0], [5.1, 5.0]])
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.5, 0.5], [0.5, 0.5]])
    assert np.argmax(mm.contrastive(p, features, n_neighbors=3)) == 2


def test_contextual_diversity_picks_the_farthest_prediction_next():
    import kwsprune.model_methods as mm

    p = np.array([[0.9, 0.1], [0.85, 0.15], [0.1, 0.9], [0.5, 0.5]])
    seed = next(s for s in range(100) if np.random.default_rng(s).integers(4) == 0)
    order = mm.kl_center_order(p, seed)
    assert order[:2].tolist() == [0, 2] and sorted(order.tolist()) == [0, 1, 2, 3]


def test_gradmatch_first_takes_the_gradient_most_aligned_with_the_sum():
    import kwsprune.model_methods as mm

    rng = np.random.default_rng(7)
    gradients = rng.standard_normal((8, 5))
    gram = gradients @ gradients.T
    order = mm.gradmatch_order(gram, seed=0)
    assert order[0] == np.argmax(np.abs(gram.sum(axis=1)))  # the largest inner product with the summed gradient
    assert sorted(order.tolist()) == list(range(8))


def test_glisters_first_picks_lower_the_validation_loss_more_than_random_ones():
    import kwsprune.model_methods as mm

    rng = np.random.default_rng(8)
    labels = rng.integers(0, 3, 300)
    centres = rng.standard_normal((3, 4)) * 2
    hidden = centres[labels] + rng.standard_normal((300, 4))
    valid_labels = rng.integers(0, 3, 90)
    valid_hidden = centres[valid_labels] + rng.standard_normal((90, 4))
    weight, bias = 0.1 * rng.standard_normal((4, 3)), np.zeros(3)
    p = mm.probabilities(hidden, weight, bias)
    order = mm.glister_order(p, hidden, labels, valid_hidden, valid_labels, weight, bias, rounds=10)

    def valid_loss_after_a_step_on(chosen):  # a small step, where the Taylor approximation holds
        error, extended = mm.gradient_factors(p[chosen], hidden[chosen], labels[chosen])
        layer = np.vstack([weight, bias]) - 0.01 * extended.T @ error / len(chosen)
        q = mm.probabilities(valid_hidden, layer[:-1], layer[-1])
        return -np.log(q[np.arange(90), valid_labels]).mean()

    random_losses = [valid_loss_after_a_step_on(rng.choice(300, 30, replace=False)) for _ in range(50)]
    assert valid_loss_after_a_step_on(order[:30]) < np.min(random_losses)


@pytest.mark.parametrize("method", ["herding", "facility_location", "graph_cut"])
def test_large_sets_are_chosen_within_clusters_with_exact_counts(method, monkeypatch):
    import kwsprune.greedy_orders

    monkeypatch.setattr(kwsprune.greedy_orders, "DENSE_MAX", 20)  # 60 clips: split by their 3 SSP clusters
    rng = np.random.default_rng(9)
    labels = np.repeat([0, 1, 2], 20)
    features = (rng.standard_normal((3, 6))[labels] + 0.3 * rng.standard_normal((60, 6))).astype(np.float32)
    for ratio in (0.1, 0.5, 0.9):
        first, second = (run_method(method, Inputs(features, labels, k=3), ratio, None)[1] for _ in range(2))
        assert len(first) == 60 - int(ratio * 60 + 1e-9) and first.tolist() == second.tolist()


def test_from_training_names_exactly_the_methods_that_need_a_trained_model():
    from kwsprune.methods import FROM_TRAINING
    from kwsprune.validation import InputError

    rng = np.random.default_rng(10)
    labels = np.repeat([0, 1], 10)
    features = rng.standard_normal((20, 4)).astype(np.float32)
    for method in METHODS:
        inputs = Inputs(features, labels, k=2)  # no model scores, no record
        if method in FROM_TRAINING:
            with pytest.raises(InputError, match="needs the training MFCCs"):
                run_method(method, inputs, 0.5, np.random.default_rng(0))
        else:
            kept_clips = run_method(method, inputs, 0.5, np.random.default_rng(0))[1]
            assert 10 <= len(kept_clips) <= 12  # half of each group (keep_hard's two clusters round down apart)


def test_every_method_but_random_is_in_one_family():
    from kwsprune.methods import FAMILIES

    members = [method for family in FAMILIES.values() for method in family]
    assert sorted(members) == sorted(m for m in METHODS if m != "random")

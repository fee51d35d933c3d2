"""Step 3: which clips each method keeps, on hand-made cases, and the step's files."""

import json

import numpy as np
import pytest

import extract_embeddings
import pruning
from kwsprune.artefacts import read_manifest
from kwsprune.embedding_scores import kmeans_distances, standardise_clips
from kwsprune.methods import Inputs, method_name, run_method
from kwsprune.pruning import PruningSetup, load_kept
from kwsprune.selection import keep_by_score
from kwsprune.validation import InputError

# two clusters: clip i's distance to its centroid
CLUSTERS = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
DISTANCES = np.array([0.4, 0.1, 0.3, 0.2, 2.0, 0.5, 1.5, 1.0, 0.7, 3.0])
LABELS = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 1])


def kept(method, ratio, seed=0):
    """Kept indices of a method on the hand-made clusters (k-means already done)."""
    inputs = Inputs(features=None, labels=LABELS, cache={"kmeans": (CLUSTERS, DISTANCES)})
    return run_method(method, inputs, ratio, np.random.default_rng(seed))[1].tolist()


def load(root, method, k, ratio, **setup):
    """Kept indices of a method from pruning.py's files (n_init 10, seed 0 unless told)."""
    return load_kept(root, PruningSetup(k, **setup), method, ratio)[0]


def test_keep_hard_removes_the_clips_nearest_each_centroid():
    # ratio 0.5: floor(2.0) = 2 of cluster 0 (clips 1, 3), floor(3.0) = 3 of cluster 1 (clips 5, 8, 7)
    assert kept("keep_hard", 0.5) == kept("simple", 0.5) == [0, 2, 4, 6, 9]


def test_keep_easy_removes_the_clips_farthest_from_each_centroid():
    # cluster 0 loses clips 0, 2; cluster 1 loses clips 9, 4, 6
    assert kept("keep_easy", 0.5) == [1, 3, 5, 7, 8]


def test_removal_rounds_down_and_never_empties_a_cluster():
    # ratio 0.3: floor(1.2) = 1 clip of cluster 0 (clip 1), floor(1.8) = 1 of cluster 1 (clip 5)
    assert kept("keep_hard", 0.3) == [0, 2, 3, 4, 6, 7, 8, 9]
    lonely = np.array([0, 0, 1])
    assert keep_by_score(np.array([1.0, 2.0, 0.5]), 0.99, keep_high=True, groups=lonely).tolist() == [1, 2]


def test_class_balanced_removes_the_fraction_within_each_class():
    # class 0 = clips 0 2 4 6 8 (distances .4 .3 2 1.5 .7), class 1 = 1 3 5 7 9 (.1 .2 .5 1 3): floor(2.5) of each go
    assert kept("keep_hard_balanced", 0.5) == [4, 5, 6, 7, 8, 9]
    assert kept("keep_easy_balanced", 0.5) == [0, 1, 2, 3, 5, 8]
    balanced_random = kept("random_balanced", 0.5, seed=1)
    assert np.bincount(LABELS[balanced_random]).tolist() == [3, 3]


def test_random_keeps_as_many_clips_and_is_seeded():
    first, again = kept("random", 0.5, seed=3), kept("random", 0.5, seed=3)
    assert len(first) == 5 and first == again == sorted(first) and first != kept("random", 0.5, seed=4)


def test_kmeans_finds_the_two_groups_and_measures_distances():
    rng = np.random.default_rng(0)
    group_a = np.array([4.0, 0, 0, 0, 0, 0]) + 0.1 * rng.standard_normal((20, 6))
    group_b = np.array([0, 0, 0, 0, 0, 4.0]) + 0.1 * rng.standard_normal((30, 6))
    features = np.vstack([group_a, group_b]).astype(np.float32)
    clusters, distances = kmeans_distances(features, k=2, seed=0)
    assert len(set(clusters[:20])) == 1 and len(set(clusters[20:])) == 1 and clusters[0] != clusters[20]
    z = (features - features.mean(1, keepdims=True)) / features.std(1, keepdims=True)  # per-clip, as the original
    centroid_a = z[:20].mean(axis=0)
    np.testing.assert_allclose(distances[:20], np.linalg.norm(z[:20] - centroid_a, axis=1), rtol=1e-4)


def test_method_names_and_aliases():
    assert [method_name(n) for n in ("simple", "hard", "normal")] == ["keep_hard", "keep_easy", "random"]
    assert method_name("simple_balanced") == "keep_hard_balanced"
    with pytest.raises(InputError, match="choose among keep_hard, keep_easy, random, ssp_hard"):
        method_name("keep_medium")


def test_step_writes_kept_indices_and_refuses_stale_features(fresh_features_root, capsys):
    root = fresh_features_root
    pruning.main(["--data-root", str(root), "--k", "5", "--ratios", "0.1", "0.3"])
    n_train = len(np.load(root / "Dataset_as_Numpy" / "train_y.npy"))
    hard, easy, rand = (load(root, m, 5, 0.3) for m in ("keep_hard", "keep_easy", "random"))
    assert hard.dtype == np.int64 and hard.tolist() == sorted(hard) and len(hard) == len(easy) == len(rand)
    assert 0.69 * n_train <= len(hard) <= 0.71 * n_train + 5
    scores = np.load(root / "y_pruned" / "k5_ninit10_seed0" / "scores_keep_hard_k5.npy")
    clusters = np.load(root / "y_pruned" / "k5_ninit10_seed0" / "clusters_k5.npy")
    assert scores.shape == clusters.shape == (n_train,)
    np.testing.assert_array_equal(hard, keep_by_score(scores, 0.3, keep_high=True, groups=clusters))
    # a second run with other ratios keeps the first run's files listed
    pruning.main(["--data-root", str(root), "--k", "5", "--ratios", "0.2", "--methods", "simple"])
    assert len(load(root, "keep_hard", 5, 0.1)) > len(load(root, "keep_hard", 5, 0.2))
    with pytest.raises(InputError, match="was not made: run python pruning.py --data-root .* --k 5 --n-init 10 --seed 0 "
                                         "--methods keep_hard --ratios 0.25"):
        load(root, "keep_hard", 5, 0.25)
    extract_embeddings.main(["--data-root", str(root), "--model", "speech-embedding", "--pooling", "flatten"])
    with pytest.raises(InputError, match="computed from a different wav2vec_features/train_features.npy than the current "
                                         "one: run python pruning.py --data-root .* --k 5 --n-init 10 --seed 0 --methods "
                                         "keep_hard --ratios 0.3"):
        load(root, "keep_hard", 5, 0.3)


def test_unknown_method_is_one_line(fresh_features_root, capsys):
    with pytest.raises(SystemExit):
        pruning.main(["--data-root", str(fresh_features_root), "--methods", "best"])
    assert "unknown pruning method 'best': choose among" in capsys.readouterr().err


def test_scores_that_need_a_model_are_trained_once_and_cached(fresh_features_root):
    root = fresh_features_root
    pruning.main(["--data-root", str(root), "--k", "4", "--ratios", "0.3", "--methods", "el2n", "ccs", "forgetting"])
    n_train = len(np.load(root / "Dataset_as_Numpy" / "train_y.npy"))
    for method in ("el2n", "ccs", "forgetting"):
        assert len(load(root, method, 4, 0.3)) == n_train - int(0.3 * n_train)
    cached = (root / "y_pruned" / "el2n_seed0.json").read_text()
    np.testing.assert_array_equal(np.load(root / "y_pruned" / "k4_ninit10_seed0" / "scores_el2n_k4.npy"),
                                  np.load(root / "y_pruned" / "el2n_seed0.npy"))
    pruning.main(["--data-root", str(root), "--k", "4", "--ratios", "0.1", "--methods", "el2n", "--class-balanced"])
    assert (root / "y_pruned" / "el2n_seed0.json").read_text() == cached  # not trained again
    assert len(load(root, "el2n_balanced", 4, 0.1)) > len(load(root, "el2n", 4, 0.3))


def test_methods_that_read_the_training_record_share_one_training(fresh_features_root, monkeypatch):
    import kwsprune.model_scores

    root = fresh_features_root
    trainings = []
    real = kwsprune.model_scores.training_record

    def counted(*args, **kwargs):
        trainings.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(kwsprune.model_scores, "training_record", counted)
    methods = ["least_confidence", "margin", "entropy", "dyn_unc", "tdds", "deepfool", "cal", "contextual_diversity",
               "craig", "gradmatch", "glister"]
    pruning.main(["--data-root", str(root), "--k", "4", "--ratios", "0.3", "0.7", "--methods", *methods])
    pruning.main(["--data-root", str(root), "--k", "4", "--ratios", "0.5", "--methods", *methods, "--class-balanced"])
    assert trainings == [1]  # one training for all, cached in y_pruned/ with its manifest
    record = json.loads((root / "y_pruned" / "record_seed0.json").read_text())
    assert sorted(record["files"]) == sorted(f"record_seed0_{name}.npy" for name in kwsprune.model_scores.RECORD_ARRAYS)
    true_probability = np.load(root / "y_pruned" / "record_seed0_true_probability.npy")
    assert true_probability.shape[1] == 330 and true_probability[-1].mean() > true_probability[0].mean()  # it learned
    for method in methods:
        assert len(load(root, method, 4, 0.3)) == 330 - 99 and len(load(root, method, 4, 0.7)) == 330 - 231


def test_k_lists_kmeans_starts_and_seeds_each_keep_their_own_kept_sets(fresh_features_root):
    root = fresh_features_root
    prune = ["--data-root", str(root), "--ratios", "0.3", "--methods", "keep_hard", "random"]
    pruning.main([*prune, "--k", "4", "5", "--n-init", "1"])
    pruning.main([*prune, "--k", "4"])
    pruning.main([*prune, "--k", "4", "--seed", "1"])
    folders = sorted(p.name for p in (root / "y_pruned").iterdir() if p.is_dir())
    assert folders == ["k4_ninit10_seed0", "k4_ninit10_seed1", "k4_ninit1_seed0", "k5_ninit1_seed0"]
    assert read_manifest(root / "y_pruned" / "k4_ninit1_seed0", "pruning.py")["params"] == {"k": 4, "n_init": 1, "seed": 0,
                                                                                          "pca": None}
    # more k-means starts keep the best clustering: never a worse one than the first start alone
    z = standardise_clips(np.load(root / "wav2vec_features" / "train_features.npy"))

    def inertia(folder):
        clusters = np.load(root / "y_pruned" / folder / "clusters_k4.npy")
        return sum(((z[clusters == c] - z[clusters == c].mean(axis=0)) ** 2).sum() for c in np.unique(clusters))

    assert inertia("k4_ninit10_seed0") <= inertia("k4_ninit1_seed0")
    assert not np.array_equal(load(root, "random", 4, 0.3), load(root, "random", 4, 0.3, seed=1))


def test_original_names_are_copies_of_keep_hard_and_keep_easy(fresh_features_root):
    root = fresh_features_root
    pruning.main(["--data-root", str(root), "--k", "4", "--ratios", "0.1", "0.3", "--original-names"])
    pruned = root / "y_pruned"
    for original, method in (("simple", "keep_hard"), ("hard", "keep_easy")):
        for ratio in (0.1, 0.3):
            np.testing.assert_array_equal(np.load(pruned / f"y_{original}_pruning_FULL_k4_{ratio}.npy"),
                                          load(root, method, 4, ratio))
    assert not list(pruned.glob("y_normal*"))  # the original drew its "normal" runs from the whole set
    assert "k4_ninit10_seed0/y_keep_hard_pruning_k4_0.3.npy" in (pruned / "original_names.json").read_text()

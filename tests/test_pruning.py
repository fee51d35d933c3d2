"""Step 3: which clips each method keeps, on hand-made cases, and the step's files."""

import numpy as np
import pytest

import extract_embeddings
import pruning
from kwsprune.pruning import (keep_easy, keep_hard, kmeans_distances, load_kept, method_name, random_subset,
                              remove_in_clusters)
from kwsprune.validation import InputError

# two clusters: clip i's distance to its centroid
CLUSTERS = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
DISTANCES = np.array([0.4, 0.1, 0.3, 0.2, 2.0, 0.5, 1.5, 1.0, 0.7, 3.0])


def test_keep_hard_removes_the_clips_nearest_each_centroid():
    # ratio 0.5: floor(2.0) = 2 of cluster 0 (clips 1, 3), floor(3.0) = 3 of cluster 1 (clips 5, 8, 7)
    assert keep_hard(DISTANCES, CLUSTERS, 0.5, None).tolist() == [0, 2, 4, 6, 9]


def test_keep_easy_removes_the_clips_farthest_from_each_centroid():
    # cluster 0 loses clips 0, 2; cluster 1 loses clips 9, 4, 6
    assert keep_easy(DISTANCES, CLUSTERS, 0.5, None).tolist() == [1, 3, 5, 7, 8]


def test_removal_rounds_down_and_never_empties_a_cluster():
    # ratio 0.3: floor(1.2) = 1 clip of cluster 0 (clip 1), floor(1.8) = 1 of cluster 1 (clip 5)
    assert keep_hard(DISTANCES, CLUSTERS, 0.3, None).tolist() == [0, 2, 3, 4, 6, 7, 8, 9]
    lonely = np.array([0, 0, 1])
    assert remove_in_clusters(np.array([1.0, 2.0, 0.5]), lonely, 0.99, nearest=True).tolist() == [1, 2]


def test_random_keeps_as_many_clips_and_is_seeded():
    first = random_subset(DISTANCES, CLUSTERS, 0.5, np.random.default_rng(3))
    again = random_subset(DISTANCES, CLUSTERS, 0.5, np.random.default_rng(3))
    assert len(first) == 5 and first.tolist() == again.tolist() and first.tolist() == sorted(first)


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
    with pytest.raises(InputError, match="choose among keep_hard, keep_easy, random"):
        method_name("keep_medium")


def test_step_writes_kept_indices_and_refuses_stale_features(fresh_features_root, capsys):
    root = fresh_features_root
    pruning.main(["--data-root", str(root), "--k", "5", "--ratios", "0.1", "0.3"])
    n_train = len(np.load(root / "Dataset_as_Numpy" / "train_y.npy"))
    hard, easy, rand = (load_kept(root, m, 5, 0.3) for m in ("keep_hard", "keep_easy", "random"))
    assert hard.dtype == np.int64 and hard.tolist() == sorted(hard) and len(hard) == len(easy) == len(rand)
    assert 0.69 * n_train <= len(hard) <= 0.71 * n_train + 5
    scores = np.load(root / "y_pruned" / "scores_k5.npy")
    clusters = np.load(root / "y_pruned" / "clusters_k5.npy")
    assert scores.shape == clusters.shape == (n_train,)
    np.testing.assert_array_equal(hard, keep_hard(scores, clusters, 0.3, None))
    # a second run with other ratios keeps the first run's files listed
    pruning.main(["--data-root", str(root), "--k", "5", "--ratios", "0.2", "--methods", "simple"])
    assert len(load_kept(root, "keep_hard", 5, 0.1)) > len(load_kept(root, "keep_hard", 5, 0.2))
    with pytest.raises(InputError, match="was not made"):
        load_kept(root, "keep_hard", 5, 0.25)
    extract_embeddings.main(["--data-root", str(root), "--model", "speech-embedding", "--pooling", "flatten"])
    with pytest.raises(InputError, match="re-run pruning.py"):
        load_kept(root, "keep_hard", 5, 0.3)


def test_unknown_method_is_one_line(fresh_features_root, capsys):
    with pytest.raises(SystemExit):
        pruning.main(["--data-root", str(fresh_features_root), "--methods", "best"])
    assert "unknown pruning method 'best': choose among" in capsys.readouterr().err

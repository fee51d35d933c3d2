"""Step 3: score the training clips by k-means on their embeddings and keep, per method and ratio, a subset.

The original's protocol: clips are z-scored one by one (its StandardScaler ran on the transposed
matrix), clustered by k-means, and scored by the distance to their own cluster's centroid; a fraction
`ratio` of every cluster is removed, floor(ratio * cluster size) clips, never the whole cluster.
Outputs are indices into train_y's order, sorted.
"""

import logging

import numpy as np

from kwsprune.artefacts import check_computed_from, input_key, load_verified, read_manifest, save_npy, write_manifest
from kwsprune.embeddings import FEATURES_FILE, verified_features_sha
from kwsprune.paths import EMBEDDINGS_DIR, PRUNED_DIR, step_dir
from kwsprune.validation import InputError

log = logging.getLogger(__name__)
MADE_BY = "pruning.py"
ALIASES = {"simple": "keep_hard", "hard": "keep_easy", "normal": "random"}  # the original's names
DENSE_LIMIT_BYTES = 2 << 30  # above this, k-means streams the features instead of holding them
CHUNK_ROWS = 8192


def standardise_clips(features: np.ndarray) -> np.ndarray:
    """Each row z-scored over its own dimensions, (n, d) float32, as the original did."""
    rows = np.asarray(features, dtype=np.float32)
    centred = rows - rows.mean(axis=1, keepdims=True)
    scale = centred.std(axis=1, keepdims=True)
    centred /= np.where(scale > 0, scale, 1)
    return centred


def _chunks(features):
    for start in range(0, len(features), CHUNK_ROWS):
        yield start, standardise_clips(features[start:start + CHUNK_ROWS])


def kmeans_distances(features, k: int, seed: int, pca: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(cluster id, distance to own centroid) of every clip; features (n, d), memory-mapped is fine.

    Exact k-means (scikit-learn, seeded) when the standardised matrix fits in DENSE_LIMIT_BYTES;
    otherwise mini-batch k-means streamed over chunks, so flattened wav2vec frames (n, 37632) never sit
    in memory whole.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.decomposition import PCA

    n, dim = features.shape
    if k > n:
        raise InputError(f"--k {k} is larger than the {n} training clips")
    if n * dim * 4 <= DENSE_LIMIT_BYTES:
        matrix = standardise_clips(features)
        if pca:
            matrix = PCA(n_components=pca, random_state=seed).fit_transform(matrix).astype(np.float32)
        model = KMeans(n_clusters=k, random_state=seed, n_init="auto", copy_x=False).fit(matrix)  # our own copy
        clusters = model.labels_.astype(np.int64)
        distances = np.concatenate([
            np.linalg.norm(matrix[s:s + CHUNK_ROWS] - model.cluster_centers_[clusters[s:s + CHUNK_ROWS]], axis=1)
            for s in range(0, n, CHUNK_ROWS)])  # in chunks: no second copy of the matrix
        return clusters, distances.astype(np.float64)
    if pca:
        raise InputError(f"--pca needs the features in memory; {n} x {dim} is too large: use --pooling mean")
    model = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=CHUNK_ROWS, n_init=3)
    for _ in range(3):
        for _, chunk in _chunks(features):
            model.partial_fit(chunk)
    clusters, distances = np.empty(n, np.int64), np.empty(n, np.float64)
    for start, chunk in _chunks(features):
        found = model.predict(chunk)
        clusters[start:start + len(chunk)] = found
        distances[start:start + len(chunk)] = np.linalg.norm(chunk - model.cluster_centers_[found], axis=1)
    return clusters, distances


def n_removed(cluster_size: int, ratio: float) -> int:
    """floor(ratio * size), as the original, but a cluster always keeps at least one clip."""
    return min(int(np.floor(ratio * cluster_size + 1e-9)), cluster_size - 1)


def remove_in_clusters(distances, clusters, ratio: float, nearest: bool) -> np.ndarray:
    """Sorted indices kept after removing, in each cluster, its nearest (or farthest) clips to the centroid.

    Ties are broken by index (stable sort), so the result is deterministic.
    """
    removed = []
    for cluster in np.unique(clusters):
        members = np.flatnonzero(clusters == cluster)
        order = members[np.argsort(distances[members], kind="stable")]
        count = n_removed(len(members), ratio)
        removed.append(order[:count] if nearest else order[len(order) - count:])
    mask = np.ones(len(distances), bool)
    mask[np.concatenate(removed)] = False
    return np.flatnonzero(mask)


def keep_hard(distances, clusters, ratio, rng):
    """Remove the clips nearest their centroid (the original's "simple")."""
    return remove_in_clusters(distances, clusters, ratio, nearest=True)


def keep_easy(distances, clusters, ratio, rng):
    """Remove the clips farthest from their centroid (the original's "hard")."""
    return remove_in_clusters(distances, clusters, ratio, nearest=False)


def random_subset(distances, clusters, ratio, rng):
    """As many clips as the cluster methods keep at this ratio, drawn uniformly at random."""
    n_kept = sum(int(size) - n_removed(int(size), ratio) for size in np.bincount(clusters))
    return np.sort(rng.choice(len(distances), size=n_kept, replace=False))


METHODS = {"keep_hard": keep_hard, "keep_easy": keep_easy, "random": random_subset}


def method_name(name: str) -> str:
    """The registered name of a method, accepting the original's aliases; unknown names list the valid ones."""
    name = ALIASES.get(name, name)
    if name not in METHODS:
        valid = ", ".join(list(METHODS) + [f"{alias} (= {target})" for alias, target in ALIASES.items()])
        raise InputError(f"unknown pruning method {name!r}: choose among {valid}")
    return name


def format_ratio(ratio: float) -> str:
    return repr(float(ratio))


def kept_file(method: str, k: int, ratio: float) -> str:
    return f"y_{method}_pruning_k{k}_{format_ratio(ratio)}.npy"


def manifest_name(k: int) -> str:
    return f"pruning_k{k}.json"


def run_pruning(data_root, methods, ratios, k: int = 10, seed: int = 0, pca: int | None = None) -> dict:
    """Step 3: write the kept indices of every method and ratio, the scores and cluster ids, and a manifest."""
    methods = [method_name(m) for m in methods]
    for ratio in ratios:
        if not 0 <= ratio < 1:
            raise InputError(f"--ratios {ratio}: a ratio is the fraction removed, in [0, 1)")
    features_dir, out_dir = step_dir(data_root, EMBEDDINGS_DIR), step_dir(data_root, PRUNED_DIR)
    inputs = {input_key(features_dir, FEATURES_FILE): verified_features_sha(data_root)}
    features = np.load(features_dir / FEATURES_FILE, mmap_mode="r")
    params = {"k": k, "seed": seed, "pca": pca, "score": "distance to own k-means centroid", "standardise": "per clip"}
    clusters, distances = kmeans_distances(features, k, seed, pca)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [f"scores_k{k}.npy", f"clusters_k{k}.npy"]
    save_npy(out_dir / files[0], distances)
    save_npy(out_dir / files[1], clusters)
    for method in methods:
        for ratio in ratios:
            rng = np.random.default_rng([seed, int(round(ratio * 1e6))])
            kept = METHODS[method](distances, clusters, ratio, rng).astype(np.int64)
            save_npy(out_dir / kept_file(method, k, ratio), kept)
            files.append(kept_file(method, k, ratio))
            log.info("%s ratio %s: kept %d of %d clips", method, ratio, len(kept), len(distances))
    files += _earlier_files(out_dir, k, inputs, params, files)
    return write_manifest(out_dir, "pruning", params, inputs, files, manifest_name(k))


def _earlier_files(out_dir, k, inputs, params, files) -> list[str]:
    """Kept-index files of an earlier run on the same features, k and seed: still valid, still listed."""
    if not (out_dir / manifest_name(k)).exists():
        return []
    earlier = read_manifest(out_dir, MADE_BY, manifest_name(k))
    if earlier.get("inputs") != inputs or earlier.get("params") != params:
        return []
    return [name for name in earlier["files"] if name not in files and (out_dir / name).exists()]


def load_kept(data_root, method: str, k: int, ratio: float) -> np.ndarray:
    """Kept indices of one method and ratio; refused if the embeddings or clips changed since."""
    method = method_name(method)
    features_dir, pruned_dir = step_dir(data_root, EMBEDDINGS_DIR), step_dir(data_root, PRUNED_DIR)
    check_computed_from(pruned_dir, MADE_BY, features_dir, FEATURES_FILE, verified_features_sha(data_root), manifest_name(k))
    name = kept_file(method, k, ratio)
    if name not in read_manifest(pruned_dir, MADE_BY, manifest_name(k))["files"]:
        raise InputError(f"{pruned_dir / name} was not made: run pruning.py --k {k} --methods {method} --ratios {ratio}")
    return np.asarray(load_verified(pruned_dir, name, MADE_BY, manifest_name(k)))

"""Scores of training clips from their embeddings (n, d), in bounded memory: memory-mapped input is read in chunks."""

import numpy as np

from kwsprune.validation import InputError

DENSE_LIMIT_BYTES = 2 << 30  # above this, k-means streams the features instead of holding them
CHUNK_BYTES = 32 << 20  # rows prepared at a time
SIMILARITY_CACHE_BYTES = 1 << 30  # semdedup keeps every cluster's similarities across its rounds below this


def chunk_rows(dim: int) -> int:
    return max(64, CHUNK_BYTES // (4 * dim))


def standardise_clips(features: np.ndarray) -> np.ndarray:
    """Each row z-scored over its own dimensions, (n, d) float32, as the original did."""
    rows = np.asarray(features, dtype=np.float32)
    centred = rows - rows.mean(axis=1, keepdims=True)
    scale = centred.std(axis=1, keepdims=True)
    centred /= np.where(scale > 0, scale, 1)
    return centred


def l2_normalise(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, (n, d) float32; a zero row stays zero."""
    rows = np.array(features, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    rows /= np.where(norms > 0, norms, 1)
    return rows


def chunks(features, prepare, project=None):
    """(start, prepare(rows)) over the features in chunks of CHUNK_BYTES, optionally projected (PCA)."""
    rows = chunk_rows(features.shape[1])
    for start in range(0, len(features), rows):
        chunk = prepare(features[start:start + rows])
        yield start, chunk if project is None else project(chunk).astype(np.float32)


def kmeans(features, k: int, seed: int, prepare, pca: int | None = None, n_init: int = 10):
    """Centroids (k, d'), the cluster of every clip, and the PCA projection (or None), fitted on prepare(features).

    Exact k-means (scikit-learn, seeded, the best of n_init starts) when the prepared matrix fits in
    DENSE_LIMIT_BYTES; otherwise mini-batch k-means streamed over chunks from the best of n_init k-means++
    seedings of the first rows, so flattened wav2vec frames (n, 37632) never sit in memory whole.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.decomposition import PCA

    n, dim = features.shape
    if k > n:
        raise InputError(f"--k {k} is larger than the {n} training clips")
    if pca and pca > min(n, dim):
        raise InputError(f"--pca {pca} is more than the {min(n, dim)} dimensions {n} clips of {dim} can have: "
                         f"give at most {min(n, dim)}")
    if n * dim * 4 <= DENSE_LIMIT_BYTES:
        matrix, project = prepare(features), None
        if pca:
            project = PCA(n_components=pca, random_state=seed).fit(matrix).transform
            matrix = project(matrix).astype(np.float32)
        model = KMeans(n_clusters=k, random_state=seed, n_init=n_init, copy_x=False).fit(matrix)  # our own copy
        return model.cluster_centers_.astype(np.float32), model.labels_.astype(np.int64), project
    if pca:
        raise InputError(f"--pca needs the features in memory; {n} x {dim} is too large: use --pooling mean")
    model = MiniBatchKMeans(n_clusters=k, init=_best_seeding(features, k, seed, prepare, n_init), n_init=1,
                            random_state=seed, batch_size=chunk_rows(dim))
    for _ in range(3):
        for _, chunk in chunks(features, prepare):
            model.partial_fit(chunk)
    clusters = np.concatenate([model.predict(chunk) for _, chunk in chunks(features, prepare)]).astype(np.int64)
    return model.cluster_centers_.astype(np.float32), clusters, None


def _best_seeding(features, k: int, seed: int, prepare, n_init: int) -> np.ndarray:
    """Streamed k-means' start: of n_init k-means++ seedings on the first rows, the one of least inertia there
    (partial_fit alone would take a single seeding)."""
    from sklearn.cluster import kmeans_plusplus
    from sklearn.metrics import pairwise_distances_argmin_min

    sample = prepare(features[:max(chunk_rows(features.shape[1]), 3 * k)])
    seedings = [kmeans_plusplus(sample, k, random_state=seed + start)[0] for start in range(n_init)]
    inertias = [float((pairwise_distances_argmin_min(sample, centres)[1] ** 2).sum()) for centres in seedings]
    return seedings[int(np.argmin(inertias))]


def kmeans_distances(features, k: int, seed: int, pca: int | None = None, n_init: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The original's score: (cluster id, Euclidean distance to own centroid) of every clip, on per-clip z-scores."""
    centroids, clusters, project = kmeans(features, k, seed, standardise_clips, pca, n_init)
    distances = np.empty(len(clusters))
    for start, chunk in chunks(features, standardise_clips, project):
        own = centroids[clusters[start:start + len(chunk)]]
        distances[start:start + len(chunk)] = np.linalg.norm(chunk - own, axis=1)
    return clusters, distances


def ssp_distances(features, k: int, seed: int, n_init: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Self-supervised prototypes (Sorscher et al. 2022): k-means on L2-normalised embeddings; (cluster id,
    cosine distance to the nearest centroid) of every clip."""
    centroids, clusters, _ = kmeans(features, k, seed, l2_normalise, n_init=n_init)
    unit_centroids = l2_normalise(centroids)
    distances = np.empty(len(clusters))
    for start, chunk in chunks(features, l2_normalise):
        distances[start:start + len(chunk)] = 1.0 - (chunk @ unit_centroids.T).max(axis=1)
    return clusters, distances


def prototype_distances(features, labels) -> np.ndarray:
    """Cosine distance of every clip's L2-normalised embedding to its own class's mean direction."""
    labels = np.asarray(labels)
    n_classes = int(labels.max()) + 1
    sums = np.zeros((n_classes, features.shape[1]), np.float64)
    for start, chunk in chunks(features, l2_normalise):
        np.add.at(sums, labels[start:start + len(chunk)], chunk)
    prototypes = l2_normalise(sums)
    distances = np.empty(len(labels))
    for start, chunk in chunks(features, l2_normalise):
        own = prototypes[labels[start:start + len(chunk)]]
        distances[start:start + len(chunk)] = 1.0 - np.einsum("nd,nd->n", chunk, own)
    return distances


def median_distances(features, labels) -> np.ndarray:
    """Euclidean distance of every embedding to the median embedding (per dimension) of its own class, as the
    moderate coreset measures it."""
    labels = np.asarray(labels)
    distances = np.empty(len(labels))
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rows = np.asarray(features[members], dtype=np.float64)
        distances[members] = np.linalg.norm(rows - np.median(rows, axis=0), axis=1)
    return distances


def _squared_distances(rows, rows_sq, centres, centres_sq) -> np.ndarray:
    """(len(rows), len(centres)) squared Euclidean distances, as |a|^2 - 2 a.b + |b|^2 (one GEMM)."""
    return rows_sq[:, None] - 2 * (rows @ centres.T) + centres_sq[None, :]


def kcenter_order(features, seed: int, n_picks: int | None = None, n_candidates: int = 1024) -> np.ndarray:
    """k-center greedy (Sener & Savarese 2018): the order in which farthest-first traversal, from one seeded
    random clip, picks the clips (ties: the lowest index). Its first m clips are the greedy m-center
    coreset, for every m <= n_picks at once; clips beyond n_picks follow by falling distance to their
    nearest pick.

    Exact, but many picks per pass over the data: each round takes the n_candidates farthest clips; as
    long as the farthest of them, its distance updated by the round's picks, stays above every other
    clip's (which picks only lower), it is the next pick. The round's picks then update all clips in one
    chunked GEMM. Memory: the features as float32, (n,) vectors and chunk-sized blocks.
    """
    matrix = np.asarray(features, dtype=np.float32)
    n = len(matrix)
    n_picks = n if n_picks is None else min(n_picks, n)
    squared_norms = np.einsum("nd,nd->n", matrix, matrix)
    nearest = np.full(n, np.inf, dtype=np.float32)  # squared distance to the nearest pick; -inf once picked
    order = np.empty(n, np.int64)
    done = 0
    pending = [int(np.random.default_rng(seed).integers(n))]
    rows = chunk_rows(matrix.shape[1])
    while True:
        for i in pending:
            order[done], nearest[i] = i, -np.inf
            done += 1
        centres = matrix[pending]
        centres_sq = squared_norms[pending]
        for start in range(0, n, rows):
            block = _squared_distances(matrix[start:start + rows], squared_norms[start:start + rows], centres, centres_sq)
            np.minimum(nearest[start:start + rows], block.min(axis=1), out=nearest[start:start + rows])
        if done >= n_picks:
            break
        pending = _round_of_picks(matrix, squared_norms, nearest, min(n_candidates, n - done), n_picks - done)
    rest = np.flatnonzero(nearest > -np.inf)
    order[n_picks:] = rest[np.argsort(-nearest[rest], kind="stable")]
    return order


def _round_of_picks(matrix, squared_norms, nearest, n_candidates: int, budget: int) -> list[int]:
    """The next picks of farthest-first traversal that can be made exactly from the n_candidates farthest clips."""
    unpicked = len(nearest) - int(np.isneginf(nearest).sum())
    if n_candidates >= unpicked:
        candidates, bar = np.flatnonzero(~np.isneginf(nearest)), -np.inf
    else:
        top = np.argpartition(-nearest, n_candidates)[:n_candidates + 1]
        top = top[np.lexsort((top, -nearest[top]))]  # farthest first, ties by index
        candidates, bar = np.sort(top[:n_candidates]), nearest[top[n_candidates]]
    distance = nearest[candidates].copy()
    pairwise = _squared_distances(matrix[candidates], squared_norms[candidates], matrix[candidates],
                                  squared_norms[candidates])
    picks = []
    while len(picks) < budget:
        j = int(np.argmax(distance))  # candidates are in index order: the lowest index wins a tie
        if not distance[j] > bar:  # a clip outside the candidates may be as far: next round
            break
        picks.append(int(candidates[j]))
        np.minimum(distance, pairwise[j], out=distance)
        distance[j] = -np.inf
    return picks or [int(np.argmax(nearest))]


def _greedy_keep(similarity: np.ndarray, threshold: float, largest_after: np.ndarray) -> np.ndarray:
    """Visiting clips in order, keep one unless its similarity to an already kept clip exceeds threshold.
    Only clips with a later clip above the threshold (largest_after) can remove any: only they are visited."""
    removed = np.zeros(len(similarity), bool)
    for j in np.flatnonzero(largest_after > threshold):
        if not removed[j]:
            removed[j + 1:] |= similarity[j, j + 1:] > threshold
    return ~removed


def _cluster_similarities(features, clusters, centroid_distance):
    """Per cluster: its members in visiting order (farthest from the centroid first) and their cosine similarities."""
    for cluster in np.unique(clusters):
        members = np.flatnonzero(clusters == cluster)
        members = members[np.argsort(-centroid_distance[members], kind="stable")]
        unit = l2_normalise(features[np.sort(members)])[np.argsort(np.argsort(members))]
        yield members, unit @ unit.T


def _largest_before(similarity: np.ndarray, rows: int = 1024) -> np.ndarray:
    """Each row's largest entry left of the diagonal (-1 for the first row), a block of rows at a time."""
    largest = np.empty(len(similarity))
    for start in range(0, len(similarity), rows):
        block = similarity[start:start + rows, :start + rows].copy()
        row_index = start + np.arange(len(block))
        block[np.arange(block.shape[1])[None, :] >= row_index[:, None]] = -1.0
        largest[start:start + len(block)] = block.max(axis=1)
    return largest


def semdedup(features, clusters, centroid_distance, n_keep: int, grid: int = 32, passes: int = 3):
    """SemDeDup (Abbas et al. 2023) at one size: (duplicate score, sorted kept indices) of the clips.

    Inside each cluster, clips are visited from the farthest from the centroid to the nearest, and a clip
    is removed when its cosine similarity to a clip kept before it exceeds 1 - eps: of a group of near
    duplicates, the least prototypical is kept. eps is one for all clusters, found by a bisection
    (`passes` rounds of `grid` thresholds) to the smallest removal reaching n_keep; the few clips it
    keeps too many are then dropped by their duplicate score, highest first, so exactly n_keep remain.
    The duplicate score of a clip is its largest similarity to a clip visited before it.
    """
    def computed():
        for members, similarity in _cluster_similarities(features, clusters, centroid_distance):
            yield members, similarity, _largest_before(similarity[::-1, ::-1])[::-1]

    # (members, similarities, largest similarity to a later clip) per cluster: kept for every round when small
    fits = 4 * int((np.bincount(clusters).astype(np.int64) ** 2).sum()) <= SIMILARITY_CACHE_BYTES
    cached = list(computed()) if fits else None

    def per_cluster():
        return cached if fits else computed()

    low, high = -1.0, 1.0 + 1e-5
    for _ in range(passes):
        thresholds = np.linspace(low, high, grid)
        counts = np.zeros(grid, np.int64)
        for _, similarity, largest_after in per_cluster():
            counts += [_greedy_keep(similarity, t, largest_after).sum() for t in thresholds]
        first = int(np.argmax(counts >= n_keep))  # counts rise with the threshold; the last always reaches n
        low, high = thresholds[max(first - 1, 0)], thresholds[first]
    scores = np.full(len(clusters), -1.0)
    kept = []
    for members, similarity, largest_after in per_cluster():
        scores[members] = _largest_before(similarity)
        keep = _greedy_keep(similarity, high, largest_after)
        np.fill_diagonal(similarity, -1.0)
        kept_members = members[keep]
        # among kept clips: the largest similarity to another kept clip (diagonal is -1), for the final trim
        rows = np.flatnonzero(keep)
        closeness = np.concatenate([similarity[rows[i:i + 1024]][:, keep].max(axis=1) for i in range(0, len(rows), 1024)])
        kept.append((kept_members, closeness))
    kept_indices = np.concatenate([k for k, _ in kept])
    closeness = np.concatenate([c for _, c in kept])
    extra = len(kept_indices) - n_keep
    if extra > 0:
        kept_indices = kept_indices[np.sort(np.argsort(-closeness, kind="stable")[extra:])]
    return scores, np.sort(kept_indices)

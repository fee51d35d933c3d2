"""Greedy selections on the embeddings, as the order in which they pick clips: the first m picks are the method's
coreset of m clips for every m at once, so every ratio keeps a prefix (kwsprune.methods turns an order into
scores, minus the position).

Herding (Welling 2009), facility location and graph cut (the submodular functions of DeepCore and apricot, by
lazy greedy: Minoux 1978) and D2's reverse message passing (Maharana et al. 2024). Similarities are cosine
similarities of L2-normalised embeddings; ties go to the lowest index. The lazy greedy is written here rather
than taken from apricot-select: its last release (0.6.1, 2021) is a source archive that needs `nose` (which no
longer installs on current Pythons) and numba (which trails numpy's releases).
"""

import heapq

import numpy as np

from kwsprune.embedding_scores import l2_normalise

DENSE_MAX = 20_000  # clips a dense similarity matrix is built for at once: 1.6 GB in float32


def herding_order(features) -> np.ndarray:
    """Herding (Welling 2009; Chen et al. 2010), as DeepCore runs it: each pick is the clip that brings the mean of
    the picks closest to the mean of all clips. One matrix-vector product a pick: O(n^2 d) time, O(n d) memory."""
    matrix = np.asarray(features, dtype=np.float32)  # each pick reads it once: float32 halves the traffic
    n = len(matrix)
    mean = matrix.mean(axis=0, dtype=np.float64)
    squared_norms = np.einsum("nd,nd->n", matrix, matrix, dtype=np.float64)
    with_mean = matrix.astype(np.float64) @ mean
    target = with_mean.copy()  # x . ((t + 1) mean - sum of picks) for every clip x, at pick t
    order = np.empty(n, np.int64)
    free = np.ones(n, bool)
    for t in range(n):
        # ||(t + 1) mean - picks - x||^2 = ||x||^2 - 2 x . ((t + 1) mean - picks) + a constant
        cost = np.where(free, squared_norms - 2 * target, np.inf)
        pick = int(np.argmin(cost))
        order[t], free[pick] = pick, False
        target += with_mean - matrix @ matrix[pick]  # float32 products into the float64 sums
    return order


def similarity(features) -> np.ndarray:
    """(1 + cosine similarity) / 2 of every pair, (n, n) float32 in [0, 1]: non-negative, as facility location
    needs for its (1 - 1/e) guarantee."""
    unit = l2_normalise(np.asarray(features, dtype=np.float32)).astype(np.float32)
    sim = unit @ unit.T
    sim += sim.T  # exactly symmetric (a GEMM's (i, j) and (j, i) may round apart): the greedy reads rows for columns
    sim += 2.0
    sim /= 4.0
    return sim


def _lazy_greedy(n: int, gain, take) -> tuple[np.ndarray, np.ndarray]:
    """Lazy greedy for a submodular function: (the order of picks, each pick's gain). gain(j): the current gain of
    adding j; take(j): add it. A gain can only fall as picks are added, so a stale heap entry that still tops the
    heap once refreshed is the best pick."""
    heap = [(-float(gain(j)), j) for j in range(n)]
    heapq.heapify(heap)
    order, gains = [], []
    while heap:
        _, j = heapq.heappop(heap)
        current = float(gain(j))
        if heap and current < -heap[0][0] - 1e-12 * max(1.0, abs(current)):
            heapq.heappush(heap, (-current, j))
            continue
        take(j)
        order.append(j)
        gains.append(current)
    return np.asarray(order, np.int64), np.asarray(gains)


def facility_location_order(sim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Facility location, f(S) = sum_i max_{j in S} sim[i, j], by lazy greedy: (order, gains). sim symmetric."""
    cover = np.zeros(len(sim), dtype=np.float64)

    def gain(j):  # sim is symmetric: its rows are its columns, read contiguously
        return np.maximum(sim[j] - cover, 0.0).sum()

    def take(j):
        np.maximum(cover, sim[j], out=cover)

    return _lazy_greedy(len(sim), gain, take)


def graph_cut_order(sim: np.ndarray, lam: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Graph cut, f(S) = sum_{i in V, j in S} sim[i, j] - lam sum_{i, j in S} sim[i, j] (lam 1, DeepCore's and
    submodlib's default), by lazy greedy: (order, gains). The gain of j is its total similarity minus lam times
    (twice its similarity to the picks plus its own)."""
    column_sums = sim.sum(axis=0, dtype=np.float64)
    to_picks = np.zeros(len(sim), dtype=np.float64)
    diagonal = np.diagonal(sim).astype(np.float64)

    def gain(j):
        return column_sums[j] - lam * (2 * to_picks[j] + diagonal[j])

    def take(j):
        to_picks[:] += sim[j]

    return _lazy_greedy(len(sim), gain, take)


def merged_order(parts: list[np.ndarray], orders: list[np.ndarray], gains: list[np.ndarray]) -> np.ndarray:
    """One order over several parts chosen apart (indices `parts[p]`): the picks by falling gain, stable within a
    part. For a function that sums over the parts this is the greedy order over their union."""
    members = np.concatenate([part[order] for part, order in zip(parts, orders)])
    gain = np.concatenate(gains)
    position = np.concatenate([np.arange(len(order)) for order in orders])
    return members[np.lexsort((position, -gain))]


def proportional(orders: list[np.ndarray]) -> list[np.ndarray]:
    """Stand-in gains for merged_order that interleave the parts' orders in proportion to their lengths: every
    prefix of the merge holds about the same fraction of each part."""
    return [-(np.arange(len(order)) + 1.0) / len(order) for order in orders]


def d2_order(scores, features, n_neighbors: int = 10, gamma: float = 1.0) -> np.ndarray:
    """D2 pruning (Maharana et al. ICLR 2024): the clips as a graph of each one's n_neighbors nearest (euclidean on
    L2-normalised embeddings), edges weighted exp(-gamma d). Forward message passing: a clip's score becomes its
    difficulty plus its neighbours' weighted difficulties. Then reverse message passing: pick the highest score,
    lower each neighbour's by its edge weight times the pick's score, repeat. 10 neighbours (the authors' code's
    default), gamma 1 both ways, their 'sum' aggregation; distances on L2-normalised embeddings so that gamma does
    not depend on the embeddings' scale. The authors also stratify the scores into bins (as CCS) and run this
    selection within each; here it runs over the whole group."""
    from sklearn.neighbors import NearestNeighbors

    unit = l2_normalise(np.asarray(features, dtype=np.float32))
    n = len(unit)
    k = min(n_neighbors, n - 1)
    if k < 1:
        return np.arange(n)
    distances, neighbours = NearestNeighbors(n_neighbors=k + 1).fit(unit).kneighbors(unit)
    distances, neighbours = distances[:, 1:], neighbours[:, 1:]  # a clip is not its own neighbour
    weights = np.exp(-gamma * distances)
    difficulty = np.asarray(scores, dtype=np.float64)
    score = difficulty + (weights * difficulty[neighbours]).sum(axis=1)
    # the reverse pass: who has whom as a neighbour, with that edge's weight
    sources = np.repeat(np.arange(n), k)
    incoming = np.argsort(neighbours.ravel(), kind="stable")
    heap = [(-s, i) for i, s in enumerate(score)]
    heapq.heapify(heap)
    free = np.ones(n, bool)
    starts = np.searchsorted(neighbours.ravel()[incoming], np.arange(n + 1))
    order = []
    while heap:
        negative, i = heapq.heappop(heap)
        if not free[i]:
            continue
        if -negative != score[i]:  # lowered since it was pushed: its fresh entry is in the heap too
            continue
        free[i] = False
        order.append(i)
        # i's neighbours, and the clips that have i as a neighbour: the graph is symmetrised
        near = np.concatenate([neighbours[i], sources[incoming[starts[i]:starts[i + 1]]]])
        weight = np.concatenate([weights[i], weights.ravel()[incoming[starts[i]:starts[i + 1]]]])
        open_ = free[near]
        np.subtract.at(score, near[open_], weight[open_] * score[i])
        for j in np.unique(near[open_]):
            heapq.heappush(heap, (-score[j], j))
    return np.asarray(order, np.int64)

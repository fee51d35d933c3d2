"""Pruning methods, registered by name: each scores the training clips and keeps a subset for a ratio.

A method is `method(inputs, ratio, rng, balanced) -> (scores, kept)`: scores (n,) float64, one per
clip, and the sorted indices of the clips kept. The ratio is the fraction removed. `balanced`
(--class-balanced) removes that fraction within each class instead of within each cluster or over
the whole set (DeepCore's `balance`). Unless a method says otherwise, floor(ratio x size) clips are
removed per group (the whole set, a cluster or a class), a group keeps at least one clip, ties go by
index.
"""

from dataclasses import dataclass, field

import numpy as np

from kwsprune import embedding_scores as emb
from kwsprune import greedy_orders as greedy
from kwsprune.selection import coverage_centric, keep_by_score, n_removed
from kwsprune.validation import InputError

ALIASES = {"simple": "keep_hard", "hard": "keep_easy", "normal": "random"}  # the original's names
ORIGINAL_NAMES = {method: alias for alias, method in ALIASES.items()}
BALANCED = "_balanced"  # suffix of a method's class-balanced variant


@dataclass
class Inputs:
    """What the methods score clips from; each derived score is computed once per pruning run."""
    features: np.ndarray  # (n, d) embeddings of the training clips; memory-mapped is fine
    labels: np.ndarray    # (n,) class ids
    k: int = 10
    seed: int = 0
    pca: int | None = None
    n_init: int = 10  # k-means starts (the original's scikit-learn ran 10)
    model_scores: dict = field(default_factory=dict)  # "el2n" / "forgetting" -> () -> (n,) scores
    cache: dict = field(default_factory=dict)

    def once(self, name: str, compute):
        if name not in self.cache:
            self.cache[name] = compute()
        return self.cache[name]

    def kmeans(self):
        """The original's (cluster id, distance to own centroid) on per-clip z-scored embeddings."""
        return self.once("kmeans", lambda: emb.kmeans_distances(self.features, self.k, self.seed, self.pca, self.n_init))

    def ssp(self):
        """(cluster id, cosine distance to the nearest centroid) on L2-normalised embeddings."""
        return self.once("ssp", lambda: emb.ssp_distances(self.features, self.k, self.seed, self.n_init))

    def model_score(self, name: str) -> np.ndarray:
        if name not in self.cache and name not in self.model_scores:
            raise InputError(f"method {name!r} needs the training MFCCs: run it through pruning.py")
        return self.once(name, lambda: self.model_scores[name]())


def _by_score(inputs, scores, ratio, keep_high, balanced, groups=None):
    return scores, keep_by_score(scores, ratio, keep_high, inputs.labels if balanced else groups)


def keep_hard(inputs, ratio, rng, balanced=False):
    """The original's "simple": in each k-means cluster, remove the clips nearest the centroid."""
    clusters, distances = inputs.kmeans()
    return _by_score(inputs, distances, ratio, True, balanced, clusters)


def keep_easy(inputs, ratio, rng, balanced=False):
    """The original's "hard": in each k-means cluster, remove the clips farthest from the centroid."""
    clusters, distances = inputs.kmeans()
    return _by_score(inputs, distances, ratio, False, balanced, clusters)


def random_subset(inputs, ratio, rng, balanced=False):
    """The original's "normal": as many clips as keep_hard keeps at this ratio (or, balanced, as many per
    class as a class-balanced method), drawn uniformly at random. Scores are the draw's random numbers."""
    scores = rng.random(len(inputs.labels))
    if balanced:
        return scores, keep_by_score(scores, ratio, True, inputs.labels)
    clusters, _ = inputs.kmeans()
    n_kept = sum(int(size) - n_removed(int(size), ratio) for size in np.bincount(clusters))
    return scores, np.sort(np.argsort(scores, kind="stable")[len(scores) - n_kept:])


def ssp_hard(inputs, ratio, rng, balanced=False):
    """Self-supervised prototypes (Sorscher et al. 2022): k-means on L2-normalised embeddings, score =
    cosine distance to the nearest centroid; remove the easiest (nearest) clips over the whole set."""
    _, distances = inputs.ssp()
    return _by_score(inputs, distances, ratio, True, balanced)


def ssp_easy(inputs, ratio, rng, balanced=False):
    """Self-supervised prototypes, keeping the easy clips: remove the farthest from their nearest centroid."""
    _, distances = inputs.ssp()
    return _by_score(inputs, distances, ratio, False, balanced)


def supervised_prototypes(inputs, ratio, rng, balanced=False):
    """Supervised prototypes (Sorscher et al. 2022): cosine distance of the L2-normalised embedding to the
    mean direction of the clip's own class; remove the nearest (most typical) clips over the whole set."""
    distances = inputs.once("prototypes", lambda: emb.prototype_distances(inputs.features, inputs.labels))
    return _by_score(inputs, distances, ratio, True, balanced)


def _groups(inputs, balanced: bool):
    """The clips chosen among together: every clip, or (balanced) each class's clips, as index arrays."""
    if not balanced:
        yield np.arange(len(inputs.labels))
        return
    for label in np.unique(inputs.labels):
        yield np.flatnonzero(inputs.labels == label)


def _rows(inputs, members):
    """The embeddings of `members`; all of them without a copy when they are every clip."""
    return inputs.features if len(members) == len(inputs.labels) else inputs.features[members]


def semdedup(inputs, ratio, rng, balanced=False):
    """SemDeDup (Abbas et al. 2023) in the SSP k-means clusters: remove near duplicates (cosine similarity
    to a kept clip above 1 - eps, eps bisected to the ratio), keeping the least prototypical of each group;
    exactly floor(ratio x n) clips removed (per class when balanced). Score: the largest similarity to a
    clip visited before it in its cluster."""
    clusters, distances = inputs.ssp()
    scores, kept = np.empty(len(clusters)), []
    for members in _groups(inputs, balanced):
        n_keep = len(members) - n_removed(len(members), ratio)
        scores[members], kept_members = emb.semdedup(_rows(inputs, members), clusters[members], distances[members], n_keep)
        kept.append(members[kept_members])
    return scores, np.sort(np.concatenate(kept))


def kcenter(inputs, ratio, rng, balanced=False):
    """k-center greedy coreset (Sener & Savarese 2018) on the embeddings: keep the first clips that
    farthest-first traversal picks from a seeded random start (per class when balanced). Score: minus
    the pick's position, so the highest scores are kept."""
    def ranks():
        scores = np.empty(len(inputs.labels))
        for members in _groups(inputs, balanced):
            order = emb.kcenter_order(_rows(inputs, members), inputs.seed)
            scores[members[order]] = -np.arange(len(members), dtype=np.float64)
        return scores

    return _by_score(inputs, inputs.once("kcenter" + BALANCED * balanced, ranks), ratio, True, balanced)


def el2n(inputs, ratio, rng, balanced=False):
    """EL2N (Paul et al. 2021): the error vector's norm after a few epochs of the Tiny CNN on all clips,
    averaged over initialisations; remove the lowest (easiest) over the whole set."""
    return _by_score(inputs, inputs.model_score("el2n"), ratio, True, balanced)


def forgetting(inputs, ratio, rng, balanced=False):
    """Forgetting events (Toneva et al. 2019) over one training run; remove the least forgotten
    (unforgettable) clips over the whole set, ties by index."""
    return _by_score(inputs, inputs.model_score("forgetting"), ratio, True, balanced)


def ccs(inputs, ratio, rng, balanced=False):
    """Coverage-centric coreset selection (Zheng et al. 2023) on EL2N: drop the hardest 10% (fewer when the
    ratio is lower), then sample the rest evenly over 50 equal-width EL2N bins; floor(ratio x n) removed."""
    scores = inputs.model_score("el2n")
    kept = [members[coverage_centric(scores[members], len(members) - n_removed(len(members), ratio), rng,
                                     beta=min(0.1, ratio))] for members in _groups(inputs, balanced)]
    return scores, np.sort(np.concatenate(kept))


def _by_order(inputs, balanced, key: str, order_of):
    """Scores from a greedy order (kwsprune.greedy_orders) run over every clip, or within each class when balanced:
    minus the pick's position, so each ratio keeps the first picks. Computed once a pruning run."""
    def ranks():
        scores = np.empty(len(inputs.labels))
        for members in _groups(inputs, balanced):
            order = order_of(members)
            scores[members[order]] = -np.arange(len(members), dtype=np.float64)
        return scores

    return inputs.once(key + BALANCED * balanced, ranks)


def herding(inputs, ratio, rng, balanced=False):
    """Herding (Welling 2009, as DeepCore selects): pick after pick, the clip that brings the mean embedding of
    the picks closest to the mean of all clips; keep the first picks (per class when balanced)."""
    scores = _by_order(inputs, balanced, "herding", lambda members: greedy.herding_order(_rows(inputs, members)))
    return _by_score(inputs, scores, ratio, True, balanced)


def _submodular(inputs, balanced, name: str, order_of):
    """A submodular function's greedy order on cosine similarities. Above greedy.DENSE_MAX clips a group is split
    by its SSP k-means clusters, each chosen apart and the picks merged by falling gain (the greedy order of the
    function summed over the clusters)."""
    def order(members):
        if len(members) <= greedy.DENSE_MAX:
            return order_of(greedy.similarity(_rows(inputs, members)))[0]
        clusters = inputs.ssp()[0][members]
        parts = [np.flatnonzero(clusters == c) for c in np.unique(clusters)]
        results = [order_of(greedy.similarity(inputs.features[members[part]])) for part in parts]
        return greedy.merged_order(parts, [r[0] for r in results], [r[1] for r in results])

    return _by_order(inputs, balanced, name, order)


def facility_location(inputs, ratio, rng, balanced=False):
    """Facility location (Cornuejols et al. 1977; DeepCore's submodular selection): the clips that best cover every
    clip, f(S) = sum_i max_{j in S} (1 + cos(i, j)) / 2, by lazy greedy; keep the first picks (per class when
    balanced)."""
    return _by_score(inputs, _submodular(inputs, balanced, "facility_location", greedy.facility_location_order),
                     ratio, True, balanced)


def graph_cut(inputs, ratio, rng, balanced=False):
    """Graph cut (DeepCore's submodular selection, lambda 1): clips similar to all clips but not to each other,
    f(S) = sum_{i in V, j in S} s_ij - sum_{i, j in S} s_ij with s = (1 + cos) / 2, by lazy greedy; keep the first
    picks (per class when balanced)."""
    return _by_score(inputs, _submodular(inputs, balanced, "graph_cut", greedy.graph_cut_order), ratio, True, balanced)


def moderate(inputs, ratio, rng, balanced=False):
    """Moderate coreset (Xia et al. ICLR 2023): the euclidean distance of each embedding to its class's median
    embedding; keep the clips whose distance is nearest the median distance, a band from the middle outwards
    (over the whole set, or per class when balanced). Score: minus the distance's rank from the middle."""
    distances = inputs.once("moderate", lambda: emb.median_distances(inputs.features, inputs.labels))
    scores = np.empty(len(distances))
    for members in _groups(inputs, balanced):
        rank = np.empty(len(members))
        rank[np.argsort(distances[members], kind="stable")] = np.arange(len(members))
        scores[members] = -np.abs(rank - (len(members) - 1) / 2)
    return _by_score(inputs, scores, ratio, True, balanced)


def d2(inputs, ratio, rng, balanced=False):
    """D2 pruning (Maharana et al. ICLR 2024) with EL2N as the difficulty: forward message passing of difficulty
    over the 10-nearest-neighbour graph of the embeddings, then reverse message passing picks clips one at a time
    (kwsprune.greedy_orders.d2_order); keep the first picks (per class when balanced)."""
    difficulty = inputs.model_score("el2n")
    scores = _by_order(inputs, balanced, "d2",
                       lambda members: greedy.d2_order(difficulty[members], _rows(inputs, members)))
    return _by_score(inputs, scores, ratio, True, balanced)


METHODS = {"keep_hard": keep_hard, "keep_easy": keep_easy, "random": random_subset, "ssp_hard": ssp_hard,
           "ssp_easy": ssp_easy, "supervised_prototypes": supervised_prototypes, "semdedup": semdedup,
           "kcenter": kcenter, "el2n": el2n, "forgetting": forgetting, "ccs": ccs, "herding": herding,
           "facility_location": facility_location, "graph_cut": graph_cut, "moderate": moderate, "d2": d2}
MODEL_SCORES = ("el2n", "forgetting")  # scores that train the Tiny CNN; ccs uses el2n


def method_name(name: str) -> str:
    """The registered name of a method (with _balanced for the class-balanced variant), accepting the
    original's aliases; an unknown name lists the valid ones."""
    base, balanced = (name[:-len(BALANCED)], BALANCED) if name.endswith(BALANCED) else (name, "")
    base = ALIASES.get(base, base)
    if base not in METHODS:
        valid = ", ".join(list(METHODS) + [f"{alias} (= {target})" for alias, target in ALIASES.items()])
        raise InputError(f"unknown pruning method {name!r}: choose among {valid}, each also as <name>{BALANCED}")
    return base + balanced


def with_balance(methods, class_balanced: bool) -> list[str]:
    """The methods as --class-balanced asks: each one's class-balanced variant when it is set."""
    return [m + BALANCED if class_balanced and not m.endswith(BALANCED) else m for m in methods]


def run_method(name: str, inputs: Inputs, ratio: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """(scores, sorted kept indices) of a registered method name, class-balanced when it ends in _balanced."""
    name = method_name(name)
    balanced = name.endswith(BALANCED)
    scores, kept = METHODS[name[:-len(BALANCED)] if balanced else name](inputs, ratio, rng, balanced)
    return np.asarray(scores, np.float64), np.asarray(kept, np.int64)

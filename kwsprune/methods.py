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
from kwsprune import model_methods as mm
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
    model_scores: dict = field(default_factory=dict)  # MODEL_SCORES name -> () -> (n,) scores, or the record's dict
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

    def record(self) -> dict:
        """The Tiny CNN's training record (kwsprune.model_scores.training_record)."""
        return self.model_score("record")

    def probabilities(self) -> np.ndarray:
        """The trained Tiny CNN's softmax on every training clip, (n, classes)."""
        record = self.record()
        return self.once("record_probabilities", lambda: mm.probabilities(
            record["train_last_inputs"], record["last_weight"], record["last_bias"]))

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


def _by_clusters(inputs, members, order_of, by_gain: bool = False):
    """order_of(clip indices) -> (order, gains) over `members` at once up to greedy.DENSE_MAX clips; above, within
    each of their SSP k-means clusters, the clusters' orders merged by falling gain (by_gain: a function that sums
    over the clusters) or interleaved in proportion to their sizes."""
    if len(members) <= greedy.DENSE_MAX:
        return order_of(members)[0]
    clusters = inputs.ssp()[0][members]
    parts = [np.flatnonzero(clusters == c) for c in np.unique(clusters)]
    results = [order_of(members[part]) for part in parts]
    orders = [order for order, _ in results]
    return greedy.merged_order(parts, orders, [gains for _, gains in results] if by_gain else greedy.proportional(orders))


def herding(inputs, ratio, rng, balanced=False):
    """Herding (Welling 2009, as DeepCore selects): pick after pick, the clip that brings the mean embedding of
    the picks closest to the mean of all clips; keep the first picks (per class when balanced). O(n^2 d): above
    20,000 clips a group herds within its SSP k-means clusters, interleaved by size."""
    scores = _by_order(inputs, balanced, "herding", lambda members: _by_clusters(
        inputs, members, lambda part: (greedy.herding_order(_rows(inputs, part)), None)))
    return _by_score(inputs, scores, ratio, True, balanced)


def _submodular(inputs, balanced, name: str, order_of):
    """A submodular function's greedy order on cosine similarities; above greedy.DENSE_MAX clips a group is chosen
    within its SSP k-means clusters, merged by falling gain (the greedy order of the function summed over them)."""
    return _by_order(inputs, balanced, name, lambda members: _by_clusters(
        inputs, members, lambda part: order_of(greedy.similarity(_rows(inputs, part))), by_gain=True))


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


def least_confidence(inputs, ratio, rng, balanced=False):
    """Least confidence (DeepCore's uncertainty): 1 - the trained Tiny CNN's largest softmax probability; keep
    the most uncertain clips."""
    return _by_score(inputs, mm.least_confidence(inputs.probabilities()), ratio, True, balanced)


def margin(inputs, ratio, rng, balanced=False):
    """Margin (DeepCore's uncertainty): the gap between the trained Tiny CNN's two largest softmax probabilities;
    keep the clips with the smallest gaps. Score: minus the gap."""
    return _by_score(inputs, mm.margin(inputs.probabilities()), ratio, True, balanced)


def entropy(inputs, ratio, rng, balanced=False):
    """Entropy (DeepCore's uncertainty) of the trained Tiny CNN's softmax; keep the most uncertain clips."""
    return _by_score(inputs, mm.entropy(inputs.probabilities()), ratio, True, balanced)


def dyn_unc(inputs, ratio, rng, balanced=False):
    """Dynamic uncertainty (He et al. CVPR 2024): the spread of each clip's predicted probability of its label
    within windows of 10 epochs of the Tiny CNN's training, averaged over the windows; keep the highest."""
    return _by_score(inputs, mm.dynamic_uncertainty(inputs.record()["true_probability"]), ratio, True, balanced)


def tdds(inputs, ratio, rng, balanced=False):
    """TDDS (Zhang et al. CVPR 2024): the variance, within windows of 10 epochs, of how far each clip's softmax
    moves an epoch, the windows averaged with weights 0.9^(windows after), later training weighing more; keep the
    highest (kwsprune.model_methods.temporal_dual_depth)."""
    return _by_score(inputs, mm.temporal_dual_depth(inputs.record()["change"]), ratio, True, balanced)


def grand(inputs, ratio, rng, balanced=False):
    """GraNd (Paul et al. 2021): the norm of each clip's loss gradient after 10 epochs, mean of 5 initialisations
    (EL2N's training); the output layer's, in closed form. Keep the highest (hardest)."""
    return _by_score(inputs, inputs.model_score("grand"), ratio, True, balanced)


def deepfool(inputs, ratio, rng, balanced=False):
    """DeepFool (Ducoffe & Precioso 2018): the smallest perturbation of the output layer's input that changes the
    trained Tiny CNN's prediction, in closed form for that linear layer; keep the clips nearest the decision
    boundary. Score: the distance (kept low)."""
    record = inputs.record()
    distance = mm.deepfool_distance(record["train_last_inputs"], inputs.labels, record["last_weight"], record["last_bias"])
    return _by_score(inputs, distance, ratio, False, balanced)


def cal(inputs, ratio, rng, balanced=False):
    """CAL, contrastive active learning (Margatina et al. 2021): the mean KL divergence between the trained Tiny
    CNN's predictions on a clip's 10 nearest neighbours in the embedding space and on the clip; keep the highest
    (similar clips, different predictions)."""
    scores = inputs.once("cal", lambda: mm.contrastive(inputs.probabilities(), emb.l2_normalise(inputs.features)))
    return _by_score(inputs, scores, ratio, True, balanced)


def contextual_diversity(inputs, ratio, rng, balanced=False):
    """Contextual diversity (Agarwal et al. 2020, as DeepCore runs it): k-center greedy on the trained Tiny CNN's
    softmax outputs with the symmetric KL divergence as distance; keep the first picks (per class when balanced).
    O(n^2 classes): above 20,000 clips a group is chosen within its SSP k-means clusters, interleaved by size."""
    p = inputs.probabilities()
    scores = _by_order(inputs, balanced, "contextual_diversity", lambda members: _by_clusters(
        inputs, members, lambda part: (mm.kl_center_order(p[part], inputs.seed), None)))
    return _by_score(inputs, scores, ratio, True, balanced)


def _per_class_gradients(inputs, members):
    """(the class parts of `members`, each part's output-layer gradient Gram matrix)."""
    record = inputs.record()
    error, extended = mm.gradient_factors(inputs.probabilities()[members], record["train_last_inputs"][members],
                                          inputs.labels[members])
    labels = inputs.labels[members]
    parts = [np.flatnonzero(labels == label) for label in np.unique(labels)]
    return parts, [mm.gradient_gram(error[part], extended[part]) for part in parts]


def craig(inputs, ratio, rng, balanced=False):
    """CRAIG (Mirzasoleiman et al. 2020): per class, facility location on the similarity of the clips' output-layer
    gradients (the largest distance minus theirs), by lazy greedy; the classes' picks merged by falling gain. Keep
    the first picks."""
    def order(members):
        parts, grams = _per_class_gradients(inputs, members)
        results = [greedy.facility_location_order(mm.craig_similarity(gram)) for gram in grams]
        return greedy.merged_order(parts, [r[0] for r in results], [r[1] for r in results])

    return _by_score(inputs, _by_order(inputs, balanced, "craig", order), ratio, True, balanced)


def gradmatch(inputs, ratio, rng, balanced=False):
    """GradMatch (Killamsetty et al. 2021): per class, orthogonal matching pursuit of the class's summed output-layer
    gradient (kwsprune.model_methods.gradmatch_order); the classes' orders interleaved in proportion to their
    sizes. Keep the first picks."""
    def order(members):
        parts, grams = _per_class_gradients(inputs, members)
        orders = [mm.gradmatch_order(gram, inputs.seed) for gram in grams]
        return greedy.merged_order(parts, orders, greedy.proportional(orders))

    return _by_score(inputs, _by_order(inputs, balanced, "gradmatch", order), ratio, True, balanced)


def glister(inputs, ratio, rng, balanced=False):
    """GLISTER (Killamsetty et al. 2021): greedy by the validation loss's Taylor-approximated fall, the output layer
    moved after each of 100 rounds (kwsprune.model_methods.glister_order); keep the first picks (per class when
    balanced)."""
    record = inputs.record()
    p = inputs.probabilities()
    scores = _by_order(inputs, balanced, "glister", lambda members: mm.glister_order(
        p[members], record["train_last_inputs"][members], inputs.labels[members], record["valid_last_inputs"],
        record["valid_labels"], record["last_weight"], record["last_bias"]))
    return _by_score(inputs, scores, ratio, True, balanced)


METHODS = {"keep_hard": keep_hard, "keep_easy": keep_easy, "random": random_subset, "ssp_hard": ssp_hard,
           "ssp_easy": ssp_easy, "supervised_prototypes": supervised_prototypes, "semdedup": semdedup,
           "kcenter": kcenter, "el2n": el2n, "forgetting": forgetting, "ccs": ccs, "herding": herding,
           "facility_location": facility_location, "graph_cut": graph_cut, "moderate": moderate, "d2": d2,
           "least_confidence": least_confidence, "margin": margin, "entropy": entropy, "dyn_unc": dyn_unc,
           "tdds": tdds, "grand": grand, "deepfool": deepfool, "cal": cal, "contextual_diversity": contextual_diversity,
           "craig": craig, "gradmatch": gradmatch, "glister": glister}
# the families the report draws apart when a study holds more methods than one figure can show
FAMILIES = {"original": ("keep_hard", "keep_easy"),
            "geometry": ("ssp_hard", "ssp_easy", "supervised_prototypes", "semdedup", "kcenter", "herding", "moderate"),
            "submodular": ("facility_location", "graph_cut"),
            "training dynamics": ("el2n", "grand", "forgetting", "ccs", "d2", "dyn_unc", "tdds"),
            "uncertainty": ("least_confidence", "margin", "entropy", "deepfool", "cal", "contextual_diversity"),
            "gradients": ("craig", "gradmatch", "glister")}
# what trains the Tiny CNN: EL2N's and GraNd's early training (ccs and d2 read EL2N), forgetting's run, and the
# training record of the uncertainty, dynamics, decision-boundary and gradient methods
MODEL_SCORES = ("el2n", "grand", "forgetting", "record")
# the methods that score from those: pruning.py trains them; from embeddings alone, the rest
FROM_TRAINING = ("el2n", "grand", "forgetting", "ccs", "d2", "least_confidence", "margin", "entropy", "dyn_unc", "tdds",
                 "deepfool", "cal", "contextual_diversity", "craig", "gradmatch", "glister")


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

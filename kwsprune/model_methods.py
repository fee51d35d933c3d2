"""Scores and greedy orders read from the Tiny CNN's training record (kwsprune.model_scores.training_record):
uncertainty, training dynamics, decision boundary and gradient matching. Arrays in, arrays out; high scores
are kept, orders keep their first picks.

Gradients are the output layer's, in closed form: for a clip with softmax p, label y and output-layer input h,
the gradient of cross-entropy with respect to the layer's weights and bias is (p - onehot(y)) times [h, 1]. The
inner product of two such gradients is the product of their two factors' inner products, so a class's Gram
matrix needs no gradient written out.
"""

import warnings

import numpy as np
from scipy.special import softmax

WINDOW = 10  # epochs in a window of dyn_unc and tdds: our choice for runs of 30-170 epochs (the papers tune it)


def probabilities(last_inputs, weight, bias) -> np.ndarray:
    """The softmax of the output layer, (n, classes) float64."""
    return softmax(np.asarray(last_inputs, np.float64) @ weight + bias, axis=1)


def least_confidence(p) -> np.ndarray:
    """1 - the largest probability (Settles 2009; DeepCore's Uncertainty 'LeastConfidence'): high = uncertain."""
    return 1.0 - p.max(axis=1)


def margin(p) -> np.ndarray:
    """Minus the gap between the two largest probabilities (DeepCore's 'Margin'): high = a small gap, uncertain."""
    top2 = np.sort(p, axis=1)[:, -2:]
    return -(top2[:, 1] - top2[:, 0])


def entropy(p) -> np.ndarray:
    """The entropy of the softmax (DeepCore's 'Entropy'): high = uncertain."""
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=1)


def windows(epochs: int, size: int = WINDOW) -> list[slice]:
    """The sliding windows of `size` epochs (one window of all epochs when there are fewer)."""
    return [slice(start, start + size) for start in range(max(1, epochs - size + 1))]


def dynamic_uncertainty(true_probability) -> np.ndarray:
    """Dynamic uncertainty (He et al. CVPR 2024): in every window of WINDOW epochs, the standard deviation of the
    clip's predicted probability of its label; the mean over windows. (epochs, n) -> (n,); high = uncertain."""
    return np.mean([true_probability[w].std(axis=0) for w in windows(len(true_probability))], axis=0)


def temporal_dual_depth(change, decay: float = 0.9) -> np.ndarray:
    """TDDS (Zhang et al. CVPR 2024), on the record's per-epoch change of each clip's softmax (KL to its last
    epoch's) standing in for the projection of its gradient on the training direction: the inner depth is that
    change over the epochs of a window, the outer depth its variance within the window; windows are averaged with
    weights decay^(windows after it), later training weighing more. (epochs, n) -> (n,); high = kept."""
    spans = windows(len(change))
    weights = decay ** np.arange(len(spans))[::-1]
    return np.average([change[w].var(axis=0) for w in spans], axis=0, weights=weights)


def deepfool_distance(last_inputs, labels, weight, bias) -> np.ndarray:
    """DeepFool (Ducoffe & Precioso 2018) on the output layer: the smallest step in its input that gives another
    class the larger logit, min over k != y of |z_y - z_k| / ||w_y - w_k||. (n,); small = near the boundary."""
    logits = np.asarray(last_inputs, np.float64) @ weight + bias
    labels = np.asarray(labels)
    gaps = np.abs(logits[np.arange(len(labels)), labels][:, None] - logits)
    columns = weight.T.astype(np.float64)
    norms = np.linalg.norm(columns[:, None, :] - columns[None, :, :], axis=2)[labels]  # ||w_y - w_k||, by class pair
    steps = np.where(np.arange(weight.shape[1])[None, :] == labels[:, None], np.inf, gaps / np.maximum(norms, 1e-12))
    return steps.min(axis=1)


def contrastive(p, features, n_neighbors: int = 10) -> np.ndarray:
    """CAL (Margatina et al. 2021): the mean KL divergence from the predictions of a clip's n_neighbors nearest
    clips (in the embedding space) to its own prediction, KL(p_neighbour || p_clip). (n,); high = kept."""
    from sklearn.neighbors import NearestNeighbors

    k = min(n_neighbors, len(p) - 1)
    _, neighbours = NearestNeighbors(n_neighbors=k + 1).fit(features).kneighbors(features)
    neighbours = neighbours[:, 1:]
    log_p = np.log(np.clip(p, 1e-12, None))
    near = p[neighbours]  # (n, k, classes)
    return (near * (np.log(np.clip(near, 1e-12, None)) - log_p[:, None, :])).sum(axis=2).mean(axis=1)


def kl_center_order(p, seed: int) -> np.ndarray:
    """Contextual diversity (Agarwal et al. 2020) as DeepCore runs it: k-center greedy on the softmax outputs, the
    distance of two clips the symmetric KL divergence of their predictions; from one seeded random clip."""
    log_p = np.log(np.clip(p, 1e-12, None))
    self_term = (p * log_p).sum(axis=1)
    n = len(p)
    nearest = np.full(n, np.inf)
    order = np.empty(n, np.int64)
    pick = int(np.random.default_rng(seed).integers(n))
    for t in range(n):
        order[t] = pick
        # KL(p||c) + KL(c||p) = sum p log p + sum c log c - p . log c - c . log p
        distance = self_term + self_term[pick] - log_p @ p[pick] - p @ log_p[pick]
        np.minimum(nearest, distance, out=nearest)
        nearest[order[:t + 1]] = -np.inf
        pick = int(np.argmax(nearest))
    return order


def gradient_factors(p, last_inputs, labels) -> tuple[np.ndarray, np.ndarray]:
    """The two factors of each clip's output-layer gradient: p - onehot(y) (n, classes) and [h, 1] (n, width + 1)."""
    error = p.copy()
    error[np.arange(len(labels)), np.asarray(labels)] -= 1.0
    return error, _with_bias(last_inputs)


def _with_bias(last_inputs) -> np.ndarray:
    """[h, 1] of each clip, (n, width + 1) float64: what the output layer's weights and bias multiply."""
    return np.hstack([np.asarray(last_inputs, np.float64), np.ones((len(last_inputs), 1))])


def gradient_gram(error, extended) -> np.ndarray:
    """Inner products of the clips' output-layer gradients, (n, n): (E E^T) * (H H^T)."""
    return (error @ error.T) * (extended @ extended.T)


def craig_similarity(gram) -> np.ndarray:
    """CRAIG's similarity of two clips: the largest gradient distance in the group minus theirs, >= 0."""
    squared = np.diagonal(gram)
    distance = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - (gram + gram.T), 0.0))  # exactly symmetric
    return distance.max() - distance


def gradmatch_order(gram, seed: int) -> np.ndarray:
    """GradMatch (Killamsetty et al. 2021): orthogonal matching pursuit of the group's summed gradient by its clips'
    gradients; the clips in the order the pursuit takes them (until the sum is matched, at most as many as the
    gradients' rank), the rest after them in a seeded random order, as GradMatch fills its budget. The weights are
    least squares (scikit-learn's OMP), not GradMatch's non-negative ones."""
    from sklearn.linear_model import orthogonal_mp_gram

    n = len(gram)
    target = gram.sum(axis=1)
    rank = int(np.linalg.matrix_rank(gram, hermitian=True))
    taken: list[int] = []
    if rank > 0:
        with warnings.catch_warnings():  # "ended prematurely due to linear dependence": the sum is matched
            warnings.simplefilter("ignore", RuntimeWarning)
            path = orthogonal_mp_gram(gram, target, n_nonzero_coefs=min(rank, n), return_path=True).reshape(n, -1)
        for step in range(path.shape[1]):
            taken += [int(i) for i in np.flatnonzero(path[:, step]) if int(i) not in taken]
    rest = np.setdiff1d(np.arange(n), taken)
    return np.concatenate([np.asarray(taken, np.int64), np.random.default_rng(seed).permutation(rest)])


def glister_order(p, last_inputs, labels, valid_last_inputs, valid_labels, weight, bias, rounds: int = 100,
                  step: float = 0.1) -> np.ndarray:  # rounds and step: ours, GLISTER's greedy batched for speed
    """GLISTER-ONLINE (Killamsetty et al. 2021) on the output layer: the validation loss's first-order (Taylor)
    gain of a clip is its gradient's inner product with the validation gradient. In `rounds` rounds, take the
    clips of largest gain (n / rounds a round), move the layer by `step` times their mean gradient, and compute
    the validation gradient again. The clips in the order taken."""
    error, extended = gradient_factors(p, last_inputs, labels)
    valid_extended = _with_bias(valid_last_inputs)
    layer = np.vstack([weight, bias[None, :]]).astype(np.float64)  # (width + 1, classes)
    n = len(p)
    free = np.ones(n, bool)
    order = []
    per_round = max(1, -(-n // rounds))
    while len(order) < n:
        valid_error = softmax(valid_extended @ layer, axis=1)
        valid_error[np.arange(len(valid_labels)), valid_labels] -= 1.0
        valid_gradient = valid_extended.T @ valid_error / len(valid_labels)  # (width + 1, classes)
        # <g_i, G> = e_i^T G^T h_i for g_i = h_i e_i^T
        gain = np.einsum("nc,nc->n", error, extended @ valid_gradient)  # how far the validation loss falls
        gain[~free] = -np.inf
        taken = np.argsort(-gain, kind="stable")[:min(per_round, int(free.sum()))]
        order.extend(taken.tolist())
        free[taken] = False
        layer -= step * (extended[taken].T @ error[taken]) / len(taken)
    return np.asarray(order, np.int64)

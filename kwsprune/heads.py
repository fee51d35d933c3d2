"""Heads on frozen embeddings: many multinomial logistic regressions fitted at once, each on its own clips.

Each head is scikit-learn's `make_pipeline(StandardScaler(), LogisticRegression(C=penalty))` on its clips:
inputs standardised by its own clips' mean and standard deviation, then the convex objective
`mean cross-entropy + |W|^2 / (2 C n)` (the intercept unpenalised) minimised by L-BFGS. The heads are solved
together as one batched problem whose pieces never mix: every head keeps its own L-BFGS history, line
search and stopping, so a head fitted alone equals itself fitted beside others (float64). The solution is
unique, so a head has no seed: refitting one draw gives the same accuracy to the last clip.
"""

import numpy as np
import torch
import torch.nn.functional as F

HISTORY = 10        # L-BFGS pairs kept
MAX_ITERATIONS = 500
GRADIENT_TOL = 1e-6  # a head stops when its largest gradient entry is below this (the objective is a mean)
ARMIJO = 1e-4
MAX_HALVINGS = 40


def standardise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each head's mean and standard deviation over its clips, x (heads, clips, dim) -> two (heads, dim); a constant
    feature gets scale 1 (as StandardScaler)."""
    mean = x.mean(dim=1)
    scale = x.var(dim=1, unbiased=False).sqrt()
    return mean, torch.where(scale > 0, scale, torch.ones_like(scale))


def _objective(theta, x, y_onehot, n_classes: int, penalty_weight: float):
    """Per-head objective (heads,) and its gradient (heads, P) at theta (heads, P = dim * C + C), in closed form:
    the mean of (softmax - onehot) times [x, 1], plus the penalty's pull on the weights."""
    heads, n, dim = x.shape
    weight = theta[:, :dim * n_classes].reshape(heads, dim, n_classes)
    bias = theta[:, dim * n_classes:]
    logits = torch.baddbmm(bias[:, None, :], x, weight)
    log_p = torch.log_softmax(logits, dim=2)
    losses = -(log_p * y_onehot).sum(dim=2).mean(dim=1) + 0.5 * penalty_weight * (weight * weight).sum(dim=(1, 2))
    error = (log_p.exp() - y_onehot) / n  # (heads, n, C)
    grad_weight = torch.bmm(x.transpose(1, 2), error) + penalty_weight * weight
    return losses, torch.cat([grad_weight.reshape(heads, -1), error.sum(dim=1)], dim=1)


def _direction(grad, s_hist, y_hist, rho, valid, order, gamma):
    """The L-BFGS direction of every head from its own pairs (the two-loop recursion), (heads, P)."""
    q = grad.clone()
    alphas = []
    for j in reversed(order):
        alpha = valid[:, j] * rho[:, j] * (s_hist[:, j] * q).sum(dim=1)
        q = q - alpha[:, None] * y_hist[:, j]
        alphas.append(alpha)
    r = gamma[:, None] * q
    for j, alpha in zip(order, reversed(alphas)):
        beta = valid[:, j] * rho[:, j] * (y_hist[:, j] * r).sum(dim=1)
        r = r + s_hist[:, j] * (alpha - beta)[:, None]
    return -r


def fit_logistic(x_train, y_train, subsets, n_classes: int, penalty: float = 1.0, dtype=torch.float64,
                 device: str = "cpu", max_iterations: int = MAX_ITERATIONS, tol: float = GRADIENT_TOL) -> dict:
    """Fit one head per subset of training indices (all of one size) on embeddings x_train (n, dim).

    Returns {"weight" (heads, dim, C), "bias" (heads, C)} on the raw (unstandardised) embeddings, with
    "iterations" (heads,): the L-BFGS iterations each head took (it stops at `tol` or max_iterations)."""
    index = torch.as_tensor(np.stack(subsets), dtype=torch.long, device=device)
    x = torch.as_tensor(np.asarray(x_train), dtype=dtype, device=device)[index]  # (heads, n, dim)
    y = torch.as_tensor(np.asarray(y_train), dtype=torch.long, device=device)[index]
    mean, scale = standardise(x)
    x = (x - mean[:, None]) / scale[:, None]
    heads, n, dim = x.shape
    penalty_weight = 1.0 / (penalty * n)
    size = dim * n_classes + n_classes
    theta = torch.zeros(heads, size, dtype=dtype, device=device)
    s_hist = torch.zeros(heads, HISTORY, size, dtype=dtype, device=device)
    y_hist = torch.zeros_like(s_hist)
    rho = torch.zeros(heads, HISTORY, dtype=dtype, device=device)
    valid = torch.zeros_like(rho)
    gamma = torch.ones(heads, dtype=dtype, device=device)
    onehot = F.one_hot(y, n_classes).to(dtype)
    loss, grad = _objective(theta, x, onehot, n_classes, penalty_weight)
    active = grad.abs().amax(dim=1) > tol
    iterations = torch.zeros(heads, dtype=torch.long, device=device)
    for it in range(max_iterations):
        if not active.any():
            break
        order = [(it - HISTORY + k) % HISTORY for k in range(HISTORY)]  # oldest to newest
        direction = _direction(grad, s_hist, y_hist, rho, valid, order, gamma)
        if it == 0:  # no curvature yet: a first step of length 1 in each head's own units
            direction = direction / grad.norm(dim=1, keepdim=True).clamp(min=1e-12)
        slope = (grad * direction).sum(dim=1)
        step = torch.ones(heads, dtype=dtype, device=device)
        pending = active.clone()
        new_theta, new_loss, new_grad = theta.clone(), loss.clone(), grad.clone()
        for _ in range(MAX_HALVINGS):  # Armijo backtracking, each head on its own: only those still searching
            trying = torch.nonzero(pending).flatten()
            trial = theta[trying] + step[trying, None] * direction[trying]
            every = len(trying) == heads  # no copy of the clips when every head is still searching
            trial_loss, trial_grad = _objective(trial, x if every else x[trying], onehot if every else onehot[trying],
                                                n_classes, penalty_weight)
            ok = trial_loss <= loss[trying] + ARMIJO * step[trying] * slope[trying]
            accepted = trying[ok]
            new_theta[accepted], new_loss[accepted], new_grad[accepted] = trial[ok], trial_loss[ok], trial_grad[ok]
            pending[accepted] = False
            if not pending.any():
                break
            step = torch.where(pending, step * 0.5, step)
        stalled = pending  # no step lowered the objective: at the precision's floor, the head stops where it is
        moved = active & ~stalled
        s, g_diff = new_theta - theta, new_grad - grad
        sy = (s * g_diff).sum(dim=1)
        curved = moved & (sy > 1e-12)
        slot = it % HISTORY
        s_hist[:, slot] = torch.where(curved[:, None], s, s_hist[:, slot])
        y_hist[:, slot] = torch.where(curved[:, None], g_diff, y_hist[:, slot])
        rho[:, slot] = torch.where(curved, 1.0 / sy.clamp(min=1e-300), rho[:, slot])
        valid[:, slot] = torch.where(curved, 1.0, torch.where(moved, 0.0, valid[:, slot]))
        gamma = torch.where(curved, sy / (g_diff * g_diff).sum(dim=1).clamp(min=1e-300), gamma)
        theta, loss, grad = new_theta, new_loss, new_grad
        iterations += active.long()
        active = moved & (grad.abs().amax(dim=1) > tol)
    weight = theta[:, :dim * n_classes].reshape(heads, dim, n_classes)
    bias = theta[:, dim * n_classes:]
    # folded back onto the raw embeddings: (x - mean) / scale @ W + b = x @ (W / scale) + (b - (mean / scale) @ W)
    raw_weight = weight / scale[:, :, None]
    raw_bias = bias - torch.einsum("hd,hdc->hc", mean / scale, weight)
    return {"weight": raw_weight, "bias": raw_bias, "iterations": iterations.cpu().numpy()}


def head_logits(head: dict, x) -> torch.Tensor:
    """Logits (n, heads, C) of every head for embeddings x (n, dim), all heads on the same clips."""
    weight = head["weight"]
    x = torch.as_tensor(np.asarray(x), dtype=weight.dtype, device=weight.device)
    return torch.einsum("nd,hdc->nhc", x, weight) + head["bias"]


def evaluate_heads(head: dict, x, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean cross-entropy (heads,), accuracy (heads,) and the predicted class of every clip (n, heads)."""
    logits = head_logits(head, x)
    labels = torch.as_tensor(np.asarray(y), dtype=torch.long, device=logits.device)
    labels = labels[:, None].expand(-1, logits.shape[1])
    loss = F.cross_entropy(logits.permute(0, 2, 1), labels, reduction="none").mean(dim=0)
    predicted = logits.argmax(dim=-1)
    accuracy = (predicted == labels).double().mean(dim=0)
    return loss.cpu().numpy(), accuracy.cpu().numpy(), predicted.cpu().numpy()

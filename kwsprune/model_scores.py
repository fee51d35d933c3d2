"""What the Tiny CNN trained on every training clip says of each clip: EL2N and GraNd (early in training, over
several initialisations), forgetting events, and the training record the uncertainty, decision-boundary and
gradient methods read (kwsprune.model_methods).

All train on the MFCCs of the full training split with the batched engine (kwsprune.training), once per seed;
pruning.py caches the scores and the record in y_pruned/ with a manifest, like every other score.
"""

import numpy as np
import torch

from kwsprune.models import architecture
from kwsprune.training import TrainConfig, fit, last_layer_inputs, predict_proba

EL2N_EPOCHS = 10  # "a few epochs" of the original's 170-epoch recipe
EL2N_MODELS = 5   # initialisations averaged, trained together
SCORE_CONFIG = TrainConfig(batch_size=512)  # the Tiny CNN at the original's batch size, as the scores were measured


def early_training(x_train, y_train, x_valid, y_valid, n_classes: int, seed: int, epochs: int = EL2N_EPOCHS,
                   n_models: int = EL2N_MODELS, config: TrainConfig = SCORE_CONFIG, device: str = "cpu") -> dict:
    """`n_models` initialisations trained `epochs` epochs on all clips: their softmax outputs (n, models, classes)
    and the inputs of their output layer (n, models, width) on every training clip: what EL2N and GraNd read."""
    all_clips = np.arange(len(y_train))
    early = TrainConfig(**{**config.__dict__, "max_epochs": epochs, "stop_patience": epochs + 1})  # no early stop
    _, last, _ = fit(x_train, y_train, [all_clips] * n_models, x_valid, y_valid, n_classes,
                     [seed * 1000 + m for m in range(n_models)], early, device)
    return {"probabilities": predict_proba(early.model, last, x_train),
            "last_inputs": last_layer_inputs(early.model, last, x_train)}


def el2n_scores(x_train, y_train, x_valid, y_valid, n_classes: int, seed: int, epochs: int = EL2N_EPOCHS,
                n_models: int = EL2N_MODELS, config: TrainConfig = SCORE_CONFIG, device: str = "cpu",
                early: dict | None = None) -> np.ndarray:
    """EL2N (Paul et al. 2021): || softmax(f(x)) - onehot(y) ||_2 of every clip after `epochs` epochs of
    training on all clips, averaged over `n_models` initialisations. High = hard. (n,) float64. early: the
    early_training already made, else it is trained now."""
    early = early or early_training(x_train, y_train, x_valid, y_valid, n_classes, seed, epochs, n_models, config, device)
    return _errors(early, y_train, n_classes).mean(axis=1)


def _errors(early: dict, y_train, n_classes: int) -> np.ndarray:
    """|| softmax - onehot(y) ||_2 of every clip under each early model, (n, models)."""
    onehot = np.eye(n_classes)[np.asarray(y_train)][:, None, :]
    return np.linalg.norm(early["probabilities"] - onehot, axis=2)


def grand_scores(x_train, y_train, x_valid, y_valid, n_classes: int, seed: int, epochs: int = EL2N_EPOCHS,
                 n_models: int = EL2N_MODELS, config: TrainConfig = SCORE_CONFIG, device: str = "cpu",
                 early: dict | None = None) -> np.ndarray:
    """GraNd (Paul et al. 2021): the norm of the loss gradient of every clip early in training (EL2N's training),
    averaged over initialisations. Of the output layer only, in closed form: the gradient of cross-entropy
    with respect to its weights and bias is (softmax - onehot) times [input, 1], whose norm is ||softmax - onehot||
    times sqrt(||input||^2 + 1). High = hard. (n,) float64."""
    early = early or early_training(x_train, y_train, x_valid, y_valid, n_classes, seed, epochs, n_models, config, device)
    size = np.sqrt((early["last_inputs"].astype(np.float64) ** 2).sum(axis=2) + 1.0)
    return (_errors(early, y_train, n_classes) * size).mean(axis=1)


def forgetting_scores(x_train, y_train, x_valid, y_valid, n_classes: int, seed: int,
                      config: TrainConfig = SCORE_CONFIG, device: str = "cpu") -> np.ndarray:
    """Forgetting events (Toneva et al. 2019) over one full training run (the original's recipe, early
    stopping included): each time a clip comes up in a batch, is it classified right (by that step's
    training forward pass)? A forgetting event is right, then wrong at its next presentation. Clips never
    classified right count as forgotten more often than any other (epochs + 1). High = forgettable. (n,)."""
    n = len(y_train)
    labels = torch.as_tensor(np.asarray(y_train), dtype=torch.long, device=device)
    previous = torch.zeros(n, dtype=torch.bool, device=device)
    ever_right = torch.zeros(n, dtype=torch.bool, device=device)
    events = torch.zeros(n, dtype=torch.long, device=device)

    def count(models, clips, logits):
        clips = clips[0]  # one model
        right = logits[:, 0].argmax(dim=-1) == labels[clips]
        events[clips] += (previous[clips] & ~right).long()
        previous[clips] = right
        ever_right[clips] |= right

    _, _, epochs = fit(x_train, y_train, [np.arange(n)], x_valid, y_valid, n_classes, [seed], config, device,
                       on_batch=count)
    scores = events.cpu().numpy().astype(np.float64)
    scores[~ever_right.cpu().numpy()] = int(epochs[0]) + 1
    return scores


RECORD_ARRAYS = ("true_probability", "change", "train_last_inputs", "valid_last_inputs", "last_weight",
                 "last_bias", "valid_labels")


def training_record(x_train, y_train, x_valid, y_valid, n_classes: int, seed: int, config: TrainConfig = SCORE_CONFIG,
                    device: str = "cpu") -> dict:
    """One Tiny CNN trained on every clip with the full recipe (early stopping included), recorded: per epoch and
    clip, from the training pass in which the clip came up, the softmax probability of its label and how far its
    softmax moved since its last epoch (KL(p_t || p_t-1); 0 at the first), each
    (epochs, n); and, with the best weights, the output layer's inputs for training and validation clips, its
    weights (width, classes) and bias (classes,), and the validation labels. The uncertainty, decision-boundary
    and gradient methods read it, so adding one costs scoring, not training."""
    n = len(y_train)
    labels = torch.as_tensor(np.asarray(y_train), dtype=torch.long, device=device)
    previous = torch.zeros((n, n_classes), device=device)
    seen = torch.zeros(n, dtype=torch.bool, device=device)
    epoch_arrays = {name: torch.zeros(n, device=device) for name in ("true_probability", "change")}
    per_epoch = {name: [] for name in epoch_arrays}

    def count(models, clips, logits):
        clips = clips[0]  # one model
        probabilities = torch.softmax(logits[:, 0].float(), dim=-1)
        epoch_arrays["true_probability"][clips] = probabilities.gather(1, labels[clips, None])[:, 0]
        before = previous[clips].clamp_min(1e-12)
        moved = (probabilities * (probabilities.clamp_min(1e-12).log() - before.log())).sum(dim=-1)
        epoch_arrays["change"][clips] = torch.where(seen[clips], moved, torch.zeros_like(moved))
        previous[clips], seen[clips] = probabilities, True

    def close_epoch(epoch, training):
        for name, values in epoch_arrays.items():
            per_epoch[name].append(values.cpu().numpy().copy())

    best, _, _ = fit(x_train, y_train, [np.arange(n)], x_valid, y_valid, n_classes, [seed], config, device,
                     on_batch=count, on_epoch=close_epoch)
    last = len(architecture(config.model).dropout) - 1
    return {"true_probability": np.stack(per_epoch["true_probability"]).astype(np.float32),
            "change": np.stack(per_epoch["change"]).astype(np.float32),
            "train_last_inputs": last_layer_inputs(config.model, best, x_train)[:, 0],
            "valid_last_inputs": last_layer_inputs(config.model, best, x_valid)[:, 0],
            "last_weight": best[f"dense{last}.weight"][0].float().cpu().numpy(),
            "last_bias": best[f"dense{last}.bias"][0].float().cpu().numpy(),
            "valid_labels": np.asarray(y_valid, dtype=np.int64)}

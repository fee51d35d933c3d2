"""Scores of training clips that need the Tiny CNN trained on them: EL2N and forgetting events.

Both train on the MFCCs of the full training split with the batched engine (kwsprune.training), once
per seed; pruning.py caches them in y_pruned/ with a manifest, like every other score.
"""

import numpy as np
import torch

from kwsprune.training import TrainConfig, fit, predict_proba

EL2N_EPOCHS = 10  # "a few epochs" of the original's 170-epoch recipe
EL2N_MODELS = 5   # initialisations averaged, trained together
SCORE_CONFIG = TrainConfig(batch_size=512)  # the Tiny CNN at the original's batch size, as the scores were measured


def el2n_scores(x_train, y_train, x_valid, y_valid, n_classes: int, seed: int, epochs: int = EL2N_EPOCHS,
                n_models: int = EL2N_MODELS, config: TrainConfig = SCORE_CONFIG, device: str = "cpu") -> np.ndarray:
    """EL2N (Paul et al. 2021): || softmax(f(x)) - onehot(y) ||_2 of every clip after `epochs` epochs of
    training on all clips, averaged over `n_models` initialisations. High = hard. (n,) float64."""
    all_clips = np.arange(len(y_train))
    early = TrainConfig(**{**config.__dict__, "max_epochs": epochs, "stop_patience": epochs + 1})  # no early stop
    _, last, _ = fit(x_train, y_train, [all_clips] * n_models, x_valid, y_valid, n_classes,
                     [seed * 1000 + m for m in range(n_models)], early, device)
    probabilities = predict_proba(early.model, last, x_train)  # (n, models, classes)
    onehot = np.eye(n_classes)[np.asarray(y_train)][:, None, :]
    return np.linalg.norm(probabilities - onehot, axis=2).mean(axis=1)


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

"""How a model is trained: one TrainConfig, its named recipes, and the ingredients that are not the engine's loop
(the learning-rate schedule, SpecAugment's masks, the inputs' standardisation).

`kwsprune` and `original` are the recipes docs/results.md rests on (Adam, learning rate halved on a validation
plateau, early stopping, the best weights by validation loss). The others train for a fixed epoch budget on a
schedule and keep the last or averaged weights, so that no noisy validation loss decides when a run ends or
which weights it keeps: `steady` for the original's CNNs, `ds-cnn` and `bc-resnet` after the papers' reference
code, `head` for the heads on frozen embeddings. Every ingredient is a field, on or off by flag.
"""

import math
from dataclasses import dataclass, fields

import numpy as np

from kwsprune.validation import InputError

AUTO = "auto"
ORIGINAL_BATCH_SIZE = 512
ENGINES = ("torch", "keras")
RESTORE_POLICIES = ("always", "on-stop")
DTYPES = ("float32", "float64", "bfloat16")  # bfloat16 is an opt-in: see TrainConfig.dtype
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("plateau", "cosine")
WEIGHTS = ("best", "last", "ema")


def auto_batch_size(n_clips: int) -> int:
    """At least 8 steps an epoch: the largest power of two <= n_clips / 8, between 16 and the original's 512."""
    return int(min(ORIGINAL_BATCH_SIZE, max(16, 2 ** math.floor(math.log2(max(n_clips, 1) / 8)))))


@dataclass(frozen=True)
class TrainConfig:
    model: str = "tiny"
    batch_size: int | str = AUTO  # a number of clips, or "auto" (auto_batch_size of the training set's size)
    max_epochs: int = 170         # the cap (plateau recipes) or the budget (cosine: every run trains this many)
    learning_rate: float = 5e-3   # the initial rate (plateau) or the peak after warm-up (cosine)
    restore_best: str = "always"  # weights "best": "always", or "on-stop": only when early stopping ended the run
    dtype: str = "float32"  # float64: exact (a model alone equals itself in a batch); bfloat16: layers in bfloat16
    dropout: float = 0.1
    lr_factor: float = 0.5
    lr_patience: int = 3
    stop_patience: int = 15
    min_delta: float = 1e-4
    adam_betas: tuple = (0.9, 0.999)
    adam_epsilon: float = 1e-7
    optimizer: str = "adam"       # adam (decoupled weight decay: AdamW) | sgd (momentum; weight decay added to the gradient)
    momentum: float = 0.9         # sgd
    schedule: str = "plateau"     # plateau: halved after lr_patience epochs without a better validation loss |
    #                               cosine: linear warm-up, then a cosine to 0 at the last step of max_epochs
    warmup_epochs: int = 0
    early_stopping: bool = True   # stop after stop_patience epochs without a better validation loss
    weights: str = "best"         # best: by validation loss (restore_best says when) | last | ema: averaged
    ema_decay: float = 0.999      # weights "ema": the average's decay a step
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    time_masks: tuple = (0, 0)    # SpecAugment: (masks a clip, widest mask) over frames, zeroed in training
    freq_masks: tuple = (0, 0)    # ... over coefficients or bands
    standardise: bool = False     # inputs minus every training clip's per-coefficient mean, over its sd
    penalty: float = 1.0          # heads: C, the inverse strength of the logistic regression's L2 penalty

    def batch_for(self, n_clips: int) -> int:
        """The batch size a run on n_clips clips trains with."""
        return auto_batch_size(n_clips) if self.batch_size == AUTO else int(self.batch_size)

    @property
    def validates(self) -> bool:
        """Does training read the validation loss every epoch (a plateau, early stopping or the best weights)?"""
        return self.schedule == "plateau" or self.early_stopping or self.weights == "best"


# named recipes: what the flags of the training scripts start from
RECIPES = {
    "kwsprune": TrainConfig(),
    "original": TrainConfig(batch_size=ORIGINAL_BATCH_SIZE, restore_best="on-stop"),
    # the original's CNNs for a fixed budget: no validation loss decides anything
    "steady": TrainConfig(schedule="cosine", warmup_epochs=2, max_epochs=60, early_stopping=False, weights="ema",
                          standardise=True, label_smoothing=0.1, weight_decay=1e-4, ema_decay=0.99),
    # Hello Edge's DS-CNN (ARM's train.py: Adam 5e-4, batch 100), on a cosine over a fixed budget
    "ds-cnn": TrainConfig(model="ds-cnn-s", batch_size=100, learning_rate=5e-4, schedule="cosine", max_epochs=60,
                          early_stopping=False, weights="last", adam_epsilon=1e-8, dropout=0.0),
    # BC-ResNet's main.py: SGD 0.1, momentum 0.9, weight decay 1e-3, 5 warm-up epochs, cosine over 200, batch 100
    "bc-resnet": TrainConfig(model="bc-resnet-1", batch_size=100, learning_rate=0.1, optimizer="sgd",
                             schedule="cosine", warmup_epochs=5, max_epochs=200, early_stopping=False, weights="last",
                             weight_decay=1e-3),
    # from BC-ResNet-1.5 up, its SpecAugment: 2 time masks up to 20 frames, 2 band masks (5 bands for BC-ResNet-3)
    "bc-resnet-3": TrainConfig(model="bc-resnet-3", batch_size=100, learning_rate=0.1, optimizer="sgd",
                               schedule="cosine", warmup_epochs=5, max_epochs=200, early_stopping=False,
                               weights="last", weight_decay=1e-3, time_masks=(2, 20), freq_masks=(2, 5)),
    "head": TrainConfig(model="logreg", penalty=1.0, dtype="float64"),  # L-BFGS converges in float64; float32 stalls
}


def check_config(config: TrainConfig) -> None:
    """Refuse a recipe whose fields contradict each other, naming the flag."""
    for name, value, choices in (("--optimizer", config.optimizer, OPTIMIZERS), ("--schedule", config.schedule, SCHEDULES),
                                 ("--weights", config.weights, WEIGHTS), ("--dtype", config.dtype, DTYPES),
                                 ("--restore-best", config.restore_best, RESTORE_POLICIES)):
        if value not in choices:
            raise InputError(f"{name} {value!r}: choose one of {', '.join(choices)}")
    if config.schedule == "cosine" and config.warmup_epochs >= config.max_epochs:
        raise InputError(f"--warmup-epochs {config.warmup_epochs} leaves no epoch of the cosine: give fewer than "
                         f"--max-epochs {config.max_epochs}")
    if not 0 <= config.label_smoothing < 1:
        raise InputError(f"--label-smoothing {config.label_smoothing}: give a number in [0, 1)")
    if not (config.weight_decay >= 0 and math.isfinite(config.weight_decay)):
        raise InputError(f"--weight-decay {config.weight_decay}: give a finite number >= 0")
    if not 0 < config.ema_decay < 1:
        raise InputError(f"--ema-decay {config.ema_decay}: give a number in (0, 1)")
    if not (config.penalty > 0 and math.isfinite(config.penalty)):
        raise InputError(f"--penalty {config.penalty}: give a positive finite number (scikit-learn's C)")


# the fields the results store keeps in columns of their own; the rest are spelled in its `recipe` column
COLUMN_FIELDS = ("model", "batch_size", "max_epochs", "learning_rate", "restore_best", "dtype")


HEAD_FIELDS = ("penalty",)  # all a head's fit reads besides its dtype


def recipe_text(config: TrainConfig) -> str:
    """Every field of the recipe outside COLUMN_FIELDS that the model's training reads, as `name=value;...` in field
    order: what a row records so that it can be trained again from the row alone."""
    from kwsprune.models import is_head

    head = is_head(config.model)
    return ";".join(f"{f.name}={_spell(getattr(config, f.name))}" for f in fields(config)
                    if f.name not in COLUMN_FIELDS and (not head or f.name in HEAD_FIELDS))


def _spell(value) -> str:
    if isinstance(value, tuple):
        return ",".join(_spell(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def learning_rate_at(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The cosine schedule's rate for a step (0-based): linear warm-up to the peak over warmup_epochs, then a
    half cosine to 0 at the budget's last step (BC-ResNet's main.py)."""
    warmup = config.warmup_epochs * steps_per_epoch
    total = config.max_epochs * steps_per_epoch
    if step < warmup:
        return config.learning_rate * (step + 1) / warmup
    return 0.5 * config.learning_rate * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))


def spec_masks(generator, clips: int, shape: tuple, config: TrainConfig):
    """One model's SpecAugment keep-mask for a batch, (clips, frames, coefficients) of 0 and 1: for each clip,
    time_masks spans of frames and freq_masks spans of coefficients, each of a width uniform in [0, widest) and
    placed uniformly, set to 0 (Park et al. 2019, as BC-ResNet's utils.spec_augment). None when there are none.
    generator: the model's torch.Generator."""
    import torch

    frames, coefficients = shape
    keep = torch.ones(clips, frames, coefficients)
    drew = False
    for (count, widest), size, axis in ((config.time_masks, frames, 1), (config.freq_masks, coefficients, 2)):
        if count <= 0 or widest <= 0:
            continue
        drew = True
        draws = torch.rand(clips, count, 2, generator=generator, dtype=torch.float64)
        widths = (draws[..., 0] * widest).floor().long().clamp(max=size)
        starts = (draws[..., 1] * (size - widths + 1)).floor().long()
        positions = torch.arange(size)
        covered = ((positions >= starts[..., None]) & (positions < (starts + widths)[..., None])).any(dim=1)
        keep = keep * (~covered).float().unsqueeze(3 - axis)
    return keep if drew else None


def input_statistics(x_train) -> tuple[np.ndarray, np.ndarray]:
    """Per-coefficient mean and standard deviation over every training clip and frame, (coefficients,) each, in
    float64: what `standardise` subtracts and divides by (the whole training split's, not a run's kept clips', so
    that every run of a study sees its inputs on one scale)."""
    x = np.asarray(x_train)
    total = np.zeros(x.shape[-1])
    squares = np.zeros(x.shape[-1])
    for start in range(0, len(x), 4096):
        chunk = x[start:start + 4096].astype(np.float64).reshape(-1, x.shape[-1])
        total += chunk.sum(axis=0)
        squares += (chunk * chunk).sum(axis=0)
    count = x.shape[0] * math.prod(x.shape[1:-1])
    mean = total / count
    scale = np.sqrt(np.maximum(squares / count - mean * mean, 0))
    return mean, np.where(scale > 0, scale, 1.0)

"""The original's "Tiny" CNN on MFCCs, trained as many independent models at once.

`train_runs` takes a list of training subsets and trains one model per subset inside a single
batched network: the models' convolutions are one grouped convolution, their dense layers one
batched matmul, and each model keeps its own initialisation, data order, dropout masks (one
generator per model), Adam state, learning-rate schedule, early stopping and best weights. A model
trained alone and the same model trained beside others take the same steps.

Training follows the original's Keras set-up: Adam (lr 5e-3, epsilon 1e-7), batch 512, shuffled
every epoch, up to 170 epochs, ReduceLROnPlateau on validation loss (factor 0.5, patience 3,
min_delta 1e-4), early stopping on validation loss (patience 15, min_delta 1e-4) with the best
weights restored. Fixed from the original: the last layer gives logits to a from-logits loss (the
original applied softmax twice).
"""

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

# (in channels, out channels, kernel (time, cepstra)); each followed by ReLU and 2x2 average pooling
TINY_CONVS = ((1, 4, (2, 2)), (4, 8, (2, 2)), (8, 8, (4, 2)), (8, 16, (4, 2)))


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 512
    max_epochs: int = 170
    learning_rate: float = 5e-3
    dropout: float = 0.1
    lr_factor: float = 0.5
    lr_patience: int = 3
    stop_patience: int = 15
    min_delta: float = 1e-4
    adam_betas: tuple = (0.9, 0.999)
    adam_epsilon: float = 1e-7


def flat_features(input_shape=(99, 32)) -> int:
    """Size of the flattened last feature map: 16 x 3 x 1 = 48 for (99, 32) MFCCs."""
    height, width = input_shape
    for _, _, (kh, kw) in TINY_CONVS:
        height, width = (height - kh + 1) // 2, (width - kw + 1) // 2
    if height < 1 or width < 1:
        raise ValueError(f"MFCC input {input_shape} is too small for the Tiny CNN")
    return TINY_CONVS[-1][1] * height * width


def n_parameters(n_classes: int, input_shape=(99, 32)) -> int:
    """Trainable parameters of one Tiny CNN: 3,431 for 35 classes."""
    convs = sum(cout * cin * kh * kw + cout for cin, cout, (kh, kw) in TINY_CONVS)
    return convs + flat_features(input_shape) * n_classes + n_classes


def _glorot(shape, fan_in, fan_out, generator):
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1).float() * limit


def init_params(n_classes: int, seeds, input_shape=(99, 32)) -> dict:
    """Keras' defaults (Glorot-uniform kernels, zero biases), one model per seed, stacked on dim 0."""
    per_model = []
    for seed in seeds:
        generator = torch.Generator().manual_seed(int(seed))
        params = {}
        for i, (cin, cout, (kh, kw)) in enumerate(TINY_CONVS):
            params[f"conv{i}.weight"] = _glorot((cout, cin, kh, kw), cin * kh * kw, cout * kh * kw, generator)
            params[f"conv{i}.bias"] = torch.zeros(cout)
        n_flat = flat_features(input_shape)
        params["dense.weight"] = _glorot((n_flat, n_classes), n_flat, n_classes, generator)
        params["dense.bias"] = torch.zeros(n_classes)
        per_model.append(params)
    return {name: torch.stack([p[name] for p in per_model]) for name in per_model[0]}


def forward(params: dict, x: torch.Tensor, dropout_masks: torch.Tensor | None = None) -> torch.Tensor:
    """Logits (batch, n_models, n_classes) of every model; x is (batch, n_models, 99, 32)."""
    batch, n_models = x.shape[:2]
    # on the CPU, oneDNN's float32 grouped convolutions run 1.6x faster a step in channels-last layout;
    # float64 (the exact path, where a lone model equals its batched self to the last bit) stays contiguous
    fast = x.device.type == "cpu" and x.dtype == torch.float32
    layout = torch.channels_last if fast else torch.contiguous_format
    hidden = x.contiguous(memory_format=layout)
    for i, (cin, cout, kernel) in enumerate(TINY_CONVS):
        weight = params[f"conv{i}.weight"].reshape(n_models * cout, cin, *kernel).contiguous(memory_format=layout)
        hidden = F.relu(F.conv2d(hidden, weight, params[f"conv{i}.bias"].reshape(-1), groups=n_models))
        hidden = F.avg_pool2d(hidden, 2)
    hidden = hidden.reshape(batch, n_models, -1)
    if dropout_masks is not None:
        hidden = hidden * dropout_masks
    return torch.einsum("bmf,mfc->bmc", hidden, params["dense.weight"]) + params["dense.bias"]


def _loss_per_model(logits, labels):
    """Mean cross-entropy of each model over the batch, (n_models,); labels (batch, n_models)."""
    return F.cross_entropy(logits.permute(0, 2, 1), labels, reduction="none").mean(dim=0)


def evaluate(params: dict, x: torch.Tensor, y: torch.Tensor, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Mean loss and accuracy of every model on one shared split (x (n, 99, 32), y (n,))."""
    n_models = params["dense.bias"].shape[0]
    total_loss = torch.zeros(n_models, dtype=torch.float64, device=x.device)
    correct = torch.zeros(n_models, dtype=torch.float64, device=x.device)
    with torch.no_grad():
        for start in range(0, len(x), chunk):
            xb = x[start:start + chunk].unsqueeze(1).expand(-1, n_models, -1, -1)
            yb = y[start:start + chunk].unsqueeze(1).expand(-1, n_models)
            logits = forward(params, xb)
            total_loss += F.cross_entropy(logits.permute(0, 2, 1), yb, reduction="none").sum(dim=0).double()
            correct += (logits.argmax(dim=-1) == yb).sum(dim=0).double()
    return (total_loss / len(x)).cpu().numpy(), (correct / len(x)).cpu().numpy()


def train_runs(x_train, y_train, subsets, x_valid, y_valid, x_test, y_test, n_classes: int, seeds,
               config: TrainConfig = TrainConfig(), device: str = "cpu", dtype=torch.float32) -> list[dict]:
    """Train one Tiny CNN per subset of training indices (all of one size); return each one's test metrics.

    x_* are MFCCs (n, 99, 32), y_* class ids. Each run's seed fixes its initialisation, its data order
    and its dropout masks. Returns [{"test_loss", "test_acc", "epochs"}] in the order of `subsets`.
    Models never exchange values; in float32 the grouped kernels' reduction order still differs from a
    lone model's by float rounding (1e-7 a step), which training can amplify. In float64 a model
    trained alone and in a batch end identical.
    """
    best, _, epochs = fit(x_train, y_train, subsets, x_valid, y_valid, n_classes, seeds, config, device, dtype)
    test_loss, test_acc = evaluate(best, torch.as_tensor(x_test, dtype=dtype, device=device),
                                   torch.as_tensor(y_test, dtype=torch.long, device=device))
    return [{"test_loss": float(test_loss[m]), "test_acc": float(test_acc[m]), "epochs": int(epochs[m])}
            for m in range(len(subsets))]


def fit(x_train, y_train, subsets, x_valid, y_valid, n_classes: int, seeds, config: TrainConfig = TrainConfig(),
        device: str = "cpu", dtype=torch.float32, on_batch=None) -> tuple[dict, dict, np.ndarray]:
    """Train the batched models; return their best weights (lowest validation loss), their last weights and
    the epochs each ran. on_batch(models, clips, logits), if given, sees every training step: the indices
    of the models still training (live,), the clips of their batch (live, batch) and the logits (batch, live, C).
    """
    sizes = {len(s) for s in subsets}
    if len(sizes) != 1:
        raise ValueError(f"runs trained together need subsets of one size, got sizes {sorted(sizes)}")
    n_models, n_train = len(subsets), sizes.pop()
    # no copy when the arrays are writable and already of the right dtype: a sweep shares them across jobs
    to_device = lambda a, kind: torch.as_tensor(a, dtype=kind, device=device)  # noqa: E731
    x_train_t, y_train_t = to_device(x_train, dtype), to_device(y_train, torch.long)
    x_valid_t, y_valid_t = to_device(x_valid, dtype), to_device(y_valid, torch.long)
    subsets_t = to_device(np.stack(subsets), torch.long)

    initial = init_params(n_classes, seeds, x_train.shape[1:])
    params = {k: v.to(device=device, dtype=dtype).requires_grad_() for k, v in initial.items()}
    adam_m = {k: torch.zeros_like(v) for k, v in params.items()}
    adam_v = {k: torch.zeros_like(v) for k, v in params.items()}
    generators = [torch.Generator().manual_seed(int(seed) + 1) for seed in seeds]
    steps_taken = torch.zeros(n_models, device=device, dtype=dtype)
    lr = torch.full((n_models,), config.learning_rate, device=device, dtype=dtype)
    active = torch.ones(n_models, dtype=torch.bool, device=device)
    best_loss = np.full(n_models, np.inf)
    plateau_best = np.full(n_models, np.inf)
    stop_wait, plateau_wait = np.zeros(n_models, int), np.zeros(n_models, int)
    epochs = np.zeros(n_models, int)
    best_params = {k: v.detach().clone() for k, v in params.items()}
    n_flat = params["dense.weight"].shape[1]
    beta1, beta2 = config.adam_betas

    for _ in range(config.max_epochs):
        # only the models still training are computed: a stopped model costs nothing from its last epoch on
        live = torch.nonzero(active).flatten()
        live_generators = [generators[m] for m in live.tolist()]
        orders = torch.stack([torch.randperm(n_train, generator=g) for g in live_generators]).to(device)
        live_subsets = subsets_t[live]
        for start in range(0, n_train, config.batch_size):
            batch_idx = torch.gather(live_subsets, 1, orders[:, start:start + config.batch_size])  # (live, batch)
            xb = x_train_t[batch_idx].transpose(0, 1)  # (batch, live, 99, 32)
            yb = y_train_t[batch_idx].transpose(0, 1)
            keep = 1.0 - config.dropout
            masks = torch.stack([(torch.rand(len(xb), n_flat, generator=g) < keep) / keep for g in live_generators], 1)
            live_params = {name: param[live] for name, param in params.items()}
            logits = forward(live_params, xb, masks.to(device=device, dtype=dtype))
            if on_batch is not None:
                on_batch(live, batch_idx, logits.detach())
            loss = _loss_per_model(logits, yb).sum()
            grads = torch.autograd.grad(loss, list(params.values()))
            with torch.no_grad():
                steps_taken += active.to(dtype)
                t = steps_taken.clamp(min=1)
                step_size = lr * torch.sqrt(1 - beta2**t) / (1 - beta1**t) * active.to(dtype)
                for (name, param), grad in zip(params.items(), grads):
                    # a stopped model's step size is 0: its weights stay put (its best ones are kept apart)
                    # unfused ops on purpose: fused kernels (add_ with alpha, addcmul_) round differently
                    # with the tensor's size, and a model alone must step as it does in a batch
                    adam_m[name] = beta1 * adam_m[name] + (1 - beta1) * grad
                    adam_v[name] = beta2 * adam_v[name] + (1 - beta2) * grad * grad
                    shape = (-1,) + (1,) * (param.dim() - 1)
                    param -= step_size.view(shape) * adam_m[name] / (adam_v[name].sqrt() + config.adam_epsilon)
        live_loss, _ = evaluate({name: param.detach()[live] for name, param in params.items()}, x_valid_t, y_valid_t)
        live = live.cpu().numpy()
        epochs[live] += 1
        for m, loss_m in zip(live, live_loss):
            if loss_m < plateau_best[m] - config.min_delta:  # ReduceLROnPlateau
                plateau_best[m], plateau_wait[m] = loss_m, 0
            else:
                plateau_wait[m] += 1
                if plateau_wait[m] >= config.lr_patience:
                    lr[m] *= config.lr_factor
                    plateau_wait[m] = 0
            if loss_m < best_loss[m] - config.min_delta:  # EarlyStopping(restore_best_weights=True)
                best_loss[m], stop_wait[m] = loss_m, 0
                for name in params:
                    best_params[name][m] = params[name].detach()[m]
            else:
                stop_wait[m] += 1
                if stop_wait[m] >= config.stop_patience:
                    active[m] = False
        if not active.any():
            break
    return best_params, {name: param.detach() for name, param in params.items()}, epochs


def predict_proba(params: dict, x, chunk: int = 1024) -> np.ndarray:
    """Softmax outputs (n, n_models, n_classes) of every model for MFCCs x (n, 99, 32)."""
    weight = params["dense.weight"]
    x = torch.as_tensor(x, dtype=weight.dtype, device=weight.device)
    n_models = weight.shape[0]
    with torch.no_grad():
        return np.concatenate([
            torch.softmax(forward(params, x[start:start + chunk].unsqueeze(1).expand(-1, n_models, -1, -1)), dim=-1)
            .cpu().numpy() for start in range(0, len(x), chunk)])

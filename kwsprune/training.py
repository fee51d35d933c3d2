"""The original's CNNs on MFCCs (kwsprune.models), trained as many independent models at once.

`train_runs` takes a list of training subsets and trains one model per subset inside a single
batched network: the models' convolutions are one grouped convolution, their dense layers one
batched matmul, and each model keeps its own initialisation, data order, dropout masks (one
generator per model), Adam state, learning-rate schedule, early stopping and best weights. A model
trained alone and the same model trained beside others take the same steps.

Training follows the original's Keras set-up: Adam (lr 5e-3, epsilon 1e-7), shuffled every epoch, up
to 170 epochs, ReduceLROnPlateau on validation loss (factor 0.5, patience 3, min_delta 1e-4), early
stopping on validation loss (patience 15, min_delta 1e-4). The last layer gives logits to a
from-logits loss, as the original's Keras did (it read the softmax's input). What differs from the
original is a recipe field: the batch size (512 there; by default here at least 8 steps an epoch) and
when the best weights are restored (always here; in the Keras of 2023 only when early stopping fired).
"""

import hashlib
import io
import logging
import math
import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from kwsprune.fused_layers import COMPILE_FROM, ConvReLU, compiler_works, conv_relu, first_layer_pooled, has_conv_relu
from kwsprune.memory import KEEP_BYTES, keep_freed_memory
from kwsprune.models import architecture, dense_layers, feature_map_values
from kwsprune.validation import InputError

log = logging.getLogger(__name__)

AUTO = "auto"
RESTORE_POLICIES = ("always", "on-stop")
DTYPES = ("float32", "float64", "bfloat16")  # bfloat16 is an opt-in: see TrainConfig.dtype
ORIGINAL_BATCH_SIZE = 512
# feature maps a training step holds on the CPU, at most about (models_per_step): the memory the allocator keeps
STEP_BYTES = KEEP_BYTES
CHECKPOINT_SECONDS = 20.0  # a killed job loses at most about this much training (plus the epoch in flight)


def auto_batch_size(n_clips: int) -> int:
    """At least 8 steps an epoch: the largest power of two <= n_clips / 8, between 16 and the original's 512."""
    return int(min(ORIGINAL_BATCH_SIZE, max(16, 2 ** math.floor(math.log2(max(n_clips, 1) / 8)))))


@dataclass(frozen=True)
class TrainConfig:
    model: str = "tiny"
    batch_size: int | str = AUTO  # a number of clips, or "auto" (auto_batch_size of the training set's size)
    max_epochs: int = 170
    learning_rate: float = 5e-3
    restore_best: str = "always"  # "always", or "on-stop": only when early stopping ended the run (Keras 2)
    dtype: str = "float32"  # float64: exact (a model alone equals itself in a batch); bfloat16: layers in bfloat16
    dropout: float = 0.1
    lr_factor: float = 0.5
    lr_patience: int = 3
    stop_patience: int = 15
    min_delta: float = 1e-4
    adam_betas: tuple = (0.9, 0.999)
    adam_epsilon: float = 1e-7

    def batch_for(self, n_clips: int) -> int:
        """The batch size a run on n_clips clips trains with."""
        return auto_batch_size(n_clips) if self.batch_size == AUTO else int(self.batch_size)


# named recipes: what the flags of the training scripts start from
RECIPES = {
    "kwsprune": TrainConfig(),
    "original": TrainConfig(batch_size=ORIGINAL_BATCH_SIZE, restore_best="on-stop"),
}


def _glorot(shape, fan_in, fan_out, generator):
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1).float() * limit


def init_params(model: str, n_classes: int, seeds, input_shape=(99, 32)) -> dict:
    """Keras' defaults (Glorot-uniform kernels, zero biases), one model per seed, stacked on dim 0."""
    arch = architecture(model)
    per_model = []
    for seed in seeds:
        generator = torch.Generator().manual_seed(int(seed))
        params = {}
        for i, (cin, cout, (kh, kw)) in enumerate(arch.convs):
            params[f"conv{i}.weight"] = _glorot((cout, cin, kh, kw), cin * kh * kw, cout * kh * kw, generator)
            params[f"conv{i}.bias"] = torch.zeros(cout)
        for i, (n_in, n_out) in enumerate(dense_layers(model, n_classes, input_shape)):
            params[f"dense{i}.weight"] = _glorot((n_in, n_out), n_in, n_out, generator)
            params[f"dense{i}.bias"] = torch.zeros(n_out)
        per_model.append(params)
    return {name: torch.stack([p[name] for p in per_model]) for name in per_model[0]}


def _n_models(params: dict) -> int:
    return params["conv0.bias"].shape[0]


def forward(model: str, params: dict, x: torch.Tensor, dropout_masks=None, compiled: bool = False) -> torch.Tensor:
    """Logits (batch, n_models, n_classes) of every model; x is (batch, n_models, 99, 32), or (batch, 99, 32)
    when every model sees the same clips (validation, test): then the first convolution is one convolution
    with n_models x its channels over the shared input, not a copy of it per model. dropout_masks: one
    (batch, n_models, width) tensor per dense layer that takes dropout, in order (None: no dropout). x in
    bfloat16: the layers compute in bfloat16 (autocast) from float32 weights; the logits come back in float32.
    compiled: over shared clips in float32 on the CPU without autograd, the first layer and its pooling come
    from torch.compile (worth it for large passes: fused_layers.COMPILE_FROM)."""
    if x.dtype == torch.bfloat16:
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            return _forward(model, params, x, dropout_masks).float()
    return _forward(model, params, x, dropout_masks, compiled)


def _forward(model: str, params: dict, x: torch.Tensor, dropout_masks=None, compiled: bool = False,
             last_input: bool = False) -> torch.Tensor:
    arch = architecture(model)
    batch, n_models = len(x), _n_models(params)
    # on the CPU, oneDNN's float32 grouped convolutions run 1.6x faster a step in channels-last layout;
    # float64 (the exact path, where a lone model equals its batched self to the last bit) stays contiguous
    fast = x.device.type == "cpu" and x.dtype != torch.float64
    layout = torch.channels_last if fast else torch.contiguous_format
    shared = x.dim() == 3
    # in float32, oneDNN's convolution with the ReLU fused: validation 1.6x, a training step 5%, the same numbers
    fused = fast and x.dtype == torch.float32 and has_conv_relu()
    first_pooled = None
    if compiled and shared and fused and not torch.is_grad_enabled() and arch.convs[0][0] == 1:
        first_pooled = first_layer_pooled(x, params["conv0.weight"].reshape(-1, 1, *arch.convs[0][2]),
                                          params["conv0.bias"].reshape(-1))
    # each model's one-channel clip repeated once per first-layer filter: a depthwise convolution, which oneDNN
    # computes 3x faster than the grouped one with 1 input and 4 output channels a group (backward too)
    depthwise = fast and not shared and arch.convs[0][0] == 1
    first = 0  # the first convolution computed below
    if first_pooled is not None:
        hidden, first = first_pooled, 1
    elif depthwise:
        height, width, cout = *x.shape[2:], arch.convs[0][1]
        hidden = (x.permute(0, 2, 3, 1).unsqueeze(-1).expand(batch, height, width, n_models, cout)
                  .reshape(batch, height, width, n_models * cout).permute(0, 3, 1, 2))  # channels-last
    elif shared and fast:  # one channel: only these strides say channels-last; else oneDNN answers in NCHW,
        hidden = x.contiguous().unsqueeze(-1).permute(0, 3, 1, 2)  # whose pooling is 9x slower
    else:
        hidden = (x.unsqueeze(1) if shared else x).contiguous(memory_format=layout)
    for i, (cin, cout, kernel) in enumerate(arch.convs[first:], first):
        weight = params[f"conv{i}.weight"].reshape(n_models * cout, cin, *kernel).contiguous(memory_format=layout)
        groups = 1 if shared and i == 0 else n_models * cout if depthwise and i == 0 else n_models
        bias = params[f"conv{i}.bias"].reshape(-1)
        if fused and torch.is_grad_enabled():
            hidden = ConvReLU.apply(hidden, weight, bias, groups)
        elif fused:
            hidden = conv_relu(hidden, weight, bias, groups)
        else:
            hidden = F.relu(F.conv2d(hidden, weight, bias, groups=groups))
        hidden = F.avg_pool2d(hidden, 2)
    hidden = hidden.reshape(batch, n_models, -1)
    masks = iter(dropout_masks or ())
    n_dense = len(arch.dropout)
    for i, with_dropout in enumerate(arch.dropout):
        if last_input and i == n_dense - 1:
            return hidden  # what the output layer reads: (batch, n_models, width)
        if with_dropout and dropout_masks is not None:
            hidden = hidden * next(masks)
        hidden = torch.einsum("bmf,mfc->bmc", hidden, params[f"dense{i}.weight"]) + params[f"dense{i}.bias"]
        if i < n_dense - 1:
            hidden = F.relu(hidden)
    return hidden


def _dropout_widths(model: str, n_classes: int, input_shape) -> list[int]:
    """Widths of the inputs that take dropout, in order."""
    arch = architecture(model)
    return [n_in for (n_in, _), drop in zip(dense_layers(model, n_classes, input_shape), arch.dropout) if drop]


def _loss_per_model(logits, labels):
    """Mean cross-entropy of each model over the batch, (n_models,); labels (batch, n_models)."""
    return F.cross_entropy(logits.permute(0, 2, 1), labels, reduction="none").mean(dim=0)


def models_per_step(model: str, batch: int, input_shape, device: str) -> int:
    """Models one training step computes together on the CPU: as many as keep its feature maps (forward and
    backward) near STEP_BYTES. The original's batch of 512 with 100 models made 2.5 GB first-layer maps a step,
    handed back to the kernel and faulted in again every step (45 million page faults in a 147 s sweep).
    More models a step is faster until the maps outgrow the memory the allocator keeps (batch 400, 100 models:
    4 a step 20.6k model-clips/s, 8 23.7k, 16 16.3k with 2.8 million faults); a GPU takes every model at once."""
    if device != "cpu":
        return 1 << 30
    return max(1, STEP_BYTES // (3 * 4 * batch * feature_map_values(model, input_shape)))


def eval_chunk(n_models: int, x: torch.Tensor, compiled: bool = False) -> int:
    """Clips a forward pass of n_models models takes at once outside training: on the CPU, about 240 model-clips,
    so that the feature maps stay in cache (measured, 2 cores, model-clips/s: 100 models, 2 clips 154k, 8 clips
    111k; 30 models, 8 clips 178k, 32 clips 100k; 10 models, 32 clips 169k, 64 clips 110k), twice that with the
    compiled first layer, whose map is never written (20 models: 12 clips 195k, 24 clips 194k, 32 223k; 100
    models: 2 clips 135k, 4 202k); on a GPU, many. In float64, the exact path, 64 whatever the number of models:
    a model's sums must not depend on its batch."""
    if x.dtype == torch.float64:
        return 64
    if x.device.type != "cpu":
        return max(256, 65536 // n_models)
    return max(2, min(256, 480 // n_models)) if compiled else max(2, min(64, 240 // n_models))


def compiles_validation(n_models: int, n_valid: int) -> bool:
    """Does training validate with the compiled first layer? When each epoch's pass is large enough to pay,
    over the epochs, for compiling it: COMPILE_FROM model-clips."""
    return n_models * n_valid >= COMPILE_FROM


def evaluate(model: str, params: dict, x: torch.Tensor, y: torch.Tensor,
             compiled: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Mean loss and accuracy of every model on one shared split (x (n, 99, 32), y (n,)); compiled: see forward."""
    n_models = _n_models(params)
    compiled = compiled and compiler_works()
    chunk = eval_chunk(n_models, x, compiled)
    total_loss = torch.zeros(n_models, dtype=torch.float64, device=x.device)
    correct = torch.zeros(n_models, dtype=torch.float64, device=x.device)
    with torch.no_grad():
        for start in range(0, len(x), chunk):
            yb = y[start:start + chunk].unsqueeze(1).expand(-1, n_models)
            logits = forward(model, params, x[start:start + chunk], compiled=compiled)  # clips shared by every model
            total_loss += F.cross_entropy(logits.permute(0, 2, 1), yb, reduction="none").sum(dim=0).double()
            correct += (logits.argmax(dim=-1) == yb).sum(dim=0).double()
    return (total_loss / len(x)).cpu().numpy(), (correct / len(x)).cpu().numpy()


def train_runs(x_train, y_train, subsets, x_valid, y_valid, x_test, y_test, n_classes: int, seeds,
               config: TrainConfig = TrainConfig(), device: str = "cpu", checkpoint=None, on_epoch=None) -> list[dict]:
    """Train one model per subset of training indices (all of one size); return each one's test metrics.

    x_* are MFCCs (n, 99, 32), y_* class ids. Each run's seed fixes its initialisation, its data order
    and its dropout masks. Returns [{"test_loss", "test_acc", "epochs"}] in the order of `subsets`.
    Models never exchange values; in float32 the grouped kernels' reduction order still differs from a
    lone model's by float rounding (1e-7 a step), which training can amplify. In float64 a model
    trained alone and in a batch end identical. checkpoint, on_epoch: see fit.
    """
    weights, _, epochs = fit(x_train, y_train, subsets, x_valid, y_valid, n_classes, seeds, config, device,
                             checkpoint=checkpoint, on_epoch=on_epoch)
    dtype = getattr(torch, config.dtype)
    test_loss, test_acc = evaluate(config.model, weights, torch.as_tensor(x_test, dtype=dtype, device=device),
                                   torch.as_tensor(y_test, dtype=torch.long, device=device),
                                   compiles_validation(len(subsets), len(x_valid)))
    return [{"test_loss": float(test_loss[m]), "test_acc": float(test_acc[m]), "epochs": int(epochs[m])}
            for m in range(len(subsets))]


def fit(x_train, y_train, subsets, x_valid, y_valid, n_classes: int, seeds, config: TrainConfig = TrainConfig(),
        device: str = "cpu", on_batch=None, checkpoint=None,
        checkpoint_seconds: float | None = None, on_epoch=None) -> tuple[dict, dict, np.ndarray]:
    """Train the batched models; return their weights after training (the best ones, by validation loss, as
    config.restore_best says), their last weights and the epochs each ran. on_batch(models, clips, logits), if
    given, sees every training step of each group of models (models_per_step): the indices of the models, still
    training (group,), the clips of their batch (group, batch) and the logits (batch, group, C). checkpoint: a
    file where the whole training state is saved at the end of an epoch every checkpoint_seconds (default
    CHECKPOINT_SECONDS), and from which
    the same job resumes exactly (it is ignored if it belongs to another job); it is removed when the training
    ends. on_epoch(epoch, models still training), if given, is called after every epoch: the progress a sweep
    shows.
    """
    sizes = {len(s) for s in subsets}
    if len(sizes) != 1:
        raise ValueError(f"runs trained together need subsets of one size, got sizes {sorted(sizes)}")
    keep_freed_memory()
    n_models, n_train = len(subsets), sizes.pop()
    batch_size = config.batch_for(n_train)
    data_dtype = getattr(torch, config.dtype)
    dtype = torch.float32 if data_dtype == torch.bfloat16 else data_dtype  # bfloat16: float32 weights and Adam state
    # no copy when the arrays are writable and already of the right dtype: a sweep shares them across jobs
    to_device = lambda a, kind: torch.as_tensor(a, dtype=kind, device=device)  # noqa: E731
    x_train_t, y_train_t = to_device(x_train, data_dtype), to_device(y_train, torch.long)
    x_valid_t, y_valid_t = to_device(x_valid, data_dtype), to_device(y_valid, torch.long)
    subsets_t = to_device(np.stack(subsets), torch.long)

    input_shape = x_train.shape[1:]
    initial = init_params(config.model, n_classes, seeds, input_shape)
    params = {k: v.to(device=device, dtype=dtype).requires_grad_() for k, v in initial.items()}
    adam_m = {k: torch.zeros_like(v) for k, v in params.items()}
    adam_v = {k: torch.zeros_like(v) for k, v in params.items()}
    generators = [torch.Generator().manual_seed(int(seed) + 1) for seed in seeds]
    steps_taken = torch.zeros(n_models, device=device, dtype=dtype)
    lr = torch.full((n_models,), config.learning_rate, device=device, dtype=dtype)
    active = torch.ones(n_models, dtype=torch.bool, device=device)
    stopped = np.zeros(n_models, bool)  # ended by early stopping (not by the epoch cap)
    best_loss = np.full(n_models, np.inf)
    plateau_best = np.full(n_models, np.inf)
    stop_wait, plateau_wait = np.zeros(n_models, int), np.zeros(n_models, int)
    epochs = np.zeros(n_models, int)
    best_params = {k: v.detach().clone() for k, v in params.items()}
    dropout_widths = _dropout_widths(config.model, n_classes, input_shape)
    beta1, beta2 = config.adam_betas
    keep = 1.0 - config.dropout
    compiled = compiles_validation(n_models, len(x_valid))
    job = _job_key(subsets, seeds, config, n_classes, x_train, x_valid)
    first_epoch, saved_at = 0, time.monotonic()
    saved = _load_state(checkpoint, job, device) if checkpoint is not None else None
    if saved is not None:
        first_epoch = saved["epoch"]
        params = {k: v.requires_grad_() for k, v in saved["params"].items()}
        adam_m, adam_v, best_params = saved["adam_m"], saved["adam_v"], saved["best_params"]
        steps_taken, lr, active = saved["steps_taken"], saved["lr"], saved["active"]
        stopped, best_loss, plateau_best = saved["stopped"], saved["best_loss"], saved["plateau_best"]
        stop_wait, plateau_wait, epochs = saved["stop_wait"], saved["plateau_wait"], saved["epochs"]
        for generator, generator_state in zip(generators, saved["generators"]):
            generator.set_state(generator_state)

    for epoch in range(first_epoch, config.max_epochs):
        # only the models still training are computed: a stopped model costs nothing from its last epoch on
        live = torch.nonzero(active).flatten()
        live_generators = [generators[m] for m in live.tolist()]
        orders = torch.stack([torch.randperm(n_train, generator=g) for g in live_generators]).to(device)
        live_subsets = subsets_t[live]
        for start in range(0, n_train, batch_size):
            batch_idx = torch.gather(live_subsets, 1, orders[:, start:start + batch_size])  # (live, batch)
            clips = batch_idx.shape[1]
            masks = [torch.stack([(torch.rand(clips, width, generator=g) < keep) / keep for g in live_generators], 1)
                     .to(device=device, dtype=dtype) for width in dropout_widths]
            grads = {name: torch.zeros_like(param) for name, param in params.items()}
            per_step = models_per_step(config.model, clips, input_shape, device)
            for first in range(0, len(live), per_step):  # models in groups: each step's feature maps stay bounded
                group = slice(first, first + per_step)
                models = live[group]
                group_params = {name: param.detach()[models].requires_grad_() for name, param in params.items()}
                xb = x_train_t[batch_idx[group]].transpose(0, 1)  # (batch, group, 99, 32)
                yb = y_train_t[batch_idx[group]].transpose(0, 1)
                logits = forward(config.model, group_params, xb, [mask[:, group] for mask in masks])
                if on_batch is not None:
                    on_batch(models, batch_idx[group], logits.detach())
                loss = _loss_per_model(logits, yb).sum()
                for (name, grad_all), grad in zip(grads.items(), torch.autograd.grad(loss, list(group_params.values()))):
                    grad_all[models] = grad
            with torch.no_grad():
                steps_taken += active.to(dtype)
                t = steps_taken.clamp(min=1)
                step_size = lr * torch.sqrt(1 - beta2**t) / (1 - beta1**t) * active.to(dtype)
                for (name, param), grad in zip(params.items(), grads.values()):
                    # a stopped model's step size is 0: its weights stay put (its best ones are kept apart)
                    # unfused ops on purpose: fused kernels (add_ with alpha, addcmul_) round differently
                    # with the tensor's size, and a model alone must step as it does in a batch
                    adam_m[name] = beta1 * adam_m[name] + (1 - beta1) * grad
                    adam_v[name] = beta2 * adam_v[name] + (1 - beta2) * grad * grad
                    shape = (-1,) + (1,) * (param.dim() - 1)
                    param -= step_size.view(shape) * adam_m[name] / (adam_v[name].sqrt() + config.adam_epsilon)
        live_loss, _ = evaluate(config.model, {name: param.detach()[live] for name, param in params.items()},
                                x_valid_t, y_valid_t, compiled)
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
                    active[m], stopped[m] = False, True
        if on_epoch is not None:
            on_epoch(epoch + 1, int(active.sum()))
        if not active.any():
            break
        if checkpoint is not None and time.monotonic() - saved_at >= (CHECKPOINT_SECONDS if checkpoint_seconds is None
                                                                        else checkpoint_seconds):
            _save_state(checkpoint, {
                "job": job, "epoch": epoch + 1, "params": {k: v.detach() for k, v in params.items()},
                "adam_m": adam_m, "adam_v": adam_v, "best_params": best_params, "steps_taken": steps_taken, "lr": lr,
                "active": active, "stopped": stopped, "best_loss": best_loss, "plateau_best": plateau_best,
                "stop_wait": stop_wait, "plateau_wait": plateau_wait, "epochs": epochs,
                "generators": [generator.get_state() for generator in generators]})
            saved_at = time.monotonic()
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)
    last_params = {name: param.detach() for name, param in params.items()}
    return restored(best_params, last_params, stopped, config.restore_best), last_params, epochs


def _job_key(subsets, seeds, config: TrainConfig, n_classes: int, x_train, x_valid) -> str:
    """What a checkpoint must have been trained on to be resumed: the runs' clips and seeds, the recipe, the data."""
    digest = hashlib.sha256(repr((list(map(int, seeds)), config, n_classes, x_train.shape, x_valid.shape)).encode())
    for subset in subsets:
        digest.update(np.asarray(subset, np.int64).tobytes())
    return digest.hexdigest()


CHECKPOINT_MAGIC = b"kwsprune-checkpoint-1\n"  # then the sha256 of the payload (32 bytes), then the payload
NUMPY_STATE = ("stopped", "best_loss", "plateau_best", "stop_wait", "plateau_wait", "epochs")  # stored as tensors


def _save_state(path, state: dict) -> None:
    """The training state as tensors only (so that loading it unpickles no code), behind a checksum, written under a
    temporary name and renamed: a kill never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({k: torch.from_numpy(v) if k in NUMPY_STATE else v for k, v in state.items()}, buffer)
    payload = buffer.getvalue()
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(CHECKPOINT_MAGIC + hashlib.sha256(payload).digest() + payload)
    os.replace(partial, path)


def _load_state(path, job: str, device: str) -> dict | None:
    """The training state saved for this job, or None: no checkpoint, one of another job, or one that fails its
    checksum or holds anything but tensors and plain values (set aside as *.set-aside, with one warning)."""
    path = Path(path)
    if not path.exists():
        return None
    data = path.read_bytes()
    header = len(CHECKPOINT_MAGIC) + 32
    payload = data[header:]
    why = None
    if not data.startswith(CHECKPOINT_MAGIC) or data[len(CHECKPOINT_MAGIC):header] != hashlib.sha256(payload).digest():
        why = "its checksum does not match (damaged, or not written by this kwsprune)"
    else:
        try:
            state = torch.load(io.BytesIO(payload), map_location=device, weights_only=True)
        except (RuntimeError, EOFError, pickle.UnpicklingError) as err:
            why = f"it holds more than training state ({type(err).__name__}), so it is not loaded"
    if why:
        aside = path.with_name(path.name + ".set-aside")
        os.replace(path, aside)
        log.warning("%s set aside as %s: %s; the job trains from its start", path, aside.name, why)
        return None
    if state.get("job") != job:
        return None
    return {k: v.cpu().numpy() if k in NUMPY_STATE else v for k, v in state.items()}


def restored(best: dict, last: dict, stopped: np.ndarray, policy: str) -> dict:
    """The weights a run ends with: its best ones ("always"), or ("on-stop", as the Keras of 2023) its best
    ones only where early stopping ended it and its last ones where it used every epoch."""
    if policy == "always":
        return best
    if policy != "on-stop":
        raise InputError(f"--restore-best {policy!r}: choose one of {', '.join(RESTORE_POLICIES)}")
    take_best = torch.as_tensor(stopped, device=next(iter(best.values())).device)
    return {name: torch.where(take_best.view((-1,) + (1,) * (best[name].dim() - 1)), best[name], last[name])
            for name in best}


def _over_chunks(params: dict, x, one_pass) -> np.ndarray:
    """one_pass(a chunk of x as a tensor) -> array, over MFCCs x (n, 99, 32) in evaluation chunks without autograd,
    concatenated."""
    reference = params["conv0.weight"]
    x = torch.as_tensor(x, dtype=reference.dtype, device=reference.device)
    chunk = eval_chunk(_n_models(params), x)
    with torch.no_grad():
        return np.concatenate([one_pass(x[start:start + chunk]) for start in range(0, len(x), chunk)])


def last_layer_inputs(model: str, params: dict, x) -> np.ndarray:
    """What the output layer of every model reads for MFCCs x (n, 99, 32): (n, n_models, width) float32, eval mode.
    The logits are these times dense{last}.weight plus its bias."""
    return _over_chunks(params, x, lambda xb: _forward(model, params, xb, last_input=True).float().cpu().numpy())


def predict_proba(model: str, params: dict, x) -> np.ndarray:
    """Softmax outputs (n, n_models, n_classes) of every model for MFCCs x (n, 99, 32)."""
    return _over_chunks(params, x, lambda xb: torch.softmax(forward(model, params, xb), dim=-1).cpu().numpy())


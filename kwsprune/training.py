"""The engine: many independent models trained at once, the original's CNNs (here) and the keyword-spotting
networks (kwsprune.networks); heads on frozen embeddings are solved by kwsprune.heads.

`train_runs` takes a list of training subsets and trains one model per subset inside a single
batched network: the models' convolutions are one grouped convolution, their dense layers one
batched matmul, and each model keeps its own initialisation, data order, dropout and SpecAugment masks
(one generator per model), BatchNorm statistics, optimizer state, learning-rate schedule, early stopping
and best or averaged weights. A model trained alone and the same model trained beside others take the
same steps. The recipe (kwsprune.recipe) says how.

The `kwsprune` and `original` recipes follow the original's Keras set-up: Adam (lr 5e-3, epsilon 1e-7), shuffled every epoch, up
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

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from kwsprune import networks
from kwsprune.fused_layers import COMPILE_FROM, ConvReLU, compiler_works, conv_relu, first_layer_pooled, has_conv_relu
from kwsprune.memory import KEEP_BYTES, keep_freed_memory
from kwsprune.models import architecture, dense_layers, feature_map_values, is_head, model_spec
from kwsprune.recipe import (AUTO, DTYPES, ORIGINAL_BATCH_SIZE, RECIPES, RESTORE_POLICIES, TrainConfig,  # noqa: F401
                             auto_batch_size, check_config, input_statistics, learning_rate_at, spec_masks)
from kwsprune.validation import InputError

log = logging.getLogger(__name__)

# feature maps a training step holds on the CPU, at most about (models_per_step): the memory the allocator keeps
STEP_BYTES = KEEP_BYTES
CHECKPOINT_SECONDS = 20.0  # a killed job loses at most about this much training (plus the epoch in flight)


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


def _loss_per_model(logits, labels, label_smoothing: float = 0.0):
    """Mean cross-entropy of each model over the batch, (n_models,); labels (batch, n_models)."""
    if label_smoothing:
        return F.cross_entropy(logits.permute(0, 2, 1), labels, reduction="none",
                               label_smoothing=label_smoothing).mean(dim=0)
    return F.cross_entropy(logits.permute(0, 2, 1), labels, reduction="none").mean(dim=0)


STATISTICS = (".mean", ".var")  # weights whose names end so are BatchNorm statistics: kept per model, not trained


@dataclass(frozen=True)
class Network:
    """What the engine needs of a model: its weights (BatchNorm statistics among them), its forward pass
    (weights, x, masks, training, compiled) -> logits (batch, models, classes), the widths of the dropout masks a
    step draws per clip, and the values a clip's training step keeps (what bounds models_per_step)."""
    init: Callable
    forward: Callable
    dropout_widths: list
    step_values: int


def network_of(model: str, n_classes: int, input_shape) -> Network:
    """The engine's view of --model: one of the original's CNNs, or a keyword-spotting network."""
    family = model_spec(model).family
    input_shape = tuple(input_shape)
    if family == "cnn":
        return Network(lambda seeds: init_params(model, n_classes, seeds, input_shape),
                       lambda weights, x, masks=None, training=False, compiled=False:
                       forward(model, weights, x, masks if training else None, compiled),
                       _dropout_widths(model, n_classes, input_shape), feature_map_values(model, input_shape))
    if family == "kws":
        def init(seeds):
            params, buffers = networks.init_params(model, n_classes, seeds)
            return {**params, **buffers}

        return Network(init, lambda weights, x, masks=None, training=False, compiled=False:
                       networks.forward(model, weights, weights, x, masks, training),
                       networks.dropout_widths(model), networks.saved_values(model, n_classes, input_shape))
    raise InputError(f"--model {model}: a head on frozen embeddings is fitted by kwsprune.heads, not trained by the engine")


def trainable(name: str) -> bool:
    return not name.endswith(STATISTICS)


def models_per_step(step_values: int, batch: int, device: str) -> int:
    """Models one training step computes together on the CPU: as many as keep its feature maps (forward and
    backward) near STEP_BYTES. The original's batch of 512 with 100 models made 2.5 GB first-layer maps a step,
    handed back to the kernel and faulted in again every step (45 million page faults in a 147 s sweep).
    More models a step is faster until the maps outgrow the memory the allocator keeps (batch 400, 100 models:
    4 a step 20.6k model-clips/s, 8 23.7k, 16 16.3k with 2.8 million faults); a GPU takes every model at once."""
    if device != "cpu":
        return 1 << 30
    return max(1, STEP_BYTES // (3 * 4 * batch * step_values))


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


def evaluate(model: str, params: dict, x: torch.Tensor, y: torch.Tensor, compiled: bool = False,
             predictions: bool = False) -> tuple:
    """Mean loss and accuracy of every model on one shared split (x (n, frames, coefficients), y (n,)); compiled:
    see forward. predictions: also the predicted class of every clip by every model, (n, models) int16."""
    n_models = next(iter(params.values())).shape[0]
    cnn = model_spec(model).family == "cnn"
    compiled = compiled and compiler_works() and cnn
    chunk = eval_chunk(n_models, x, compiled)
    total_loss = torch.zeros(n_models, dtype=torch.float64, device=x.device)
    correct = torch.zeros(n_models, dtype=torch.float64, device=x.device)
    predicted = []
    with torch.no_grad():
        for start in range(0, len(x), chunk):
            yb = y[start:start + chunk].unsqueeze(1).expand(-1, n_models)
            xb = x[start:start + chunk]  # clips shared by every model
            logits = forward(model, params, xb, compiled=compiled) if cnn else networks.forward(model, params, params, xb)
            total_loss += F.cross_entropy(logits.permute(0, 2, 1), yb, reduction="none").sum(dim=0).double()
            classes = logits.argmax(dim=-1)
            correct += (classes == yb).sum(dim=0).double()
            if predictions:
                predicted.append(classes.to(torch.int16).cpu().numpy())
    metrics = ((total_loss / len(x)).cpu().numpy(), (correct / len(x)).cpu().numpy())
    return (*metrics, np.concatenate(predicted)) if predictions else metrics


def train_runs(x_train, y_train, subsets, x_valid, y_valid, x_test, y_test, n_classes: int, seeds,
               config: TrainConfig = TrainConfig(), device: str = "cpu", checkpoint=None, on_epoch=None) -> list[dict]:
    """Train one model per subset of training indices (all of one size); return each one's test metrics.

    x_* are MFCCs or log-mel maps (n, frames, coefficients), or embeddings (n, dim) for a head; y_* class ids.
    Each run's seed fixes its initialisation, its data order and its masks. Returns [{"test_loss", "test_acc",
    "epochs", "predicted"}] in the order of `subsets`, "predicted" the class each test clip was given (int16).
    Models never exchange values; in float32 the grouped kernels' reduction order still differs from a
    lone model's by float rounding (1e-7 a step), which training can amplify. In float64 a model
    trained alone and in a batch end identical. checkpoint, on_epoch: see fit.
    """
    check_config(config)
    if is_head(config.model):
        from kwsprune.heads import evaluate_heads, fit_logistic

        head = fit_logistic(x_train, y_train, subsets, n_classes, config.penalty, getattr(torch, config.dtype), device)
        test_loss, test_acc, predicted = evaluate_heads(head, x_test, y_test)
        return [{"test_loss": float(test_loss[m]), "test_acc": float(test_acc[m]), "epochs": int(head["iterations"][m]),
                 "predicted": predicted[:, m]} for m in range(len(subsets))]
    if config.standardise:
        stored = np.float64 if config.dtype == "float64" else np.float32  # a float64 recipe stays exact from here on
        mean, scale = (v.astype(stored) for v in input_statistics(x_train))
        x_train, x_valid, x_test = ((np.asarray(x, stored) - mean) / scale for x in (x_train, x_valid, x_test))
    weights, _, epochs = fit(x_train, y_train, subsets, x_valid, y_valid, n_classes, seeds, config, device,
                             checkpoint=checkpoint, on_epoch=on_epoch)
    dtype = getattr(torch, config.dtype)
    test_loss, test_acc, predicted = evaluate(config.model, weights, torch.as_tensor(x_test, dtype=dtype, device=device),
                                              torch.as_tensor(y_test, dtype=torch.long, device=device),
                                              compiles_validation(len(subsets), len(x_valid)), predictions=True)
    return [{"test_loss": float(test_loss[m]), "test_acc": float(test_acc[m]), "epochs": int(epochs[m]),
             "predicted": predicted[:, m]} for m in range(len(subsets))]


@dataclass
class TrainState:
    """Everything a batched training carries from one epoch to the next, one model per row: created (start), saved
    in a checkpoint (save) and restored from one (resume) here, and nowhere else."""
    epoch: int
    params: dict        # the weights and BatchNorm statistics
    moments: dict       # the optimizer's per-weight state: Adam's "m:name" and "v:name", SGD's "momentum:name"
    steps_taken: torch.Tensor  # (models,) optimizer steps each model has taken
    lr: torch.Tensor    # (models,) the plateau schedule's rate now (the cosine's is set every step)
    active: torch.Tensor  # (models,) still training
    best_params: dict   # weights "best": the weights at the best validation loss so far; else empty
    average: dict       # weights "ema": the exponential average of the weights; else empty
    stopped: np.ndarray  # (models,) ended by early stopping (not by the epoch cap)
    best_loss: np.ndarray
    plateau_best: np.ndarray
    stop_wait: np.ndarray
    plateau_wait: np.ndarray
    epochs: np.ndarray  # (models,) epochs each model has trained
    generators: list    # one torch.Generator per model: its data order and masks

    ARRAYS = ("stopped", "best_loss", "plateau_best", "stop_wait", "plateau_wait", "epochs")  # stored as tensors

    @classmethod
    def start(cls, net: Network, seeds, config: TrainConfig, device: str, dtype) -> "TrainState":
        n_models = len(seeds)
        params = {k: v.to(device=device, dtype=dtype) for k, v in net.init(seeds).items()}
        kinds = ("m", "v") if config.optimizer == "adam" else ("momentum",)
        moments = {f"{kind}:{k}": torch.zeros_like(v) for kind in kinds for k, v in params.items() if trainable(k)}
        return cls(epoch=0, params=params, moments=moments, steps_taken=torch.zeros(n_models, device=device, dtype=dtype),
                   lr=torch.full((n_models,), config.learning_rate, device=device, dtype=dtype),
                   active=torch.ones(n_models, dtype=torch.bool, device=device),
                   best_params={k: v.clone() for k, v in params.items()} if config.weights == "best" else {},
                   average={k: v.clone() for k, v in params.items()} if config.weights == "ema" else {},
                   stopped=np.zeros(n_models, bool), best_loss=np.full(n_models, np.inf),
                   plateau_best=np.full(n_models, np.inf), stop_wait=np.zeros(n_models, int),
                   plateau_wait=np.zeros(n_models, int), epochs=np.zeros(n_models, int),
                   generators=[torch.Generator().manual_seed(int(seed) + 1) for seed in seeds])

    def save(self, path, job: str) -> None:
        """The state as tensors only, behind a checksum (_save_state)."""
        state = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "generators"}
        _save_state(path, {"job": job, **{k: torch.from_numpy(v) if k in self.ARRAYS else v for k, v in state.items()},
                           "generators": [g.get_state() for g in self.generators]})

    @classmethod
    def resume(cls, path, job: str, device: str, seeds) -> "TrainState | None":
        """The state saved for this job, or None (see _load_state)."""
        saved = _load_state(path, job, device)
        if saved is None:
            return None
        generators = [torch.Generator().manual_seed(int(seed) + 1) for seed in seeds]
        for generator, generator_state in zip(generators, saved.pop("generators")):
            generator.set_state(generator_state)
        saved.pop("job")
        if set(saved) != set(cls.__dataclass_fields__) - {"generators"}:
            log.warning("%s holds another layout of training state: the job trains from its start", path)
            return None
        return cls(**{k: v.cpu().numpy() if k in cls.ARRAYS else v for k, v in saved.items()}, generators=generators)


def fit(x_train, y_train, subsets, x_valid, y_valid, n_classes: int, seeds, config: TrainConfig = TrainConfig(),
        device: str = "cpu", on_batch=None, checkpoint=None,
        checkpoint_seconds: float | None = None, on_epoch=None) -> tuple[dict, dict, np.ndarray]:
    """Train the batched models; return their weights after training (the best by validation loss, as
    config.restore_best says; the last; or their average, as config.weights says), their last weights and the
    epochs each ran. on_batch(models, clips, logits), if given, sees every training step of each group of models
    (models_per_step): the indices of the models, still training (group,), the clips of their batch (group,
    batch) and the logits (batch, group, C). checkpoint: a file where the whole training state is saved at the end
    of an epoch every checkpoint_seconds (default CHECKPOINT_SECONDS), and from which the same job resumes
    exactly (it is ignored if it belongs to another job); it is removed when the training ends. on_epoch(epoch,
    models still training), if given, is called after every epoch: the progress a sweep shows.
    """
    sizes = {len(s) for s in subsets}
    if len(sizes) != 1:
        raise ValueError(f"runs trained together need subsets of one size, got sizes {sorted(sizes)}")
    check_config(config)
    keep_freed_memory()
    n_models, n_train = len(subsets), sizes.pop()
    batch_size = config.batch_for(n_train)
    data_dtype = getattr(torch, config.dtype)
    dtype = torch.float32 if data_dtype == torch.bfloat16 else data_dtype  # bfloat16: float32 weights and Adam state
    input_shape = tuple(x_train.shape[1:])
    net = network_of(config.model, n_classes, input_shape)
    if data_dtype == torch.bfloat16 and model_spec(config.model).family != "cnn":
        raise InputError(f"--dtype bfloat16 is for the original's CNNs; train {config.model} in float32 or float64")
    # no copy when the arrays are writable and already of the right dtype: a sweep shares them across jobs
    to_device = lambda a, kind: torch.as_tensor(a, dtype=kind, device=device)  # noqa: E731
    x_train_t, y_train_t = to_device(x_train, data_dtype), to_device(y_train, torch.long)
    x_valid_t, y_valid_t = to_device(x_valid, data_dtype), to_device(y_valid, torch.long)
    subsets_t = to_device(np.stack(subsets), torch.long)
    beta1, beta2 = config.adam_betas
    keep = 1.0 - config.dropout
    compiled = compiles_validation(n_models, len(x_valid))
    steps_per_epoch = math.ceil(n_train / batch_size)
    job = _job_key(subsets, seeds, config, n_classes, x_train, x_valid)
    saved_at = time.monotonic()
    state = TrainState.resume(checkpoint, job, device, seeds) if checkpoint is not None else None
    state = state or TrainState.start(net, seeds, config, device, dtype)
    params = state.params

    for epoch in range(state.epoch, config.max_epochs):
        # only the models still training are computed: a stopped model costs nothing from its last epoch on
        live = torch.nonzero(state.active).flatten()
        live_generators = [state.generators[m] for m in live.tolist()]
        orders = torch.stack([torch.randperm(n_train, generator=g) for g in live_generators]).to(device)
        live_subsets = subsets_t[live]
        for step, start in enumerate(range(0, n_train, batch_size)):
            batch_idx = torch.gather(live_subsets, 1, orders[:, start:start + batch_size])  # (live, batch)
            clips = batch_idx.shape[1]
            masks = [torch.stack([(torch.rand(clips, width, generator=g) < keep) / keep for g in live_generators], 1)
                     .to(device=device, dtype=dtype) for width in net.dropout_widths]
            spec = [spec_masks(g, clips, input_shape, config) for g in live_generators]
            spec = None if spec[0] is None else torch.stack(spec, 1).to(device=device, dtype=data_dtype)
            grads = {name: torch.zeros_like(param) for name, param in params.items() if trainable(name)}
            per_step = models_per_step(net.step_values, clips, device)
            for first in range(0, len(live), per_step):  # models in groups: each step's feature maps stay bounded
                group = slice(first, first + per_step)
                models = live[group]
                group_params = {name: param[models].requires_grad_() if trainable(name) else param[models]
                                for name, param in params.items()}
                xb = x_train_t[batch_idx[group]].transpose(0, 1)  # (batch, group, frames, coefficients)
                if spec is not None:
                    xb = xb * spec[:, group]
                yb = y_train_t[batch_idx[group]].transpose(0, 1)
                logits = net.forward(group_params, xb, [mask[:, group] for mask in masks], training=True)
                if on_batch is not None:
                    on_batch(models, batch_idx[group], logits.detach())
                loss = _loss_per_model(logits, yb, config.label_smoothing).sum()
                names = [name for name in grads]
                for name, grad in zip(names, torch.autograd.grad(loss, [group_params[name] for name in names])):
                    grads[name][models] = grad
                for name, value in group_params.items():
                    if not trainable(name):  # BatchNorm statistics, updated in the forward pass
                        params[name][models] = value
            with torch.no_grad():
                _step(state, grads, config, dtype, learning_rate_at(config, epoch * steps_per_epoch + step,
                                                                    steps_per_epoch) if config.schedule == "cosine" else None)
        state.epochs[live.cpu().numpy()] += 1
        state.epoch = epoch + 1
        if config.validates:
            _after_validation(state, config, live.cpu().numpy(), evaluate(
                config.model, {name: param[live] for name, param in params.items()}, x_valid_t, y_valid_t, compiled)[0])
        if on_epoch is not None:
            on_epoch(epoch + 1, int(state.active.sum()))
        if not state.active.any():
            break
        if checkpoint is not None and time.monotonic() - saved_at >= (CHECKPOINT_SECONDS if checkpoint_seconds is None
                                                                        else checkpoint_seconds):
            state.save(checkpoint, job)
            saved_at = time.monotonic()
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)
    last_params = {name: param.detach() for name, param in params.items()}
    if config.weights == "ema":
        return state.average, last_params, state.epochs
    if config.weights == "last":
        return last_params, last_params, state.epochs
    return restored(state.best_params, last_params, state.stopped, config.restore_best), last_params, state.epochs


def _step(state: TrainState, grads: dict, config: TrainConfig, dtype, scheduled_lr: float | None) -> None:
    """One optimizer step of every model still training, in place; a stopped model's step size is 0, so its
    weights stay put. Unfused ops on purpose: fused kernels (add_ with alpha, addcmul_) round differently with
    the tensor's size, and a model alone must step as it does in a batch."""
    active = state.active.to(dtype)
    state.steps_taken += active
    if scheduled_lr is not None:
        state.lr = torch.full_like(state.lr, scheduled_lr)
    for name, grad in grads.items():
        param = state.params[name]
        shape = (-1,) + (1,) * (param.dim() - 1)
        if config.optimizer == "sgd":  # torch.optim.SGD: decay added to the gradient, then momentum
            if config.weight_decay:
                grad = grad + config.weight_decay * param
            momentum = state.moments[f"momentum:{name}"]
            momentum = torch.where(state.steps_taken.view(shape) > 1, config.momentum * momentum + grad, grad)
            state.moments[f"momentum:{name}"] = momentum
            param -= (state.lr * active).view(shape) * momentum
            continue
        beta1, beta2 = config.adam_betas
        t = state.steps_taken.clamp(min=1)
        step_size = state.lr * torch.sqrt(1 - beta2**t) / (1 - beta1**t) * active
        if config.weight_decay:  # AdamW: the decay is decoupled from the gradient's moments
            param -= (state.lr * active * config.weight_decay).view(shape) * param
        m = state.moments[f"m:{name}"] = beta1 * state.moments[f"m:{name}"] + (1 - beta1) * grad
        v = state.moments[f"v:{name}"] = beta2 * state.moments[f"v:{name}"] + (1 - beta2) * grad * grad
        param -= step_size.view(shape) * m / (v.sqrt() + config.adam_epsilon)
    if state.average:  # the decay warms up as timm's ModelEma does: early weights do not linger in the average
        decay = torch.minimum((1 + state.steps_taken) / (10 + state.steps_taken),
                              torch.full_like(state.steps_taken, config.ema_decay))
        decay = torch.where(state.active, decay, torch.ones_like(decay))
        for name, param in state.params.items():
            weight = decay.view((-1,) + (1,) * (param.dim() - 1))
            state.average[name] = weight * state.average[name] + (1 - weight) * param


def _after_validation(state: TrainState, config: TrainConfig, live: np.ndarray, live_loss: np.ndarray) -> None:
    """The epoch's validation loss of each live model: ReduceLROnPlateau, early stopping and the best weights."""
    for m, loss_m in zip(live, live_loss):
        if config.schedule == "plateau":
            if loss_m < state.plateau_best[m] - config.min_delta:
                state.plateau_best[m], state.plateau_wait[m] = loss_m, 0
            else:
                state.plateau_wait[m] += 1
                if state.plateau_wait[m] >= config.lr_patience:
                    state.lr[m] *= config.lr_factor
                    state.plateau_wait[m] = 0
        if loss_m < state.best_loss[m] - config.min_delta:  # EarlyStopping(restore_best_weights=True)
            state.best_loss[m], state.stop_wait[m] = loss_m, 0
            for name in state.best_params:
                state.best_params[name][m] = state.params[name][m]
        else:
            state.stop_wait[m] += 1
            if config.early_stopping and state.stop_wait[m] >= config.stop_patience:
                state.active[m], state.stopped[m] = False, True


def _job_key(subsets, seeds, config: TrainConfig, n_classes: int, x_train, x_valid) -> str:
    """What a checkpoint must have been trained on to be resumed: the runs' clips and seeds, the recipe, the data."""
    digest = hashlib.sha256(repr((list(map(int, seeds)), config, n_classes, x_train.shape, x_valid.shape)).encode())
    for subset in subsets:
        digest.update(np.asarray(subset, np.int64).tobytes())
    return digest.hexdigest()


CHECKPOINT_MAGIC = b"kwsprune-checkpoint-2\n"  # then the sha256 of the payload (32 bytes), then the payload


def _save_state(path, state: dict) -> None:
    """The training state as tensors only (so that loading it unpickles no code), behind a checksum, written under a
    temporary name and renamed: a kill never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(CHECKPOINT_MAGIC + hashlib.sha256(payload).digest() + payload)
    os.replace(partial, path)


def _load_state(path, job: str, device: str) -> dict | None:
    """The training state saved for this job, or None: no checkpoint, one of another job, or one that fails its
    checksum or holds anything but tensors and plain values (set aside as *.set-aside, with one warning)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return None
    data = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
    header = len(CHECKPOINT_MAGIC) + 32
    payload = data[header:]
    why = None
    if not (path.is_file() and not path.is_symlink()):
        why = "it is not a file (a folder or a link)"
    elif not data.startswith(CHECKPOINT_MAGIC) or data[len(CHECKPOINT_MAGIC):header] != hashlib.sha256(payload).digest():
        why = "its checksum does not match (damaged, or not written by this kwsprune)"
    else:
        try:
            state = torch.load(io.BytesIO(payload), map_location=device, weights_only=True)
        except (RuntimeError, EOFError, pickle.UnpicklingError) as err:
            why = f"it holds more than training state ({type(err).__name__}), so it is not loaded"
        else:
            if not (isinstance(state, dict) and isinstance(state.get("generators"), list) and "job" in state):
                why = "it holds another layout of training state (an older kwsprune's)"
    if why:
        aside = path.with_name(path.name + ".set-aside")
        os.replace(path, aside)
        log.warning("%s set aside as %s: %s; the job trains from its start", path, aside.name, why)
        return None
    if state.get("job") != job:
        return None
    return state


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


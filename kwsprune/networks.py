"""Keyword-spotting networks of the literature, many trained at once: DS-CNN and BC-ResNet.

Each network is written as a function over stacked weights, one model per row of every tensor, so that a
batch of models is one network of grouped convolutions: model m's channels only ever meet model m's
channels, and its BatchNorm statistics are its own (per channel, and every channel is one model's). The
layers follow the papers' reference code:
- DS-CNN (Zhang et al. 2017, "Hello Edge"; ARM-software/ML-KWS-for-MCU models.py): a convolution, then
  depthwise-separable layers, each convolution with a bias and a BatchNorm with a shift only (slim's
  default), ReLU, global average pooling, a dense output layer; 'SAME' padding as TensorFlow pads it.
  Small: 64 channels, 4 separable layers; medium: 172, the first separable layer strided.
- BC-ResNet (Kim et al. 2021; Qualcomm-AI-research/bcresnet bcresnet.py): broadcasted residual blocks on
  (frequency, time) maps of 40 log-mel bands, SubSpectralNorm over 5 sub-bands, dilated depthwise time
  convolutions with SiLU, channel dropout 0.1; BC-ResNet-k has base width 8k.
Inputs are (time, frequency) maps as MFCCs/ stores them, (batch, models, time, freq) per model in training or
(batch, time, freq) shared by every model; logits come back as (batch, models, classes).
"""

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kwsprune.validation import InputError

BC_STAGES = (2, 2, 4, 4)       # blocks per stage
BC_STRIDED = (1, 2)            # stages whose first block halves the frequency axis
SUB_BANDS = 5                  # SubSpectralNorm's sub-bands
BC_DROPOUT = 0.1               # the reference code's Dropout2d in every block


@dataclass(frozen=True)
class DSCNN:
    channels: int
    first_stride: tuple   # (time, frequency) stride of the first convolution
    strides: tuple        # (time, frequency) stride of each depthwise-separable layer
    kernel: tuple = (10, 4)
    bn_momentum: float = 0.04  # slim's decay 0.96
    bn_eps: float = 1e-3


@dataclass(frozen=True)
class BCResNet:
    base: int                  # 8 x tau
    bn_momentum: float = 0.1   # torch's defaults, as the reference code
    bn_eps: float = 1e-5

    @property
    def widths(self) -> tuple:
        b = self.base
        return (2 * b, b, int(1.5 * b), 2 * b, int(2.5 * b), 4 * b)


NETWORKS = {
    "ds-cnn-s": DSCNN(64, (2, 2), ((1, 1),) * 4),
    "ds-cnn-m": DSCNN(172, (2, 1), ((2, 2), (1, 1), (1, 1), (1, 1))),
    "bc-resnet-1": BCResNet(8),
    "bc-resnet-3": BCResNet(24),
}


def network(name: str):
    if name not in NETWORKS:
        raise InputError(f"--model {name!r} is not a keyword-spotting network ({', '.join(NETWORKS)})")
    return NETWORKS[name]


# ---- the weights: what each network holds, and how each model's are drawn from its own generator ----

def _shapes(name: str, n_classes: int) -> dict:
    """{weight name: (shape of one model's tensor, init)}: init 'glorot', 'kaiming' (torch's Conv2d default),
    'zeros' or 'ones'; BatchNorm statistics are buffers (see _buffer_shapes)."""
    net = network(name)
    shapes = {}
    if isinstance(net, DSCNN):
        c, (kt, kf) = net.channels, net.kernel
        shapes["conv0.weight"] = ((c, 1, kt, kf), "glorot")
        shapes["conv0.bias"] = ((c,), "zeros")
        shapes["bn0.shift"] = ((c,), "zeros")
        for i in range(1, len(net.strides) + 1):
            shapes[f"dw{i}.weight"] = ((c, 1, 3, 3), "glorot")
            shapes[f"dw{i}.bias"] = ((c,), "zeros")
            shapes[f"dw{i}.shift"] = ((c,), "zeros")
            shapes[f"pw{i}.weight"] = ((c, c, 1, 1), "glorot")
            shapes[f"pw{i}.bias"] = ((c,), "zeros")
            shapes[f"pw{i}.shift"] = ((c,), "zeros")
        shapes["fc.weight"] = ((c, n_classes), "glorot")
        shapes["fc.bias"] = ((n_classes,), "zeros")
        return shapes
    w = net.widths
    shapes["head.weight"] = ((w[0], 1, 5, 5), "kaiming")
    shapes.update(_bn_shapes("head.bn", w[0]))
    for stage, block, cin, cout, _ in _blocks(net):
        key = f"s{stage}b{block}"
        if cin != cout:
            shapes[f"{key}.proj.weight"] = ((cout, cin, 1, 1), "kaiming")
            shapes.update(_bn_shapes(f"{key}.proj.bn", cout))
        shapes[f"{key}.freq.weight"] = ((cout, 1, 3, 1), "kaiming")
        shapes.update(_bn_shapes(f"{key}.ssn", cout * SUB_BANDS))
        shapes[f"{key}.time.weight"] = ((cout, 1, 1, 3), "kaiming")
        shapes.update(_bn_shapes(f"{key}.time.bn", cout))
        shapes[f"{key}.mix.weight"] = ((cout, cout, 1, 1), "kaiming")
    shapes["cls.dw.weight"] = ((w[-2], 1, 5, 5), "kaiming")
    shapes["cls.pw.weight"] = ((w[-1], w[-2], 1, 1), "kaiming")
    shapes.update(_bn_shapes("cls.bn", w[-1]))
    shapes["cls.out.weight"] = ((n_classes, w[-1], 1, 1), "kaiming")
    shapes["cls.out.bias"] = ((n_classes,), ("bias", w[-1]))
    return shapes


def _bn_shapes(key: str, channels: int) -> dict:
    return {f"{key}.scale": ((channels,), "ones"), f"{key}.shift": ((channels,), "zeros")}


def _blocks(net: BCResNet):
    """(stage, block, in channels, out channels, frequency stride) of every BC-ResBlock."""
    w = net.widths
    for stage, n in enumerate(BC_STAGES):
        for block in range(n):
            cin = w[stage] if block == 0 else w[stage + 1]
            yield stage, block, cin, w[stage + 1], 2 if stage in BC_STRIDED and block == 0 else 1


def _buffer_shapes(name: str) -> dict:
    """{BatchNorm: channels} of every normalisation: its running mean and variance are each model's own."""
    net = network(name)
    if isinstance(net, DSCNN):
        return {"bn0": net.channels, **{f"{kind}{i}": net.channels for i in range(1, len(net.strides) + 1)
                                         for kind in ("dw", "pw")}}
    w = net.widths
    out = {"head.bn": w[0]}
    for stage, block, cin, cout, _ in _blocks(net):
        key = f"s{stage}b{block}"
        if cin != cout:
            out[f"{key}.proj.bn"] = cout
        out[f"{key}.ssn"] = cout * SUB_BANDS
        out[f"{key}.time.bn"] = cout
    out["cls.bn"] = w[-1]
    return out


def _draw(shape, init, generator) -> torch.Tensor:
    if init == "zeros":
        return torch.zeros(shape)
    if init == "ones":
        return torch.ones(shape)
    if isinstance(init, tuple):  # a layer's bias as torch draws it: uniform in +-1/sqrt(fan in)
        limit = 1 / math.sqrt(init[1])
    else:
        receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
        fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
        if len(shape) == 2:  # a dense layer stored (in, out)
            fan_in, fan_out = shape
        # glorot: Keras' and slim's xavier; kaiming: torch's Conv2d default (a = sqrt(5)), 1 / sqrt(fan in)
        limit = math.sqrt(6.0 / (fan_in + fan_out)) if init == "glorot" else 1 / math.sqrt(fan_in)
    return (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1).float() * limit


def init_params(name: str, n_classes: int, seeds) -> tuple[dict, dict]:
    """Weights (one model per seed, stacked on dim 0) and BatchNorm statistics (running mean 0, variance 1)."""
    per_model = []
    for seed in seeds:
        generator = torch.Generator().manual_seed(int(seed))
        per_model.append({key: _draw(shape, init, generator) for key, (shape, init) in _shapes(name, n_classes).items()})
    params = {key: torch.stack([p[key] for p in per_model]) for key in per_model[0]}
    buffers = {}
    for key, channels in _buffer_shapes(name).items():
        buffers[f"{key}.mean"] = torch.zeros(len(seeds), channels)
        buffers[f"{key}.var"] = torch.ones(len(seeds), channels)
    return params, buffers


def n_parameters(name: str, n_classes: int) -> int:
    """Trainable weights of one model (BatchNorm statistics are not weights)."""
    return sum(math.prod(shape) for shape, _ in _shapes(name, n_classes).values())


def dropout_widths(name: str) -> list[int]:
    """Channels of each channel-dropout mask a training step draws per clip, in the order forward reads them."""
    net = network(name)
    if isinstance(net, DSCNN):
        return []
    return [cout for _, _, _, cout, _ in _blocks(net)]


# ---- the batched layers: activations are (batch, models * channels, height, width) ----

def _same_pad(h: torch.Tensor, kernel, stride) -> torch.Tensor:
    """TensorFlow's 'SAME' padding: the output is ceil(input / stride), the odd pixel padded after."""
    pads = []
    for size, k, s in zip(reversed(h.shape[2:]), reversed(kernel), reversed(stride)):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(h, pads)


def _conv(h, weight, n_models: int, bias=None, stride=1, padding=0, dilation=1, depthwise=False, shared=False):
    """One convolution of every model: weight (models, out, in / groups, kh, kw); shared: h is (batch, in, H, W),
    the same input for every model (the first layer over shared clips)."""
    out_channels = weight.shape[1]
    kernel = weight.reshape(n_models * out_channels, *weight.shape[2:])
    groups = 1 if shared else n_models * out_channels if depthwise else n_models
    return F.conv2d(h, kernel, None if bias is None else bias.reshape(-1), stride, padding, dilation, groups)


def _batch_norm(h, buffers, key, params, scale_key, shift_key, training, momentum, eps):
    """BatchNorm over each model's channels: its statistics (models, channels) are updated in place in training."""
    scale = params[scale_key].reshape(-1) if scale_key else None
    return F.batch_norm(h, buffers[f"{key}.mean"].view(-1), buffers[f"{key}.var"].view(-1), scale,
                        params[shift_key].reshape(-1), training, momentum, eps)


def _first_input(x: torch.Tensor, frequency_first: bool):
    """(h, shared): per-model clips (batch, models, T, F) as models channels, or shared clips (batch, T, F) as one."""
    if frequency_first:
        x = x.transpose(-1, -2)
    shared = x.dim() == 3
    return (x.unsqueeze(1) if shared else x).contiguous(), shared


def forward(name: str, params: dict, buffers: dict, x: torch.Tensor, masks=None, training: bool = False) -> torch.Tensor:
    """Logits (batch, models, classes). masks: in training, one (batch, models, channels) keep-mask per
    dropout_widths entry (None: no dropout); training also updates the BatchNorm statistics in `buffers`."""
    net = network(name)
    n_models = next(iter(params.values())).shape[0]
    if isinstance(net, DSCNN):
        return _ds_cnn(net, params, buffers, x, n_models, training)
    return _bc_resnet(net, params, buffers, x, n_models, masks, training)


def _ds_cnn(net: DSCNN, params, buffers, x, n_models, training):
    bn = functools.partial(_batch_norm, buffers=buffers, params=params, training=training, momentum=net.bn_momentum,
                           eps=net.bn_eps)
    h, shared = _first_input(x, frequency_first=False)
    h = _conv(_same_pad(h, net.kernel, net.first_stride), params["conv0.weight"], n_models, params["conv0.bias"],
              net.first_stride, shared=shared)
    h = F.relu(bn(h, key="bn0", scale_key=None, shift_key="bn0.shift"))
    for i, stride in enumerate(net.strides, 1):
        h = _conv(_same_pad(h, (3, 3), stride), params[f"dw{i}.weight"], n_models, params[f"dw{i}.bias"], stride,
                  depthwise=True)
        h = F.relu(bn(h, key=f"dw{i}", scale_key=None, shift_key=f"dw{i}.shift"))
        h = _conv(h, params[f"pw{i}.weight"], n_models, params[f"pw{i}.bias"])
        h = F.relu(bn(h, key=f"pw{i}", scale_key=None, shift_key=f"pw{i}.shift"))
    pooled = h.mean(dim=(2, 3)).reshape(len(h), n_models, net.channels)
    return torch.einsum("bmc,mck->bmk", pooled, params["fc.weight"]) + params["fc.bias"]


def _bc_resnet(net: BCResNet, params, buffers, x, n_models, masks, training):
    bn = functools.partial(_batch_norm, buffers=buffers, params=params, training=training, momentum=net.bn_momentum,
                           eps=net.bn_eps)

    def norm(h, key):
        return bn(h, key=key, scale_key=f"{key}.scale", shift_key=f"{key}.shift")

    h, shared = _first_input(x, frequency_first=True)  # (batch, models, 40 bands, frames)
    h = F.relu(norm(_conv(h, params["head.weight"], n_models, stride=(2, 1), padding=2, shared=shared), "head.bn"))
    masks = iter(masks or ())
    for stage, block, cin, cout, stride in _blocks(net):
        key = f"s{stage}b{block}"
        shortcut = h
        if cin != cout:
            h = F.relu(norm(_conv(h, params[f"{key}.proj.weight"], n_models), f"{key}.proj.bn"))
        h = _conv(h, params[f"{key}.freq.weight"], n_models, stride=(stride, 1), padding=(1, 0), depthwise=True)
        batch, channels, bands, frames = h.shape
        if bands % SUB_BANDS:
            raise InputError(f"BC-ResNet's SubSpectralNorm needs bands divisible by {SUB_BANDS} at every stage: "
                             f"give it 40 log-mel bands (extract_mfccs.py --features logmel --nfilt 40)")
        sub = norm(h.reshape(batch, channels * SUB_BANDS, bands // SUB_BANDS, frames), f"{key}.ssn")
        two_d = sub.reshape(batch, channels, bands, frames)
        rate = 2 ** stage
        t = two_d.mean(dim=2, keepdim=True)
        t = _conv(t, params[f"{key}.time.weight"], n_models, padding=(0, rate), dilation=(1, rate), depthwise=True)
        t = F.silu(norm(t, f"{key}.time.bn"))
        t = _conv(t, params[f"{key}.mix.weight"], n_models)
        mask = next(masks, None)
        if training and mask is not None:
            t = t * mask.reshape(batch, n_models * cout, 1, 1)
        h = t + two_d
        if cin == cout:
            h = h + shortcut
        h = F.relu(h)
    h = _conv(h, params["cls.dw.weight"], n_models, padding=(0, 2), depthwise=True)
    h = F.relu(norm(_conv(h, params["cls.pw.weight"], n_models), "cls.bn"))
    pooled = h.mean(dim=(2, 3)).reshape(len(h), n_models, -1)  # the 1 x 1 output convolution, as a batched product
    return torch.einsum("bmc,mkc->bmk", pooled, params["cls.out.weight"][..., 0, 0]) + params["cls.out.bias"]


# ---- what a model costs: counted on one model by torch's own counters ----

@functools.cache
def forward_flops(name: str, n_classes: int, input_shape: tuple) -> float:
    """Floating-point operations (multiply-adds x 2) of one clip through the network, counted by torch's
    FlopCounterMode (convolutions and matrix products)."""
    from torch.utils.flop_counter import FlopCounterMode

    params, buffers = init_params(name, n_classes, [0])
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        forward(name, params, buffers, torch.zeros(1, *input_shape))
    return float(counter.get_total_flops())


@functools.cache
def saved_values(name: str, n_classes: int, input_shape: tuple) -> int:
    """Values one clip's training step keeps for its backward pass (the feature maps autograd saves)."""
    params, buffers = init_params(name, n_classes, [0])
    params = {k: v.requires_grad_() for k, v in params.items()}
    total = []

    def pack(tensor):
        total.append(tensor.numel())
        return tensor

    x = torch.zeros(2, 1, *input_shape)  # 2 clips: BatchNorm needs more than one value a channel
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        forward(name, params, buffers, x, training=True)
    weights = sum(p.numel() for p in params.values())
    return max(1, (sum(total) - weights) // 2)

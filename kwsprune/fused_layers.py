"""The CNN's layers fused into fewer passes over memory, for float32 on the CPU (kwsprune.training uses them).

The Tiny CNN's maps are too thin (1 to 16 channels) to keep the cores busy: a layer costs the memory it
writes and reads back, not its arithmetic. oneDNN fuses a convolution with its ReLU; the first layer of a
validation pass goes further, its convolution, ReLU and pooling compiled into one loop by torch.compile.
"""

import functools
import itertools
import logging

import torch

log = logging.getLogger(__name__)
# a validation pass of at least this many model-clips compiles its first layer: compiling costs 3-6 s once a
# process (inductor caches it on disk for the next), and a pass of 200,000 (20 models over 10,000 clips) saves 0.3 s
COMPILE_FROM = 200_000


@functools.cache
def _conv_relu_op():
    """oneDNN's convolution + ReLU in one pass (the op torch.compile emits on the CPU), or None where this torch
    build lacks it."""
    if not torch.backends.mkldnn.is_available():
        return None
    return getattr(torch.ops.mkldnn, "_convolution_pointwise", None)


def has_conv_relu() -> bool:
    return _conv_relu_op() is not None


def conv_relu(x, weight, bias, groups: int) -> torch.Tensor:
    """relu(conv2d(x, weight, bias, groups=groups)) by the fused op, without autograd."""
    return _conv_relu_op()(x, weight, bias, [0, 0], [1, 1], [1, 1], groups, "relu", [None], "")


class ConvReLU(torch.autograd.Function):
    """relu(conv2d(x, weight, bias, groups)) by oneDNN in one pass; backward as autograd does it for the two ops
    apart (the ReLU's mask from the output, then aten's convolution backward): the same gradients."""

    @staticmethod
    def forward(ctx, x, weight, bias, groups):
        out = conv_relu(x, weight, bias, groups)
        ctx.save_for_backward(x, weight, out)
        ctx.groups = groups
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight, out = ctx.saved_tensors
        grad = torch.ops.aten.threshold_backward(grad, out, 0)
        grads = torch.ops.aten.convolution_backward(grad, x, weight, [weight.shape[0]], [1, 1], [0, 0], [1, 1], False,
                                                    [0, 0], ctx.groups, list(ctx.needs_input_grad[:3]))
        return *grads, None


def _first_layer_loop(x, taps, bias, kernel: tuple):
    """avg_pool2d(relu(conv2d(x, w, b)), 2) written element by element, as (clips, h, w, channels): x (clips, H, W)
    one channel; taps (kh * kw, channels), w by kernel position. Each pooled value sums its 4 convolutions of
    kh x kw taps; torch.compile turns it into one loop that never writes the convolution's map."""
    kh, kw = kernel
    height, width = (x.shape[1] - kh + 1) // 2, (x.shape[2] - kw + 1) // 2
    pooled = 0
    for row, col in itertools.product(range(2), range(2)):
        conv = bias
        for tap, (dr, dc) in enumerate(itertools.product(range(kh), range(kw))):
            shifted = x[:, row + dr:row + dr + 2 * height:2, col + dc:col + dc + 2 * width:2]
            conv = conv + shifted.unsqueeze(-1) * taps[tap]
        pooled = pooled + torch.relu(conv)
    return pooled * 0.25


@functools.cache
def _compiled_first_layer():
    return torch.compile(_first_layer_loop, dynamic=True)


_compile_failed = []  # the error, once torch.compile has failed in this process (no C++ compiler, no headers)


def compiler_works() -> bool:
    """False once torch.compile has failed to build in this process."""
    return not _compile_failed


def first_layer_pooled(x, weight, bias) -> torch.Tensor | None:
    """The first layer with its pooling, compiled: x (clips, H, W) shared by the models, weight (channels, 1, kh,
    kw) -> (clips, channels, h, w) in channels-last strides, 2-3x faster than oneDNN's convolution and the
    pooling apart. None where torch.compile cannot build here (said once): the caller takes the oneDNN path."""
    if _compile_failed:
        return None
    taps = weight.reshape(len(weight), -1).t().contiguous()
    try:
        pooled = _compiled_first_layer()(x, taps, bias, tuple(weight.shape[2:]))
    except Exception as err:  # noqa: BLE001 - inductor fails in many ways where it cannot build; the path stays
        _compile_failed.append(err)
        log.warning("torch.compile is not available here (%s): validation runs on oneDNN alone, about 1.2x slower",
                    str(err).splitlines()[0] if str(err) else type(err).__name__)
        return None
    return pooled.permute(0, 3, 1, 2)

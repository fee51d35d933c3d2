"""Which device computes: one rule for every step that can use a GPU."""

import os
from pathlib import Path

from kwsprune.validation import InputError

DEVICES = ("auto", "cpu", "cuda")


def pick_device(device: str) -> str:
    """For torch: 'auto' -> 'cuda' when a GPU is visible, else 'cpu'; 'cuda' without a GPU is refused."""
    import torch

    if device not in DEVICES:
        raise InputError(f"--device {device!r}: choose one of {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda but no CUDA GPU is visible: use --device cpu or auto")
    return device


def keras_device(device: str) -> str:
    """For Keras: 'auto' -> 'cuda' when the Keras backend sees a GPU, else 'cpu'; an explicit choice is kept."""
    if device != "auto":
        return device
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return "cuda" if tf.config.list_physical_devices("GPU") else "cpu"
    if backend == "torch":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cpu"


def cpu_has_bfloat16() -> bool:
    """Does this CPU compute bfloat16 natively (avx512_bf16 or amx_bf16 in /proc/cpuinfo; False where unknown)?"""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, as a container or `taskset` sets it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

"""How near the machine's limits the batched engine trains: a roofline table, and the sweep against the original's way.

  python benchmarks/roofline.py [--models 1 10 100] [--dtype float32] [--skip-sweep]

For R models trained together at N = 400 (batch 32, the kwsprune recipe) with a 10,000-clip validation
set (the original's real shape), the training step and the validation pass are timed apart: clips/s
(model-clips: R models x clips), achieved GFLOP/s (FLOPs counted from the layer shapes: forward x 3 for a
training step), and bytes of feature maps per clip (read and written by the forward pass, x 3 for a
step: a floor on the memory traffic). Beside them, this machine's fp32 matmul rate and memory bandwidth,
measured in the same run. Then the sweep as users run it against the original's way, one fresh process
per run of Keras' model.fit (`classification_pruning.py --engine keras`), both at N = 400 with 10,000
validation clips and the original's recipe, on synthetic audio (their accuracies mean nothing; their
speed does): seconds per run and the ratio; --dtype applies to the sweep too (Keras stays in float32).
--networks: the keyword-spotting networks' training steps the same way (N = 1,600, batch 100, their inputs'
shapes), FLOPs counted by torch's FlopCounterMode (kwsprune.models.flops).
"""

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from synthetic_root import synthetic_root  # noqa: E402
from kwsprune.models import feature_map_values, flops as model_flops, forward_flops  # noqa: E402
from kwsprune.recipe import RECIPES  # noqa: E402
from kwsprune.training import TrainConfig, compiles_validation, evaluate, fit, init_params  # noqa: E402
from dataclasses import replace  # noqa: E402

N, N_VALID, N_CLASSES = 400, 10000, 10


def best_of(work, repeats: int = 3) -> float:
    seconds = []
    for _ in range(repeats):
        synchronize()
        began = time.perf_counter()
        work()
        synchronize()
        seconds.append(time.perf_counter() - began)
    return min(seconds)


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def machine_limits(device: str) -> tuple[float, float]:
    """(fp32 matmul GFLOP/s, memory bandwidth GB/s of a large copy), measured with torch on the device."""
    size = 2048 if device == "cpu" else 8192
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    matmul = 2 * size**3 / best_of(lambda: torch.mm(a, b), 5) / 1e9
    source, target = (torch.empty(64 * 2**20, device=device) for _ in range(2))  # 256 MB each, beyond the caches
    source.fill_(1.0)
    bandwidth = 2 * source.numel() * 4 / best_of(lambda: target.copy_(source), 5) / 1e9  # read + write
    return matmul, bandwidth


def step_and_validation(models: int, dtype: str, device: str) -> tuple[float, float]:
    """Seconds of one training epoch (N clips, every model) and of one validation pass (N_VALID clips)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, 99, 32), dtype=np.float32)
    y = rng.integers(N_CLASSES, size=N)
    x_valid = rng.standard_normal((N_VALID, 99, 32), dtype=np.float32)
    y_valid = rng.integers(N_CLASSES, size=N_VALID)
    subsets, seeds = [np.arange(N)] * models, list(range(models))
    one_clip = x_valid[:1], y_valid[:1]  # validation made negligible: the epochs time the training steps

    def epochs(count: int) -> float:
        config = TrainConfig(max_epochs=count, dtype=dtype, stop_patience=count + 1)
        return best_of(lambda: fit(x, y, subsets, *one_clip, N_CLASSES, seeds, config, device), 2)

    step = (epochs(4) - epochs(2)) / 2  # steady state: start-up and the first epoch cancel
    kind = getattr(torch, dtype)
    weights = torch.float32 if kind == torch.bfloat16 else kind  # as fit keeps them
    params = {k: v.to(device=device, dtype=weights) for k, v in init_params("tiny", N_CLASSES, seeds).items()}
    x_valid_t, y_valid_t = torch.as_tensor(x_valid, dtype=kind, device=device), torch.as_tensor(y_valid, device=device)
    compiled = compiles_validation(models, N_VALID)  # as training validates: the first pass compiles, the best is kept
    validation = best_of(lambda: evaluate("tiny", params, x_valid_t, y_valid_t, compiled), 2)
    return step, validation


NETWORK_SHAPES = {"ds-cnn-s": (99, 32), "ds-cnn-m": (99, 32), "bc-resnet-1": (99, 40), "bc-resnet-3": (99, 40)}


def network_step(name: str, models: int, device: str, n: int = 1600) -> float:
    """Seconds of one training epoch of `models` networks on n clips each, in the network's recipe (batch 100)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, *NETWORK_SHAPES[name]), dtype=np.float32)
    y = rng.integers(N_CLASSES, size=n)
    subsets, seeds = [np.arange(n)] * models, list(range(models))
    recipe = RECIPES["bc-resnet" if name.startswith("bc") else "ds-cnn"]

    def epochs(count: int) -> float:
        config = replace(recipe, model=name, max_epochs=count, warmup_epochs=0)
        return best_of(lambda: fit(x, y, subsets, x[:1], y[:1], N_CLASSES, seeds, config, device), 1)

    return (epochs(3) - epochs(1)) / 2


def sweep_against_process_per_run(tmp: Path, epochs: int, runs: int, process_runs: int, device: str, dtype: str) -> None:
    """Seconds per run: the sweep (one command, batched) against one fresh Keras process per run."""
    root = synthetic_root(tmp, {"train": 1000, "valid": N_VALID, "test": 1000}, N_CLASSES)
    common = ["--data-root", str(root), "--model", "tiny", "--n", str(N), "--max-epochs", str(epochs), "--recipe", "original",
              "--device", device]
    sweep_options = ["--dtype", dtype] if dtype != "float32" else []

    def timed(command) -> float:
        began = time.perf_counter()
        subprocess.run([sys.executable, *command], cwd=REPO, check=True, capture_output=True)
        return time.perf_counter() - began

    alone = [timed([str(REPO / "classification_pruning.py"), *common, "--method", "random", "--engine", "keras",
                    "--device", "cpu", "--seed", str(1000 + run)]) for run in range(process_runs)]
    together = timed([str(REPO / "run_all_classifications.py"), *common, "--methods", "random", "--ratios", "1.0",
                      "--repeats", str(runs), *sweep_options])
    with open(root / "results" / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    epochs_of = {engine: np.mean([int(r["epochs"]) for r in rows if r["engine"].startswith(engine)] or [np.nan])
                 for engine in ("keras", "torch")}
    per_sweep = together / runs
    sweep = "the sweep: run_all_classifications.py " + " ".join(["--device", device, *sweep_options])
    width = max(52, len(sweep))
    print(f"\n{'N = 400, 10,000 validation clips, original recipe':<{width}s} {'runs':>5s} {'epochs':>7s} {'s/run':>7s}")
    if process_runs:
        print(f"{'one process per run, Keras model.fit (the original)':<{width}s} {process_runs:5d} "
              f"{epochs_of['keras']:7.1f} {np.mean(alone):7.2f}")
    print(f"{sweep:<{width}s} {runs:5d} {epochs_of['torch']:7.1f} {per_sweep:7.2f}   ({runs / together:.2f} runs/s, "
          "start-up included)")
    if process_runs:
        print(f"the sweep against the original's way: {np.mean(alone) / per_sweep:.1f}x")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, nargs="+", default=[1, 10, 100], help="models trained together")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float64"))
    parser.add_argument("--epochs", type=int, default=20, help="epochs a run of the sweep comparison may take")
    parser.add_argument("--runs", type=int, default=100,
                        help="runs of the sweep (default: %(default)s, the original's repeats of a configuration)")
    parser.add_argument("--process-runs", type=int, default=3,
                        help="runs of one Keras process each, on the CPU (default: %(default)s; 0: none)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--skip-sweep", action="store_true", help="only the roofline table")
    parser.add_argument("--networks", nargs="*", default=[], choices=list(NETWORK_SHAPES),
                        help="also time these networks' training steps (N = 1,600, batch 100)")
    args = parser.parse_args(argv)

    matmul, bandwidth = machine_limits(args.device)
    flops, values = forward_flops("tiny", N_CLASSES), feature_map_values("tiny")
    size = torch.tensor([], dtype=getattr(torch, args.dtype)).element_size()
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{torch.get_num_threads()} CPU threads"
    print(f"this machine ({where}): fp32 matmul {matmul:.0f} GFLOP/s, memory {bandwidth:.1f} GB/s; "
          f"Tiny CNN: {flops / 1e6:.2f} MFLOP and {values * size / 1e3:.0f} kB of feature maps a clip forward")
    print(f"\n{'pass':<11s} {'models':>6s} {'s':>7s} {'clips/s':>9s} {'GFLOP/s':>8s} {'of matmul':>9s} {'kB/clip':>8s} "
          f"{'GB/s':>6s}")
    for models in args.models:
        step, validation = step_and_validation(models, args.dtype, args.device)
        for name, seconds, clips, factor in (("train step", step, N * models, 3), ("validation", validation,
                                                                                     N_VALID * models, 1)):
            rate = clips / seconds
            print(f"{name:<11s} {models:6d} {seconds:7.3f} {rate:9.0f} {rate * factor * flops / 1e9:8.1f} "
                  f"{rate * factor * flops / 1e9 / matmul:9.1%} {factor * values * size / 1e3:8.0f} "
                  f"{rate * factor * values * size / 1e9:6.1f}")
    for name in args.networks:
        flops_net = model_flops(name, N_CLASSES, NETWORK_SHAPES[name])
        for models in args.models:
            seconds = network_step(name, models, args.device)
            rate = 1600 * models / seconds
            print(f"{name + ' step':<11s} {models:6d} {seconds:7.3f} {rate:9.0f} {rate * 3 * flops_net / 1e9:8.1f} "
                  f"{rate * 3 * flops_net / 1e9 / matmul:9.1%}")
    if not args.skip_sweep:
        with tempfile.TemporaryDirectory() as tmp:
            sweep_against_process_per_run(Path(tmp), args.epochs, args.runs, args.process_runs, args.device, args.dtype)


if __name__ == "__main__":
    main()

"""What the original's full experiment costs: each stage's throughput measured here, projected to wall-clock hours.

  python benchmarks/full_scale.py [--epochs 62] [--gpu-tflops 5] [--skip-dask]

The original's experiment on Speech Commands (~85,000 training clips, a 10,000-clip validation set): an
N-scan of 18 sizes (5,000 ... 76,900) x 7 configurations x 100 repeats = 12,600 trainings, and a K scan of
13 values of K (5 ... 250) x 100 repeats at N = 68,000, each K pruned once. Synthetic arrays of the real
shapes stand in for the data. Measured here: reading 1 s WAV files (prepare_dataset's work), MFCCs,
speech-embedding and wav2vec 2.0 base features, each pruning method on 85,000 x 768 features, and training
seconds per epoch at N = 5,000, 20,000 and 76,900 for one model and, at the two smaller sizes, a batched
job of 8 (whose per-run cost against a lone run scales the rest). A run is projected to `--epochs` epochs
(62: the median of kwsprune's runs at N >= 1,600 on FSDD and Arabic Speech Commands, early stopping
included). Dask: the same small sweep in one process and on `dask scheduler` + `dask worker` clusters of 1
and 2 one-thread workers, measured; more machines projected by giving the sweep's jobs (--models-per-job
runs of one size each: 100, or 10) to their workers, longest first. GPU: projected from the FLOPs counted
from the layer shapes at an assumed sustained rate (`--gpu-tflops`), not measured: say so wherever you
quote it.
"""

import argparse
import contextlib
import csv
import heapq
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from kwsprune.engines import MAX_MODELS_PER_JOB  # noqa: E402
from synthetic_root import synthetic_root  # noqa: E402
from kwsprune.models import forward_flops  # noqa: E402

N_SCAN = [5000, 6000, 7000, 8000, 9000, 10000, 12500, 15000, 17500, 20000, 22500, 25000, 30000, 42700, 51300,
          59800, 68400, 76900]  # the original's Run_all_classifications.py
CONFIGS = 7            # normal, and simple / hard at 3 ratios
REPEATS = 100
K_SCAN = [5, 15, 25, 35, 45, 55, 65, 75, 85, 95, 105, 155, 250]
K_SCAN_N = 68000
N_TRAIN, N_VALID, N_TEST, N_CLASSES = 85000, 10000, 11000, 35


def timed(work) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


def prepare_rate(tmp: Path, n: int = 400) -> float:
    from concurrent.futures import ThreadPoolExecutor

    from kwsprune.audio import load_clip

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        paths.append(tmp / f"clip{i}.wav")
        soundfile.write(paths[-1], rng.uniform(-0.5, 0.5, 16000), 16000, subtype="PCM_16")
    with ThreadPoolExecutor(4) as pool:  # as prepare_dataset.py reads
        seconds = timed(lambda: list(pool.map(load_clip, paths)))
    return n / seconds


def mfcc_rate(n: int = 2000) -> float:
    from kwsprune.mfcc import mfccs

    clips = np.random.default_rng(0).uniform(-1, 1, (n, 16000)).astype(np.float32)
    return n / timed(lambda: mfccs(clips))


def embedding_rate(n: int = 512) -> float:
    from kwsprune.embeddings import open_speech_embedding

    embed, _ = open_speech_embedding()
    clips = np.random.default_rng(0).uniform(-1, 1, (n, 16000)).astype(np.float32)
    return n / timed(lambda: [embed(clips[i:i + 32]) for i in range(0, n, 32)])


def wav2vec_rate(n: int = 16) -> float:
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    model = Wav2Vec2Model(Wav2Vec2Config()).eval()  # the base size (95 M parameters), randomly initialised
    clips = torch.randn(n, 16000)
    with torch.inference_mode():
        model(clips[:2])
        return n / timed(lambda: [model(clips[i:i + 8]) for i in range(0, n, 8)])


def embeddings(n: int, dim: int = 768) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic wav2vec-sized features around one centre a class, and their labels."""
    rng = np.random.default_rng(0)
    labels = rng.integers(N_CLASSES, size=n)
    centres = rng.standard_normal((N_CLASSES, dim), dtype=np.float32)
    return centres[labels] + rng.standard_normal((n, dim), dtype=np.float32), labels


def kmeans_seconds(n: int, k: int) -> float:
    from kwsprune.embedding_scores import kmeans_distances

    features, _ = embeddings(n)
    return timed(lambda: kmeans_distances(features, k, 0, n_init=10))


def method_seconds(n: int) -> dict:
    """Seconds of each embedding-based method alone (its k-means included, K = 10, 10 starts) at ratio 0.5."""
    from kwsprune.methods import FROM_TRAINING, METHODS, Inputs, run_method

    features, labels = embeddings(n)
    rng = np.random.default_rng(0)
    return {name: timed(lambda: run_method(name, Inputs(features, labels), 0.5, rng))
            for name in METHODS if name not in FROM_TRAINING}


def epoch_seconds(n_train: int, n_models: int) -> tuple[float, float]:
    """(training, validation) seconds of one epoch of a job of n_models Tiny CNNs on n_train clips."""
    import torch

    from kwsprune.training import TrainConfig, evaluate, fit

    rng = np.random.default_rng(0)
    x = rng.standard_normal((n_train, 99, 32), dtype=np.float32)
    y = rng.integers(N_CLASSES, size=n_train)
    x_valid = rng.standard_normal((N_VALID, 99, 32), dtype=np.float32)
    y_valid = rng.integers(N_CLASSES, size=N_VALID)
    subsets = [np.arange(n_train)] * n_models
    config = TrainConfig(max_epochs=1)
    whole = timed(lambda: fit(x, y, subsets, x_valid, y_valid, N_CLASSES, list(range(n_models)), config))
    params = fit(x[:64], y[:64], [np.arange(64)] * n_models, x_valid[:64], y_valid[:64], N_CLASSES,
                 list(range(n_models)), config)[0]
    validation = timed(lambda: evaluate("tiny", params, torch.as_tensor(x_valid), torch.as_tensor(y_valid)))
    return whole - validation, validation


@contextlib.contextmanager
def dask_cluster(tmp: Path, workers: int):
    """A scheduler and `workers` one-thread workers started as a user would (dask scheduler / dask worker),
    from a folder outside the repository; yields the scheduler's address."""
    dask = str(Path(sys.executable).with_name("dask"))
    file = tmp / f"scheduler{workers}.json"
    file.unlink(missing_ok=True)
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
    processes = [subprocess.Popen([dask, "scheduler", "--scheduler-file", str(file), "--port", "0",
                                   "--dashboard-address", ":0"], **quiet)]
    while not file.exists():
        time.sleep(0.2)
    processes += [subprocess.Popen([dask, "worker", "--scheduler-file", str(file), "--nthreads", "1"], **quiet)
                  for _ in range(workers)]
    from distributed import Client

    with Client(scheduler_file=str(file)) as client:
        client.wait_for_workers(workers, timeout=60)
        address = client.scheduler.address
    try:
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait()


def dask_scaling(tmp: Path) -> tuple[float, float]:
    """The same sweep (8 jobs of 2 runs, N 2,000 ... 3,400, 4 epochs: seconds each) in this process and on Dask
    clusters of 1 and of 2 one-thread workers: (the wall-clock speed-up from 1 to 2 workers, halved: 1.0 is ideal,
    start-up included; the training throughput of 2 workers at once against the in-process sweep's)."""
    root = synthetic_root(tmp, {"train": 4000, "valid": 1000, "test": 500})
    sweep = [sys.executable, str(REPO / "run_all_classifications.py"), "--data-root", str(root), "--model", "tiny", "--methods", "random",
             "--ratios", "1.0", "--n", *map(str, range(2000, 3600, 200)), "--repeats", "2", "--max-epochs", "4"]
    wall, training = {}, {}

    def run(label, extra=()):
        shutil.rmtree(root / "results", ignore_errors=True)
        wall[label] = timed(lambda: subprocess.run([*sweep, *extra], check=True, capture_output=True))
        with open(root / "results" / "runs.csv") as f:  # each row: its job's seconds on its worker, per run
            training[label] = sum(float(row["seconds"]) for row in csv.DictReader(f))

    run("local")
    for workers in (1, 2):
        with dask_cluster(tmp, workers) as address:
            run(workers, ["--backend", "dask", "--scheduler", address])
    print(f"\nthe same 16-run sweep (8 jobs), wall-clock with its start / training seconds summed over jobs: in this "
          f"process (2 threads) {wall['local']:.1f} / {training['local']:.1f} s; on Dask workers of 1 thread: 1 worker "
          f"{wall[1]:.1f} / {training[1]:.1f} s, 2 workers {wall[2]:.1f} / {training[2]:.1f} s")
    # throughput of training alone (a full-scale job lasts hours; a sweep's start, seconds): 2 workers at once
    return wall[1] / wall[2] / 2, 2 * training["local"] / training[2]

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=62, help="epochs a run trains (default: %(default)s)")
    parser.add_argument("--gpu-tflops", type=float, default=5.0,
                        help="assumed sustained fp32 TFLOP/s of one GPU on these tiny convolutions (default: %(default)s)")
    parser.add_argument("--skip-dask", action="store_true", help="no Dask measurement (it needs pip install .[dask])")
    args = parser.parse_args(argv)
    hours = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rates = {"read 1 s WAV files (prepare)": prepare_rate(tmp), "MFCCs": mfcc_rate(),
                 "speech-embedding features": embedding_rate(), "wav2vec 2.0 base features (the original's)": wav2vec_rate()}
        print(f"{'stage':<44s} {'clips/s':>9s} {'hours for 106,000 clips':>24s}")
        for stage, rate in rates.items():
            print(f"{stage:<44s} {rate:9.1f} {106000 / rate / 3600:24.2f}")
        kmeans = {k: kmeans_seconds(20000, k) for k in (10, 50)}
        per_clip_k = (kmeans[50] - kmeans[10]) / 40 / 20000  # seconds per clip per extra cluster
        base = kmeans[10] / 20000 - 10 * per_clip_k
        prune = lambda k: N_TRAIN * (base + k * per_clip_k)  # noqa: E731
        print(f"k-means (10 starts) on 20,000 x 768: K = 10 {kmeans[10]:.1f} s, K = 50 {kmeans[50]:.1f} s; "
              f"projected to 85,000: K = 10 {prune(10):.0f} s, K = 250 {prune(250):.0f} s")
        print(f"\n{'pruning method (K = 10, 10 starts, ratio 0.5)':<44s} {'s on 85,000 x 768':>18s}")
        for name, seconds in method_seconds(N_TRAIN).items():
            print(f"{name:<44s} {seconds:18.1f}")
        print(f"\n{'training, Tiny CNN, 10,000 validation clips':<44s} {'N':>7s} {'models':>6s} {'train s/epoch':>14s} "
              f"{'valid s/epoch':>14s} {'s/run':>9s}")
        per_run = {}
        epoch_seconds(1000, 1)  # warm-up: the first fit pays for torch's start
        for n, models in ((5000, 1), (5000, 8), (20000, 1), (20000, 8), (76900, 1)):
            train, valid = epoch_seconds(n, models)
            per_run[n, models] = (train + valid) / models * args.epochs
            print(f"{'':<44s} {n:7d} {models:6d} {train:14.2f} {valid:14.2f} {per_run[n, models]:9.0f}")
        batch_gain = per_run[20000, 8] / per_run[20000, 1]  # a run's cost in a job of 8 against alone
        sizes = [5000, 20000, 76900]
        run_cost = lambda n: float(np.interp(n, sizes, [per_run[s, 1] for s in sizes])) * batch_gain  # noqa: E731
        print(f"a run in a batched job of 8 costs {batch_gain:.2f} of a run alone (N = 20,000)")
        epoch_85k = float(np.interp(N_TRAIN, sizes, [per_run[s, 1] for s in sizes])) / args.epochs
        print(f"el2n (10 epochs x 5 models on all 85,000 clips) projected from these rates: "
              f"{10 * 5 * batch_gain * epoch_85k / 60:.0f} min; forgetting (one run, {args.epochs:g} epochs): "
              f"{args.epochs * epoch_85k / 60:.0f} min; ccs uses el2n")
        jobs = {per_job: {"N-scan": [job for n in N_SCAN for job in job_seconds(CONFIGS * REPEATS, run_cost(n), per_job)],
                          "K scan": job_seconds(len(K_SCAN) * REPEATS, run_cost(K_SCAN_N), per_job)}
                for per_job in (MAX_MODELS_PER_JOB, 10)}
        driver = {"N-scan": 0.0, "K scan": sum(prune(k) for k in K_SCAN)}  # the driver prunes before training
        efficiency, two_workers = (1.0, 1.0) if args.skip_dask else dask_scaling(tmp)
    flops_per_epoch = lambda n: 3 * forward_flops('tiny', N_CLASSES) * n + forward_flops('tiny', N_CLASSES) * N_VALID  # noqa: E731
    gpu_seconds = lambda n: flops_per_epoch(n) * args.epochs / (args.gpu_tflops * 1e12)  # noqa: E731
    gpu = {"N-scan": sum(gpu_seconds(n) for n in N_SCAN) * CONFIGS * REPEATS,
           "K scan": gpu_seconds(K_SCAN_N) * len(K_SCAN) * REPEATS + driver["K scan"]}
    print(f"\nTiny CNN: {forward_flops('tiny', N_CLASSES) / 1e6:.2f} MFLOP forward per clip; an epoch at N = 76,900 with 10,000 "
          f"validation clips is {flops_per_epoch(76900) / 1e12:.2f} TFLOP")
    print(f"Dask: 1 -> 2 workers on this machine scaled with efficiency {efficiency:.2f}; 2 workers of 1 thread trained "
          f"{two_workers:.2f}x as fast as one process of 2 threads")
    print(f"\n{'hours; --models-per-job':<58s} {str(MAX_MODELS_PER_JOB) + ': N-scan':>12s} {'K scan':>7s} "
          f"{'10: N-scan':>11s} {'K scan':>7s}")
    rows = [("this machine (2 cores), one process: measured rates",
             lambda name, per_job: sum(jobs[per_job][name]) + driver[name])]
    for machines in (1, 5, 25, 100):  # each machine two workers of one thread, each at half the measured pair's speed
        rows.append((f"{machines} machine(s) like this, 2 Dask workers each{' (projected)' if machines > 1 else ''}",
                     lambda name, per_job, m=machines: driver[name] + makespan(
                         [j / (two_workers / 2) for j in jobs[per_job][name]], 2 * m)))
    rows.append((f"one GPU at {args.gpu_tflops:g} TFLOP/s (projected from FLOPs)", lambda name, per_job: gpu[name]))
    for label, hours in rows:
        print(f"{label:<58s} {hours('N-scan', MAX_MODELS_PER_JOB) / 3600:12.1f} {hours('K scan', MAX_MODELS_PER_JOB) / 3600:7.1f} "
              f"{hours('N-scan', 10) / 3600:11.1f} {hours('K scan', 10) / 3600:7.1f}")

def job_seconds(n_runs: int, run_seconds: float, per_job: int) -> list[float]:
    """The sweep's jobs for n_runs runs of one size: up to per_job runs each (--models-per-job)."""
    return [min(per_job, n_runs - start) * run_seconds for start in range(0, n_runs, per_job)]


def makespan(jobs: list[float], workers: int) -> float:
    """Seconds until the last job ends when each goes to the first free worker, longest first."""
    loads = [0.0] * workers
    for job in sorted(jobs, reverse=True):
        heapq.heapreplace(loads, loads[0] + job)
    return max(loads)

if __name__ == "__main__":
    main()

"""Pruning time and peak memory per method, on synthetic features of Speech Commands size.

  python benchmarks/pruning_speed.py                        # 85,000 x 768 pooled, every embedding method;
                                                            # 85,000 x 49 x 768 flattened, the original's k-means
  python benchmarks/pruning_speed.py --cases pooled --n-clips 20000 --methods keep_hard semdedup
  python benchmarks/pruning_speed.py --cases mfccs --max-epochs 10  # el2n, grand, forgetting and the training
                                                                    # record (capped), ccs

Writes features scattered around 35 class centres to a temporary .npy (float32 when pooled; float16 when
flattened, as `extract_embeddings.py --pooling flatten --dtype float16` stores them), then, in a fresh
process per method, memory-maps them and runs the method at pruning.py's default ratios, scoring
included. Prints seconds and two peaks: private memory (sampled every 10 ms) and resident memory
including the memory-mapped features' pages. Targets for the pooled original (keep_hard): < 30 s, < 1 GB.
el2n, forgetting and ccs score clips by training the Tiny CNN on MFCCs, not from embeddings: the mfccs
case times them on synthetic (n, 99, 32) float32 MFCCs held in memory, as pruning.py loads them, with a
validation split of n / 8 clips. Forgetting runs the original's recipe (early stopping on the validation
loss) up to --max-epochs; ccs reads the EL2N scores the el2n run left, as pruning.py reads its cache. "record"
is the training record's training (the same recipe and cap as forgetting); the methods that score from the record
(and d2, from EL2N) are timed in the pooled case on a stand-in record of random values of its shapes (60 epochs).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kwsprune.methods import FROM_TRAINING, METHODS, MODEL_SCORES, Inputs, run_method  # noqa: E402

RATIOS = (0.05, 0.1, 0.15, 0.2, 0.3)  # pruning.py's defaults
N_CLASSES = 35
TRAINED_METHODS = [*MODEL_SCORES, "ccs"]  # "record": the training record's training itself
RECORD_METHODS = [m for m in FROM_TRAINING if m not in TRAINED_METHODS]  # scored from the record (d2: EL2N)
EMBEDDING_METHODS = [m for m in METHODS if m not in FROM_TRAINING] + RECORD_METHODS
MFCC_SHAPE = (99, 32)
RECORD_EPOCHS = 60  # of the stand-in record the pooled case scores from (about a real run's length)


def memory_mb(field: str) -> float:
    """A field of /proc/self/status in MB: VmHWM (peak resident, mapped file pages included) or RssAnon."""
    status = Path("/proc/self/status").read_text()
    return int(status.split(f"{field}:")[1].split()[0]) / 1024


def write_features(path: Path, n_clips: int, dim: int, dtype, seed: int = 0) -> None:
    """Clips scattered around 35 class centres, and their classes beside them; written in chunks."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((N_CLASSES, dim), dtype=np.float32)
    labels = rng.integers(N_CLASSES, size=n_clips)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(n_clips, dim))
    rows = max(1, (64 << 20) // (4 * dim))
    for start in range(0, n_clips, rows):
        chunk = labels[start:start + rows]
        out[start:start + len(chunk)] = centres[chunk] + rng.standard_normal((len(chunk), dim), dtype=np.float32)
    out.flush()
    del out
    np.save(path.with_suffix(".labels.npy"), labels)


def write_mfccs(path: Path, n_clips: int, seed: int = 0) -> None:
    """Training MFCCs around 35 class patterns and a validation split of n / 8 clips, with their classes."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((N_CLASSES, *MFCC_SHAPE), dtype=np.float32)
    for name, n in (("train", n_clips), ("valid", max(N_CLASSES, n_clips // 8))):
        labels = rng.integers(N_CLASSES, size=n)
        out = np.lib.format.open_memmap(path / f"{name}.npy", mode="w+", dtype=np.float32, shape=(n, *MFCC_SHAPE))
        for start in range(0, n, 4096):
            chunk = labels[start:start + 4096]
            out[start:start + len(chunk)] = centres[chunk] + 2 * rng.standard_normal((len(chunk), *MFCC_SHAPE), dtype=np.float32)
        out.flush()
        del out
        np.save(path / f"{name}.labels.npy", labels)


def stand_in_scores(labels, seed: int = 0) -> dict:
    """EL2N scores and a training record of the right shapes with random values, for timing the methods that score
    from them (the trainings themselves are timed in the mfccs case)."""
    rng = np.random.default_rng(seed)
    n, width = len(labels), 48  # the Tiny CNN's output layer reads 48 values
    return {"el2n": rng.random(n),
            "record": {"true_probability": rng.random((RECORD_EPOCHS, n), dtype=np.float32),
                       "change": rng.random((RECORD_EPOCHS, n), dtype=np.float32),
                       "train_last_inputs": rng.random((n, width), dtype=np.float32),
                       "valid_last_inputs": rng.random((max(N_CLASSES, n // 8), width), dtype=np.float32),
                       "last_weight": rng.standard_normal((width, N_CLASSES), dtype=np.float32),
                       "last_bias": rng.standard_normal(N_CLASSES, dtype=np.float32),
                       "valid_labels": rng.integers(N_CLASSES, size=max(N_CLASSES, n // 8))}}


def trained_inputs(folder: str, k: int, max_epochs: int, n_init: int) -> Inputs:
    """Inputs whose EL2N and forgetting scores train the Tiny CNN on the MFCCs in folder (no embeddings)."""
    from dataclasses import replace

    from kwsprune.model_scores import SCORE_CONFIG, el2n_scores, forgetting_scores, grand_scores, training_record

    folder = Path(folder)
    labels = np.load(folder / "train.labels.npy")
    data = lambda: [np.load(folder / name) for name in ("train.npy", "train.labels.npy", "valid.npy", "valid.labels.npy")]  # noqa: E731
    cached = folder / "el2n_scores.npy"
    return Inputs(np.empty((len(labels), 0), np.float32), labels, k=k, n_init=n_init,
                  model_scores={"el2n": lambda: np.load(cached) if cached.exists() else el2n_scores(*data(), N_CLASSES, 0),
                                "grand": lambda: grand_scores(*data(), N_CLASSES, 0),
                                "forgetting": lambda: forgetting_scores(*data(), N_CLASSES, 0,
                                                                        replace(SCORE_CONFIG, max_epochs=max_epochs)),
                                "record": lambda: training_record(*data(), N_CLASSES, 0,
                                                                  replace(SCORE_CONFIG, max_epochs=max_epochs))})


def measure(path: str, method: str, k: int, max_epochs: int, n_init: int) -> dict:
    """In a fresh process: one method at every default ratio on the memory-mapped features (or, for a
    method that trains, the MFCCs in the folder `path`)."""
    start_mb = memory_mb("RssAnon")
    peak = [start_mb]
    running = True

    def sample():
        while running:
            peak[0] = max(peak[0], memory_mb("RssAnon"))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began = time.perf_counter()
    if method in TRAINED_METHODS:
        inputs = trained_inputs(path, k, max_epochs, n_init)
    else:
        labels = np.load(Path(path).with_suffix(".labels.npy"))
        inputs = Inputs(np.load(path, mmap_mode="r"), labels, k=k, n_init=n_init,
                        cache=stand_in_scores(labels) if method in RECORD_METHODS else {})
    if method == "record":  # the training the record methods share
        inputs.record()
    for ratio in RATIOS if method != "record" else ():
        run_method(method, inputs, ratio, np.random.default_rng(0))
    seconds = time.perf_counter() - began
    if method == "el2n":
        np.save(Path(path) / "el2n_scores.npy", inputs.model_score("el2n"))  # for ccs, outside the timing
    running = False
    sampler.join()
    return {"seconds": seconds, "private_mb": peak[0], "resident_mb": memory_mb("VmHWM"), "start_mb": start_mb}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=["pooled", "flattened", "mfccs"], choices=("pooled", "flattened", "mfccs"))
    parser.add_argument("--methods", nargs="+", default=EMBEDDING_METHODS, choices=EMBEDDING_METHODS, help="methods of the pooled case")
    parser.add_argument("--trained", nargs="+", default=TRAINED_METHODS, choices=TRAINED_METHODS,
                        help="methods of the mfccs case (record: the training record's training)")
    parser.add_argument("--n-clips", type=int, default=85_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--frames", type=int, default=49, help="frames per clip in the flattened case")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--n-init", type=int, default=10, help="k-means starts (default: %(default)s, pruning.py's)")
    parser.add_argument("--max-epochs", type=int, default=170, help="cap of the forgetting run (the recipe's 170)")
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)  # the child process's mode: PATH METHOD
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(*args.measure, args.k, args.max_epochs, args.n_init)))
        return

    print(f"{'case':<10s} {'features':>24s} {'method':<22s} {'seconds':>8s} {'private MB':>10s} {'resident MB':>11s}"
          f" {'at start MB':>10s}")
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases:
            if case == "mfccs":
                path, methods = Path(tmp), args.trained
                write_mfccs(path, args.n_clips)
                shape = f"{args.n_clips} x {MFCC_SHAPE[0]} x {MFCC_SHAPE[1]} float32"
            else:
                dim, dtype = (args.dim, np.float32) if case == "pooled" else (args.dim * args.frames, np.float16)
                methods = args.methods if case == "pooled" else ["keep_hard"]
                path = Path(tmp) / f"{case}.npy"
                write_features(path, args.n_clips, dim, dtype)
                shape = f"{args.n_clips} x {dim} {np.dtype(dtype).name}"
            for method in methods:
                child = subprocess.run([sys.executable, __file__, "--measure", str(path), method, "--k", str(args.k),
                                        "--max-epochs", str(args.max_epochs), "--n-init", str(args.n_init)],
                                       capture_output=True, text=True, check=True)
                result = json.loads(child.stdout.strip().splitlines()[-1])
                print(f"{case:<10s} {shape:>24s} {method:<22s} {result['seconds']:8.1f} {result['private_mb']:10.0f} "
                      f"{result['resident_mb']:11.0f} {result['start_mb']:10.0f}", flush=True)
            if path.is_file():
                path.unlink()


if __name__ == "__main__":
    main()

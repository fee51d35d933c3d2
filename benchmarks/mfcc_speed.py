"""MFCC throughput: python_speech_features clip by clip (the original) vs kwsprune's batched NumPy.

  python benchmarks/mfcc_speed.py [--data-root DIR] [--n-clips 2000]

Prints clips/s of each on the same clips (best of 3), the speed-up, and the largest absolute difference.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from python_speech_features import mfcc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kwsprune.dataset import load_split  # noqa: E402
from kwsprune.device import available_cores  # noqa: E402
from kwsprune.mfcc import mfcc_batch, mfccs  # noqa: E402
from kwsprune.paths import REPO_ROOT  # noqa: E402


def clips_per_second(fn, clips, repeats=3):
    """Best of `repeats` timings, as clips per second."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(clips)
        best = min(best, time.perf_counter() - start)
    return len(clips) / best, out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=REPO_ROOT, help="a data root with Dataset_as_Numpy/ (run make demo first)")
    parser.add_argument("--n-clips", type=int, default=2000)
    args = parser.parse_args(argv)
    clips = np.asarray(load_split(args.data_root, "train")[0][:args.n_clips])

    original = lambda x: np.array([mfcc(c, 16000, numcep=32, nfilt=32) for c in x.astype(np.float64)])  # noqa: E731
    rows = [("python_speech_features, clip by clip", *clips_per_second(original, clips))]
    rows.append((f"kwsprune mfccs, {available_cores()} threads", *clips_per_second(mfccs, clips)))
    rows.append(("kwsprune mfcc_batch, one thread", *clips_per_second(lambda x: mfcc_batch(x).astype(np.float32), clips)))
    reference = rows[0][2]
    print(f"{len(clips)} clips of {clips.shape[1]} samples from {Path(args.data_root) / 'Dataset_as_Numpy'}")
    print(f"{'method':40s} {'clips/s':>9s} {'speed-up':>9s} {'max |diff|':>11s}")
    for name, rate, out in rows:
        print(f"{name:40s} {rate:9.0f} {rate / rows[0][1]:8.1f}x {np.abs(out - reference).max():11.2e}")
    exact = np.abs(mfcc_batch(clips[:200]) - reference[:200]).max()
    print(f"float64 before storage as float32: max |diff| {exact:.2e} on 200 clips")


if __name__ == "__main__":
    main()

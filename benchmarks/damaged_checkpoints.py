"""Sweeps killed mid-job whose checkpoint is then damaged or replaced: is each one set aside, and do the final rows
equal an uninterrupted sweep's?

  python benchmarks/damaged_checkpoints.py --data-root DIR [--trials 2] [--sweep ...]

On temporary copies of DIR (after steps 0-2): the sweep uninterrupted; then, `--trials` times for each kind of
damage, the sweep killed with SIGKILL once its job has saved a checkpoint (results/.checkpoints/, every 20 s),
the checkpoint damaged, and the sweep run again to its end. The kinds: 64 bytes overwritten at a random offset,
8 bytes flipped, the file cut at a random length, and a planted file with a valid checksum whose pickle calls a
function (it would create a marker file). It prints each trial and the counts: set aside, code run, final rows
equal to the uninterrupted sweep's.
"""

import argparse
import hashlib
import io
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kill_resume import copy_root, rows, sweep_command  # noqa: E402

from kwsprune.training import CHECKPOINT_MAGIC  # noqa: E402

SWEEP = ["--model", "tiny", "--methods", "keep_hard", "random", "--n", "all", "--ratios", "0.3", "--k", "10", "--repeats", "3",
         "--max-epochs", "60"]
KINDS = ("overwritten", "flipped", "cut", "planted")


class Planted:
    """A pickle that runs code when it is loaded: here it only creates a file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def damage(path: Path, kind: str, rng: np.random.Generator, marker: Path) -> str:
    data = bytearray(path.read_bytes())
    if kind == "overwritten":
        at = int(rng.integers(0, len(data) - 64))
        data[at:at + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
        where = f"bytes {at}-{at + 63} of {len(data)}"
    elif kind == "flipped":
        at = int(rng.integers(0, len(data) - 8))
        for i in range(at, at + 8):
            data[i] ^= 0xFF
        where = f"bytes {at}-{at + 7} of {len(data)}"
    elif kind == "cut":
        at = int(rng.integers(1, len(data)))
        data, where = data[:at], f"at {at} of {len(data)} bytes"
    else:
        payload = pickle.dumps({"job": "planted", "epoch": Planted(str(marker))})
        buffer = io.BytesIO(payload)
        data, where = CHECKPOINT_MAGIC + hashlib.sha256(buffer.getvalue()).digest() + payload, "a pickled callable"
    path.write_bytes(bytes(data))
    return where


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, type=Path, help="a data root after steps 0-2")
    parser.add_argument("--trials", type=int, default=2, help="of each kind of damage (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sweep", nargs=argparse.REMAINDER, default=SWEEP, help="run_all_classifications.py flags")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    counts = {"trials": 0, "set aside": 0, "code ran": 0, "rows equal": 0}
    with tempfile.TemporaryDirectory() as scratch:
        whole_root = copy_root(args.data_root, Path(scratch) / "whole")
        subprocess.run(sweep_command(whole_root, args.sweep), check=True, capture_output=True)
        whole = rows(whole_root)
        print(f"uninterrupted: {len(whole)} runs")
        for trial, kind in enumerate([kind for kind in KINDS for _ in range(args.trials)]):
            root = copy_root(args.data_root, Path(scratch) / f"trial{trial}")
            marker = Path(scratch) / f"code_ran_{trial}"
            process = subprocess.Popen(sweep_command(root, args.sweep), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            checkpoints = root / "results" / ".checkpoints"
            while not list(checkpoints.glob("job_*.pt")) and process.poll() is None:
                time.sleep(0.2)
            process.send_signal(signal.SIGKILL)
            process.wait()
            saved = list(checkpoints.glob("job_*.pt"))
            if not saved:
                print(f"trial {trial + 1} ({kind}): the job ended before it saved a checkpoint; raise --max-epochs")
                continue
            where = damage(saved[0], kind, rng, marker)
            resumed = subprocess.run(sweep_command(root, args.sweep), capture_output=True, text=True)
            final = rows(root)
            equal = final.keys() == whole.keys() and all(
                (final[key]["test_acc"], final[key]["test_loss"], final[key]["epochs"]) ==
                (whole[key]["test_acc"], whole[key]["test_loss"], whole[key]["epochs"]) for key in whole)
            aside = "set aside" in resumed.stderr
            counts["trials"] += 1
            counts["set aside"] += aside
            counts["code ran"] += marker.exists()
            counts["rows equal"] += equal and resumed.returncode == 0
            print(f"trial {trial + 1} ({kind}, {where}): set aside {aside}, code ran {marker.exists()}, "
                  f"final rows equal {equal}")
    print()
    for name, count in counts.items():
        print(f"{name:10s} {count}")


if __name__ == "__main__":
    main()

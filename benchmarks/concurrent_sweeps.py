"""Several sweeps on one data root at once: is every run trained and stored once, and are the rows one sweep's?

  python benchmarks/concurrent_sweeps.py --data-root DIR [--repeats 3] [--max-epochs 30]

On temporary copies of DIR (after steps 0-2), the sweeps below (two of the same study, one overlapping it, one
disjoint, and with Dask installed two more of the study on --backend dask, each its own local cluster) start
0.3 s apart on one copy; on the other they run one after another. Two more of the study start first on the first
copy: one killed (SIGKILL) once it has claimed runs, one stopped (SIGSTOP) once it has claimed runs and continued (SIGCONT)
after its claims' lease (--lease seconds, short here) has run out, so that others take its runs over. The Tiny CNN
in float64, so that a run's numbers do not depend on which runs shared its job. It prints, per sweep, its exit
status and what it trained, then the counts: identities asked for, rows stored, identities stored more than once,
identities missing, rows that differ from the one-after-another copy, history CSV lines against rows, runs the
stopped sweep found taken over; and both wall times with their ratio.
"""

import argparse
import csv
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kill_resume import copy_root, rows, sweep_command  # noqa: E402

from kwsprune.results import IDENTITY_FIELDS  # noqa: E402

COMMON = ["--model", "tiny", "--ratios", "0.3", "--k", "10", "--dtype", "float64"]


def sweeps(repeats: int, dask: bool) -> dict[str, list[str]]:
    study = ["--n", "200", "400", "--methods", "keep_hard", "ssp_hard", "random", "--repeats", str(repeats)]
    chosen = {"same study": study, "same study again": study,
              "overlapping": ["--n", "400", "--methods", "keep_hard", "random", "--repeats", str(repeats + 2)],
              "disjoint": ["--n", "200", "--methods", "keep_easy", "--repeats", str(repeats)]}
    if dask:
        chosen["same study, dask"] = [*study, "--backend", "dask", "--workers", "1"]
        chosen["same study, dask again"] = [*study, "--backend", "dask", "--workers", "1"]
    return chosen


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, type=Path, help="a data root after steps 0-2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--lease", type=float, default=20.0, help="seconds a claim lives unrenewed (KWSPRUNE_LEASE_SECONDS)")
    args = parser.parse_args(argv)
    try:
        import distributed  # noqa: F401
        dask = True
    except ImportError:
        dask = False
    chosen = sweeps(args.repeats, dask)
    extra = [*COMMON, "--max-epochs", str(args.max_epochs)]
    with tempfile.TemporaryDirectory() as scratch:
        shared, alone = copy_root(args.data_root, Path(scratch) / "shared"), copy_root(args.data_root, Path(scratch) / "alone")
        began = time.perf_counter()
        for study in chosen.values():
            subprocess.run([*sweep_command(alone, [*study, *extra])], check=True, capture_output=True)
        one_after_another = time.perf_counter() - began

        began, processes, logs = time.perf_counter(), {}, {}
        environment = {**os.environ, "KWSPRUNE_LEASE_SECONDS": str(args.lease)}
        study = chosen["same study"]
        # the two to be signalled start first, so that they claim runs before the others have claimed them all
        for i, (name, chosen_study) in enumerate({"killed": study, "stopped, continued": study, **chosen}.items()):
            logs[name] = Path(scratch) / f"sweep{i}.log"  # a file, not a pipe: a full pipe would stop its sweep
            with open(logs[name], "w") as log:
                processes[name] = subprocess.Popen(sweep_command(shared, [*chosen_study, *extra]), stdout=log,
                                                   stderr=subprocess.STDOUT, env=environment)
            time.sleep(0.3)
        signalled = {}
        for name, sent in (("killed", signal.SIGKILL), ("stopped, continued", signal.SIGSTOP)):
            if wait_for_claims(shared, processes[name]):
                os.kill(processes[name].pid, sent)
                signalled[name] = sent.name
        if "stopped, continued" in signalled:
            time.sleep(args.lease + 5)  # its lease runs out: the others take its runs over
            os.kill(processes["stopped, continued"].pid, signal.SIGCONT)
        for process in processes.values():
            process.wait()
        together = time.perf_counter() - began
        outputs = {name: path.read_text() for name, path in logs.items()}

        print(f"{'sweep':26s} {'exit':>4s}  runs to train when it started; signal sent once it had claimed runs")
        for name, process in processes.items():
            asked = re.search(r"(\d+) runs to train", outputs[name])
            print(f"{name:26s} {process.returncode:4d}  {asked.group(1) if asked else '?'}"
                  f"{'; ' + signalled[name] if name in signalled else ''}")
        with open(shared / "results" / "runs.csv") as f:
            stored = list(csv.DictReader(f))
        key_of = lambda row: tuple(row[k] for k in IDENTITY_FIELDS)  # noqa: E731
        reference, found = rows(alone), rows(shared)
        numbers = lambda row: (row["test_loss"], row["test_acc"], row["epochs"])  # noqa: E731
        differ = sum(1 for key in reference if key in found and numbers(found[key]) != numbers(reference[key]))
        history = sum(len(path.read_text().splitlines()) for path in (shared / "results" / "history").glob("*/history_*.csv"))
        print()
        print(f"{'identities asked for':40s} {len(reference)}")
        print(f"{'rows stored':40s} {len(stored)}")
        print(f"{'identities stored more than once':40s} {sum(1 for n in Counter(map(key_of, stored)).values() if n > 1)}")
        print(f"{'identities missing':40s} {len(set(reference) - set(found))}")
        print(f"{'rows unlike the one-after-another copy':40s} {differ}")
        print(f"{'history CSV lines (should equal rows)':40s} {history}")
        taken = re.search(r"(\d+) runs of this sweep were taken over", outputs["stopped, continued"])
        print(f"{'runs the stopped sweep found taken over':40s} {taken.group(1) if taken else 0}")
        print(f"{'wall time together / one after another':40s} {together:.0f} s / {one_after_another:.0f} s = "
              f"{together / one_after_another:.2f}")


def wait_for_claims(root: Path, process, seconds: float = 1800) -> bool:
    """Wait until `process` (a sweep) has claimed runs; False if it ended first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        for path in (root / "results" / ".claims").glob(f"*-{process.pid}-*.json"):
            try:
                if json.loads(path.read_text())["runs"]:
                    return True
            except (OSError, ValueError, KeyError):
                pass
        time.sleep(0.05)
    return False


if __name__ == "__main__":
    main()

"""Several sweeps and pruning steps on one data root at once (two terminals, a restarted Dask driver): every run is
trained and stored once, its row equal to one sweep's, and a killed sweep's claims go to the next."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest

import run_all_classifications
from kwsprune.claims import CLAIMS_DIR
from kwsprune.paths import REPO_ROOT, kept_file
from kwsprune.results import IDENTITY_FIELDS

# float64: a run's numbers do not depend on which runs share its job, so any split of the work gives the same rows
COMMON = ["--model", "tiny", "--ratios", "0.3", "--k", "4", "--max-epochs", "3", "--dtype", "float64"]
STUDY = ["--model", "tiny", "--n", "40", "80", "--methods", "keep_hard", "random", "--repeats", "2"]
SWEEPS = {  # started together on one data root: two of the same study, one overlapping it, one disjoint
    "same": STUDY,
    "same again": STUDY,
    "overlapping": ["--n", "80", "--methods", "keep_hard", "random", "--repeats", "3"],
    "disjoint": ["--n", "40", "--methods", "keep_easy", "--repeats", "2"],
}


def identities(root) -> list[tuple]:
    with open(root / "results" / "runs.csv") as f:
        return [tuple(row[k] for k in IDENTITY_FIELDS) for row in csv.DictReader(f)]


def numbers(root) -> dict:
    with open(root / "results" / "runs.csv") as f:
        return {tuple(row[k] for k in IDENTITY_FIELDS): (row["test_loss"], row["test_acc"], row["epochs"])
                for row in csv.DictReader(f)}


def spawn(script: str, root, args) -> subprocess.Popen:
    """A step in its own process, its output in a file beside the data root (a pipe nobody reads could fill and
    stop it); process.log is that file."""
    log = root.parent / f"{script}_{time.monotonic_ns()}.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, str(REPO_ROOT / script), "--data-root", str(root), *args],
                                   stdout=out, stderr=subprocess.STDOUT)
    process.log = log
    return process


def start(root, args) -> subprocess.Popen:
    return spawn("run_all_classifications.py", root, [*args, *COMMON])


def one_after_another(root, sweeps) -> dict:
    for args in sweeps:
        run_all_classifications.main(["--data-root", str(root), *args, *COMMON])
    return numbers(root)


def test_sweeps_started_together_train_each_run_once_and_agree_with_one_sweep(two_roots):
    shared, alone = two_roots
    sweeps = dict(SWEEPS)
    try:
        import distributed  # noqa: F401
        sweeps["dask"] = [*STUDY, "--backend", "dask", "--workers", "1"]
    except ImportError:
        pass  # --backend dask is the optional extra; the four local sweeps still share the root
    processes = {}
    for name, args in sweeps.items():
        processes[name] = start(shared, args)
        time.sleep(0.3)
    for name, process in processes.items():
        assert process.wait(timeout=600) == 0, f"{name}: {process.log.read_text()[-2000:]}"

    stored = identities(shared)
    assert [key for key, count in Counter(stored).items() if count > 1] == []
    assert numbers(shared) == one_after_another(alone, sweeps.values())
    # the original's CSVs hold each stored run once
    lines = sum(len(path.read_text().splitlines()) for path in (shared / "results" / "history").glob("*/history_*.csv"))
    assert lines == len(stored)
    assert not list((shared / "results" / CLAIMS_DIR).glob("*.json"))


def test_two_pruning_steps_at_once_keep_both_methods(fresh_features_root):
    root = fresh_features_root
    processes = [spawn("pruning.py", root, ["--k", "4", "--ratios", "0.3", "--methods", method])
                 for method in ("keep_easy", "ssp_hard")]
    for process in processes:
        assert process.wait(timeout=300) == 0, process.log.read_text()[-2000:]
    manifest = json.loads((root / "y_pruned" / "k4_ninit10_seed0" / "manifest.json").read_text())
    assert {kept_file("keep_easy", 4, 0.3), kept_file("ssp_hard", 4, 0.3)} <= set(manifest["files"])


def test_a_killed_sweeps_claims_go_to_the_next_sweep(two_roots):
    shared, alone = two_roots
    study = [*STUDY[:-1], "3"]
    process = start(shared, study)
    claims = shared / "results" / CLAIMS_DIR
    deadline = time.monotonic() + 300
    while not any(json.loads(path.read_text() or '{"runs": []}')["runs"] for path in claims.glob("*.json")):
        assert process.poll() is None and time.monotonic() < deadline, "the sweep ended before it claimed a run"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)  # its claims stay behind, its lock dies with it
    process.wait()
    run_all_classifications.main(["--data-root", str(shared), *study, *COMMON])
    assert sorted(identities(shared)) == sorted(set(identities(shared)))
    assert numbers(shared) == one_after_another(alone, [study])
    assert not list(claims.glob("*.json"))


def test_a_sweep_resumed_from_a_damaged_checkpoint_ends_with_the_rows_of_an_uninterrupted_one(two_roots, monkeypatch,
                                                                                              caplog):
    import kwsprune.classify

    damaged_root, alone = two_roots
    study = ["--model", "tiny", "--n", "80", "--methods", "keep_hard", "random", "--repeats", "2", "--ratios", "0.3",
             "--k", "4", "--max-epochs", "6"]
    run_all_classifications.main(["--data-root", str(alone), *study])
    real_progress = kwsprune.classify._progress

    def killed_in_epoch_4(bar, job_list):
        show = real_progress(bar, job_list)

        def report(index, epoch=None, training=0):
            if epoch == 4:
                raise KeyboardInterrupt  # the state of epoch 3 is on disk
            show(index, epoch, training)
        return report

    rng = np.random.default_rng(0)
    for trial in range(3):
        shutil.rmtree(damaged_root / "results", ignore_errors=True)
        with monkeypatch.context() as patch:
            patch.setattr("kwsprune.training.CHECKPOINT_SECONDS", 0.0)
            patch.setattr("kwsprune.classify._progress", killed_in_epoch_4)
            with pytest.raises(SystemExit):
                run_all_classifications.main(["--data-root", str(damaged_root), *study])
        [checkpoint] = (damaged_root / "results" / ".checkpoints").glob("job_*.pt")
        data = bytearray(checkpoint.read_bytes())
        offset = int(rng.integers(0, len(data) - 64))
        data[offset:offset + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()  # 64 bytes overwritten
        checkpoint.write_bytes(bytes(data))
        caplog.clear()
        run_all_classifications.main(["--data-root", str(damaged_root), *study])
        assert "set aside" in caplog.text, f"trial {trial}: the damage at byte {offset} went unseen"
        assert numbers(damaged_root) == numbers(alone)

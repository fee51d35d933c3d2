"""Several sweeps on one data root: a lock around every read-and-write of results/runs.csv, and the runs each
sweep has claimed.

A sweep claims the runs it is about to train, under the store's lock (`store_lock`), and appends their rows
under it; a run that is done or claimed by a live sweep is not trained again. A sweep holds a lock of its own
while it runs (results/.claims/{owner}.alive); its claims die with it: a claim whose owner's lock can be taken
is stale (the sweep was killed), and the runs go to whoever asks next. The locks are `filelock`'s (flock on
POSIX), released by the operating system when a process dies, on a local disk or a shared filesystem that
supports flock (NFS v4, Lustre, GPFS).
"""

import hashlib
import json
import logging
import os
import socket
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)

LOCK_FILE = ".runs.lock"  # results/: held around every read-claim-append of runs.csv
CLAIMS_DIR = ".claims"    # results/: {owner}.json, the runs a sweep is training, and {owner}.alive, its lock


def store_lock(results_dir) -> FileLock:
    """The lock of results/runs.csv; reentrant in a thread, exclusive across threads and processes."""
    Path(results_dir).mkdir(parents=True, exist_ok=True)
    return FileLock(Path(results_dir).resolve() / LOCK_FILE, is_singleton=True)  # one lock whatever the path's spelling


def run_key(identity: tuple) -> str:
    """A run's identity as 16 hex characters: how claims and checkpoints name it."""
    return hashlib.sha256("\x1f".join(identity).encode()).hexdigest()[:16]


class Claims:
    """The runs this sweep has claimed, and a look at every other sweep's; use under store_lock."""

    def __init__(self, folder: Path, owner: str):
        self.folder, self.owner, self.mine = folder, owner, set()

    def others(self) -> dict[str, dict]:
        """{run key: the claim record of the live sweep that holds it}, other sweeps only; stale claims are removed."""
        held = {}
        for path in sorted(self.folder.glob("*.json")):
            if path.stem == self.owner:
                continue
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):  # a claim being written: its owner holds the store's lock, so it was killed
                record = {"runs": []}
            if _alive(self.folder / f"{path.stem}.alive"):
                held.update((key, record) for key in record["runs"])
            else:
                log.info("runs claimed by a sweep that is gone (%s) are free again", record.get("command", path.stem))
                path.unlink(missing_ok=True)
                (self.folder / f"{path.stem}.alive").unlink(missing_ok=True)
        return held

    def take(self, keys) -> None:
        self.mine |= set(keys)
        self._write()

    def release(self, keys) -> None:
        self.mine -= set(keys)
        self._write()

    def _write(self) -> None:
        record = {"runs": sorted(self.mine), "host": socket.gethostname(), "pid": os.getpid(),
                  "command": " ".join(sys.argv)}
        tmp = self.folder / f".{self.owner}.partial"
        tmp.write_text(json.dumps(record))
        os.replace(tmp, self.folder / f"{self.owner}.json")


def _alive(path: Path) -> bool:
    """Whether the sweep whose lock is at `path` still runs: its lock cannot be taken."""
    if not path.exists():
        return False
    probe = FileLock(path, timeout=0)
    try:
        probe.acquire()
    except Timeout:
        return True
    probe.release()
    return False


@contextmanager
def claiming(results_dir):
    """Claims of this sweep: held while the block runs, gone when it ends (or when the process dies)."""
    folder = Path(results_dir) / CLAIMS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    alive = FileLock(folder / f"{owner}.alive")
    alive.acquire()
    claims = Claims(folder, owner)
    try:
        yield claims
    finally:
        with store_lock(results_dir):
            (folder / f"{owner}.json").unlink(missing_ok=True)
        alive.release()
        (folder / f"{owner}.alive").unlink(missing_ok=True)

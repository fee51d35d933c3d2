"""Several sweeps on one data root: a lock around every read-and-write of results/runs.csv, and the runs each
sweep has claimed.

A sweep claims the runs it is about to train, under the store's lock (`store_lock`), and appends their rows
under it; a run that is done or claimed by a live sweep is not trained again. A sweep holds a lock of its own
while it runs (results/.claims/{owner}.alive); its claims die with it: a claim whose owner's lock can be taken
is stale (the sweep was killed), and the runs go to whoever asks next. A claim is also a lease, renewed while its
sweep works: one not renewed for LEASE_SECONDS (a stopped or hung sweep) is passed over, and a sweep that wakes
after losing its runs stores none of them (Claims.lost). The locks are `filelock`'s (flock on POSIX), released by
the operating system when a process dies, on a local disk or a shared filesystem that supports flock (NFS v4,
Lustre, GPFS); leases compare the machines' clocks, which must agree to a minute (NTP).
"""

import hashlib
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from kwsprune.validation import InputError, is_number

log = logging.getLogger(__name__)

LOCK_FILE = ".runs.lock"  # results/: held around every read-claim-append of runs.csv
CLAIMS_DIR = ".claims"    # results/: {owner}.json, the runs a sweep is training, and {owner}.alive, its lock


def store_lock(results_dir) -> FileLock:
    """The lock of results/runs.csv; reentrant in a thread, exclusive across threads and processes. A lock file that
    is a folder or a link (nothing kwsprune makes) is refused in one line."""
    Path(results_dir).mkdir(parents=True, exist_ok=True)
    path = Path(results_dir) / LOCK_FILE
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise InputError(f"{path} is not a plain file (kwsprune's lock of runs.csv): remove it")
    return FileLock(path.resolve(), is_singleton=True)  # one lock whatever the path's spelling


def run_key(identity: tuple) -> str:
    """A run's identity as 16 hex characters: how claims and checkpoints name it."""
    return hashlib.sha256("\x1f".join(identity).encode()).hexdigest()[:16]


# a claim not renewed for this long is a stopped or hung sweep's: its runs go to others (the environment may set it
# shorter, as benchmarks/concurrent_sweeps.py does to stop a sweep and see its runs taken over)
LEASE_SECONDS = float(os.environ.get("KWSPRUNE_LEASE_SECONDS", 600))


class Claims:
    """The runs this sweep has claimed, and a look at every other sweep's; take, release and lost under store_lock.

    A claim is a lease: its record is renewed every LEASE_SECONDS / 4 by a thread (claiming), so a sweep that is
    killed (its lock free) or stopped (SIGSTOP, a hung machine: its lease runs out) loses its runs to the next sweep
    that asks. Each run is claimed at a time; a sweep that wakes after losing a run finds a later claim on it (lost)
    and stores nothing of it: the fencing that keeps one row a run."""

    def __init__(self, folder: Path, owner: str, lease: float | None = None):
        self.folder, self.owner, self.mine = folder, owner, {}
        self.lease = LEASE_SECONDS if lease is None else lease
        self._writing = threading.Lock()
        self._said: set = set()
        self.told_waiting = False  # the sweep has said whom it waits for

    def others(self) -> dict[str, dict]:
        """{run key: the claim record of the live sweep that holds it}, other sweeps only; a killed sweep's claims are
        removed, a stopped one's (its lease run out) passed over and said once."""
        held = {}
        now = time.time()
        for path, record in self._records():
            if not _alive(self.folder / f"{path.stem}.alive"):
                log.info("runs claimed by a sweep that is gone (%s) are free again", record.get("command", path.stem))
                path.unlink(missing_ok=True)
                (self.folder / f"{path.stem}.alive").unlink(missing_ok=True)
            elif now - record["renewed"] > record["lease"]:
                if path.stem not in self._said:
                    self._said.add(path.stem)
                    log.warning("%s: the sweep %s (%s, pid %s) has not renewed its claim for %.0f s (stopped or hung): "
                                "its %d runs go to this sweep", path, record["command"], record["host"], record["pid"],
                                now - record["renewed"], len(record["runs"]))
            else:
                held.update((key, record) for key in record["runs"])
        return held

    def lost(self, keys) -> set[str]:
        """Of this sweep's runs `keys`, those another live sweep has claimed since (after this one's lease ran out)."""
        later = {}
        for path, record in self._records():
            for key, when in record["runs"].items():
                later[key] = max(later.get(key, 0.0), when)
        return {key for key in keys if later.get(key, 0.0) > self.mine.get(key, 0.0)}

    def take(self, keys) -> None:
        now = time.time()
        self.mine.update((key, now) for key in keys)
        self._write()

    def release(self, keys) -> None:
        for key in keys:
            self.mine.pop(key, None)
        self._write()

    def renew(self) -> None:
        self._write()

    def _records(self):
        """(path, record) of every other sweep's claim file that reads as one; a file that does not is said once and
        passed over (a claim being written: its owner holds the store's lock, so it was killed mid-write)."""
        for path in sorted(self.folder.glob("*.json")):
            if path.stem == self.owner or path.is_symlink():
                continue
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                record = None
            if not _is_claim(record):
                if path.stem not in self._said:
                    self._said.add(path.stem)
                    log.warning("%s is not a claim kwsprune writes: its runs are taken as free (remove it)", path)
                continue
            yield path, record

    def _write(self) -> None:
        with self._writing:
            record = {"runs": dict(self.mine), "renewed": time.time(), "lease": self.lease, "host": socket.gethostname(),
                      "pid": os.getpid(), "command": " ".join(sys.argv)}
            tmp = self.folder / f".{self.owner}.partial"
            tmp.write_text(json.dumps(record))
            os.replace(tmp, self.folder / f"{self.owner}.json")


def _is_claim(record) -> bool:
    return (isinstance(record, dict) and isinstance(record.get("runs"), dict)
            and all(isinstance(k, str) and is_number(v) for k, v in record["runs"].items())
            and is_number(record.get("renewed")) and is_number(record.get("lease")) and record["lease"] > 0
            and all(isinstance(record.get(f), (str, int)) for f in ("host", "pid", "command")))


def waiting_line(others: dict[str, dict], waiting: int) -> str:
    """Whom a sweep waits for and how long at most: the other sweeps holding its runs, and when their leases run out
    if they stop renewing them."""
    owners = {(r["command"], r["host"], r["pid"], r["renewed"] + r["lease"]) for r in others.values()}
    expires = max(end for *_, end in owners) - time.time()
    names = "; ".join(sorted(f"{command} ({host}, pid {pid})" for command, host, pid, _ in owners))
    return (f"waiting for {waiting} runs another sweep is training ({names}); they come to this sweep if it stops, or "
            f"within {max(expires, 0) / 60:.0f} min if it hangs")


def _renew(claims: Claims, stop: threading.Event) -> None:
    while not stop.wait(claims.lease / 4):
        if claims.mine:
            try:
                claims.renew()
            except OSError as err:  # a full disk a moment: the next beat tries again, the lease allows three misses
                log.warning("could not renew this sweep's claims (%s)", err)


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
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise InputError(f"{folder} is not a folder (kwsprune's claims of running sweeps): remove it")
    folder.mkdir(parents=True, exist_ok=True)
    owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    alive = FileLock(folder / f"{owner}.alive")
    alive.acquire()
    claims = Claims(folder, owner)
    stop = threading.Event()
    heartbeat = threading.Thread(target=_renew, args=(claims, stop), daemon=True, name="kwsprune-claims")
    heartbeat.start()
    try:
        yield claims
    finally:
        stop.set()
        heartbeat.join()
        with store_lock(results_dir):
            (folder / f"{owner}.json").unlink(missing_ok=True)
        alive.release()
        (folder / f"{owner}.alive").unlink(missing_ok=True)

"""results/.claims/, the runs each sweep is training, as stopped sweeps and strangers leave it: a claim is a lease,
a stopped holder's runs go to others after a stated time, and a sweep that wakes after losing them stores none."""

import json
import time

import pytest
from filelock import FileLock

from kwsprune.claims import Claims, waiting_line


@pytest.fixture
def live_sweep(tmp_path):
    """live_sweep(owner, lease): a sweep's claims in tmp_path, its lock held (the sweep lives) until the test ends."""
    locks = []

    def start(owner, lease=0.5):
        locks.append(FileLock(tmp_path / f"{owner}.alive"))
        locks[-1].acquire()
        return Claims(tmp_path, owner, lease)

    yield start
    for lock in locks:
        lock.release()


def test_a_stopped_sweeps_runs_go_to_another_after_its_lease_and_it_then_stores_none(live_sweep, caplog):
    stopped, other = live_sweep("stopped"), live_sweep("other")
    stopped.take(["run1", "run2"])
    assert set(other.others()) == {"run1", "run2"}  # live and renewed: not another's to train
    line = waiting_line(other.others(), 2)
    assert line.startswith("waiting for 2 runs another sweep is training (") and "within 0 min if it hangs" in line
    time.sleep(0.6)  # SIGSTOP: the heartbeat stops with the sweep, the lease runs out
    assert other.others() == {} and "has not renewed its claim" in caplog.text
    other.take(["run1"])
    assert stopped.lost(["run1", "run2"]) == {"run1"}  # woken: run1 is the other's to store, run2 still its own
    assert other.lost(["run1"]) == set()


def test_a_renewed_claim_holds_however_long_its_sweep_trains(live_sweep):
    working, other = live_sweep("working"), live_sweep("other")
    working.take(["run1"])
    for _ in range(4):
        time.sleep(0.2)
        working.renew()  # what the heartbeat does every lease / 4
        assert set(other.others()) == {"run1"}


def test_a_claim_file_that_is_not_one_is_passed_over_in_one_line(tmp_path, live_sweep, caplog):
    other, _ = live_sweep("other"), live_sweep("odd")
    for text in ("{", json.dumps({"runs": ["run1"]}), json.dumps({"runs": {"run1": "now"}, "renewed": 1, "lease": 1,
                                                                  "host": "h", "pid": 1, "command": "c"})):
        (tmp_path / "odd.json").write_text(text)
        other._said.clear()
        assert other.others() == {} and other.lost(["run1"]) == set()
        assert "odd.json is not a claim kwsprune writes: its runs are taken as free" in caplog.text


def test_a_lock_file_or_claims_folder_that_is_not_what_kwsprune_makes_is_refused(tmp_path):
    from kwsprune.claims import claiming, store_lock
    from kwsprune.validation import InputError

    (tmp_path / ".runs.lock").mkdir()
    with pytest.raises(InputError, match=r"\.runs\.lock is not a plain file .*: remove it"):
        store_lock(tmp_path)
    (tmp_path / ".runs.lock").rmdir()
    (tmp_path / ".claims").write_text("")
    with pytest.raises(InputError, match=r"\.claims is not a folder .*: remove it"):
        with claiming(tmp_path):
            pass

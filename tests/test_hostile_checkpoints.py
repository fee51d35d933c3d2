"""results/.checkpoints/, a job's training state while it runs, as a stranger or an older kwsprune may leave it: a
checkpoint that is not this kwsprune's training state is set aside with one warning and the job starts over."""

import torch

from kwsprune.training import TrainState, _save_state


def test_a_checkpoint_that_is_a_folder_or_of_another_layout_is_set_aside(tmp_path, caplog):
    folder = tmp_path / "job_a.pt"
    folder.mkdir()  # where a checkpoint should be
    assert TrainState.resume(folder, "job", "cpu", [0]) is None
    assert "it is not a file" in caplog.text and (tmp_path / "job_a.pt.set-aside").is_dir()

    older = tmp_path / "job_b.pt"
    _save_state(older, {"job": "job", "params": {"w": torch.zeros(2)}})  # a valid checksum, an older layout
    assert TrainState.resume(older, "job", "cpu", [0]) is None
    assert "another layout of training state" in caplog.text and not older.exists()


def test_a_checkpoint_holding_code_is_never_run(tmp_path, caplog, capsys):
    class Payload:
        def __reduce__(self):
            return (print, ("this should never run",))

    path = tmp_path / "job_c.pt"
    _save_state(path, {"job": "job", "generators": [], "x": Payload()})  # pickled with its checksum
    assert TrainState.resume(path, "job", "cpu", [0]) is None
    assert "it holds more than training state" in caplog.text
    assert "this should never run" not in capsys.readouterr().out

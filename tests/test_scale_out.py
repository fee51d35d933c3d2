"""The sweep on Dask distributed workers, and Hugging Face datasets as a source (the optional extras)."""

import csv
import json
import shutil
import subprocess
from dataclasses import replace

import numpy as np
import pytest

import prepare_dataset
from kwsprune.audio import load_clip
from kwsprune.classify import sweep
from kwsprune.results import IDENTITY_FIELDS
from kwsprune.study import Study
from kwsprune.training import TrainConfig
from kwsprune.validation import InputError

SWEEP = Study(ns=("40", "80"), methods=("keep_hard", "random"), ratios=(0.3,), ks=(4,), repeats=2,
              config=TrainConfig(max_epochs=2, dtype="float64"))  # float64: the same numbers on any worker


def stored(root) -> dict:
    with open(root / "results" / "runs.csv") as f:
        return {tuple(row[k] for k in IDENTITY_FIELDS): row for row in csv.DictReader(f)}


def numbers(rows: dict) -> dict:
    return {key: (row["test_loss"], row["test_acc"], row["epochs"]) for key, row in rows.items()}


def test_dask_workers_give_the_rows_of_a_local_sweep(two_roots):
    pytest.importorskip("distributed", reason="--backend dask is the optional extra: pip install .[dask]")
    local, distributed = two_roots
    sweep(local, SWEEP)
    sweep(distributed, replace(SWEEP, backend="dask", workers=2, models_per_job=1))  # 8 jobs of one run over 2 workers
    assert len(stored(local)) == 2 * 2 * 2  # N 40, 80 x keep_hard, random x 2 repeats: 2 jobs, one a size
    assert numbers(stored(distributed)) == numbers(stored(local))


def test_a_job_that_crashes_once_is_retried_and_every_row_lands_once(fresh_features_root, monkeypatch):
    distributed = pytest.importorskip("distributed", reason="--backend dask is the optional extra: pip install .[dask]")
    import kwsprune.engines

    real, crashed = kwsprune.engines.train_job, []

    def crash_once(*args, **kwargs):
        if not crashed:
            crashed.append(True)
            raise RuntimeError("a worker fell over")
        return real(*args, **kwargs)

    monkeypatch.setattr("kwsprune.engines.train_job", crash_once)  # seen by in-process (thread) workers
    monkeypatch.setattr("kwsprune.dask_backend.open_client", lambda scheduler, workers: distributed.Client(
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0")))
    rows = sweep(fresh_features_root, replace(SWEEP, backend="dask"))
    assert crashed and len(rows) == len(stored(fresh_features_root)) == 8


def test_the_workers_resolve_the_device_not_the_driver(fresh_features_root, monkeypatch):
    distributed = pytest.importorskip("distributed", reason="--backend dask is the optional extra: pip install .[dask]")
    import kwsprune.device

    def gpu_on_workers_only(device):  # a driver without a GPU, workers with one (the CPU standing in for it)
        try:
            distributed.get_worker()
        except ValueError:  # not on a worker: the driver
            if device == "cuda":
                raise InputError("--device cuda but no CUDA GPU is visible") from None
        return "cpu"

    monkeypatch.setattr(kwsprune.device, "pick_device", gpu_on_workers_only)
    monkeypatch.setattr("kwsprune.dask_backend.open_client", lambda scheduler, workers: distributed.Client(
        distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0")))
    rows = sweep(fresh_features_root, replace(SWEEP, backend="dask", device="cuda"))
    assert len(rows) == 8 and {row["device"] for row in stored(fresh_features_root).values()} == {"cpu"}


def test_a_driver_killed_between_jobs_resumes_with_the_runs_it_lacks(two_roots, monkeypatch):
    pytest.importorskip("distributed", reason="--backend dask is the optional extra: pip install .[dask]")
    import kwsprune.classify

    local, distributed = two_roots
    sweep(local, SWEEP)
    real, appended = kwsprune.classify.append_rows, []

    def killed_after_one_job(results_dir, rows):
        if appended:
            raise KeyboardInterrupt  # the driver dies with one job's rows stored
        appended.append(len(rows))
        real(results_dir, rows)

    with monkeypatch.context() as patch:
        patch.setattr("kwsprune.classify.append_rows", killed_after_one_job)
        with pytest.raises(KeyboardInterrupt):
            sweep(distributed, replace(SWEEP, backend="dask", workers=2))
    assert len(stored(distributed)) == appended[0] < 8
    sweep(distributed, replace(SWEEP, backend="dask", workers=2))
    assert numbers(stored(distributed)) == numbers(stored(local))


def test_a_tls_scheduler_takes_the_certificates_of_the_dask_configuration(two_roots, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed", reason="--backend dask is the optional extra: pip install .[dask]")
    import dask
    from distributed.security import Security

    if shutil.which("openssl") is None:
        pytest.skip("openssl makes this test's certificates")
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
                    "-subj", "/CN=dask"], check=True, capture_output=True)
    local, encrypted = two_roots
    sweep(local, SWEEP)
    # this cluster's scheduler lives in the test's process: the code upload would replace the kwsprune under test
    monkeypatch.setattr("kwsprune.dask_backend._upload_code", lambda client: None)
    security = Security(tls_ca_file=cert, tls_scheduler_cert=cert, tls_scheduler_key=key, tls_worker_cert=cert,
                        tls_worker_key=key, tls_client_cert=cert, tls_client_key=key, require_encryption=True)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, protocol="tls", security=security, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tls://")
        with pytest.raises(InputError, match="TLS needs distributed.comm.tls.ca-file"):
            sweep(encrypted, replace(SWEEP, backend="dask", scheduler=address))  # no certificates configured
        assert not (encrypted / "results" / "runs.csv").exists()
        with dask.config.set({"distributed.comm.tls.ca-file": cert, "distributed.comm.tls.client.cert": cert,
                              "distributed.comm.tls.client.key": key}):
            sweep(encrypted, replace(SWEEP, backend="dask", scheduler=address))
    assert numbers(stored(encrypted)) == numbers(stored(local))


@pytest.mark.parametrize("scheduler, backend, refusal", [
    ("not-a-url", "dask", "is not a scheduler's address"),
    ("tcp://host:99999", "dask", "is not a scheduler's address"),
    ("host:8786", "dask", "is not a scheduler's address"),  # no scheme: Dask would guess one
    ("ws://host:8786", "dask", "is not a scheduler's address"),  # not a protocol docs/ support
    ("tcp://127.0.0.1:8786", "local", "is for --backend dask"),
])
def test_a_scheduler_flag_that_cannot_be_meant_is_refused_before_any_work(fresh_features_root, scheduler, backend,
                                                                        refusal):
    with pytest.raises(InputError, match=refusal):
        sweep(fresh_features_root, replace(SWEEP, backend=backend, scheduler=scheduler))
    assert not (fresh_features_root / "y_pruned").exists()


def fsdd_dataset(fsdd_dir, per_speaker=(3, 1, 1)):
    """A DatasetDict built from real FSDD clips as bytes: train / validation / test, a ClassLabel of the digits."""
    datasets = pytest.importorskip("datasets", reason="--source hf is the optional extra: pip install .[hf]")
    splits = {"train": [], "validation": [], "test": []}
    for digit in range(10):
        for speaker in ("jackson", "theo"):
            mine = sorted((fsdd_dir / "recordings").glob(f"{digit}_{speaker}_*.wav"))
            start = 0
            for split, count in zip(splits, per_speaker):
                splits[split] += mine[start:start + count]
                start += count
    labels = datasets.ClassLabel(names=[str(d) for d in range(10)])

    def table(chosen):  # bytes in, then cast: Audio(decode=False) keeps them undecoded (no torchcodec needed)
        rows = {"audio": [{"bytes": f.read_bytes(), "path": f.name} for f in chosen], "label": [int(f.name[0]) for f in chosen],
                "speaker_id": [f.name.split("_")[1] for f in chosen]}
        return datasets.Dataset.from_dict(rows).cast_column("audio", datasets.Audio(decode=False)).cast_column("label", labels)

    return datasets.DatasetDict({split: table(chosen) for split, chosen in splits.items()})


def test_a_hugging_face_dataset_saved_to_disk_or_as_parquet(fsdd_dir, tmp_path):
    dataset = fsdd_dataset(fsdd_dir)
    dataset.save_to_disk(str(tmp_path / "saved"))
    (tmp_path / "parquet").mkdir()
    for split, table in dataset.items():
        table.to_parquet(str(tmp_path / "parquet" / f"{split}-00000-of-00001.parquet"))
    prepare_dataset.main(["--data-root", str(tmp_path / "a"), "--source", "hf", "--path", str(tmp_path / "saved")])
    prepare_dataset.main(["--data-root", str(tmp_path / "b"), "--source", "hf", "--path", str(tmp_path / "parquet")])
    for split, n in (("train", 60), ("valid", 20), ("test", 20)):
        a = np.load(tmp_path / "a" / "Dataset_as_Numpy" / f"{split}_x.npy")
        np.testing.assert_array_equal(a, np.load(tmp_path / "b" / "Dataset_as_Numpy" / f"{split}_x.npy"))
        assert a.shape == (n, 16000)
    names = (tmp_path / "a" / "Dataset_as_Numpy" / "train_files.txt").read_text().splitlines()
    assert names == sorted(names) and names[0] == "0_jackson_0.wav"  # the audio's own file names, sorted
    first = load_clip((fsdd_dir / "recordings" / names[0]).read_bytes(), name=names[0])  # 8 kHz, resampled
    np.testing.assert_array_equal(np.load(tmp_path / "a" / "Dataset_as_Numpy" / "train_x.npy")[0], first)
    assert set(np.load(tmp_path / "a" / "Dataset_as_Numpy" / "train_speakers.npy")) == {"jackson", "theo"}


def test_a_hugging_face_dataset_without_labels_is_refused(fsdd_dir, tmp_path, capsys):
    dataset = fsdd_dataset(fsdd_dir).remove_columns("label")
    dataset.save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(SystemExit) as exit_info:
        prepare_dataset.main(["--data-root", str(tmp_path), "--source", "hf", "--path", str(tmp_path / "saved")])
    assert exit_info.value.code == 2
    assert "has no column 'label'" in capsys.readouterr().err and not (tmp_path / "Dataset_as_Numpy" / "manifest.json").exists()


def test_speech_commands_from_hugging_face_equals_the_official_layout(speech_commands_dir, tmp_path):
    """The sample as google/speech_commands lays it out on the hub (a file column, the audio's bytes, a ClassLabel of
    the words): the same rows, labels and names as --source speech_commands reads from the folders and lists."""
    datasets = pytest.importorskip("datasets", reason="--source hf is the optional extra: pip install .[hf]")
    listed = {name: set((speech_commands_dir / f"{name}_list.txt").read_text().split()) for name in ("validation", "testing")}
    words = sorted(p.name for p in speech_commands_dir.iterdir() if p.is_dir() and not p.name.startswith("_"))
    splits = {"train": [], "validation": [], "test": []}
    for file in sorted(speech_commands_dir.glob("*/*.wav")):
        relpath = f"{file.parent.name}/{file.name}"
        splits["validation" if relpath in listed["validation"] else "test" if relpath in listed["testing"] else "train"].append(file)

    def table(files):
        rows = {"file": [f"{f.parent.name}/{f.name}" for f in files], "audio": [{"bytes": f.read_bytes(), "path": f.name} for f in files],
                "label": [words.index(f.parent.name) for f in files], "speaker_id": [f.name.split("_")[0] for f in files]}
        return datasets.Dataset.from_dict(rows).cast_column("audio", datasets.Audio(decode=False)).cast_column(
            "label", datasets.ClassLabel(names=words))

    datasets.DatasetDict({split: table(files) for split, files in splits.items()}).save_to_disk(str(tmp_path / "hub"))
    prepare_dataset.main(["--data-root", str(tmp_path / "hf"), "--source", "hf", "--path", str(tmp_path / "hub")])
    prepare_dataset.main(["--data-root", str(tmp_path / "sc"), "--source", "speech_commands", "--path", str(speech_commands_dir),
                          "--words", "all"])
    for name in ("train_x.npy", "valid_y.npy", "test_x.npy", "train_files.txt", "test_speakers.npy", "labels.json"):
        a, b = (tmp_path / root / "Dataset_as_Numpy" / name for root in ("hf", "sc"))
        assert a.read_bytes() == b.read_bytes(), name


def test_string_labels_take_the_train_splits_words_and_refuse_an_unknown_one(fsdd_dir, tmp_path, capsys):
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    dataset = fsdd_dataset(fsdd_dir)
    dataset = dataset.map(lambda row: {"word": words[row["label"]]}).remove_columns("label")
    dataset["validation"] = dataset["validation"].filter(lambda row: row["word"] != "nine")  # a class absent: fine
    dataset.save_to_disk(str(tmp_path / "words"))
    prepare_dataset.main(["--data-root", str(tmp_path / "a"), "--source", "hf", "--path", str(tmp_path / "words"),
                          "--label-column", "word"])
    assert json.loads((tmp_path / "a" / "Dataset_as_Numpy" / "labels.json").read_text()) == sorted(words)
    dataset["test"] = dataset["test"].map(lambda row: {"word": "ten" if row["word"] == "nine" else row["word"]})
    dataset.save_to_disk(str(tmp_path / "ten"))
    with pytest.raises(SystemExit) as exit_info:
        prepare_dataset.main(["--data-root", str(tmp_path / "b"), "--source", "hf", "--path", str(tmp_path / "ten"),
                              "--label-column", "word"])
    assert exit_info.value.code == 2 and "has label 'ten', not one of the train split's 10 classes" in capsys.readouterr().err


def test_a_hugging_face_dataset_with_a_null_label_a_number_as_file_or_junk_parquet_is_refused(fsdd_dir, tmp_path,
                                                                                              capsys):
    datasets = pytest.importorskip("datasets", reason="--source hf is the optional extra: pip install .[hf]")
    dataset = fsdd_dataset(fsdd_dir)
    strings = dataset.cast_column("label", datasets.Value("string"))
    unlabelled = strings["train"].map(lambda row, i: {"label": None if i == 3 else row["label"]}, with_indices=True)
    datasets.DatasetDict({**strings, "train": unlabelled}).save_to_disk(str(tmp_path / "null"))
    prepare = ["--data-root", str(tmp_path / "root"), "--source", "hf", "--path"]
    with pytest.raises(SystemExit):
        prepare_dataset.main([*prepare, str(tmp_path / "null")])
    assert "(train split): row 3 has no label in 'label'" in capsys.readouterr().err

    numbered = datasets.DatasetDict({split: table.add_column("file", list(range(len(table))))
                                     for split, table in dataset.items()})
    numbered.save_to_disk(str(tmp_path / "numbered"))
    prepare_dataset.main([*prepare, str(tmp_path / "numbered")])  # a number is no name: the audio's file names are
    names = (tmp_path / "root" / "Dataset_as_Numpy" / "train_files.txt").read_text().splitlines()
    assert names[0] == "0_jackson_0.wav"

    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "train-00000-of-00001.parquet").write_bytes(b"PAR1 not parquet at all")
    with pytest.raises(SystemExit):
        prepare_dataset.main([*prepare, str(tmp_path / "junk")])
    assert "cannot be read as a Hugging Face dataset" in capsys.readouterr().err


def test_a_scheduler_address_where_another_server_answers_is_refused_in_one_line():
    import socket
    import threading

    pytest.importorskip("distributed", reason="--backend dask is the optional extra: pip install .[dask]")
    from kwsprune.dask_backend import open_client

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)

    def answer():  # a web server, say: its bytes read as Dask's frame lengths ask for exabytes
        while True:
            connection, _ = server.accept()
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" * 3)

    threading.Thread(target=answer, daemon=True).start()
    with pytest.raises(InputError, match="what answers there is not a Dask scheduler"):
        open_client(f"tcp://127.0.0.1:{server.getsockname()[1]}", 1)

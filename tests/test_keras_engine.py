"""The Keras reference engine: the original's model and fit, and the fast engine checked against it on real audio."""

import csv

import numpy as np
import pytest

keras = pytest.importorskip("keras", reason="the Keras reference engine is the optional extra: pip install .[tensorflow]")

import extract_mfccs  # noqa: E402
import prepare_dataset  # noqa: E402
import run_all_classifications  # noqa: E402
from kwsprune.keras_engine import backend_name, keras_model, train_keras_runs  # noqa: E402
from kwsprune.training_data import load_training_data  # noqa: E402
from kwsprune.models import CNNS, n_parameters  # noqa: E402
from kwsprune.training import TrainConfig, train_runs  # noqa: E402


def test_the_keras_models_are_the_originals_three_cnns():
    for name in CNNS:
        for n_classes in (10, 35):
            assert keras_model(name, n_classes).count_params() == n_parameters(name, n_classes)
    assert keras_model("tiny", 35).count_params() == 3431


def test_the_sweep_runs_on_the_keras_engine(fresh_features_root):
    root = fresh_features_root
    run_all_classifications.main(["--data-root", str(root), "--engine", "keras", "--model", "tiny", "--n", "40", "--ratios", "0.3",
                                  "--repeats", "2", "--k", "4", "--max-epochs", "2", "--methods", "keep_hard", "random"])
    with open(root / "results" / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {r["engine"] for r in rows} == {f"keras-{backend_name()}"}
    assert all(len(r["outcomes"]) == 64 for r in rows)  # each run's per-test-clip outcomes kept, as the torch engine's
    assert all(r["epochs"] == "2" and 0 <= float(r["test_acc"]) <= 1 for r in rows)
    [history] = (root / "results" / "history").glob("*/history_tiny_prune_40_random_1.0.csv")
    assert len(history.read_text().splitlines()) == 2


def test_both_engines_reach_comparable_accuracy_on_fsdd(fsdd_dir, tmp_path):
    """Same FSDD split, same 800-clip draws: the batched torch engine and Keras' model.fit agree on average."""
    prepare_dataset.main(["--data-root", str(tmp_path), "--source", "fsdd", "--path", str(fsdd_dir)])
    extract_mfccs.main(["--data-root", str(tmp_path)])
    data = load_training_data(tmp_path)
    rng = np.random.default_rng(0)
    subsets = [np.sort(rng.choice(len(data["y_train"]), 800, replace=False)) for _ in range(4)]
    config = TrainConfig(batch_size=128, max_epochs=40)
    args = (data["x_train"], data["y_train"], subsets, data["x_valid"], data["y_valid"], data["x_test"], data["y_test"],
            data["n_classes"], [1, 2, 3, 4], config)
    keras_acc = np.mean([run["test_acc"] for run in train_keras_runs(*args)])
    torch_acc = np.mean([run["test_acc"] for run in train_runs(*args)])
    assert keras_acc > 0.6 and torch_acc > 0.6  # chance: 0.1
    print(f"mean test accuracy over 4 runs: keras {keras_acc:.3f}, torch {torch_acc:.3f}")
    assert abs(keras_acc - torch_acc) < 0.08


def test_on_stop_restores_the_best_keras_weights_only_when_early_stopping_ended_the_run():
    from kwsprune.keras_engine import early_stopping

    model = keras_model("tiny", 4)
    last = model.get_weights()
    for policy, stopped_epoch, restores in (("on-stop", 0, False), ("on-stop", 7, True), ("always", 0, True)):
        callback = early_stopping(TrainConfig(restore_best=policy))
        callback.set_model(model)
        callback.best_weights = [np.zeros_like(w) for w in last]
        callback.stopped_epoch = stopped_epoch
        callback.on_train_end()
        assert all((w == 0).all() for w in model.get_weights()) == restores
        model.set_weights(last)

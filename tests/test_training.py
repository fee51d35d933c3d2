"""The batched CNN engine: the original's three models, that they learn, that batched models stay independent,
and the recipe's fields (batch size, restore policy) doing what they say."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kwsprune import fused_layers
from kwsprune.models import CNNS, flat_features, n_parameters
from kwsprune.training import RECIPES, TrainConfig, auto_batch_size, fit, forward, init_params, restored, train_runs


def toy_mfccs(n, n_classes, seed):
    """MFCC-shaped clips whose class lights up its own band of cepstra: easy to learn."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    x = rng.standard_normal((n, 99, 32)).astype(np.float32)
    for c in range(n_classes):
        x[y == c, :, 3 * c:3 * c + 3] += 3.0
    return x, y


def test_the_three_models_have_the_originals_sizes():
    assert flat_features("tiny") == 48
    # the Keras summaries of the original's Classification_pruning.py models, for 10 and 35 classes
    assert [n_parameters("tiny", c) for c in (10, 35)] == [2206, 3431]
    assert [n_parameters("smallest", c) for c in (10, 35)] == [27445, 29570]
    assert [n_parameters("lenet", c) for c in (10, 35)] == [266060, 268185]


@pytest.mark.parametrize("model", list(CNNS))
def test_every_model_learns_and_stops_early(model):
    x, y = toy_mfccs(600, 4, 0)
    x_valid, y_valid = toy_mfccs(200, 4, 1)
    x_test, y_test = toy_mfccs(200, 4, 2)
    config = TrainConfig(model=model, batch_size=64, max_epochs=60, stop_patience=3, lr_patience=2)
    [result] = train_runs(x, y, [np.arange(600)], x_valid, y_valid, x_test, y_test, 4, [0], config)
    assert result["test_acc"] > 0.95 and result["epochs"] < 60


@pytest.mark.parametrize("model", ["tiny", "lenet"])
def test_a_run_trained_alone_equals_the_same_run_in_a_batch_of_8(model):
    x, y = toy_mfccs(200, 4, 0)
    x_valid, y_valid = toy_mfccs(60, 4, 1)
    rng = np.random.default_rng(0)
    subsets = [np.sort(rng.choice(200, 64, replace=False)) for _ in range(8)]
    config = TrainConfig(model=model, batch_size=32, max_epochs=6, stop_patience=2, lr_patience=1, dtype="float64")
    seeds = list(range(10, 18))
    alone = train_runs(x, y, subsets[3:4], x_valid, y_valid, x_valid, y_valid, 4, seeds[3:4], config)
    batch = train_runs(x, y, subsets, x_valid, y_valid, x_valid, y_valid, 4, seeds, config)
    np.testing.assert_array_equal(batch[3].pop("predicted"), alone[0].pop("predicted"))  # every test clip's class
    if model == "tiny":
        assert batch[3] == alone[0]
        # some models stopped early and left the batch; the others trained on without them
        assert min(r["epochs"] for r in batch) < alone[0]["epochs"] == config.max_epochs
    else:  # LeNet's 2112 x 120 dense layer is a batched matmul whose blocking changes with the batch: last bits differ
        assert batch[3] == {**alone[0], "test_loss": pytest.approx(alone[0]["test_loss"], rel=1e-12)}
    assert len({r["test_loss"] for r in batch}) == 8  # the batch's models really differ


def test_auto_batch_size_gives_at_least_8_steps_an_epoch_between_16_and_512():
    assert [auto_batch_size(n) for n in (40, 240, 400, 800, 2400, 4096, 85000)] == [16, 16, 32, 64, 256, 512, 512]
    assert TrainConfig().batch_for(400) == 32 and RECIPES["original"].batch_for(400) == 512


def test_the_learning_rate_is_the_one_asked_for():
    x, y = toy_mfccs(128, 4, 0)
    x_valid, y_valid = toy_mfccs(40, 4, 1)
    first = {lr: fit(x, y, [np.arange(128)], x_valid, y_valid, 4, [0], TrainConfig(learning_rate=lr, max_epochs=1))[1]
             for lr in (1e-3, 5e-3)}
    start = fit(x, y, [np.arange(128)], x_valid, y_valid, 4, [0], TrainConfig(learning_rate=0.0, max_epochs=1))[1]
    moved = {lr: float((weights["conv0.weight"] - start["conv0.weight"]).abs().max()) for lr, weights in first.items()}
    # Adam's first steps move each weight by about the learning rate
    assert moved[5e-3] > 3 * moved[1e-3] and moved[1e-3] == pytest.approx(1e-3 * 8, rel=0.5)


def test_on_stop_restores_the_best_weights_only_where_early_stopping_ended_the_run():
    best = {"w": torch.zeros(3, 2)}
    last = {"w": torch.ones(3, 2)}
    stopped = np.array([True, False, True])
    assert restored(best, last, stopped, "always") is best
    assert restored(best, last, stopped, "on-stop")["w"][:, 0].tolist() == [0.0, 1.0, 0.0]
    # a run that uses every epoch keeps its last weights under "on-stop" (Keras 2), its best under "always"
    x, y = toy_mfccs(128, 4, 0)
    x_valid, y_valid = toy_mfccs(40, 4, 1)
    runs = {policy: fit(x, y, [np.arange(128)], x_valid, y_valid, 4, [0],
                        TrainConfig(max_epochs=4, batch_size=32, learning_rate=0.05, restore_best=policy))
            for policy in ("always", "on-stop")}
    kept_always, last_always, _ = runs["always"]
    kept_on_stop, last_on_stop, epochs = runs["on-stop"]
    assert epochs[0] == 4 and torch.equal(kept_on_stop["conv0.weight"], last_on_stop["conv0.weight"])
    assert torch.equal(last_always["conv0.weight"], last_on_stop["conv0.weight"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_job_killed_mid_training_resumes_from_its_checkpoint_to_the_same_end(tmp_path, dtype):
    x, y = toy_mfccs(200, 4, 0)
    x_valid, y_valid = toy_mfccs(60, 4, 1)
    subsets = [np.arange(0, 128), np.arange(72, 200)]
    config = TrainConfig(batch_size=32, max_epochs=12, stop_patience=4, lr_patience=2, dtype=dtype)
    checkpoint = tmp_path / "job.pt"

    def train(steps, kill_at=None, **kwargs):
        def count(models, clips, logits):
            steps.append(len(models))
            if len(steps) == kill_at:
                raise KeyboardInterrupt
        return fit(x, y, subsets, x_valid, y_valid, 4, [3, 4], config, on_batch=count, **kwargs)

    whole_steps, killed_steps, resumed_steps = [], [], []
    whole = train(whole_steps)
    with pytest.raises(KeyboardInterrupt):  # 4 steps an epoch: killed in epoch 8, the state of epoch 7 was saved
        train(killed_steps, kill_at=30, checkpoint=checkpoint, checkpoint_seconds=0)
    assert checkpoint.exists()
    resumed = train(resumed_steps, checkpoint=checkpoint)
    assert len(resumed_steps) == len(whole_steps) - 28  # it went on from epoch 8, not from the start
    for name in whole[0]:
        assert torch.equal(whole[0][name], resumed[0][name]) and torch.equal(whole[1][name], resumed[1][name])
    assert whole[2].tolist() == resumed[2].tolist()
    assert not checkpoint.exists()  # removed once the job is done


def killed_job(tmp_path):
    """A small job, its uninterrupted end, and train(**kwargs) that runs it again; the checkpoint a kill in its
    8th epoch left."""
    x, y = toy_mfccs(200, 4, 0)
    x_valid, y_valid = toy_mfccs(60, 4, 1)
    subsets = [np.arange(0, 128), np.arange(72, 200)]
    config = TrainConfig(batch_size=32, max_epochs=10, stop_patience=4, lr_patience=2, dtype="float64")
    checkpoint = tmp_path / "job.pt"

    def train(kill_at=None, **kwargs):
        steps = []

        def count(models, clips, logits):
            steps.append(len(models))
            if len(steps) == kill_at:
                raise KeyboardInterrupt
        return fit(x, y, subsets, x_valid, y_valid, 4, [3, 4], config, on_batch=count, checkpoint=checkpoint, **kwargs)

    whole = train()
    with pytest.raises(KeyboardInterrupt):
        train(kill_at=30, checkpoint_seconds=0)
    return whole, train, checkpoint


def test_a_damaged_checkpoint_is_set_aside_and_the_job_restarts_to_the_same_end(tmp_path, caplog):
    whole, train, checkpoint = killed_job(tmp_path)
    saved = checkpoint.read_bytes()
    for offset in np.random.default_rng(0).integers(0, len(saved), size=3):
        damaged = bytearray(saved)
        for i in range(offset, min(offset + 8, len(damaged))):  # 8 bytes flipped
            damaged[i] ^= 0xFF
        checkpoint.write_bytes(bytes(damaged))
        caplog.clear()
        again = train()
        assert "set aside as job.pt.set-aside: its checksum does not match" in caplog.text
        assert (tmp_path / "job.pt.set-aside").exists() and not checkpoint.exists()
        for name in whole[0]:
            assert torch.equal(whole[0][name], again[0][name])
        assert whole[2].tolist() == again[2].tolist()


class _Planted:
    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_checkpoint_carrying_code_is_refused_without_running_it(tmp_path, caplog):
    import hashlib
    import io

    from kwsprune.training import CHECKPOINT_MAGIC

    whole, train, checkpoint = killed_job(tmp_path)
    planted = _Planted()
    planted.marker = str(tmp_path / "the_code_ran")
    buffer = io.BytesIO()
    torch.save({"job": "any", "epoch": 3, "params": planted}, buffer)
    payload = buffer.getvalue()  # with a valid checksum: whoever plants it can compute one
    checkpoint.write_bytes(CHECKPOINT_MAGIC + hashlib.sha256(payload).digest() + payload)
    again = train()
    assert not (tmp_path / "the_code_ran").exists()
    assert "it holds more than training state" in caplog.text
    assert whole[2].tolist() == again[2].tolist()


def test_validation_computes_each_clip_once_for_every_model_and_agrees_with_a_copy_per_model():
    x, _ = toy_mfccs(64, 4, 0)
    params = {k: v.double() for k, v in init_params("tiny", 4, list(range(5))).items()}
    clips = torch.as_tensor(x, dtype=torch.float64)
    shared = forward("tiny", params, clips)  # (64, 5, 4): the first convolution over the one input
    copied = forward("tiny", params, clips.unsqueeze(1).expand(-1, 5, -1, -1))  # the training step's layout
    torch.testing.assert_close(shared, copied, rtol=0, atol=1e-12)


@pytest.mark.parametrize("model", ["tiny", "smallest", "lenet"])
def test_the_float32_step_with_its_depthwise_first_layer_computes_the_float64_grouped_one(model):
    x, _ = toy_mfccs(32 * 6, 4, 0)
    clips = torch.as_tensor(x).reshape(32, 6, 99, 32)  # each model its own clips, as in a training step
    params = init_params(model, 4, list(range(6)))
    fast = forward(model, params, clips)  # float32 on the CPU: channels-last, first layer depthwise
    exact = forward(model, {k: v.double() for k, v in params.items()}, clips.double())  # grouped, contiguous
    torch.testing.assert_close(fast, exact.float(), rtol=1e-4, atol=1e-4)


def test_validation_with_the_fused_convolution_and_relu_gives_the_training_pass_numbers():
    x, _ = toy_mfccs(64, 4, 0)
    clips = torch.as_tensor(x)
    params = init_params("tiny", 4, list(range(5)))
    with torch.no_grad():
        validating = forward("tiny", params, clips)  # float32 on the CPU: oneDNN's fused conv + ReLU where it exists
    training = forward("tiny", params, clips)  # with autograd: separate convolution and ReLU
    torch.testing.assert_close(validating, training, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("filters, kernel", [(4, (2, 2)), (6, (3, 2))])
def test_the_compiled_first_layer_is_the_convolution_relu_and_pooling(filters, kernel):
    x = torch.as_tensor(toy_mfccs(5, 4, 0)[0])
    weight, bias = torch.randn(filters * 3, 1, *kernel), torch.randn(filters * 3)  # 3 models
    pooled = fused_layers.first_layer_pooled(x, weight, bias)
    if pooled is None:
        pytest.skip("torch.compile cannot build on this machine (no C++ compiler?): the oneDNN path runs instead")
    expected = F.avg_pool2d(F.relu(F.conv2d(x.unsqueeze(1), weight, bias)), 2)
    torch.testing.assert_close(pooled, expected, rtol=1e-5, atol=1e-6)
    assert pooled.is_contiguous(memory_format=torch.channels_last)  # what the next oneDNN convolution wants


@pytest.mark.parametrize("model", list(CNNS))
def test_validation_with_the_compiled_first_layer_gives_the_onednn_numbers(model):
    x, _ = toy_mfccs(67, 4, 0)
    clips = torch.as_tensor(x)
    params = init_params(model, 4, list(range(5)))
    shorter = init_params(model, 4, list(range(5)), input_shape=(60, 32))  # clips of 0.6 s
    fewer = {name: value[:2] for name, value in params.items()}  # fewer models, as when others have stopped
    with torch.no_grad():  # one compiled loop for every shape: numbers of clips, models and frames
        for weights, chunk in ((params, clips), (params, clips[:1]), (shorter, clips[:13, :60]), (fewer, clips)):
            torch.testing.assert_close(forward(model, weights, chunk, compiled=True), forward(model, weights, chunk),
                                       rtol=1e-5, atol=1e-6)


def test_where_torch_compile_cannot_build_validation_takes_onednns_path(monkeypatch, caplog):
    def no_compiler(*args):
        raise RuntimeError("InductorError: no working C++ compiler found")

    monkeypatch.setattr(fused_layers, "_compiled_first_layer", lambda: no_compiler)
    monkeypatch.setattr(fused_layers, "_compile_failed", [])
    x, _ = toy_mfccs(8, 4, 0)
    params = init_params("tiny", 4, list(range(3)))
    with torch.no_grad():
        expected = forward("tiny", params, torch.as_tensor(x))
        for _ in range(2):
            torch.testing.assert_close(forward("tiny", params, torch.as_tensor(x), compiled=True), expected)
    assert [r.getMessage() for r in caplog.records] == [
        "torch.compile is not available here (InductorError: no working C++ compiler found): validation runs on "
        "oneDNN alone, about 1.2x slower"]  # said once


def test_bfloat16_is_an_opt_in_that_trains():
    assert TrainConfig().dtype == "float32" and all(recipe.dtype != "bfloat16" for recipe in RECIPES.values())
    x, y = toy_mfccs(600, 4, 0)
    x_valid, y_valid = toy_mfccs(200, 4, 1)
    x_test, y_test = toy_mfccs(200, 4, 2)
    config = TrainConfig(batch_size=64, max_epochs=30, stop_patience=3, lr_patience=2, dtype="bfloat16")
    results = train_runs(x, y, [np.arange(600)] * 2, x_valid, y_valid, x_test, y_test, 4, [0, 1], config)
    assert all(r["test_acc"] > 0.9 for r in results)  # chance is 0.25

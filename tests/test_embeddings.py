"""Step 1: embeddings through the real loading code, on a tiny local wav2vec 2.0 and the built-in model."""

import numpy as np
import pytest
import torch

import extract_embeddings
import prepare_dataset
from kwsprune.artefacts import read_manifest
from kwsprune.embeddings import load_features
from kwsprune.validation import InputError


@pytest.fixture(scope="module")
def tiny_wav2vec2(tmp_path_factory):
    """A randomly initialised 2-layer Wav2Vec2Model and its feature extractor, saved like a checkpoint."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(0)
    config = Wav2Vec2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                            conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    folder = tmp_path_factory.mktemp("tiny_wav2vec2")
    Wav2Vec2Model(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(folder)
    return folder


def features(root, split="train"):
    return np.load(root / "wav2vec_features" / f"{split}_features.npy")


@pytest.fixture(scope="module")
def speech_commands_root(speech_commands_dir, tmp_path_factory):
    """The 300 real Speech Commands clips in a data root of their own (steps 0 only), shared read-only."""
    root = tmp_path_factory.mktemp("speech_commands") / "root"
    prepare_dataset.main(["--data-root", str(root), "--source", "speech_commands", "--path", str(speech_commands_dir),
                          "--words", "all"])
    return root


def embeddings_by_batch(root, tmp_path, model, batch_sizes) -> dict:
    """{batch size: {split: embeddings}} of real clips, each batch size extracted into its own copy of root."""
    import shutil

    out = {}
    for batch_size in batch_sizes:
        copy = tmp_path / f"batch{batch_size}"
        shutil.copytree(root, copy)
        extract_embeddings.main(["--data-root", str(copy), "--model", model, "--batch-size", str(batch_size),
                                 "--device", "cpu"])
        out[batch_size] = {split: features(copy, split) for split in ("train", "valid", "test")}
    return out


def test_speech_embedding_of_a_clip_does_not_depend_on_its_batch(speech_commands_root, tmp_path):
    """Real speech: every clip of every split gets the same vectors, to the bit, whatever the batch it went in."""
    by_batch = embeddings_by_batch(speech_commands_root, tmp_path, "speech-embedding", (1, 3, 8, 32))
    for batch_size in (3, 8, 32):
        for split, alone in by_batch[1].items():
            np.testing.assert_array_equal(by_batch[batch_size][split], alone, err_msg=f"{split}, batch {batch_size}")
    assert np.abs(by_batch[1]["train"]).max() > 1  # real vectors, not zeros
    manifest = read_manifest(tmp_path / "batch32" / "wav2vec_features", "extract_embeddings.py")
    assert manifest["params"]["clips_alone"] and manifest["params"]["batch_size"] == 32
    assert manifest["params"]["pyopen_wakeword"] == "1.1.0"
    assert set(manifest["files"]) == {"train_features.npy", "valid_features.npy", "test_features.npy"}


def test_a_transformers_model_embeds_each_clip_as_it_would_alone(speech_commands_root, tiny_wav2vec2, tmp_path):
    """Real speech through a tiny local wav2vec 2.0: at every batch size, each clip's mean frame is the model's output
    for that clip alone, to float32 rounding."""
    from transformers import Wav2Vec2Model

    by_batch = embeddings_by_batch(speech_commands_root, tmp_path, str(tiny_wav2vec2), (1, 3, 8, 32))
    model = Wav2Vec2Model.from_pretrained(tiny_wav2vec2).eval()
    clips = np.load(speech_commands_root / "Dataset_as_Numpy" / "valid_x.npy")
    with torch.no_grad():
        alone = np.stack([model(((clip - clip.mean()) / torch.sqrt(clip.var(unbiased=False) + 1e-7))[None])
                          .last_hidden_state.mean(dim=1)[0].numpy() for clip in torch.from_numpy(clips)])
    for batch_size, out in by_batch.items():
        np.testing.assert_allclose(out["valid"], alone, rtol=1e-5, atol=1e-5, err_msg=f"batch {batch_size}")
    manifest = read_manifest(tmp_path / "batch8" / "wav2vec_features", "extract_embeddings.py")
    assert manifest["params"]["device"] == "cpu" and manifest["params"]["torch"] == torch.__version__


def test_wav2vec2_mean_pooling_matches_the_model_run_by_hand(fresh_demo_root, tiny_wav2vec2):
    from transformers import Wav2Vec2Model

    extract_embeddings.main(["--data-root", str(fresh_demo_root), "--model", str(tiny_wav2vec2),
                             "--batch-size", "64", "--device", "cpu"])
    clips = np.load(fresh_demo_root / "Dataset_as_Numpy" / "train_x.npy")
    out = features(fresh_demo_root)
    assert out.shape == (len(clips), 16) and out.dtype == np.float32
    model = Wav2Vec2Model.from_pretrained(tiny_wav2vec2).eval()
    clip = torch.from_numpy(clips[7])
    normalised = (clip - clip.mean()) / torch.sqrt(clip.var(unbiased=False) + 1e-7)
    with torch.no_grad():
        expected = model(normalised[None]).last_hidden_state.mean(dim=1)[0].numpy()
    np.testing.assert_allclose(out[7], expected, atol=1e-4)
    manifest = read_manifest(fresh_demo_root / "wav2vec_features", "extract_embeddings.py")
    assert manifest["params"]["frames"] == 49 and manifest["params"]["pooling"] == "mean"
    np.testing.assert_array_equal(load_features(fresh_demo_root), out)


def test_wav2vec2_layer_and_flatten(fresh_demo_root, tiny_wav2vec2):
    extract_embeddings.main(["--data-root", str(fresh_demo_root), "--model", str(tiny_wav2vec2), "--layer", "1",
                             "--pooling", "flatten", "--dtype", "float16", "--device", "cpu"])
    out = features(fresh_demo_root)
    assert out.shape[1] == 49 * 16 and out.dtype == np.float16
    assert read_manifest(fresh_demo_root / "wav2vec_features", "extract_embeddings.py")["params"]["layer"] == 1


def test_speech_embedding_gives_three_96d_windows_per_second(fresh_demo_root):
    extract_embeddings.main(["--data-root", str(fresh_demo_root), "--model", "speech-embedding", "--pooling", "flatten"])
    flat = features(fresh_demo_root)
    extract_embeddings.main(["--data-root", str(fresh_demo_root), "--model", "speech-embedding"])
    mean = features(fresh_demo_root)
    assert flat.shape[1] == 3 * 96 and mean.shape[1] == 96
    np.testing.assert_allclose(flat.reshape(len(flat), 3, 96).mean(axis=1), mean, rtol=1e-5, atol=1e-5)
    assert np.isfinite(mean).all() and mean.std(axis=0).min() > 0


def test_speech_embedding_separates_real_digits(fsdd_dir, tmp_path):
    """A real pretrained model: a linear probe on its embeddings beats chance (10%) by far on FSDD."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    prepare_dataset.main(["--data-root", str(tmp_path), "--source", "fsdd", "--path", str(fsdd_dir)])
    extract_embeddings.main(["--data-root", str(tmp_path), "--model", "speech-embedding", "--batch-size", "256"])
    x, y = features(tmp_path), np.load(tmp_path / "Dataset_as_Numpy" / "train_y.npy")
    speakers = np.load(tmp_path / "Dataset_as_Numpy" / "train_speakers.npy")
    held_out = speakers == "theo"
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x[~held_out], y[~held_out])
    assert probe.score(x[held_out], y[held_out]) > 0.4


def test_a_model_that_cannot_be_loaded_says_how_to_get_it(fresh_demo_root, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        extract_embeddings.main(["--data-root", str(fresh_demo_root), "--model", str(tmp_path / "no_such_model")])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip()
    assert "could not load model" in message and "save_pretrained" in message and len(message.splitlines()) == 1
    assert not (fresh_demo_root / "wav2vec_features" / "train_features.npy").exists()


def test_embeddings_of_the_training_clips_alone_are_refused_for_other_splits(fresh_demo_root):
    """An older kwsprune embedded the training clips only: the pruning still reads them, a head is told what to run."""
    import json

    extract_embeddings.main(["--data-root", str(fresh_demo_root), "--model", "speech-embedding"])
    manifest_path = fresh_demo_root / "wav2vec_features" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"] = {"train_features.npy": manifest["files"]["train_features.npy"]}
    manifest_path.write_text(json.dumps(manifest))
    assert load_features(fresh_demo_root).shape[1] == 96
    with pytest.raises(InputError, match="training clips only .* re-run python extract_embeddings.py"):
        load_features(fresh_demo_root, "test")


def test_features_from_other_clips_are_refused(fresh_demo_root):
    extract_embeddings.main(["--data-root", str(fresh_demo_root), "--model", "speech-embedding"])
    prepare_dataset.main(["--data-root", str(fresh_demo_root), "--source", "synth", "--n-speakers", "40", "--seed", "3"])
    with pytest.raises(InputError, match="re-run python extract_embeddings.py --data-root .* --model speech-embedding --pooling mean"):
        load_features(fresh_demo_root)


def test_a_model_whose_weights_hold_code_is_refused_and_never_run(tiny_wav2vec2, fresh_demo_root, tmp_path, capsys):
    import pickle
    import shutil

    class Payload:
        def __reduce__(self):
            return (print, ("this should never run",))

    folder = tmp_path / "planted"
    shutil.copytree(tiny_wav2vec2, folder)
    (folder / "model.safetensors").unlink()
    with open(folder / "pytorch_model.bin", "wb") as f:  # what a stranger's model folder may hold
        pickle.dump({"weight": Payload()}, f)
    with pytest.raises(SystemExit) as exit_info:
        extract_embeddings.main(["--data-root", str(fresh_demo_root), "--model", str(folder)])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert "this should never run" not in captured.out
    assert "its weights hold more than tensors" in captured.err
    assert len(captured.err.strip().splitlines()) == 1

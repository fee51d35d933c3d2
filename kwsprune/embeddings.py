"""Step 1: one embedding per clip of every split from a pretrained speech model, into wav2vec_features/.

Two kinds of model give `(n_clips, n_frames, dim)` frames, then pooled to one row per clip:
- any checkpoint `transformers` loads with AutoModel/AutoFeatureExtractor (wav2vec 2.0, HuBERT, WavLM,
  data2vec-audio), by hub id or local folder; `facebook/wav2vec2-base-960h` gives 49 x 768 per second;
- `speech-embedding`: Google's pretrained speech_embedding network, shipped as TFLite in the
  pyopen-wakeword wheel: 32 mel bands every 10 ms, one 96-d vector per 76-frame window, step 8
  (3 x 96 per second). Offline and fast on a CPU.

A clip's embedding is the model's output for that clip alone, whatever --batch-size: the training clips'
feed the pruning methods, and every split's feeds the heads trained on frozen embeddings.
"""

import ctypes
import importlib.metadata
import logging
import os
import pickle
import socket
import urllib.parse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from kwsprune.artefacts import (check_computed_from, check_writable, command_line, input_key, open_output, read_manifest,
                                recorded_sha, rerun, staged, verify_file, write_manifest)
from kwsprune.dataset import MADE_BY as DATASET_MADE_BY
from kwsprune.device import pick_device
from kwsprune.paths import DATASET_DIR, EMBEDDINGS_DIR, SAMPLE_RATE, SPLITS, clips_file, features_file, step_dir
from kwsprune.validation import InputError, check_waveforms, load_npy

log = logging.getLogger(__name__)
MADE_BY = "extract_embeddings.py"
DEFAULT_MODEL = "facebook/wav2vec2-base-960h"
SPEECH_EMBEDDING = "speech-embedding"
POOLINGS = ("mean", "flatten")

# speech_embedding's framing, as the pyopen-wakeword wheel drives it
_MEL_BANDS, _WINDOW, _STEP, _EMB_DIM = 32, 76, 8, 96


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub (HF_ENDPOINT, else huggingface.co) answers within `timeout` seconds."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    address = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((address.hostname, address.port or 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def open_transformers_model(name: str, device: str, layer: int | None):
    """Load a checkpoint; return `embed(batch (B, 16000) float32) -> (B, frames, dim)` and its description."""
    import torch
    import transformers

    # offline, the hub's client retries for most of a minute before it fails: look in the cache alone instead
    cached_only = not Path(name).is_dir() and not hub_reachable()
    try:
        extractor = transformers.AutoFeatureExtractor.from_pretrained(name, local_files_only=cached_only)
        model = transformers.AutoModel.from_pretrained(name, local_files_only=cached_only).to(device).eval()
    except (pickle.UnpicklingError, RuntimeError) as err:  # torch.load(weights_only=True) refused what it holds
        raise InputError(f"could not load model {name!r}: its weights hold more than tensors ({type(err).__name__}), "
                         "which kwsprune never unpickles: save the model as safetensors "
                         "(save_pretrained(folder, safe_serialization=True)) from a copy you trust") from None
    except (OSError, ValueError) as err:
        reason = "the Hugging Face hub cannot be reached and the cache does not hold it" if cached_only else \
            str(err).strip().splitlines()[0]
        raise InputError(
            f"could not load model {name!r} ({reason}): with internet it is fetched into the Hugging Face cache; "
            "offline, copy a cache that holds it (HF_HOME) or pass --model a folder saved with save_pretrained"
        ) from None
    n_layers = getattr(model.config, "num_hidden_layers", None)
    if layer is not None and n_layers is not None and not -(n_layers + 1) <= layer <= n_layers:
        raise InputError(f"--layer {layer} is out of range: {name} has hidden states 0..{n_layers}")

    def embed(batch: np.ndarray) -> np.ndarray:
        inputs = extractor(list(batch), sampling_rate=SAMPLE_RATE, return_tensors="pt")
        inputs = {k: v.to(device) for k, v in inputs.items()}
        with torch.inference_mode():
            out = model(**inputs, output_hidden_states=layer is not None)
        hidden = out.last_hidden_state if layer is None else out.hidden_states[layer]
        return hidden.float().cpu().numpy()

    description = {"model": name, "model_type": model.config.model_type, "transformers": transformers.__version__,
                   "torch": torch.__version__, "device": device}
    return embed, description


def open_speech_embedding():
    """Google's speech_embedding (TFLite, from pyopen-wakeword); return `embed` and its description.

    Each clip goes through the mel model whole and its 76-frame windows through the embedding model, alone,
    unlike the wheel's streaming API, which pretends 8 s of silence came before the clip.
    """
    try:
        from pyopen_wakeword import OpenWakeWordFeatures
    except ImportError:
        raise InputError("--model speech-embedding needs the pyopen-wakeword wheel: pip install pyopen-wakeword") from None
    tflite = OpenWakeWordFeatures.from_builtin()
    lib = tflite.lib

    def run(interpreter, array: np.ndarray) -> np.ndarray:
        array = np.ascontiguousarray(array, dtype=np.float32)
        dims = (ctypes.c_int32 * array.ndim)(*array.shape)
        if lib.TfLiteInterpreterResizeInputTensor(interpreter, 0, dims, array.ndim) or lib.TfLiteInterpreterAllocateTensors(interpreter):
            raise RuntimeError(f"TFLite refused an input of shape {array.shape}")
        source = lib.TfLiteInterpreterGetInputTensor(interpreter, 0)
        lib.TfLiteTensorCopyFromBuffer(source, array.ctypes.data_as(ctypes.c_void_p), array.nbytes)
        if lib.TfLiteInterpreterInvoke(interpreter):
            raise RuntimeError("TFLite failed to run speech_embedding")
        target = lib.TfLiteInterpreterGetOutputTensor(interpreter, 0)
        shape = [lib.TfLiteTensorDim(target, i) for i in range(lib.TfLiteTensorNumDims(target))]
        out = np.empty(shape, np.float32)
        lib.TfLiteTensorCopyToBuffer(target, out.ctypes.data_as(ctypes.c_void_p), out.nbytes)
        return out

    def embed_clip(clip: np.ndarray) -> np.ndarray:
        # the model was trained on int16-scaled samples, and its embedding input on mel/10 + 2
        mels = run(tflite.mel_interpreter, clip[None] * 32767)[0, 0] / 10 + 2
        n_windows = (len(mels) - _WINDOW) // _STEP + 1
        if n_windows < 1:
            raise InputError(f"clips of {len(clip)} samples are too short for speech-embedding (needs 0.79 s)")
        windows = np.lib.stride_tricks.sliding_window_view(mels, _WINDOW, axis=0)[::_STEP][:n_windows]
        return run(tflite.emb_interpreter, windows.transpose(0, 2, 1)[..., None]).reshape(n_windows, _EMB_DIM)

    def embed(batch: np.ndarray) -> np.ndarray:
        # clip by clip: the mel model resized to a batch returns other frames for every clip but the first, and
        # the embedding model rounds differently with its batch; alone, a clip's vectors never depend on its batch
        return np.stack([embed_clip(np.asarray(clip, np.float32)) for clip in batch])

    embed.keepalive = tflite  # the interpreters live as long as `embed`
    return embed, {"model": SPEECH_EMBEDDING, "model_type": "google speech_embedding (pyopen-wakeword TFLite)",
                   "pyopen_wakeword": importlib.metadata.version("pyopen-wakeword")}


def pool(frames: np.ndarray, pooling: str) -> np.ndarray:
    """(B, frames, dim) -> (B, dim) by the mean over frames, or (B, frames * dim) by flattening."""
    if pooling == "mean":
        return frames.mean(axis=1)
    if pooling == "flatten":
        return frames.reshape(len(frames), -1)
    raise InputError(f"unknown --pooling {pooling!r}: choose one of {', '.join(POOLINGS)}")


def extract_embeddings(data_root, model=DEFAULT_MODEL, layer=None, pooling="mean", batch_size=32,
                       device="auto", dtype="float32") -> dict:
    """Step 1: `wav2vec_features/{split}_features.npy` (n, dim) for every split, with a manifest. batch_size sets
    how many clips go through the model at once (speed and memory), never a clip's embedding."""
    if pooling not in POOLINGS:
        raise InputError(f"unknown --pooling {pooling!r}: choose one of {', '.join(POOLINGS)}")
    if dtype not in ("float16", "float32"):
        raise InputError(f"--dtype {dtype!r}: choose float16 or float32")
    dataset_dir, out_dir = step_dir(data_root, DATASET_DIR), step_dir(data_root, EMBEDDINGS_DIR)
    check_writable(out_dir)
    inputs = {input_key(dataset_dir, clips_file(split)): verify_file(dataset_dir, clips_file(split), DATASET_MADE_BY)
              for split in SPLITS}
    clips = {split: load_npy(dataset_dir / clips_file(split), rerun(dataset_dir, DATASET_MADE_BY)) for split in SPLITS}
    for split, x in clips.items():
        check_waveforms(x, str(dataset_dir / clips_file(split)))
    if model == SPEECH_EMBEDDING:
        if layer is not None:
            raise InputError(f"--layer {layer}: speech-embedding gives one layer only; drop --layer")
        embed, description = open_speech_embedding()
    else:
        embed, description = open_transformers_model(model, pick_device(device), layer)
    with staged(out_dir, replaces_listed=True) as staging:
        for split, x in clips.items():
            out = None
            for start in tqdm(range(0, len(x), batch_size), desc=f"{split} embeddings", unit="batch"):
                frames = embed(np.asarray(x[start:start + batch_size]))
                if out is None:
                    frame_shape = frames.shape[1:]
                    out = open_output(staging / features_file(split), dtype, (len(x), *pool(frames, pooling).shape[1:]))
                out[start:start + len(frames)] = pool(frames, pooling)
            out.flush()
            del out
        params = {**description, "layer": "last" if layer is None else layer, "pooling": pooling, "dtype": dtype,
                  "frames": int(frame_shape[0]), "dim": int(frame_shape[1]), "clip_samples": int(clips["train"].shape[1]),
                  "batch_size": batch_size, "clips_alone": True}
        command = command_line(MADE_BY, data_root, {"--model": model, "--layer": layer, "--pooling": pooling,
                                                    "--dtype": dtype})
        return write_manifest(staging, "extract_embeddings", params, inputs, [features_file(s) for s in SPLITS],
                              command=command)


def features_sha(data_root, read: bool = False, split: str = "train") -> str:
    """sha256 of one split's embeddings; refused if they were computed from other clips than Dataset_as_Numpy holds
    now (compared by the manifests). read=True also checks the file itself against its manifest (it hashes it):
    for steps that read the embeddings, not for those that only need to know which ones they are."""
    dataset_dir, features_dir = step_dir(data_root, DATASET_DIR), step_dir(data_root, EMBEDDINGS_DIR)
    name = clips_file(split)
    check_computed_from(features_dir, MADE_BY, dataset_dir, name, recorded_sha(dataset_dir, name, DATASET_MADE_BY))
    if split != "train" and features_file(split) not in read_manifest(features_dir, MADE_BY)["files"]:
        raise InputError(f"{features_dir} holds embeddings of the training clips only (an older kwsprune made it), and "
                         f"a head needs every split's: {rerun(features_dir, MADE_BY)}")
    if read:
        return verify_file(features_dir, features_file(split), MADE_BY)
    return recorded_sha(features_dir, features_file(split), MADE_BY)


def load_features(data_root, split: str = "train") -> np.ndarray:
    """One split's embeddings (n, dim), memory-mapped, checked against their manifest and the clips."""
    features_sha(data_root, read=True, split=split)
    folder = step_dir(data_root, EMBEDDINGS_DIR)
    return load_npy(folder / features_file(split), rerun(folder, MADE_BY))

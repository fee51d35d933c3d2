"""The arrays a model is trained and tested on, by what it reads (kwsprune.models.ModelSpec.inputs): MFCCs or
log-mel maps from MFCCs/, or a pretrained model's embeddings from wav2vec_features/; each with the labels of
every split, the class count and the id that rows record for them."""

import numpy as np

from kwsprune import mfcc
from kwsprune.artefacts import load_verified, read_manifest, recorded_sha, short_id
from kwsprune.dataset import MADE_BY as DATASET_MADE_BY
from kwsprune.dataset import class_names
from kwsprune.embeddings import features_sha, load_features
from kwsprune.models import model_spec
from kwsprune.paths import DATASET_DIR, MFCC_DIR, SPLITS, features_file, labels_file, mfcc_file, step_dir
from kwsprune.validation import InputError, check_labels, check_same_length

FEATURE_MAPS = ("mfcc", "logmel")  # the inputs MFCCs/ holds, one kind at a time


def data_id(data_root, inputs: str = "mfcc") -> str:
    """The id rows and caches record for the training data of a kind of input, from the manifests (nothing is
    read): the MFCCs' (or log-mel maps') and labels' sha256, or the embeddings' and labels'."""
    if inputs in FEATURE_MAPS:
        return mfcc.data_id(data_root)
    dataset_dir = step_dir(data_root, DATASET_DIR)
    return short_id(*[features_sha(data_root, split=split) for split in SPLITS],
                    *[recorded_sha(dataset_dir, labels_file(split), DATASET_MADE_BY) for split in SPLITS])


def check_feature_maps(data_root, model: str) -> None:
    """Refuse a model whose input kind (mfcc or logmel) is not what MFCCs/ holds, with the command that makes it."""
    inputs = model_spec(model).inputs
    if inputs not in FEATURE_MAPS:
        return
    folder = step_dir(data_root, MFCC_DIR)
    held = read_manifest(folder, mfcc.MADE_BY)["params"].get("features", "mfcc")
    if held != inputs:
        make = "extract_mfccs.py --features logmel --nfilt 40" if inputs == "logmel" else "extract_mfccs.py"
        raise InputError(f"--model {model} reads {inputs} but {folder} holds {held}: run {make} "
                         f"(--data-root {data_root}) first")


def load_training_data(data_root, model: str = "tiny") -> dict:
    """x_train, x_valid, x_test (what `model` reads) and y_* (labels) of every split in memory, each file checked
    once against its manifest; with the class count (labels.json) and the data id."""
    inputs = model_spec(model).inputs
    check_feature_maps(data_root, model)
    dataset_dir = step_dir(data_root, DATASET_DIR)
    data = {"n_classes": len(class_names(data_root)), "id": data_id(data_root, inputs)}
    for split in SPLITS:
        if inputs in FEATURE_MAPS:
            x, name = np.array(mfcc.load_mfccs(data_root, split)), f"{MFCC_DIR}/{mfcc_file(split)}"
        else:
            x, name = np.array(load_features(data_root, split), np.float32), f"wav2vec_features/{features_file(split)}"
        y = np.array(load_verified(dataset_dir, labels_file(split), DATASET_MADE_BY))
        fix = "re-run extract_mfccs.py" if inputs in FEATURE_MAPS else "re-run extract_embeddings.py"
        check_same_length(x, name, y, labels_file(split), fix)
        check_labels(y, f"{dataset_dir / labels_file(split)}", data["n_classes"])
        data[f"x_{split}"], data[f"y_{split}"] = x, y
    return data

"""Step 3: score the training clips with each method (kwsprune.methods) and keep, per method and ratio, a subset.

Outputs are indices into train_y's order, sorted, with each method's scores and the original's k-means
cluster ids, listed in one manifest per k.
"""

import logging
from functools import partial

import numpy as np

from kwsprune.artefacts import check_computed_from, input_key, load_verified, read_manifest, save_npy, write_manifest
from kwsprune.dataset import load_labels
from kwsprune.embeddings import FEATURES_FILE, verified_features_sha
from kwsprune.methods import MODEL_SCORES, Inputs, method_name, run_method
from kwsprune.paths import EMBEDDINGS_DIR, MFCC_DIR, PRUNED_DIR, step_dir
from kwsprune.validation import InputError

log = logging.getLogger(__name__)
MADE_BY = "pruning.py"


def format_ratio(ratio: float) -> str:
    return repr(float(ratio))


def kept_file(method: str, k: int, ratio: float) -> str:
    return f"y_{method}_pruning_k{k}_{format_ratio(ratio)}.npy"


def scores_file(method: str, k: int) -> str:
    return f"scores_{method}_k{k}.npy"


def manifest_name(k: int) -> str:
    return f"pruning_k{k}.json"


def run_pruning(data_root, methods, ratios, k: int = 10, seed: int = 0, pca: int | None = None) -> dict:
    """Step 3: write the kept indices of every method and ratio, the scores and cluster ids, and a manifest."""
    methods = [method_name(m) for m in methods]
    for ratio in ratios:
        if not 0 <= ratio < 1:
            raise InputError(f"--ratios {ratio}: a ratio is the fraction removed, in [0, 1)")
    features_dir, out_dir = step_dir(data_root, EMBEDDINGS_DIR), step_dir(data_root, PRUNED_DIR)
    inputs = {input_key(features_dir, FEATURES_FILE): verified_features_sha(data_root)}
    features = np.load(features_dir / FEATURES_FILE, mmap_mode="r")
    method_inputs = Inputs(features, load_labels(data_root, "train", len(features)), k, seed, pca,
                           {name: partial(model_score, data_root, name, seed) for name in MODEL_SCORES})
    params = {"k": k, "seed": seed, "pca": pca}
    out_dir.mkdir(parents=True, exist_ok=True)
    clusters, _ = method_inputs.kmeans()
    save_npy(out_dir / f"clusters_k{k}.npy", clusters)
    files = [f"clusters_k{k}.npy"]
    for method in methods:
        for i, ratio in enumerate(ratios):
            rng = np.random.default_rng([seed, int(round(ratio * 1e6))])
            scores, kept = run_method(method, method_inputs, ratio, rng)
            save_npy(out_dir / kept_file(method, k, ratio), kept)
            files.append(kept_file(method, k, ratio))
            if i == 0:  # scores of most methods do not depend on the ratio; semdedup's and random's do
                save_npy(out_dir / scores_file(method, k), scores)
                files.append(scores_file(method, k))
            log.info("%s ratio %s: kept %d of %d clips", method, ratio, len(kept), len(features))
    files += _earlier_files(out_dir, k, inputs, params, files)
    return write_manifest(out_dir, "pruning", params, inputs, files, manifest_name(k))


def model_score(data_root, name: str, seed: int) -> np.ndarray:
    """EL2N or forgetting scores (n,) of the training clips: from y_pruned/{name}_seed{seed}.npy when it was made
    from the current MFCCs, else trained now (kwsprune.model_scores) and cached there with its manifest."""
    from kwsprune import model_scores
    from kwsprune.classify import load_data, mfcc_id
    from kwsprune.embeddings import pick_device

    out_dir = step_dir(data_root, PRUNED_DIR)
    file, manifest = f"{name}_seed{seed}.npy", f"{name}_seed{seed}.json"
    inputs = {f"{MFCC_DIR}/train_MFCCs.npy": mfcc_id(data_root)}
    params = {"seed": seed, "el2n_epochs": model_scores.EL2N_EPOCHS, "el2n_models": model_scores.EL2N_MODELS}
    if (out_dir / manifest).exists():
        earlier = read_manifest(out_dir, MADE_BY, manifest)
        if earlier["inputs"] == inputs and earlier["params"] == params:
            return np.asarray(load_verified(out_dir, file, MADE_BY, manifest))
    data = load_data(data_root)  # every split in memory, checked against the clips: only when training
    log.info("training the Tiny CNN on all %d clips for the %s scores", len(data["y_train"]), name)
    compute = model_scores.el2n_scores if name == "el2n" else model_scores.forgetting_scores
    scores = compute(data["x_train"], data["y_train"], data["x_valid"], data["y_valid"], data["n_classes"], seed,
                     device=pick_device("auto"))
    out_dir.mkdir(parents=True, exist_ok=True)
    save_npy(out_dir / file, scores)
    write_manifest(out_dir, "pruning", params, inputs, [file], manifest)
    return scores


def _earlier_files(out_dir, k, inputs, params, files) -> list[str]:
    """Kept-index files of an earlier run on the same features, k and seed: still valid, still listed."""
    if not (out_dir / manifest_name(k)).exists():
        return []
    earlier = read_manifest(out_dir, MADE_BY, manifest_name(k))
    if earlier.get("inputs") != inputs or earlier.get("params") != params:
        return []
    return [name for name in earlier["files"] if name not in files and (out_dir / name).exists()]


def load_kept(data_root, method: str, k: int, ratio: float) -> np.ndarray:
    """Kept indices of one method and ratio; refused if the embeddings or clips changed since."""
    method = method_name(method)
    features_dir, pruned_dir = step_dir(data_root, EMBEDDINGS_DIR), step_dir(data_root, PRUNED_DIR)
    check_computed_from(pruned_dir, MADE_BY, features_dir, FEATURES_FILE, verified_features_sha(data_root), manifest_name(k))
    name = kept_file(method, k, ratio)
    if name not in read_manifest(pruned_dir, MADE_BY, manifest_name(k))["files"]:
        raise InputError(f"{pruned_dir / name} was not made: run pruning.py --k {k} --methods {method} --ratios {ratio}")
    return np.asarray(load_verified(pruned_dir, name, MADE_BY, manifest_name(k)))

"""Step 3: score the training clips with each method (kwsprune.methods) and keep, per method and ratio, a subset.

Each pruning set-up (k, k-means starts, seed, optional PCA) has its own folder under y_pruned/ holding
the kept indices of every method and ratio (sorted, into train_y's order), each method's scores, the
original's k-means cluster ids and a manifest naming the embeddings they came from: kept sets of other
set-ups or other embeddings never stand in for each other.
"""

import json
import logging
from dataclasses import asdict, dataclass
from functools import cache, partial
from pathlib import Path

import numpy as np

from kwsprune.artefacts import (check_computed_from, check_writable, command_line, input_key, load_verified, read_manifest, save_npy,
                                short_id, staged, verify_file, write_manifest, write_text)
from kwsprune.dataset import load_labels
from kwsprune.embeddings import features_sha
from kwsprune.methods import MODEL_SCORES, ORIGINAL_NAMES, Inputs, method_name, run_method
from kwsprune.paths import (EMBEDDINGS_DIR, FEATURES_FILE, MANIFEST, PRUNED_DIR, clusters_file, kept_file,
                            model_scores_file, original_kept_file, pruning_folder, scores_file, step_dir)
from kwsprune.validation import InputError, load_npy

log = logging.getLogger(__name__)
MADE_BY = "pruning.py"
ORIGINAL_NAMES_RECORD = "original_names.json"  # y_pruned/: which set-up the original-name files were copied from


@dataclass(frozen=True)
class PruningSetup:
    """What a kept set depends on besides the embeddings, the method and the ratio."""
    k: int = 10
    n_init: int = 10
    seed: int = 0
    pca: int | None = None

    def folder(self, data_root) -> Path:
        return step_dir(data_root, PRUNED_DIR) / pruning_folder(self.k, self.n_init, self.seed, self.pca)

    def command(self, data_root, methods, ratios) -> str:
        """The pruning.py command that makes the kept sets of these methods and ratios."""
        return command_line(MADE_BY, data_root, {"--k": self.k, "--n-init": self.n_init, "--seed": self.seed,
                                                 "--pca": self.pca, "--methods": methods, "--ratios": ratios})


def check_ratio(ratio: float) -> None:
    if not 0 <= ratio < 1:
        raise InputError(f"ratio {ratio}: a ratio is the fraction removed, in [0, 1) (0 keeps every clip; random "
                         "at 1.0, the whole training set, needs no pruning)")


def check_setup(setup: PruningSetup) -> None:
    for flag, value, low in (("--k", setup.k, 1), ("--n-init", setup.n_init, 1), ("--pca", setup.pca, 1)):
        if value is not None and value < low:
            raise InputError(f"{flag} {value}: give a whole number >= {low}")


def run_pruning(data_root, methods, ratios, ks=(10,), seed: int = 0, n_init: int = 10, pca: int | None = None,
                original_names: bool = False) -> list[dict]:
    """Step 3 for every k: write the kept indices of every method and ratio, the scores, the cluster ids and a
    manifest into the set-up's folder; return the manifests. original_names also copies keep_hard and keep_easy
    to the original's names in y_pruned/."""
    methods = [method_name(m) for m in methods]
    setups = [PruningSetup(k, n_init, seed, pca) for k in ks]
    for ratio in ratios:
        check_ratio(ratio)
    for setup in setups:
        check_setup(setup)
    check_writable(step_dir(data_root, PRUNED_DIR))
    sha = features_sha(data_root, read=True)  # the embeddings are read: hashed once for every k
    features = load_npy(step_dir(data_root, EMBEDDINGS_DIR) / FEATURES_FILE, "re-run extract_embeddings.py")
    labels = load_labels(data_root, "train", len(features))
    for setup in setups:
        if setup.k > len(features):
            raise InputError(f"--k {setup.k} is more clusters than the {len(features)} training clips: lower --k")
    model_scores = {name: cache(partial(model_score, data_root, name, seed)) for name in MODEL_SCORES}
    manifests = []
    for setup in setups:
        manifests.append(_prune(data_root, setup, methods, ratios, Inputs(
            features, labels, setup.k, setup.seed, setup.pca, setup.n_init, model_scores), sha))
        if original_names:
            export_original_names(data_root, setup, methods, ratios)
    return manifests


def _prune(data_root, setup: PruningSetup, methods, ratios, method_inputs: Inputs, sha: str) -> dict:
    out_dir = setup.folder(data_root)
    inputs = {input_key(step_dir(data_root, EMBEDDINGS_DIR), FEATURES_FILE): sha}
    with staged(out_dir) as staging:
        clusters, _ = method_inputs.kmeans()
        save_npy(staging / clusters_file(setup.k), clusters)
        files = [clusters_file(setup.k)]
        for method in methods:
            for i, ratio in enumerate(ratios):
                rng = np.random.default_rng([setup.seed, int(round(ratio * 1e6))])
                scores, kept = run_method(method, method_inputs, ratio, rng)
                save_npy(staging / kept_file(method, setup.k, ratio), kept)
                files.append(kept_file(method, setup.k, ratio))
                if i == 0:  # scores of most methods do not depend on the ratio; semdedup's and random's do
                    save_npy(staging / scores_file(method, setup.k), scores)
                    files.append(scores_file(method, setup.k))
                log.info("k %d, %s ratio %s: kept %d of %d clips", setup.k, method, ratio, len(kept), len(clusters))
        return write_manifest(staging, "pruning", asdict(setup), inputs, files,
                              command=setup.command(data_root, methods, ratios), carried=_earlier_files(out_dir, inputs))


def _earlier_files(out_dir, inputs) -> dict:
    """Records of the files of an earlier run of the same set-up on the same embeddings: still valid, still listed."""
    if not (out_dir / MANIFEST).exists():
        return {}
    earlier = read_manifest(out_dir, MADE_BY)
    if earlier.get("inputs") != inputs:
        return {}
    return {name: record for name, record in earlier["files"].items() if (out_dir / name).exists()}


def export_original_names(data_root, setup: PruningSetup, methods, ratios) -> None:
    """Copy kept sets to the original's names (y_simple_pruning_FULL_k{K}_{r}.npy, y_hard_...) in y_pruned/, where
    its Classification_pruning.py reads them; y_pruned/original_names.json records the set-up each came from."""
    pruned_dir = step_dir(data_root, PRUNED_DIR)
    record_path = pruned_dir / ORIGINAL_NAMES_RECORD
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    record = {name: entry for name, entry in record.items() if (pruned_dir / name).exists()}
    with staged(pruned_dir) as staging:
        for method in [m for m in methods if m in ORIGINAL_NAMES and m != "random"]:  # the original drew "normal"
            for ratio in ratios:                                                       # runs from the whole set
                name = original_kept_file(ORIGINAL_NAMES[method], setup.k, ratio)
                kept, kept_id = load_kept(data_root, setup, method, ratio)
                save_npy(staging / name, kept)
                record[name] = {"from": f"{setup.folder(data_root).name}/{kept_file(method, setup.k, ratio)}",
                                "kept": kept_id}
                log.info("wrote %s (the original's name)", pruned_dir / name)
        write_text(staging / ORIGINAL_NAMES_RECORD, json.dumps(record, indent=1, sort_keys=True) + "\n")


_EARLY: dict = {}  # (data id, seed) -> the early training EL2N and GraNd share, once a process


def model_score(data_root, name: str, seed: int):
    """A score (n,) that trains the Tiny CNN (EL2N, GraNd, forgetting), or the training record (a dict of arrays,
    kwsprune.model_scores.training_record) for name "record": from y_pruned/ when it was made from the current
    training data, else trained now (kwsprune.model_scores) and cached there with its manifest. EL2N and GraNd
    made in one process share their early training."""
    from kwsprune import model_scores
    from kwsprune.device import pick_device
    from kwsprune.mfcc import data_id
    from kwsprune.training_data import load_training_data

    out_dir = step_dir(data_root, PRUNED_DIR)
    file = model_scores_file(name, seed)
    manifest = Path(file).with_suffix(".json").name
    files = ({array: f"{Path(file).stem}_{array}.npy" for array in model_scores.RECORD_ARRAYS} if name == "record"
             else {name: file})
    inputs = {"data": data_id(data_root)}
    params = {"seed": seed, "el2n_epochs": model_scores.EL2N_EPOCHS, "el2n_models": model_scores.EL2N_MODELS,
              "batch_size": model_scores.SCORE_CONFIG.batch_size}
    if (out_dir / manifest).exists():
        earlier = read_manifest(out_dir, MADE_BY, manifest)
        if earlier["inputs"] == inputs and earlier["params"] == params and set(files.values()) <= set(earlier["files"]):
            loaded = {key: np.asarray(load_verified(out_dir, path, MADE_BY, manifest)) for key, path in files.items()}
            return loaded if name == "record" else loaded[name]
    data = load_training_data(data_root)  # every split in memory, each file checked: only when training
    log.info("training the Tiny CNN on all %d clips for the %s", len(data["y_train"]),
             "training record" if name == "record" else f"{name} scores")
    arguments = (data["x_train"], data["y_train"], data["x_valid"], data["y_valid"], data["n_classes"], seed)
    device = pick_device("auto")
    if name in ("el2n", "grand"):
        key = (inputs["data"], seed)
        if key not in _EARLY:
            _EARLY.clear()
            _EARLY[key] = model_scores.early_training(*arguments, device=device)
        compute = model_scores.el2n_scores if name == "el2n" else model_scores.grand_scores
        result = {name: compute(*arguments, device=device, early=_EARLY[key])}
    elif name == "forgetting":
        result = {name: model_scores.forgetting_scores(*arguments, device=device)}
    else:
        result = model_scores.training_record(*arguments, device=device)
    with staged(out_dir) as staging:
        for key, path in files.items():
            save_npy(staging / path, result[key])
        write_manifest(staging, "pruning", params, inputs, list(files.values()), manifest)
    return result if name == "record" else result[name]


def is_made(data_root, setup: PruningSetup, method: str, ratio: float) -> bool:
    """Whether the kept set of a method and ratio exists for this set-up and the current embeddings."""
    folder = setup.folder(data_root)
    if not (folder / MANIFEST).exists():
        return False
    manifest = read_manifest(folder, MADE_BY)
    key = input_key(step_dir(data_root, EMBEDDINGS_DIR), FEATURES_FILE)
    return kept_file(method, setup.k, ratio) in manifest["files"] and manifest["inputs"].get(key) == features_sha(data_root)


def load_kept(data_root, setup: PruningSetup, method: str, ratio: float) -> tuple[np.ndarray, str]:
    """Kept indices of one method and ratio, and their id (the start of their sha256); refused if they were not
    made, or made from other embeddings than the current ones. The embeddings are not read: their manifests
    are compared."""
    method, folder = method_name(method), setup.folder(data_root)
    check_ratio(ratio)
    name = kept_file(method, setup.k, ratio)
    fix = f"run {setup.command(data_root, [method], [ratio])}"
    if not (folder / MANIFEST).exists() or name not in read_manifest(folder, MADE_BY)["files"]:
        raise InputError(f"{folder / name} was not made: {fix}")
    check_computed_from(folder, MADE_BY, step_dir(data_root, EMBEDDINGS_DIR), FEATURES_FILE, features_sha(data_root),
                        fix=fix)
    sha = verify_file(folder, name, MADE_BY, fix=fix)
    return np.array(load_npy(folder / name, fix)), short_id(sha)


_WARNED: set = set()


def _warn_once(line: str) -> None:
    if line not in _WARNED:
        _WARNED.add(line)
        log.warning("%s", line)


def current_kept_ids(data_root) -> dict[tuple[str, str], str] | None:
    """{(set-up folder, kept file): kept id} of every kept set made from the current embeddings, from the
    manifests; None when there are no current embeddings to compare with."""
    try:
        sha = features_sha(data_root)
    except InputError:
        return None
    key = input_key(step_dir(data_root, EMBEDDINGS_DIR), FEATURES_FILE)
    current = {}
    for manifest_path in sorted(step_dir(data_root, PRUNED_DIR).glob(f"[!.]*/{MANIFEST}")):  # not .staging/
        try:
            manifest = read_manifest(manifest_path.parent, MADE_BY)
        except InputError as err:  # a set-up no sweep may use: its kept sets are not current, and a sweep that
            _warn_once(str(err))   # needs one is refused when it loads it
            continue
        if manifest.get("inputs", {}).get(key) == sha:
            current.update({(manifest_path.parent.name, name): short_id(record["sha256"])
                            for name, record in manifest["files"].items() if name.startswith("y_")})
    return current


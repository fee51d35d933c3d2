"""The folder layout and the name of every artefact, shared by every step: one place for each name."""

from pathlib import Path

DATASET_DIR = "Dataset_as_Numpy"
EMBEDDINGS_DIR = "wav2vec_features"
MFCC_DIR = "MFCCs"
PRUNED_DIR = "y_pruned"
RESULTS_DIR = "results"
PLOTS_DIR = "Plots"
STEP_DIRS = (DATASET_DIR, EMBEDDINGS_DIR, MFCC_DIR, PRUNED_DIR, RESULTS_DIR, PLOTS_DIR)
HISTORY_DIR = "history"  # under results/: the original's per-configuration CSVs, a folder per study

SPLITS = ("train", "valid", "test")
SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000  # one second at SAMPLE_RATE
MANIFEST = "manifest.json"
RUNS_FILE = "runs.csv"
LABELS_FILE = "labels.json"

REPO_ROOT = Path(__file__).resolve().parent.parent


def step_dir(data_root, name: str) -> Path:
    """The folder of one step (`name`, e.g. MFCC_DIR) under `data_root`."""
    return Path(data_root) / name


def format_ratio(ratio: float) -> str:
    """A ratio as file names and rows write it: 0.3, 0.05, 1.0."""
    return repr(float(ratio))


def clips_file(split: str) -> str:
    return f"{split}_x.npy"


def labels_file(split: str) -> str:
    return f"{split}_y.npy"


def mfcc_file(split: str) -> str:
    return f"{split}_MFCCs.npy"


def features_file(split: str) -> str:
    """Embeddings of one split, in wav2vec_features/."""
    return f"{split}_features.npy"


FEATURES_FILE = features_file("train")  # what the pruning methods read


def pruning_folder(k: int, n_init: int, seed: int, pca: int | None = None) -> str:
    """The folder under y_pruned/ of one pruning set-up: kept sets of other k, n_init, seed or PCA never mix."""
    return f"k{k}_ninit{n_init}_seed{seed}" + (f"_pca{pca}" if pca else "")


def kept_file(method: str, k: int, ratio: float) -> str:
    """Kept indices of one method and ratio, inside a pruning folder."""
    return f"y_{method}_pruning_k{k}_{format_ratio(ratio)}.npy"


def original_kept_file(original_type: str, k: int, ratio: float) -> str:
    """The original's name for kept indices, which its Classification_pruning.py reads from y_pruned/."""
    return f"y_{original_type}_pruning_FULL_k{k}_{format_ratio(ratio)}.npy"


def scores_file(method: str, k: int) -> str:
    return f"scores_{method}_k{k}.npy"


def clusters_file(k: int) -> str:
    return f"clusters_k{k}.npy"


def model_scores_file(name: str, seed: int) -> str:
    """A model score (EL2N, GraNd, forgetting) of one seed, cached in y_pruned/ (its manifest: the same name, .json);
    the training record is its arrays, each {stem}_{array}.npy, under one manifest."""
    return f"{name}_seed{seed}.npy"


def history_file(model: str, n: str, k, method: str, ratio: str) -> str:
    """The original's per-configuration CSV; runs on the whole training set (k None) name no K."""
    return f"history_{model}_prune_{n}" + (f"_K{k}" if k is not None else "") + f"_{method}_{ratio}.csv"

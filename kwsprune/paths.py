"""The folder layout shared by every step: one place for each name."""

from pathlib import Path

DATASET_DIR = "Dataset_as_Numpy"
EMBEDDINGS_DIR = "wav2vec_features"
MFCC_DIR = "MFCCs"
PRUNED_DIR = "y_pruned"
RESULTS_DIR = "results"
PLOTS_DIR = "Plots"

SPLITS = ("train", "valid", "test")
SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000  # one second at SAMPLE_RATE
MANIFEST = "manifest.json"

REPO_ROOT = Path(__file__).resolve().parent.parent


def step_dir(data_root, name: str) -> Path:
    """The folder of one step (`name`, e.g. MFCC_DIR) under `data_root`."""
    return Path(data_root) / name

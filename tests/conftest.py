"""Shared fixtures: real audio from ../shared/data (skipped where absent) and a small demo dataset."""

from pathlib import Path

import pytest

from kwsprune.paths import REPO_ROOT

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
FSDD = SHARED_DATA / "fsdd"
SPEECH_COMMANDS = SHARED_DATA / "speech_commands_sample"


def require(path: Path) -> Path:
    """Skip the test, saying why, when a real-audio folder is not beside the repository."""
    if not path.exists():
        pytest.skip(f"real audio not found at {path} (see ../shared/data/README.md)")
    return path


@pytest.fixture(scope="session")
def fsdd_dir():
    return require(FSDD)


@pytest.fixture(scope="session")
def speech_commands_dir():
    return require(SPEECH_COMMANDS)


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    """A data root holding a small synthesised dataset (40 speakers x 10 words), shared read-only."""
    import prepare_dataset

    root = tmp_path_factory.mktemp("demo")
    prepare_dataset.main(["--data-root", str(root), "--source", "synth", "--n-speakers", "40", "--seed", "2"])
    return root


@pytest.fixture
def fresh_demo_root(demo_root, tmp_path):
    """A private copy of the demo dataset, for tests that change it."""
    import shutil

    shutil.copytree(demo_root, tmp_path / "root")
    return tmp_path / "root"


@pytest.fixture(scope="session")
def features_root(demo_root, tmp_path_factory):
    """The demo dataset with its speech-embedding features and MFCCs (steps 0-2 done), shared read-only."""
    import shutil

    import extract_embeddings
    import extract_mfccs

    root = tmp_path_factory.mktemp("features") / "root"
    shutil.copytree(demo_root, root)
    extract_embeddings.main(["--data-root", str(root), "--model", "speech-embedding"])
    extract_mfccs.main(["--data-root", str(root)])
    return root


@pytest.fixture
def fresh_features_root(features_root, tmp_path):
    """A private copy of the demo data after steps 0-2."""
    import shutil

    shutil.copytree(features_root, tmp_path / "root")
    return tmp_path / "root"


@pytest.fixture
def two_roots(fresh_features_root, tmp_path):
    """Two private copies of the demo data after steps 0-2: one for the way under test, one for the reference."""
    import shutil

    shutil.copytree(fresh_features_root, tmp_path / "other")
    return fresh_features_root, tmp_path / "other"


def a_run_row(**fields) -> dict:
    """A runs.csv row that kwsprune.row_schema accepts (keep_hard at ratio 0.3, k 4, n 40, repeat 0), `fields` changed."""
    row = {"method": "keep_hard", "ratio": "0.3", "k": "4", "n": "40", "repeat": "0", "seed": "0", "model": "tiny",
           "engine": "torch", "learning_rate": "0.005", "batch_size": "auto", "batch_used": "64", "max_epochs": "2",
           "restore_best": "always", "dtype": "float32", "recipe": "dropout=0.1;standardise=false", "data": "0123456789ab",
           "kept": "abcdef012345", "features": "0a1b2c3d4e5f", "n_init": "10", "prune_seed": "0", "pca": "",
           "n_used": "40", "fraction_kept": "0.7", "n_classes": "10", "n_test": "50", "chance": "0.1", "test_loss": "2.3",
           "test_acc": "0.12", "epochs": "2", "seconds": "1.5", "device": "cpu", "code_version": "0.1.0", "outcomes": ""}
    return {**row, **fields}

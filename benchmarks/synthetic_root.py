"""A data root made from random one-second clips, through steps 0 and 2 as users run them: what the speed
benchmarks train on when the accuracy means nothing and the shapes are what matter."""

import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def synthetic_root(folder: Path, sizes: dict, n_classes: int = 10) -> Path:
    """folder/root after prepare_dataset.py --source numpy and extract_mfccs.py; sizes: clips per split."""
    import prepare_dataset

    rng = np.random.default_rng(0)
    arrays, root = folder / "arrays", folder / "root"
    arrays.mkdir()
    for split, n in sizes.items():
        np.save(arrays / f"{split}_x.npy", rng.uniform(-0.5, 0.5, (n, 16000)).astype(np.float32))
        np.save(arrays / f"{split}_y.npy", np.arange(n) % n_classes)
    prepare_dataset.main(["--data-root", str(root), "--source", "numpy", "--path", str(arrays)])
    subprocess.run([sys.executable, str(REPO / "extract_mfccs.py"), "--data-root", str(root)], check=True,
                   capture_output=True)
    return root

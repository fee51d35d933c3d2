"""benchmarks/noise.py end to end on the demo data: a small grid of the logistic-regression head, its row and table."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest


def load_noise():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "noise.py"
    spec = importlib.util.spec_from_file_location("noise_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_head_has_no_seed_and_its_pairs_spread_by_their_draws(features_root, tmp_path, capsys):
    noise = load_noise()
    out = tmp_path / "noise.jsonl"
    noise.main(["--data-root", str(features_root), "--n", "150", "--model", "logreg", "--draws", "3", "--seeds", "2",
                "--pairs", "4", "--out", str(out)])
    row = json.loads(out.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in the row: not JSON"))
    assert row["runs"] == 3 * 2 + 2 * 4 and row["pairs"] == 4 and row["recipe_name"] == "head"
    assert row["sd_seed"][0] < 1e-9 and row["sd_residual"][0] < 1e-9  # a head refitted on one draw is the same head
    assert 0 < row["sd_aa"][1] <= row["sd_aa"][0] <= row["sd_aa"][2]
    assert 0.1 < row["mean_acc"] <= 1  # ten words: well above chance
    capsys.readouterr()
    noise.main(["--summarise", str(out)])
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| data, N |") and len(table) == 3
    cells = [cell.strip() for cell in table[2].split("|")[1:-1]]
    assert cells[1] == "logreg, head" and cells[5] == cells[6] == "none" and cells[7].endswith("(4)")
    assert np.isclose(float(cells[3]), row["mean_acc"], atol=5e-4)

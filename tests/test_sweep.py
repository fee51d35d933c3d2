"""Steps 4-6 on the demo data: CSV formats, resuming a killed sweep, the plots."""

import csv

import numpy as np
import pytest

import classification_pruning
import run_all_classifications
from kwsprune.classify import RUN_FIELDS, draw
from kwsprune.validation import InputError

SWEEP = ["--n", "40", "--ratios", "0.3", "--repeats", "2", "--k", "4", "--max-epochs", "2"]


def rows(root):
    with open(root / "results" / "runs.csv") as f:
        return list(csv.DictReader(f))


def test_draw_is_seeded_sorted_and_can_take_index_0():
    pool = np.arange(5)
    assert draw(pool, "5", seed=0, repeat=0).tolist() == [0, 1, 2, 3, 4]
    assert draw(pool, "2", 0, 1).tolist() == draw(pool, "2", 0, 1).tolist()
    assert draw(np.array([7, 3]), "all", 0, 0).tolist() == [3, 7]
    with pytest.raises(InputError, match="more than the 5 clips kept"):
        draw(pool, "6", 0, 0)


def test_sweep_writes_the_originals_csvs_and_resumes(fresh_features_root):
    root = fresh_features_root
    run_all_classifications.main(["--data-root", str(root), *SWEEP])
    first = rows(root)
    assert len(first) == 2 * 3  # repeats x (keep_hard, keep_easy at 0.3, random at 1.0)
    assert list(first[0]) == RUN_FIELDS
    assert {(r["method"], r["ratio"]) for r in first} == {("keep_hard", "0.3"), ("keep_easy", "0.3"), ("random", "1.0")}
    assert all(r["n_used"] == "40" for r in first)
    history = (root / "results" / "history_tiny_prune_40_K4_keep_hard_0.3.csv").read_text().splitlines()
    assert len(history) == 2 and all(len(line.split(",")) == 3 for line in history)  # loss, accuracy, epochs
    assert history[0].split(",") == [first[0]["test_loss"], first[0]["test_acc"], first[0]["epochs"]]

    # a kill: the last row cut half-way, and the row before it never written
    text = (root / "results" / "runs.csv").read_text().splitlines(keepends=True)
    (root / "results" / "runs.csv").write_text("".join(text[:-2]) + text[-1][:20])
    run_all_classifications.main(["--data-root", str(root), *SWEEP])
    resumed = rows(root)
    assert len(resumed) == 6 and resumed[:4] == first[:4]
    key = lambda r: (r["method"], r["repeat"])  # noqa: E731
    for again, before in zip(sorted(resumed, key=key), sorted(first, key=key)):
        assert again["test_acc"] == before["test_acc"] and again["epochs"] == before["epochs"]
        assert abs(float(again["test_loss"]) - float(before["test_loss"])) < 1e-4
    run_all_classifications.main(["--data-root", str(root), *SWEEP])
    assert len(rows(root)) == 6  # nothing left to do, nothing duplicated


def test_one_configuration_and_the_plots(fresh_features_root, capsys):
    root = fresh_features_root
    with pytest.raises(SystemExit):  # the pruning for k = 4 was never run
        classification_pruning.main(["--data-root", str(root), "--n", "all", "--method", "keep_hard", "--k", "4"])
    assert "run pruning.py" in capsys.readouterr().err
    import pruning

    pruning.main(["--data-root", str(root), "--k", "4", "--ratios", "0.3"])
    for method in ("normal", "keep_hard"):
        classification_pruning.main(["--data-root", str(root), "--n", "all", "--method", method, "--ratio", "0.3",
                                     "--k", "4", "--repeats", "2", "--max-epochs", "2"])
    written = rows(root)
    assert [r["method"] for r in written] == ["random", "random", "keep_hard", "keep_hard"]
    assert written[0]["n_used"] == written[2]["n_used"] and float(written[0]["fraction_kept"]) < 0.75

    import importlib.util

    from kwsprune.paths import REPO_ROOT

    spec = importlib.util.spec_from_file_location("plot_results", REPO_ROOT / "Plots" / "plot_results.py")
    plot_results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plot_results)
    capsys.readouterr()
    plot_results.main(["--data-root", str(root), "--method", "keep_hard", "--ratio", "0.3", "--k", "4"])
    table = capsys.readouterr().out
    assert "keep_hard" in table and "vs random" in table
    for name in ("accuracy_vs_fraction", "clusters_keep_hard_k4_0.3"):
        assert (root / "Plots" / f"{name}.png").stat().st_size > 10_000
        assert (root / "Plots" / f"{name}.svg").exists()


def test_every_method_has_its_own_colour_and_its_balanced_variant_is_dashed():
    from kwsprune.methods import METHODS
    from kwsprune.plots import method_style

    colours = [method_style(m)["color"] for m in METHODS]
    assert len(set(colours)) == len(METHODS) and method_style("random")["color"] == "black"
    assert method_style("ssp_hard_balanced") == {"color": method_style("ssp_hard")["color"], "linestyle": "--"}

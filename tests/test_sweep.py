"""Steps 4-6 on the demo data: the results store's identities, resuming a killed sweep, the original's CSVs,
chance flags and the plots."""

import csv
import importlib.util
import io
import logging
import shlex

import numpy as np
import pytest

import classification_pruning
import extract_embeddings
import pruning
import run_all_classifications
from kwsprune.chance import verdict, wilson_lower
from kwsprune.outcomes import load_outcomes
from kwsprune.paths import REPO_ROOT
from kwsprune.pruning import PruningSetup, load_kept
from kwsprune.results import RUN_FIELDS
from kwsprune.runs import draw
from kwsprune.validation import InputError

SWEEP = ["--model", "tiny", "--n", "40", "--ratios", "0.3", "--repeats", "2", "--k", "4", "--max-epochs", "2"]


def rows(root):
    with open(root / "results" / "runs.csv") as f:
        return list(csv.DictReader(f))


def sweep(root, *extra):
    run_all_classifications.main(["--data-root", str(root), *SWEEP, *extra])
    return rows(root)


def plot(root, *args):
    spec = importlib.util.spec_from_file_location("plot_results", REPO_ROOT / "Plots" / "plot_results.py")
    plot_results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plot_results)
    plot_results.main(["--data-root", str(root), *args])


def test_draw_is_seeded_sorted_and_can_take_index_0():
    pool = np.arange(5)
    assert draw(pool, "5", seed=0, repeat=0).tolist() == [0, 1, 2, 3, 4]
    assert draw(pool, "2", 0, 1).tolist() == draw(pool, "2", 0, 1).tolist()
    assert draw(np.array([7, 3]), "all", 0, 0).tolist() == [3, 7]
    with pytest.raises(InputError, match="more than the 5 clips kept"):
        draw(pool, "6", 0, 0)


def test_sweep_records_what_each_run_came_from_and_resumes(fresh_features_root):
    root = fresh_features_root
    first = sweep(root)
    assert len(first) == 2 * 3  # repeats x (keep_hard, keep_easy at 0.3, random on the whole set)
    assert list(first[0]) == RUN_FIELDS
    assert {(r["method"], r["ratio"], r["k"]) for r in first} == {("keep_hard", "0.3", "4"), ("keep_easy", "0.3", "4"),
                                                                  ("random", "1.0", "")}
    hard = next(r for r in first if r["method"] == "keep_hard")
    _, kept_id = load_kept(root, PruningSetup(4), "keep_hard", 0.3)
    assert hard["kept"] == kept_id and hard["n_init"] == "10" and hard["prune_seed"] == "0"
    assert (hard["model"], hard["batch_size"], hard["batch_used"], hard["restore_best"]) == ("tiny", "auto", "16", "always")
    assert all(r["n_used"] == "40" and r["n_classes"] == "10" for r in first)
    [history] = (root / "results" / "history").glob("*/history_tiny_prune_40_K4_keep_hard_0.3.csv")
    lines = history.read_text().splitlines()
    assert len(lines) == 2 and lines[0].split(",") == [hard["test_loss"], hard["test_acc"], hard["epochs"]]

    # a kill: the last row cut half-way, and the row before it never written
    text = (root / "results" / "runs.csv").read_text().splitlines(keepends=True)
    (root / "results" / "runs.csv").write_text("".join(text[:-2]) + text[-1][:20])
    resumed = sweep(root)
    assert len(resumed) == 6 and resumed[:4] == first[:4]
    key = lambda r: (r["method"], r["repeat"])  # noqa: E731
    for again, before in zip(sorted(resumed, key=key), sorted(first, key=key)):
        assert again["test_acc"] == before["test_acc"] and again["epochs"] == before["epochs"]
        assert abs(float(again["test_loss"]) - float(before["test_loss"])) < 1e-4
    assert len(sweep(root)) == 6  # nothing left to do, nothing duplicated


def test_new_embeddings_train_again_and_set_the_old_rows_aside(fresh_features_root, caplog, capsys):
    root = fresh_features_root
    before = sweep(root)
    extract_embeddings.main(["--data-root", str(root), "--model", "speech-embedding", "--pooling", "flatten"])
    caplog.set_level(logging.INFO)
    after = sweep(root)
    assert len(after) == 6 + 4  # the pruned runs again; random on the whole set did not change
    assert "4 rows set aside (4 trained on kept sets of older embeddings)" in caplog.text
    assert "4 runs to train, 2 already in" in caplog.text
    new = [r for r in after[6:]]
    assert {r["features"] for r in new} != {r["features"] for r in before if r["features"]}
    capsys.readouterr()
    plot(root, "--k", "4")
    table = capsys.readouterr().out
    # only the current rows are summarised: keep_hard once in the table of means, once in the verdicts
    assert "4 rows set aside" in table and table.count("keep_hard") == 2
    plot(root, "--k", "4", "--include-set-aside")
    assert capsys.readouterr().out.count("keep_hard") == 4  # two studies, one per embeddings


def test_each_seed_trains_on_its_own_kept_sets(fresh_features_root):
    root = fresh_features_root
    sweep(root, "--methods", "random", "--n", "all", "--repeats", "1")
    seeded = sweep(root, "--methods", "random", "--n", "all", "--repeats", "1", "--seed", "1")
    by_seed = {r["seed"]: r for r in seeded}
    assert by_seed["1"]["prune_seed"] == "1" and (root / "y_pruned" / "k4_ninit10_seed1").is_dir()
    assert by_seed["1"]["kept"] == load_kept(root, PruningSetup(4, seed=1), "random", 0.3)[1] != by_seed["0"]["kept"]


def test_the_recipe_flags_are_recorded_and_change_the_runs(fresh_features_root):
    root = fresh_features_root
    base = sweep(root, "--methods", "random", "--repeats", "1")
    original = sweep(root, "--methods", "random", "--repeats", "1", "--recipe", "original")[-1]
    assert (original["batch_size"], original["batch_used"], original["restore_best"]) == ("512", "512", "on-stop")
    slow = sweep(root, "--methods", "random", "--repeats", "1", "--learning-rate", "0.001")[-1]
    smallest = sweep(root, "--methods", "random", "--repeats", "1", "--model", "smallest")[-1]
    assert slow["learning_rate"] == "0.001" and smallest["model"] == "smallest"
    assert len({r["test_loss"] for r in (base[0], original, slow, smallest)}) == 4
    assert len(list((root / "results" / "history").iterdir())) == 4  # a folder per recipe: never mixed
    [smallest_history] = (root / "results" / "history").glob("*/history_smallest_prune_40_random_1.0.csv")
    assert len(smallest_history.read_text().splitlines()) == 1


def test_a_k_scan_under_the_originals_names(fresh_features_root):
    root = fresh_features_root
    written = sweep(root, "--k", "4", "5", "--original-names", "--repeats", "1")
    assert len(written) == 2 * 2 + 1  # keep_hard, keep_easy per k; random on the whole set once for both
    results = root / "results"
    for k in (4, 5):
        for original in ("simple_0.3", "hard_0.3", "normal_1.0"):
            with open(results / f"history_tiny_prune_40_K{k}_{original}.csv") as f:
                [[loss, accuracy, epochs]] = list(csv.reader(f))  # three columns, no header, as the original wrote
            assert float(loss) > 0 and 0 <= float(accuracy) <= 1 and int(epochs) == 2
    assert (root / "y_pruned" / "y_simple_pruning_FULL_k5_0.3.npy").exists()


def test_a_chance_level_configuration_is_flagged():
    # 10 classes, 300 test clips: 0.12 is chance; 0.6 is clearly above; one dead run of three shows
    assert wilson_lower(30, 100) == pytest.approx(0.2189, abs=1e-4)
    assert verdict([0.12, 0.10, 0.14], 300, 0.1) == "CHANCE"
    assert verdict([0.60, 0.65, 0.58], 300, 0.1) == ""
    assert verdict([0.60, 0.65, 0.11], 300, 0.1) == "1/3 runs at chance"
    assert verdict([0.25], 300, 0.1) == ""  # 0.19 is the bar: chance + a tenth of the way to 1, surely exceeded
    assert verdict([0.21], 300, 0.1) == "CHANCE"


def test_the_table_and_the_sweep_mark_runs_at_chance(fresh_features_root, caplog, capsys):
    root = fresh_features_root
    caplog.set_level(logging.WARNING)
    sweep(root, "--max-epochs", "1", "--methods", "random", "--recipe", "original")
    assert "random ratio 1.0 N 40: not clearly above chance" in caplog.text
    assert "an epoch of 40 clips is 1 step(s) at batch 512" in caplog.text
    capsys.readouterr()
    plot(root, "--k", "4")
    [line] = [line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("40")]
    assert line.endswith("CHANCE")


def test_one_configuration_the_whole_set_and_the_plots(fresh_features_root, capsys):
    root = fresh_features_root
    with pytest.raises(SystemExit):  # the pruning for k = 4 was never run: the error says the command that makes it
        classification_pruning.main(["--data-root", str(root), "--n", "all", "--method", "keep_hard", "--k", "4"])
    suggested = shlex.split(capsys.readouterr().err.strip().split("run python pruning.py ")[1])
    assert suggested == ["--data-root", str(root), "--k", "4", "--n-init", "10", "--seed", "0", "--methods", "keep_hard",
                         "--ratios", "0.2"]
    pruning.main(suggested)
    pruning.main([*suggested[:-4], "--methods", "random", "--ratios", "0.2"])
    train = ["--data-root", str(root), "--model", "tiny", "--n", "all", "--k", "4", "--repeats", "2", "--max-epochs", "2"]
    classification_pruning.main([*train, "--method", "keep_hard", "--ratio", "0.2"])
    classification_pruning.main([*train, "--method", "normal", "--ratio", "0.2"])
    classification_pruning.main([*train, "--method", "random", "--ratio", "1.0"])  # the whole training set
    written = rows(root)
    assert [r["method"] for r in written] == ["keep_hard"] * 2 + ["random"] * 4
    assert written[0]["n_used"] == written[2]["n_used"] and float(written[0]["fraction_kept"]) < 0.85
    assert written[4]["fraction_kept"] == "1.0" and written[4]["kept"] == "all"
    classification_pruning.main([*train, "--method", "random", "--ratio", "1.0"])
    assert len(rows(root)) == 6  # already there: not trained twice

    capsys.readouterr()
    plot(root, "--k", "4", "--ratio", "0.2")
    table = capsys.readouterr().out
    assert "keep_hard" in table and "vs random" in table and "skipped" not in table
    for name in ("accuracy_vs_fraction", "clusters_keep_hard_k4_0.2"):
        assert (root / "Plots" / f"{name}.png").stat().st_size > 10_000
        assert (root / "Plots" / f"{name}.svg").exists()
    plot(root, "--k", "4")  # the cluster picture's default ratio, 0.3, was never pruned: the rest is drawn
    table = capsys.readouterr().out
    assert "skipped the cluster picture of keep_hard at ratio 0.3" in table and "run python pruning.py --data-root" in table
    assert "keep_hard" in table


def test_an_older_runs_csv_is_upgraded_only_when_asked_then_kept_and_set_aside(fresh_features_root, caplog, capsys):
    root = fresh_features_root
    (root / "results").mkdir()
    old_header = "method,ratio,k,n,repeat,seed,engine,batch_size,max_epochs,data,n_used,fraction_kept,test_loss,test_acc,epochs"
    old = f"{old_header}\nkeep_hard,0.3,4,40,0,0,torch,512,2,abcdef012345,40,0.7,2.3,0.1,2\n"
    (root / "results" / "runs.csv").write_text(old)
    with pytest.raises(SystemExit):
        sweep(root, "--methods", "keep_hard", "--repeats", "1")
    message = capsys.readouterr().err
    assert "written by an older kwsprune" in message and "--upgrade-store" in message
    assert (root / "results" / "runs.csv").read_text() == old  # refused, never rewritten
    run_all_classifications.main(["--data-root", str(root), "--upgrade-store"])
    assert "1 rows moved to the current columns" in capsys.readouterr().out
    assert (root / "results" / "runs.csv.before-upgrade").read_text() == old
    caplog.set_level(logging.INFO)
    written = sweep(root, "--methods", "keep_hard", "--repeats", "1")
    assert "1 rows set aside (1 written by an older kwsprune" in caplog.text
    assert len(written) == 2 and written[0]["method"] == "keep_hard" and written[0]["kept"] == ""
    assert (written[0]["model"], written[0]["batch_used"]) == ("tiny", "512")  # what the older kwsprune trained
    (root / "results" / "runs.csv").write_text("who,what\n1,2\n")
    with pytest.raises(SystemExit):
        sweep(root)


def test_the_every_model_trains_in_the_sweep(fresh_features_root):
    root = fresh_features_root
    for model in ("smallest", "lenet"):
        [row] = sweep(root, "--methods", "random", "--repeats", "1", "--model", model)[-1:]
        assert row["model"] == model and row["epochs"] == "2"


def test_the_methods_of_a_figure_have_colours_told_apart_and_a_balanced_variant_is_dashed():
    import matplotlib.pyplot as plt

    from kwsprune.methods import FAMILIES, METHODS
    from kwsprune.plots import figure_colours, method_style

    family = [{"method": m} for m in (*FAMILIES["uncertainty"], "entropy_balanced", "random")]
    colours = figure_colours(family)
    assert len(set(colours.values())) == len(colours) and colours["random"] == "black"
    assert plt.get_cmap("tab10").colors[7] not in colours.values()  # grey is the chance line's
    assert method_style("entropy_balanced", colours) == {"color": colours["entropy"], "linestyle": "--"}
    every = figure_colours([{"method": m} for m in METHODS])
    assert len(set(every.values())) == len(METHODS)


def test_a_study_of_many_methods_is_drawn_one_family_a_figure_with_random_in_each():
    from kwsprune.plots import MAX_METHODS_PER_FIGURE, _by_family

    few = [{"method": m} for m in ("keep_hard", "ssp_hard_balanced", "random")]
    assert _by_family(few) == [("", few)]
    many = [{"method": m} for m in ("keep_hard", "keep_easy", "ssp_hard", "kcenter", "herding", "el2n", "grand",
                                    "margin", "craig", "glister_balanced", "random")]
    assert len({r["method"] for r in many}) - 1 > MAX_METHODS_PER_FIGURE
    parts = dict(_by_family(many))
    assert list(parts) == ["original", "geometry", "training dynamics", "uncertainty", "gradients"]
    assert [r["method"] for r in parts["gradients"]] == ["craig", "glister_balanced", "random"]
    assert all(parts[family][-1]["method"] == "random" for family in parts)


def test_the_default_instrument_is_a_head_on_frozen_embeddings(fresh_features_root, capsys):
    """Without --model, a logistic-regression head is fitted on the embeddings of the kept clips and tested on the
    test split's; its rows say so, the CNN's rows stay apart, and a training flag a head never reads is refused."""
    root = fresh_features_root
    head_sweep = ["--data-root", str(root), "--n", "40", "--ratios", "0.3", "--repeats", "2", "--k", "4"]
    run_all_classifications.main([*head_sweep, "--methods", "keep_hard", "random"])
    found = rows(root)
    assert {r["model"] for r in found} == {"logreg"} and {r["recipe"] for r in found} == {"penalty=1.0"}
    chance = float(found[0]["chance"])
    assert all(float(r["test_acc"]) > 2 * chance for r in found)  # the demo's 10 words are easy for a head
    tiny = sweep(root, "--methods", "keep_hard", "random")  # the CNN's rows beside them, not mixed up
    assert {r["model"] for r in tiny} == {"logreg", "tiny"} and len(tiny) == 2 * len(found)
    assert {r["data"] for r in tiny if r["model"] == "tiny"}.isdisjoint({r["data"] for r in found})
    capsys.readouterr()
    with pytest.raises(SystemExit):
        run_all_classifications.main([*head_sweep, "--max-epochs", "2"])
    message = capsys.readouterr().err.strip().splitlines()
    assert len(message) == 1 and "--max-epochs does nothing to --model logreg" in message[0]
    assert "--model tiny" in message[0] and len(rows(root)) == len(tiny)
    with pytest.raises(SystemExit):
        run_all_classifications.main([*head_sweep, "--recipe", "original"])  # the original's recipe is a CNN's
    assert "--recipe original trains networks" in capsys.readouterr().err


def test_a_model_whose_inputs_are_not_made_is_refused_with_the_command_that_makes_them(fresh_features_root, capsys):
    with pytest.raises(SystemExit) as exit_info:
        sweep(fresh_features_root, "--model", "bc-resnet-1", "--methods", "random", "--max-epochs", "10")
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and "extract_mfccs.py --features logmel --nfilt 40" in message


def test_rows_written_before_the_recipe_column_keep_their_values_and_gain_it(fresh_features_root, capsys):
    root = fresh_features_root
    sweep(root, "--methods", "random")
    path = root / "results" / "runs.csv"
    later = ("recipe", "outcomes")  # the columns added since
    with open(path) as f:
        old = [{k: v for k, v in r.items() if k not in later} for r in csv.DictReader(f)]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, [field for field in RUN_FIELDS if field not in later], lineterminator="\n")
        writer.writeheader()
        writer.writerows(old)
    run_all_classifications.main(["--data-root", str(root), "--upgrade-store"])
    assert "recipe column added" in capsys.readouterr().out
    again = sweep(root, "--methods", "random")  # nothing trains again: the rows are the same runs
    assert [{k: v for k, v in r.items() if k not in later} for r in again] == old
    assert {r["outcomes"] for r in again} == {""}  # their per-clip outcomes were never kept


def test_every_run_keeps_the_class_it_gave_each_test_clip(fresh_features_root):
    """A row names its run's per-test-clip outcomes by their sha256, so two runs on one test set pair clip by clip;
    an altered, missing or misnamed outcomes file is refused in one line, never read."""
    root, results = fresh_features_root, fresh_features_root / "results"
    found = sweep(root, "--methods", "keep_hard", "random")
    y_test = np.load(root / "Dataset_as_Numpy" / "test_y.npy")
    right = np.stack([load_outcomes(results, row) == y_test for row in found])  # (runs, test clips), paired by clip
    assert right.shape == (len(found), len(y_test))
    assert np.allclose(right.mean(axis=1), [float(row["test_acc"]) for row in found], atol=1e-5)
    path = results / "outcomes" / f"{found[0]['outcomes']}.npy"
    saved = path.read_bytes()
    np.save(path, (load_outcomes(results, found[0]) + 1) % 10)  # another run's guesses in its place
    with pytest.raises(InputError, match="is not what its row recorded"):
        load_outcomes(results, found[0])
    path.unlink()
    with pytest.raises(InputError, match="cannot be read"):
        load_outcomes(results, found[0])
    path.write_bytes(saved)
    with pytest.raises(InputError, match="is not a sha256"):
        load_outcomes(results, {**found[0], "outcomes": "../../" + found[0]["outcomes"]})
    with pytest.raises(InputError, match="not a whole number"):
        load_outcomes(results, {**found[0], "n_test": "x"})
    assert (load_outcomes(results, found[0]) == np.load(io.BytesIO(saved))).all()

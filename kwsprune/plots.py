"""Step 6: figures and the summary table from results/runs.csv.

Rows set aside by the results store (trained on inputs that are no longer the current ones) are left out
unless asked for; each study (one recipe on one dataset with one pruning set-up) gets its own figures and
table section, so that recipes never mix. Configurations whose accuracy is not clearly above chance
(kwsprune.chance) are drawn with open markers and flagged in the table.
"""

import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from kwsprune.chance import verdict  # noqa: E402
from kwsprune.methods import BALANCED, METHODS, method_name  # noqa: E402
from kwsprune.paths import PLOTS_DIR, RESULTS_DIR, RUNS_FILE, clusters_file, format_ratio, step_dir  # noqa: E402
from kwsprune.results import (current_inputs, describe_set_aside, describe_study, read_runs, set_aside,  # noqa: E402
                              studies, study_id)
from kwsprune.runs import run_for  # noqa: E402
from kwsprune.validation import InputError  # noqa: E402

log = logging.getLogger(__name__)


def mean_ci(values) -> tuple[float, float]:
    """Mean and half-width of its 95% t confidence interval (0 for a single value)."""
    values = np.asarray(values, float)
    if len(values) < 2:
        return float(values.mean()), 0.0
    return float(values.mean()), float(stats.t.ppf(0.975, len(values) - 1) * stats.sem(values))


def paired_p(values, baseline) -> float:
    """p of a paired t-test; nan with fewer than three pairs (one degree of freedom makes any p possible) or when
    every difference is the same."""
    differences = np.subtract(values, baseline)
    if len(differences) < 3 or np.ptp(differences) == 0:
        return float("nan")
    return float(stats.ttest_rel(values, baseline).pvalue)


def line_of(row, by_ratio: bool = True) -> tuple:
    """The line a row belongs to: (method, ratio or None, k)."""
    return row["method"], row["ratio"] if by_ratio else None, row["k"]


def group(rows, key, by_ratio: bool = True) -> dict:
    """{(method, ratio, k): {x: [rows]}} with x = key(row); ratio is None when by_ratio is False."""
    out: dict = {}
    for row in rows:
        out.setdefault(line_of(row, by_ratio), {}).setdefault(key(row), []).append(row)
    return out


def flag_of(rows) -> str:
    """kwsprune.chance's verdict on a configuration's rows ('' where rows do not record their test split)."""
    if not all(row["n_test"] and row["chance"] for row in rows):
        return ""
    return verdict([float(row["test_acc"]) for row in rows], int(rows[0]["n_test"]), float(rows[0]["chance"]))


def method_style(method: str) -> dict:
    """Line style of a method: one colour per registered method (random in black), dashed when class-balanced."""
    base = method.removesuffix(BALANCED)
    palette = plt.get_cmap("tab10").colors + plt.get_cmap("tab20").colors[1::2]  # 20 distinct colours
    others = [m for m in METHODS if m != "random"]
    colour = "black" if base == "random" else palette[(others.index(base) if base in others else len(others)) % len(palette)]
    return {"color": colour, "linestyle": "--" if method.endswith(BALANCED) else "-"}


def _save(fig, folder, name):
    for suffix in ("png", "svg"):
        fig.savefig(folder / f"{name}.{suffix}", dpi=120, bbox_inches="tight")
    plt.close(fig)


def _label(method, ratio, k, view, several_k) -> str:
    label = method if view == "fraction" or k == "" else f"{method} (ratio {ratio})"
    return label + (f", k {k}" if several_k and k else "")


def plot_curves(rows, folder, suffix: str = "", title: str = "") -> list[str]:
    """Accuracy and loss against N (equal-N runs) and against the fraction kept (runs with n = all); returns
    the names of the figures written."""
    views = [("n", [r for r in rows if r["n"] != "all"], lambda r: int(r["n"]), "training clips N"),
             ("fraction", [r for r in rows if r["n"] == "all"], lambda r: float(r["fraction_kept"]), "fraction of training set kept")]
    several_k = len({r["k"] for r in rows if r["k"]}) > 1
    written = []
    for view, view_rows, key, xlabel in views:
        if not view_rows:
            continue
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        # against N, a line per method and ratio (a marker per ratio); against the fraction kept, the ratios
        # are the line's points
        lines = sorted(group(view_rows, key, by_ratio=view == "n").items(), key=str)
        markers = dict(zip(sorted({ratio for (_, ratio, _), _ in lines}, key=str), "osD^v<>pP*X"))
        for (method, ratio, k), by_x in lines:
            xs = sorted(by_x)
            style = method_style(method)
            label = _label(method, ratio, k, view, several_k)
            for ax, metric, top in zip(axes, ("test_acc", "test_loss"), (1.0, np.inf)):
                means, halves = zip(*(mean_ci([float(r[metric]) for r in by_x[x]]) for x in xs))
                ax.plot(xs, means, label=label, **style)
                at_chance = np.array([flag_of(by_x[x]) == "CHANCE" for x in xs])
                marker = markers.get(ratio, "o")
                ax.scatter(np.array(xs)[~at_chance], np.array(means)[~at_chance], marker=marker, color=style["color"], s=24)
                ax.scatter(np.array(xs)[at_chance], np.array(means)[at_chance], marker=marker, facecolors="white",
                           edgecolors=style["color"], s=30, zorder=3)
                ax.fill_between(xs, np.clip(np.subtract(means, halves), 0, top), np.clip(np.add(means, halves), 0, top),
                                color=style["color"], alpha=0.12)
        chances = {float(r["chance"]) for r in view_rows if r["chance"]}
        if chances:
            axes[0].axhline(max(chances), color="grey", linestyle=":", linewidth=1, label="chance (open markers: not clearly above it)")
        for ax, ylabel in zip(axes, ("test accuracy", "test loss")):
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        handles = {label: handle for ax in axes for handle, label in zip(*ax.get_legend_handles_labels())}
        axes[1].legend(handles.values(), handles.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
        fig.suptitle(f"mean over repeats, 95% confidence band\n{title}", fontsize=9)
        _save(fig, folder, f"accuracy_vs_{view}{suffix}")
        written.append(f"accuracy_vs_{view}{suffix}")
    return written


def _random_baseline(ratio: str, k: str, n: str) -> tuple[str, str]:
    """(ratio, k) of the random runs a configuration is compared with."""
    run = run_for("random", float(ratio), int(k) if k else None, n, 0)
    return format_ratio(run.ratio), "" if run.k is None else str(run.k)


def summary_table(rows) -> str:
    """Per N: each method's mean accuracy and standard deviation, its difference to random, a paired t-test over
    repeats, and a flag where the result is not clearly above chance."""
    lines = [f"{'N':>6s} {'method':>30s} {'ratio':>6s} {'k':>4s} {'runs':>5s} {'mean acc':>9s} {'sd':>7s} "
             f"{'vs random':>10s} {'p (paired)':>11s}  flag"]
    by_n: dict = {}
    for row in rows:
        by_n.setdefault(row["n"], []).append(row)
    for n in sorted(by_n, key=lambda v: (v == "all", int(v) if v != "all" else 0)):
        configs = group(by_n[n], lambda r: int(r["repeat"]))
        # the random baseline of a configuration: the run random makes of the same ratio, k and N (kwsprune.runs)
        random_acc = {(ratio, k): {rep: float(rs[0]["test_acc"]) for rep, rs in by_repeat.items()}
                      for (method, ratio, k), by_repeat in configs.items() if method == "random"}
        for (method, ratio, k), by_repeat in sorted(configs.items()):
            acc = {rep: float(rs[0]["test_acc"]) for rep, rs in by_repeat.items()}
            values = list(acc.values())
            sd = np.std(values, ddof=1) if len(values) > 1 else 0.0
            line = f"{n:>6s} {method:>30s} {ratio:>6s} {k or '-':>4s} {len(acc):5d} {np.mean(values):9.4f} {sd:7.4f}"
            baseline = random_acc.get(_random_baseline(ratio, k, n))
            if method != "random" and baseline:
                paired = sorted(set(acc) & set(baseline))
                diff = np.mean([acc[r] - baseline[r] for r in paired]) if paired else float("nan")
                p = paired_p([acc[r] for r in paired], [baseline[r] for r in paired])
                line += f" {diff:+10.4f} {p:11.3g}"
            else:
                line += f" {'':>10s} {'':>11s}"
            lines.append(f"{line}  {flag_of([rs[0] for rs in by_repeat.values()])}".rstrip())
    return "\n".join(lines)


def plot_clusters(data_root, method: str, ratio: float, setup, folder) -> str | None:
    """Training clips in 2-D (PCA of the standardised embeddings) by k-means cluster, pruned clips marked; returns
    why it was skipped, or None when drawn."""
    from sklearn.decomposition import PCA

    from kwsprune.embedding_scores import standardise_clips
    from kwsprune.embeddings import load_features
    from kwsprune.pruning import load_kept

    try:
        method = method_name(method)
        kept, _ = load_kept(data_root, setup, method, ratio)
        features = load_features(data_root)
    except InputError as err:
        return f"the cluster picture of {method} at ratio {ratio}: {err}"
    clusters = np.load(setup.folder(data_root) / clusters_file(setup.k))
    rows = np.sort(np.random.default_rng(0).choice(len(features), size=min(len(features), 5000), replace=False))
    points = PCA(n_components=2, random_state=0).fit_transform(standardise_clips(features[rows]))
    pruned = ~np.isin(rows, kept)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter(points[~pruned, 0], points[~pruned, 1], c=clusters[rows][~pruned], s=4, cmap="viridis", label="kept")
    ax.scatter(points[pruned, 0], points[pruned, 1], c="red", marker="x", s=8, label="pruned")
    ax.set_title(f"{method}, ratio {ratio}, k = {setup.k} (PCA of the embeddings)")
    ax.legend(fontsize=8)
    _save(fig, folder, f"clusters_{method}_k{setup.k}_{ratio}")
    return None


def plot_results(data_root, method: str = "keep_hard", ratio: float = 0.3, setup=None,
                 include_set_aside: bool = False) -> str:
    """Step 6: every figure into Plots/ under data_root; returns the summary table, with what was skipped."""
    from kwsprune.pruning import PruningSetup

    runs_path = step_dir(data_root, RESULTS_DIR) / RUNS_FILE
    rows = read_runs(step_dir(data_root, RESULTS_DIR))
    if not rows:
        raise InputError(f"{runs_path} has no runs: run run_all_classifications.py first")
    current = current_inputs(data_root)
    if current.data is None:
        log.warning("no current MFCCs under %s: the rows are not checked against the data", data_root)
    shown, reasons = (rows, None) if include_set_aside else set_aside(rows, current)
    note = describe_set_aside(reasons, runs_path) if reasons else None
    if note:
        log.warning("%s; --include-set-aside shows them", note)
    if not shown:
        raise InputError(f"every row of {runs_path} is set aside ({note}): run run_all_classifications.py on the "
                         "current data, or pass --include-set-aside")
    folder = step_dir(data_root, PLOTS_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    by_study = studies(shown)
    sections = []
    for key, members in sorted(by_study.items()):
        suffix = "" if len(by_study) == 1 else f"_{study_id(key)}"
        figures = plot_curves(members, folder, suffix, describe_study(key))
        sections.append(f"study {study_id(key)}: {describe_study(key)}\nfigures: {', '.join(figures) or 'none'}\n"
                        f"{summary_table(members)}")
    skipped = plot_clusters(data_root, method, ratio, setup or PruningSetup(), folder)
    if skipped:
        sections.append(f"skipped {skipped}")
    if note:
        sections.append(f"{note}; --include-set-aside shows them")
    return "\n\n".join(sections)

"""Step 6: figures and the summary table from results/runs.csv."""

import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from kwsprune.classify import read_runs  # noqa: E402
from kwsprune.methods import BALANCED, METHODS, method_name  # noqa: E402
from kwsprune.paths import PLOTS_DIR, PRUNED_DIR, RESULTS_DIR, step_dir  # noqa: E402
from kwsprune.validation import InputError  # noqa: E402

log = logging.getLogger(__name__)


def mean_ci(values) -> tuple[float, float]:
    """Mean and half-width of its 95% t confidence interval (0 for a single value)."""
    values = np.asarray(values, float)
    if len(values) < 2:
        return float(values.mean()), 0.0
    return float(values.mean()), float(stats.t.ppf(0.975, len(values) - 1) * stats.sem(values))


def group(rows, key, by_ratio: bool = True) -> dict:
    """{(method, ratio): {x: [rows]}} with x = key(row); ratio is None when by_ratio is False."""
    out: dict = {}
    for row in rows:
        line = (row["method"], row["ratio"] if by_ratio else None)
        out.setdefault(line, {}).setdefault(key(row), []).append(row)
    return out


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


def plot_curves(rows, folder) -> None:
    """Accuracy and loss against N (equal-N runs) and against the fraction kept (runs with n = all)."""
    views = [("n", [r for r in rows if r["n"] != "all"], lambda r: int(r["n"]), "training clips N"),
             ("fraction", [r for r in rows if r["n"] == "all"], lambda r: float(r["fraction_kept"]), "fraction of training set kept")]
    for name, view_rows, key, xlabel in views:
        if not view_rows:
            continue
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        # against N, a line per method and ratio (a marker per ratio); against the fraction kept, the ratios
        # are the line's points
        lines = sorted(group(view_rows, key, by_ratio=name == "n").items(), key=str)
        markers = dict(zip(sorted({ratio for (_, ratio), _ in lines}, key=str), "osD^v<>pP*X"))
        for (method, ratio), by_x in lines:
            xs = sorted(by_x)
            for ax, metric, top in zip(axes, ("test_acc", "test_loss"), (1.0, np.inf)):
                means, halves = zip(*(mean_ci([float(r[metric]) for r in by_x[x]]) for x in xs))
                label = method if name == "fraction" or method == "random" else f"{method} (ratio {ratio})"
                style = method_style(method)
                ax.plot(xs, means, marker=markers.get(ratio, "o"), label=label, **style)
                ax.fill_between(xs, np.clip(np.subtract(means, halves), 0, top), np.clip(np.add(means, halves), 0, top),
                                color=style["color"], alpha=0.12)
        for ax, ylabel in zip(axes, ("test accuracy", "test loss")):
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))  # beside the plots, not over them
        fig.suptitle("mean over repeats, 95% confidence band")
        _save(fig, folder, f"accuracy_vs_{name}")


def summary_table(rows) -> str:
    """Per N: each method's mean accuracy and standard deviation, its difference to random and a paired t-test
    over repeats."""
    lines = [f"{'N':>6s} {'method':>30s} {'ratio':>6s} {'runs':>5s} {'mean acc':>9s} {'sd':>7s} {'vs random':>10s}"
             f" {'p (paired)':>11s}"]
    by_n: dict = {}
    for row in rows:
        by_n.setdefault(row["n"], []).append(row)
    for n in sorted(by_n, key=lambda v: (v == "all", int(v) if v != "all" else 0)):
        configs = group(by_n[n], lambda r: int(r["repeat"]))
        # random baseline: the same ratio for n = all; the whole training set (ratio 1.0) for a number N
        random_acc = {ratio: {rep: float(rs[0]["test_acc"]) for rep, rs in by_repeat.items()}
                      for (method, ratio), by_repeat in configs.items() if method == "random"}
        for (method, ratio), by_repeat in sorted(configs.items()):
            acc = {rep: float(rs[0]["test_acc"]) for rep, rs in by_repeat.items()}
            values = list(acc.values())
            sd = np.std(values, ddof=1) if len(values) > 1 else 0.0
            line = f"{n:>6s} {method:>30s} {ratio:>6s} {len(acc):5d} {np.mean(values):9.4f} {sd:7.4f}"
            baseline = random_acc.get(ratio if n == "all" else "1.0")
            if method != "random" and baseline:
                paired = sorted(set(acc) & set(baseline))
                diff = np.mean([acc[r] - baseline[r] for r in paired]) if paired else float("nan")
                p = stats.ttest_rel([acc[r] for r in paired], [baseline[r] for r in paired]).pvalue if len(paired) > 1 else float("nan")
                line += f" {diff:+10.4f} {p:11.3g}"
            lines.append(line)
    return "\n".join(lines)


def plot_clusters(data_root, method: str, ratio: float, k: int, folder) -> bool:
    """Training clips in 2-D (PCA of the standardised embeddings) by k-means cluster; pruned clips marked."""
    from sklearn.decomposition import PCA

    from kwsprune.embeddings import load_features
    from kwsprune.embedding_scores import standardise_clips
    from kwsprune.pruning import load_kept

    pruned_dir = step_dir(data_root, PRUNED_DIR)
    if not (pruned_dir / f"clusters_k{k}.npy").exists():
        log.warning("no %s: skipping the cluster picture (run pruning.py --k %d)", pruned_dir / f"clusters_k{k}.npy", k)
        return False
    method = method_name(method)
    kept = load_kept(data_root, method, k, ratio)
    clusters = np.load(pruned_dir / f"clusters_k{k}.npy")
    features = load_features(data_root)
    rows = np.random.default_rng(0).choice(len(features), size=min(len(features), 5000), replace=False)
    points = PCA(n_components=2, random_state=0).fit_transform(standardise_clips(features[np.sort(rows)]))
    rows = np.sort(rows)
    pruned = ~np.isin(rows, kept)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter(points[~pruned, 0], points[~pruned, 1], c=clusters[rows][~pruned], s=4, cmap="viridis", label="kept")
    ax.scatter(points[pruned, 0], points[pruned, 1], c="red", marker="x", s=8, label="pruned")
    ax.set_title(f"{method}, ratio {ratio}, k = {k} (PCA of the embeddings)")
    ax.legend(fontsize=8)
    _save(fig, folder, f"clusters_{method}_k{k}_{ratio}")
    return True


def plot_results(data_root, method: str = "keep_hard", ratio: float = 0.3, k: int = 10) -> str:
    """Step 6: every figure into Plots/ under data_root; returns the summary table."""
    rows = read_runs(step_dir(data_root, RESULTS_DIR))
    if not rows:
        raise InputError(f"{step_dir(data_root, RESULTS_DIR) / 'runs.csv'} has no runs: run run_all_classifications.py first")
    folder = step_dir(data_root, PLOTS_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    plot_curves(rows, folder)
    plot_clusters(data_root, method, ratio, k, folder)
    return summary_table(rows)

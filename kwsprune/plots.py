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

from kwsprune.artefacts import check_writable, load_verified, write_text  # noqa: E402
from kwsprune.chance import verdict  # noqa: E402
from kwsprune.methods import BALANCED, FAMILIES, method_name  # noqa: E402
from kwsprune.paths import PLOTS_DIR, RESULTS_DIR, RUNS_FILE, clusters_file, format_ratio, step_dir  # noqa: E402
from kwsprune.results import (WHOLE_SET, current_inputs, describe_set_aside, describe_study, read_runs,  # noqa: E402
                              set_aside, studies, study_id)
from kwsprune.runs import run_for  # noqa: E402
from kwsprune.sequential import BETTER, EQUIVALENT, OPEN, SLIGHTLY_BETTER, SLIGHTLY_WORSE, UNDECIDED, WORSE  # noqa: E402
from kwsprune.study import generalises_to, read_ledger, register, shares  # noqa: E402
from kwsprune.validation import InputError  # noqa: E402
from kwsprune.verdicts import coverage_note, evidence, format_table, judge, paired, verdict_text  # noqa: E402

log = logging.getLogger(__name__)
REPORT_FILE = "report.md"  # under Plots/: the verdict tables and the figures, per study


def mean_ci(values) -> tuple[float, float]:
    """Mean and half-width of its 95% t confidence interval (0 for a single value)."""
    values = np.asarray(values, float)
    if len(values) < 2:
        return float(values.mean()), 0.0
    return float(values.mean()), float(stats.t.ppf(0.975, len(values) - 1) * stats.sem(values))


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


def figure_colours(rows) -> dict[str, tuple | str]:
    """A colour per method drawn in one figure, each told apart from the others: up to nine take tab10's distinct
    colours less its grey (the chance line's), in the order of their names; more take a 40-colour palette. Random is
    black, and a method's class-balanced variant shares its colour."""
    bases = sorted({r["method"].removesuffix(BALANCED) for r in rows} - {"random"})
    distinct = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 7]
    # 40 colours: tab10, its light shades, then tab20b's four shades of five hues
    palette = distinct if len(bases) <= len(distinct) else (
        plt.get_cmap("tab10").colors + plt.get_cmap("tab20").colors[1::2] + plt.get_cmap("tab20b").colors)
    return {"random": "black"} | {base: palette[i % len(palette)] for i, base in enumerate(bases)}


def method_style(method: str, colours: dict) -> dict:
    """Line style of a method in a figure of figure_colours: its colour, dashed when class-balanced."""
    return {"color": colours[method.removesuffix(BALANCED)], "linestyle": "--" if method.endswith(BALANCED) else "-"}


def _save(fig, folder, name):
    for suffix in ("png", "svg"):
        fig.savefig(folder / f"{name}.{suffix}", dpi=120, bbox_inches="tight")
    plt.close(fig)


VERDICT_COLOURS = {BETTER: "tab:green", SLIGHTLY_BETTER: "yellowgreen", EQUIVALENT: "tab:blue", WORSE: "tab:red",
                   SLIGHTLY_WORSE: "lightcoral", OPEN: "grey", UNDECIDED: "grey"}
VERDICT_MARKERS = {BETTER: "^", SLIGHTLY_BETTER: "^", EQUIVALENT: "s", WORSE: "v", SLIGHTLY_WORSE: "v", OPEN: "o",
                   UNDECIDED: "o"}
RANDOM_MARKER = "*"


def _label(method, ratio, k, view, several_k) -> str:
    label = method if view == "fraction" or k == "" else f"{method} (ratio {ratio})"
    return label + (f", k {k}" if several_k and k else "")


def _fraction_asked(row) -> float:
    """The fraction of the training set a row's kept set was asked to hold: 1 - ratio (1.0 on the whole set)."""
    return 1.0 if row["kept"] == WHOLE_SET else round(1 - float(row["ratio"]), 6)


def _marker(method, ratio, k, n, verdicts) -> str:
    return RANDOM_MARKER if method == "random" else VERDICT_MARKERS.get(verdicts.get((method, ratio, k, n)), "o")


def _verdict_legend() -> list:
    """Legend entries for the verdict markers, after the methods'."""
    from matplotlib.lines import Line2D

    entries = [(RANDOM_MARKER, "random (the baseline)"), ("^", "better than random"), ("v", "worse than random"),
               ("s", "equivalent to random"), ("o", "open / undecided"), ("o_", "not clearly above chance")]
    return [Line2D([], [], marker=m.rstrip("_"), linestyle="", color="black", markerfacecolor="white" if m.endswith("_")
                   else "black", label=label) for m, label in entries]


def plot_curves(rows, folder, suffix: str = "", title: str = "", verdicts: dict | None = None) -> list[str]:
    """Accuracy and loss against N (equal-N runs) and against the fraction of the training set kept (runs with
    n = all, on a fixed 0-1 axis), a marker per point by its verdict against random; where a view has one N or one
    fraction, the methods side by side instead. Returns the names of the figures written."""
    verdicts = verdicts or {}
    views = [("n", [r for r in rows if r["n"] != "all"], lambda r: int(r["n"]), "training clips N"),
             ("fraction", [r for r in rows if r["n"] == "all"], _fraction_asked, "fraction of the training set kept")]
    several_k = len({r["k"] for r in rows if r["k"]}) > 1
    written = []
    for view, view_rows, key, xlabel in views:
        if not view_rows:
            continue
        xs_all = {key(r) for r in view_rows if r["kept"] != WHOLE_SET} or {key(r) for r in view_rows}
        for family, family_rows in _by_family(view_rows):
            if len(xs_all) == 1:
                fig = _side_by_side(family_rows, key, xlabel, next(iter(xs_all)), verdicts, several_k, view)
            else:
                fig = _lines(family_rows, key, xlabel, verdicts, several_k, view)
            heading = f"{family} methods against random; " if family else ""
            fig.suptitle(f"{heading}mean over repeats with its 95% confidence interval; markers: verdict against "
                         f"random\n{title}", fontsize=9)
            name = f"accuracy_vs_{view}{suffix}" + (f"_{family.replace(' ', '_')}" if family else "")
            _save(fig, folder, name)
            written.append(name)
    return written


MAX_METHODS_PER_FIGURE = 8  # more lines than this in one figure are not told apart


def _by_family(rows) -> list[tuple[str, list]]:
    """[("", rows)] when the rows hold few methods; else one (family, rows) per family of kwsprune.methods.FAMILIES
    present, random in each."""
    bases = {r["method"].removesuffix(BALANCED) for r in rows} - {"random"}
    if len(bases) <= MAX_METHODS_PER_FIGURE:
        return [("", rows)]
    parts = []
    for family, members in FAMILIES.items():
        chosen = [r for r in rows if r["method"].removesuffix(BALANCED) in (*members, "random")]
        if any(r["method"].removesuffix(BALANCED) in members for r in chosen):
            parts.append((family, chosen))
    return parts


def _lines(view_rows, key, xlabel, verdicts, several_k, view):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    # against N, a line per method and ratio; against the fraction kept, the ratios are the line's points
    lines = sorted(group(view_rows, key, by_ratio=view == "n").items(), key=str)
    colours = figure_colours(view_rows)
    for (method, ratio, k), by_x in lines:
        xs = sorted(by_x)
        style = method_style(method, colours)
        label = _label(method, ratio, k, view, several_k)
        for ax, metric, top in zip(axes, ("test_acc", "test_loss"), (1.0, np.inf)):
            means, halves = zip(*(mean_ci([float(r[metric]) for r in by_x[x]]) for x in xs))
            ax.plot(xs, means, label=label, **style)
            for x, mean in zip(xs, means):
                first = by_x[x][0]
                at_chance = flag_of(by_x[x]) == "CHANCE"
                ax.scatter([x], [mean], marker=_marker(method, first["ratio"], first["k"], first["n"], verdicts), s=36,
                           color=style["color"], facecolors="white" if at_chance else style["color"], zorder=3)
            ax.fill_between(xs, np.clip(np.subtract(means, halves), 0, top), np.clip(np.add(means, halves), 0, top),
                            color=style["color"], alpha=0.12)
    _finish(fig, axes, view_rows, xlabel)
    if view == "fraction":
        for ax in axes:
            ax.set_xlim(0, 1.02)
    return fig


def _side_by_side(view_rows, key, xlabel, x, verdicts, several_k, view):
    """One N or one fraction: each method a point with its interval, side by side, marked by its verdict."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    configs = sorted(group(view_rows, key, by_ratio=True).items(),
                     key=lambda item: (item[0][0] != "random", item[0][0], str(item[0][1:])))
    names = []
    colours = figure_colours(view_rows)
    for position, ((method, ratio, k), by_x) in enumerate(configs):
        members = [r for rs in by_x.values() for r in rs]
        style = method_style(method, colours)
        first = members[0]
        at_chance = flag_of(members) == "CHANCE"
        for ax, metric in zip(axes, ("test_acc", "test_loss")):
            mean, half = mean_ci([float(r[metric]) for r in members])
            ax.errorbar([position], [mean], yerr=[half], color=style["color"], capsize=4, linestyle="")
            ax.scatter([position], [mean], marker=_marker(method, ratio, k, first["n"], verdicts), s=60, zorder=3,
                       color=style["color"], facecolors="white" if at_chance else style["color"])
            ax.scatter(np.full(len(members), position + 0.18), [float(r[metric]) for r in members], s=6,
                       color=style["color"], alpha=0.5)
        names.append(_label(method, ratio, k, "fraction", several_k) +
                     (f"\n{verdicts[(method, ratio, k, first['n'])]}" if (method, ratio, k, first["n"]) in verdicts else ""))
    where = f"N = {x}" if view == "n" else f"{x:.0%} of the training set kept"
    for ax in axes:
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_xlim(-0.6, len(names) - 0.4)
    _finish(fig, axes, view_rows, f"method ({where}); small dots: single runs")
    return fig


def _finish(fig, axes, view_rows, xlabel) -> None:
    chances = {float(r["chance"]) for r in view_rows if r["chance"]}
    if chances:
        axes[0].axhline(max(chances), color="grey", linestyle=":", linewidth=1, label="chance")
    for ax, ylabel in zip(axes, ("test accuracy", "test loss")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    handles = {label: handle for ax in axes for handle, label in zip(*ax.get_legend_handles_labels())}
    extra = _verdict_legend()
    axes[1].legend(list(handles.values()) + extra, list(handles.keys()) + [h.get_label() for h in extra], fontsize=8,
                   loc="upper left", bbox_to_anchor=(1.02, 1))


def _random_baseline(ratio: str, k: str, n: str) -> tuple[str, str]:
    """(ratio, k) of the random runs a configuration is compared with."""
    run = run_for("random", float(ratio), int(k) if k else None, n, 0)
    return format_ratio(run.ratio), "" if run.k is None else str(run.k)


def summary_table(rows) -> str:
    """Per N: each method's mean accuracy and standard deviation, its mean paired difference to random, and a flag
    where the result is not clearly above chance (whether a difference is real: the verdict table)."""
    lines = [f"{'N':>6s} {'method':>30s} {'ratio':>6s} {'k':>4s} {'runs':>5s} {'mean acc':>9s} {'sd':>7s} "
             f"{'vs random':>10s}  flag"]
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
                line += f" {diff:+10.4f}"
            else:
                line += f" {'':>10s}"
            lines.append(f"{line}  {flag_of([rs[0] for rs in by_repeat.values()])}".rstrip())
    return "\n".join(lines)


def study_verdicts(data_root, members, key, current: bool) -> list[dict]:
    """The verdict line (kwsprune.verdicts.judge) of every comparison with random that a study's rows make, each at
    the error share its ledger gave it, read with the test split's per-clip outcomes where the rows are of the
    current data (`current`); comparisons no sweep registered (rows of an older kwsprune, say) are registered now, as
    one batch."""
    found = list(dict.fromkeys((r["method"], r["ratio"], r["k"], r["n"]) for r in members
                               if r["method"] != "random" and r["kept"] != WHOLE_SET))
    found = [c for c in found if paired(members, c)[0]]
    if not found:
        return []
    trained = sum(1 for r in members if r["method"] != "random" and r["kept"] != WHOLE_SET and r["outcomes"])
    ledger = register(step_dir(data_root, RESULTS_DIR), study_id(key), describe_study(key), found, None, trained)
    batches = shares(ledger)
    seen = evidence(data_root, generalises_to(ledger)) if current else None
    return [judge(members, c, batches[c]["alpha_each"], batches[c]["margin"], batches[c]["max_repeats"], seen=seen)
            for c in found]


def plot_verdicts(lines: list[dict], folder, suffix: str = "", title: str = "") -> str:
    """Each comparison's difference to random: its mean, its confidence sequence as a bar, coloured by verdict, with
    zero and the equivalence margin marked; returns the figure's name."""
    lines = sorted(lines, key=lambda v: (v["n"] != "all", _number_or_zero(v["n"]), v["method"], v["ratio"], v["k"]))
    fig, ax = plt.subplots(figsize=(8, 1.4 + 0.22 * len(lines)))
    labels = []
    for y, line in enumerate(lines):
        colour = VERDICT_COLOURS[line["verdict"]]
        ax.plot([line["low"], line["high"]], [y, y], color=colour, linewidth=1.2, solid_capstyle="butt")
        ax.plot([line["test_low"], line["test_high"]], [y, y], color=colour, linewidth=4, solid_capstyle="butt")
        ax.scatter([line["mean_difference"]], [y], color="black", s=14, zorder=3)
        labels.append(f"{line['method']}, {_where(line)}, {line['repeats']} rep.")
        chance = "" if not line["chance"] else " (at chance)" if "CHANCE" in line["chance"] else " (some runs at chance)"
        floor = ": the test set's limit" if line["floor"] else ""
        ax.annotate(line["verdict"] + floor + chance, (1.01, y), xycoords=("axes fraction", "data"), va="center", fontsize=7,
                    color=colour)
    margin = lines[0]["margin"] if lines else 0
    ax.axvspan(-margin, margin, color="grey", alpha=0.2)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(lines)), labels, fontsize=7)
    ax.set_ylim(len(lines) - 0.5, -0.5)
    ax.set_xlabel(f"test accuracy minus random's: thick bar, the anytime-valid confidence sequence on this test set;\n"
                  f"thin bar, widened by the test set's gap from {_population_words(lines)} (the verdict reads it); "
                  f"dot, the mean;\ngrey band, within the equivalence margin of {margin:g}", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"does each method beat random?\n{title}", fontsize=8)
    name = f"verdicts{suffix}"
    _save(fig, folder, name)
    return name


def _population_words(lines: list[dict]) -> str:
    """What the verdicts of a figure speak of, short: new speakers, new clips, or this test set only."""
    covers = {line["covers"].split(" (")[0] for line in lines}
    return covers.pop() if len(covers) == 1 else "their populations"


def _number_or_zero(n: str) -> int:
    return int(n) if n != "all" else 0


def _where(line) -> str:
    """Where a comparison is: 'N 400, ratio 0.3' or '30% kept'."""
    kept = f"{1 - float(line['ratio']):.0%} kept"
    return kept if line["n"] == "all" else f"N {line['n']} from {kept}"


def plot_clusters(data_root, method: str, ratio: float, setup, folder) -> str | None:
    """Training clips in 2-D (PCA of the standardised embeddings) by k-means cluster, pruned clips marked; returns
    why it was skipped, or None when drawn."""
    from sklearn.decomposition import PCA

    from kwsprune.embedding_scores import standardise_clips
    from kwsprune.embeddings import load_features
    from kwsprune.pruning import MADE_BY as PRUNING_MADE_BY
    from kwsprune.pruning import load_kept

    try:
        method = method_name(method)
        kept, _ = load_kept(data_root, setup, method, ratio)
        features = load_features(data_root)
        clusters = load_verified(setup.folder(data_root), clusters_file(setup.k), PRUNING_MADE_BY)
    except InputError as err:
        return f"the cluster picture of {method} at ratio {ratio}: {err}"
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


def markdown_table(lines: list[dict]) -> str:
    """The verdict table in Markdown, for the report, with what the verdicts speak of below it."""
    out = ["| method | where | repeats | mean difference | interval (test set ±) | verdict | chance |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    for v in lines:
        call = verdict_text(v)
        out.append(f"| {v['method']} | {_where(v)}{', k ' + v['k'] if v['k'] else ''} | {v['repeats']} | "
                   f"{v['mean_difference']:+.3f} | [{v['low']:+.3f}, {v['high']:+.3f}] (±{v['gap']:.3f}) | {call} | "
                   f"{v['chance'] or '-'} |")
    return "\n".join(out + ["", coverage_note(lines).replace("\n", "; ") + "."])


def verdict_grid(lines: list[dict]) -> str | None:
    """The verdicts of a study as a grid in Markdown, a method a row and a fraction kept (or N) a column, each cell
    "**verdict** mean [low, high] ±gap, repeats"; None where the study has one column only."""
    columns = sorted({_where(v) for v in lines}, key=lambda where: -_column_order(where))
    if len(columns) < 2:
        return None
    cells = {(v["method"], _where(v)): v for v in lines}
    out = ["| method | " + " | ".join(columns) + " |", "| --- |" + " --- |" * len(columns)]
    for method in dict.fromkeys(v["method"] for v in lines):
        row = []
        for where in columns:
            v = cells.get((method, where))
            call = "undecided: test set" if v and v["floor"] else v and v["verdict"]
            row.append("" if v is None else f"**{call}** {v['mean_difference']:+.3f} [{v['low']:+.3f}, {v['high']:+.3f}] "
                                            f"±{v['gap']:.3f}, {v['repeats']}")
        out.append(f"| {method} | " + " | ".join(row) + " |")
    return "\n".join(out)


def _column_order(where: str) -> float:
    """Columns from the most kept to the least: '90% kept' -> 90, 'N 400 from 70% kept' -> 70 + 400 / 1e6."""
    numbers = [float(t.rstrip("%")) for t in where.split() if t.rstrip("%").replace(".", "").isdigit()]
    return numbers[-1] + (numbers[0] / 1e6 if len(numbers) > 1 else 0)


def plot_results(data_root, method: str = "keep_hard", ratio: float = 0.3, setup=None,
                 include_set_aside: bool = False) -> str:
    """Step 6: every figure into Plots/ under data_root; returns the summary table, with what was skipped."""
    from kwsprune.pruning import PruningSetup

    runs_path = step_dir(data_root, RESULTS_DIR) / RUNS_FILE
    rows = read_runs(step_dir(data_root, RESULTS_DIR))
    if not rows:
        raise InputError(f"{runs_path} has no runs: run run_all_classifications.py first")
    current = current_inputs(data_root)
    if not any(current.data.values()):
        log.warning("no current MFCCs or embeddings under %s: the rows are not checked against the data", data_root)
    shown, reasons = (rows, None) if include_set_aside else set_aside(rows, current)
    note = describe_set_aside(reasons, runs_path) if reasons else None
    if note:
        log.warning("%s; --include-set-aside shows them", note)
    if not shown:
        raise InputError(f"every row of {runs_path} is set aside ({note}): run run_all_classifications.py on the "
                         "current data, or pass --include-set-aside")
    folder = step_dir(data_root, PLOTS_DIR)
    check_writable(folder)
    check_writable(step_dir(data_root, RESULTS_DIR))  # the studies' ledgers: comparisons the report meets first
    by_study = studies(shown)
    sections = []
    report = ["# kwsprune report", "", f"From `{runs_path}`. Each study is one recipe on one dataset with one "
              "pruning set-up. A verdict compares a method with random, paired by repeat, through an anytime-valid "
              "confidence sequence of the difference on the test set, widened by how far the test set's difference "
              "may lie from that on new speakers (or new clips; measured from every run's per-clip outcomes); the "
              "chance that any verdict of a study is wrong is at most its alpha (docs/verdicts.md)."]
    for key, members in sorted(by_study.items()):
        suffix = "" if len(by_study) == 1 else f"_{study_id(key)}"
        lines = study_verdicts(data_root, members, key, members[0]["data"] in current.data.values())
        verdicts = {(v["method"], v["ratio"], v["k"], v["n"]): v["verdict"] for v in lines}
        figures = plot_curves(members, folder, suffix, describe_study(key), verdicts)
        if lines:
            figures.insert(0, plot_verdicts(lines, folder, suffix, describe_study(key)))
        alpha = (read_ledger(step_dir(data_root, RESULTS_DIR), study_id(key), describe_study(key)) or {}).get("alpha")
        table = format_table(lines, alpha) if lines else "no comparison with random (train random beside the methods)"
        sections.append(f"study {study_id(key)}: {describe_study(key)}\nfigures: {', '.join(figures) or 'none'}\n"
                        f"{summary_table(members)}\n\nverdicts against random:\n{table}")
        grid = verdict_grid(lines)
        error = [f"The study's family-wise error (its ledger): {alpha:g}."] if lines and alpha is not None else []
        report += [f"\n## Study {study_id(key)}", "", describe_study(key), "", markdown_table(lines) if lines else table,
                   *(["", *error] if error else []),
                   *(["", "The same verdicts by fraction kept (verdict, mean difference, interval, the test set's ±, "
                      "repeats):", "", grid] if grid else []),
                   "", *[f"![{name}]({name}.png)" for name in figures], "", "Mean accuracy per configuration:", "",
                   "```", summary_table(members), "```"]
    skipped = plot_clusters(data_root, method, ratio, setup or PruningSetup(), folder)
    if skipped:
        sections.append(f"skipped {skipped}")
    else:
        report += ["", f"![clusters](clusters_{method_name(method)}_k{(setup or PruningSetup()).k}_{ratio}.png)"]
    write_text(folder / REPORT_FILE, "\n".join(report) + "\n")
    sections.append(f"report: {folder / REPORT_FILE}")
    if note:
        sections.append(f"{note}; --include-set-aside shows them")
    return "\n\n".join(sections)

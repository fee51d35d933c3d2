"""Each comparison of a study judged from its rows: paired accuracy differences by repeat, their confidence sequence
on the test set and the test set's gap from its population (kwsprune.test_set), each at half the comparison's error
share, the verdict, and the table the sweep and the report print."""

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kwsprune.chance import verdict as chance_verdict
from kwsprune.outcomes import load_outcomes, run_in_words
from kwsprune.paths import RESULTS_DIR, format_ratio, step_dir
from kwsprune.sequential import BOUND, MARGIN, OPEN, UNDECIDED, confidence_sequence, half_width, out_of_reach, verdict
from kwsprune.study import Comparison, baseline_run
from kwsprune.test_set import SPEAKERS, Population, gap_half_width, load_test_set, population
from kwsprune.validation import InputError

THIS_TEST_SET = ("this test set only (some runs kept no per-clip outcomes: an older kwsprune's, or of a dataset no "
                 "longer in this data root)")


@dataclass(frozen=True)
class Evidence:
    """What a verdict reads besides the rows: the results store with the runs' per-clip outcomes, the test clips'
    classes, and the population a verdict on them speaks of."""
    results_dir: Path
    labels: np.ndarray
    population: Population
    _loaded: dict = field(default_factory=dict, compare=False, repr=False)

    def correct(self, row: dict) -> np.ndarray:
        """1 where the run of `row` got a test clip right, else 0, checked against the row's test accuracy."""
        sha = row["outcomes"]
        if sha not in self._loaded:
            predicted = load_outcomes(self.results_dir, row)
            if len(predicted) != len(self.labels):
                raise InputError(f"{self.results_dir / 'runs.csv'}: {run_in_words(row)} was tested on {len(predicted)} clips, "
                                 f"this data root's test split has {len(self.labels)}: its rows are of another dataset; "
                                 "move results/ aside or prepare that dataset again")
            self._loaded[sha] = (predicted == self.labels).astype(np.int8)
        right = self._loaded[sha]
        if abs(right.mean() - float(row["test_acc"])) > 0.5 / len(right):
            raise InputError(f"{self.results_dir / 'runs.csv'}: {run_in_words(row)} records test_acc {row['test_acc']} but its "
                             f"outcomes give {right.mean():.6f}: delete its row and rerun the sweep")
        return right


def evidence(data_root, generalise_to: str = SPEAKERS) -> Evidence:
    """The Evidence of a data root's results store and test split."""
    test_set = load_test_set(data_root)
    return Evidence(step_dir(data_root, RESULTS_DIR), np.asarray(test_set.labels), population(test_set, generalise_to))

MOST_REPEATS_TO_PROJECT = 100_000


def accuracies_by_repeat(rows, method: str, ratio: str, k: str, n: str) -> dict[int, dict]:
    """{repeat: row} of one configuration's rows."""
    return {int(row["repeat"]): row for row in rows
            if (row["method"], row["ratio"], row["k"], row["n"]) == (method, ratio, k, n)}


def paired(rows, comparison: Comparison, below: int | None = None) -> tuple[list[dict], list[dict]]:
    """(method rows, random rows) of repeats 0, 1, ... while both exist (and the repeat is below `below`): the pairs a
    comparison is judged on, in the order its confidence sequence takes them."""
    method, ratio, k, n = comparison
    base = baseline_run(comparison, 0)
    ours = accuracies_by_repeat(rows, method, ratio, k, n)
    theirs = accuracies_by_repeat(rows, "random", format_ratio(base.ratio), "" if base.k is None else str(base.k), n)
    mine, random_rows = [], []
    repeat = 0
    while repeat in ours and repeat in theirs and (below is None or repeat < below):
        mine.append(ours[repeat])
        random_rows.append(theirs[repeat])
        repeat += 1
    return mine, random_rows


def differences(mine, random_rows) -> list[float]:
    """Method minus random test accuracy, pair by pair (the output of paired)."""
    return [float(a["test_acc"]) - float(b["test_acc"]) for a, b in zip(mine, random_rows)]


def repeats_to_decide(mean: float, spread: float, alpha: float, margin: float, gap: float = 0.0,
                      done: int = 1) -> int | None:
    """About how many repeats a comparison needs before its sequence is narrow enough to give a verdict, if the
    differences keep this mean and spread (sd) and the test set's gap its half-width; more than the `done` that have
    not decided it; None where no number would do (past MOST_REPEATS_TO_PROJECT, or the test set resolves less
    than the difference needs)."""
    target = max(abs(mean) - gap, margin - gap - abs(mean))
    if target <= 0:
        return None
    if spread == 0:
        return max(2, done + 1)
    t = max(2, done + 1)
    while t <= MOST_REPEATS_TO_PROJECT:
        if half_width(t, (t - 1) * spread ** 2, alpha) < target:
            return t
        t = t + 1 if t < 200 else int(t * 1.05)
    return None


def split_alpha(alpha: float, with_gap: bool) -> tuple[float, float]:
    """A comparison's error shared between the repeats' sequence and the test set's gap: half each where the gap is
    measured, all of it to the sequence where it is not."""
    return (alpha / 2, alpha / 2) if with_gap else (alpha, 0.0)


def interval(paired_differences, alpha: float, per_clip=None, where: Population | None = None) -> tuple[float, float, float]:
    """(low, high, gap): the confidence sequence of the paired differences on the test set and the half-width of the
    test set's gap from its population, each at its share of alpha (split_alpha), from the per-clip differences
    (repeats, clips) of the same pairs; without them the sequence alone, at alpha, and gap 0 (a claim on this test
    set only)."""
    sequence_alpha, gap_alpha = split_alpha(alpha, per_clip is not None)
    gap = 0.0 if per_clip is None else gap_half_width(per_clip, where, gap_alpha)
    return (*confidence_sequence(paired_differences, sequence_alpha), gap)


def judge(rows, comparison: Comparison, alpha: float, margin: float = MARGIN, max_repeats: int | None = None,
          below: int | None = None, seen: Evidence | None = None) -> dict:
    """One line of the verdict table: the comparison, its mean difference to random, the interval the verdict reads
    (the confidence sequence on the test set widened by the test set's gap, each at alpha / 2, where every run kept
    its per-clip outcomes and `seen` gives them; the sequence alone at alpha, on this test set only, otherwise), the
    verdict, the repeats used, a projection of the repeats it needs when undecided, and the chance flags."""
    mine, random_rows = paired(rows, comparison, below)
    paired_differences = differences(mine, random_rows)
    method, ratio, k, n = comparison
    t = len(paired_differences)
    per_clip, covers = None, THIS_TEST_SET
    if seen is not None and t and all(row.get("outcomes") for row in mine + random_rows):
        per_clip = np.stack([seen.correct(a) - seen.correct(b) for a, b in zip(mine, random_rows)])
        covers = seen.population.covers
    low, high, gap = interval(paired_differences, alpha, per_clip, seen.population if seen else None)
    sequence_alpha, _ = split_alpha(alpha, per_clip is not None)
    at_max = max_repeats is not None and t >= max_repeats
    call = verdict(low, high, margin, at_max, gap)
    mean = float(np.mean(paired_differences)) if t else math.nan
    spread = float(np.std(paired_differences, ddof=1)) if t > 1 else math.nan
    needs = repeats_to_decide(mean, spread, sequence_alpha, margin, gap, done=t) if call in (OPEN, UNDECIDED) and t > 1 \
        else None
    fraction = mine[0]["fraction_kept"] if mine else ""
    return {"method": method, "ratio": ratio, "k": k, "n": n, "fraction_kept": fraction, "repeats": t,
            "mean_difference": mean, "low": max(low - gap, -BOUND), "high": min(high + gap, BOUND), "test_low": low, "test_high": high,
            "gap": gap, "covers": covers, "floor": call == UNDECIDED and out_of_reach(low, high, margin, gap),
            "one_draw": bool(random_rows) and random_rows[0]["n"] == "all",
            "verdict": call, "alpha": alpha, "margin": margin, "needs": needs, "chance": _chance_flag(mine, random_rows)}


def _chance_flag(mine, random_rows) -> str:
    """kwsprune.chance's flag of the method's runs, then of random's, where either is not clearly above chance."""
    flags = []
    for who, members in (("method", mine), ("random", random_rows)):
        if members and all(row["n_test"] and row["chance"] for row in members):
            flag = chance_verdict([float(r["test_acc"]) for r in members], int(members[0]["n_test"]),
                                  float(members[0]["chance"]))
            if flag:
                flags.append(f"{who}: {flag}")
    return "; ".join(flags)


ONE_DRAW = ("at --n all, random's kept clips are one draw (its pruning seed), the same in every repeat: those verdicts "
            "speak of that draw, not of random; a number for --n draws random's clips anew each repeat")


def verdict_text(line: dict) -> str:
    """A verdict in words: where the test set alone keeps it undecided, the resolution the test set allows; where it
    is open or undecided, the repeats that would decide it."""
    if line["floor"] and math.isinf(line["gap"]):
        return f"{line['verdict']}: one speaker (or clip) a stratum says nothing of the others: see the line below the table"
    if line["floor"]:
        return f"{line['verdict']}: the test set resolves only about ±{100 * line['gap']:.1f} points"
    if line["needs"]:
        return f"{line['verdict']} (about {line['needs']} repeats would decide it)"
    if line["verdict"] in (OPEN, UNDECIDED) and line["repeats"] < 2:
        return f"{line['verdict']} (too few repeats to project)"
    if line["verdict"] in (OPEN, UNDECIDED) and line["gap"] > 0:
        return f"{line['verdict']} (the test set may not decide it: it resolves about ±{100 * line['gap']:.1f} points)"
    return line["verdict"]


def coverage_note(lines: list[dict]) -> str:
    """What the verdicts speak of, one line a population, for under a table; and that random is one draw where some
    compare at --n all."""
    notes = [f"verdicts on {covers}" for covers in dict.fromkeys(line["covers"] for line in lines)]
    return "\n".join(notes + ([ONE_DRAW] if any(line.get("one_draw") for line in lines) else []))


def format_table(lines: list[dict], study_alpha: float | None = None) -> str:
    """The verdict table as text: one comparison a line, what the verdicts speak of below it, and the study's
    family-wise error where given. The interval is the confidence sequence on the test set widened by the test set's
    gap (its ± column)."""
    header = (f"{'method':>28s} {'ratio':>5s} {'k':>3s} {'N':>5s} {'kept':>6s} {'repeats':>7s} {'mean diff':>9s} "
              f"{'interval':>17s} {'test set':>8s}  verdict")
    out = [header]
    for line in lines:
        ends = f"[{line['low']:+.3f}, {line['high']:+.3f}]"
        call = verdict_text(line)
        if line["chance"]:
            call += f"; at chance: {line['chance']}"
        fraction = f"{float(line['fraction_kept']):.3f}" if line["fraction_kept"] else "-"
        out.append(f"{line['method']:>28s} {line['ratio']:>5s} {line['k'] or '-':>3s} {line['n']:>5s} {fraction:>6s} "
                   f"{line['repeats']:7d} {line['mean_difference']:+9.4f} {ends:>17s} {'±' + format(line['gap'], '.3f'):>8s}  "
                   f"{call}")
    error = ([f"the study's family-wise error: {study_alpha:g} (its ledger), each verdict's share of it from "
              f"{min(line['alpha'] for line in lines):.3g} to {max(line['alpha'] for line in lines):.3g}"]
             if study_alpha is not None and lines else [])
    return "\n".join(out + [coverage_note(lines)] + error)

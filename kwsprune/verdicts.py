"""Each comparison of a study judged from its rows: paired accuracy differences by repeat, their confidence sequence
at the comparison's error share, the verdict, and the table the sweep and the report print."""

import math

import numpy as np

from kwsprune.chance import verdict as chance_verdict
from kwsprune.paths import format_ratio
from kwsprune.sequential import MARGIN, OPEN, UNDECIDED, confidence_sequence, half_width, verdict
from kwsprune.study import Comparison, baseline_run

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


def repeats_to_decide(mean: float, spread: float, alpha: float, margin: float) -> int | None:
    """About how many repeats a comparison needs before its sequence is narrow enough to give a verdict, if the
    differences keep this mean and spread (sd); None past MOST_REPEATS_TO_PROJECT."""
    target = max(abs(mean), margin - abs(mean))
    if spread == 0:
        return 2
    t = 2
    while t <= MOST_REPEATS_TO_PROJECT:
        if half_width(t, (t - 1) * spread ** 2, alpha) < target:
            return t
        t = t + 1 if t < 200 else int(t * 1.05)
    return None


def judge(rows, comparison: Comparison, alpha: float, margin: float = MARGIN, max_repeats: int | None = None,
          below: int | None = None) -> dict:
    """One line of the verdict table: the comparison, its mean difference to random, the confidence sequence's ends,
    the verdict, the repeats used, a projection of the repeats it needs when undecided, and the chance flags."""
    mine, random_rows = paired(rows, comparison, below)
    paired_differences = differences(mine, random_rows)
    method, ratio, k, n = comparison
    low, high = confidence_sequence(paired_differences, alpha)
    t = len(paired_differences)
    at_max = max_repeats is not None and t >= max_repeats
    call = verdict(low, high, margin, at_max)
    mean = float(np.mean(paired_differences)) if t else math.nan
    spread = float(np.std(paired_differences, ddof=1)) if t > 1 else math.nan
    needs = repeats_to_decide(mean, spread, alpha, margin) if call in (OPEN, UNDECIDED) and t > 1 else None
    fraction = mine[0]["fraction_kept"] if mine else ""
    return {"method": method, "ratio": ratio, "k": k, "n": n, "fraction_kept": fraction, "repeats": t,
            "mean_difference": mean, "low": low, "high": high, "verdict": call, "alpha": alpha, "margin": margin,
            "needs": needs, "chance": _chance_flag(mine, random_rows)}


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


def verdict_text(line: dict) -> str:
    """A verdict in words, with the repeats that would decide it where it is open or undecided."""
    if line["needs"]:
        return f"{line['verdict']} (about {line['needs']} repeats would decide it)"
    if line["verdict"] in (OPEN, UNDECIDED) and line["repeats"] < 2:
        return f"{line['verdict']} (too few repeats to project)"
    return line["verdict"]


def format_table(lines: list[dict]) -> str:
    """The verdict table as text: one comparison a line."""
    header = (f"{'method':>28s} {'ratio':>5s} {'k':>3s} {'N':>5s} {'kept':>6s} {'repeats':>7s} {'mean diff':>9s} "
              f"{'sequence':>17s}  verdict")
    out = [header]
    for line in lines:
        ends = f"[{line['low']:+.3f}, {line['high']:+.3f}]"
        call = verdict_text(line)
        if line["chance"]:
            call += f"; at chance: {line['chance']}"
        fraction = f"{float(line['fraction_kept']):.3f}" if line["fraction_kept"] else "-"
        out.append(f"{line['method']:>28s} {line['ratio']:>5s} {line['k'] or '-':>3s} {line['n']:>5s} {fraction:>6s} "
                   f"{line['repeats']:7d} {line['mean_difference']:+9.4f} {ends:>17s}  {call}")
    return "\n".join(out)

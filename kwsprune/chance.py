"""Is a test accuracy information, or chance? One rule for the sweep's log, the summary table and the plots.

Chance is what always answering the test split's most common class scores (1 / classes when the split is
balanced). A result is clearly above chance when the lower end of the 95% Wilson interval of its test
accuracy exceeds chance by a tenth of the way from chance to perfect, i.e. its chance-corrected accuracy
(acc - chance) / (1 - chance) is surely above 0.1. A configuration pools the test clips of its repeats;
each run is also judged alone, so that a mean held up by some runs while others stayed at chance shows.
"""

import math

import numpy as np

MARGIN = 0.1  # of the way from chance to perfect accuracy
Z = 1.96      # 95% two-sided


def chance_level(y_test, n_classes: int) -> float:
    """Accuracy of always answering the test split's most common class."""
    return float(np.bincount(np.asarray(y_test), minlength=n_classes).max() / len(y_test))


def bar(chance: float) -> float:
    """The accuracy a result must surely exceed to count as above chance."""
    return chance + MARGIN * (1 - chance)


def wilson_lower(correct: float, total: float, z: float = Z) -> float:
    """Lower end of the Wilson score interval of a proportion correct / total."""
    if total <= 0:
        return 0.0
    p = correct / total
    centre = p + z * z / (2 * total)
    spread = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    return (centre - spread) / (1 + z * z / total)


def above_chance(accuracies, n_test: int, chance: float) -> bool:
    """Whether runs of these test accuracies, pooled over their n_test test clips each, are clearly above chance."""
    accuracies = np.asarray(accuracies, float)
    correct = float(np.round(accuracies * n_test).sum())
    return wilson_lower(correct, n_test * len(accuracies)) > bar(chance)


def verdict(accuracies, n_test: int, chance: float) -> str:
    """'' when the configuration and each of its runs are clearly above chance; 'CHANCE' when the configuration is
    not; 'r/n runs at chance' when it is but some of its runs are not."""
    if not above_chance(accuracies, n_test, chance):
        return "CHANCE"
    at_chance = sum(not above_chance([acc], n_test, chance) for acc in accuracies)
    return f"{at_chance}/{len(accuracies)} runs at chance" if at_chance else ""

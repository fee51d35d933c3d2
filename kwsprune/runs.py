"""What a run is: its configuration, the clips it draws from and its draw.

A run is (method, ratio, k, n, repeat): n clips drawn at random from the clips `method` kept at `ratio`
(the original's equal-N comparison), or every kept clip when n is "all". Random at ratio 1.0 draws
from the whole training set. Runs with the same repeat share their model initialisation across
methods, so comparisons are paired.
"""

from dataclasses import dataclass

import numpy as np

from kwsprune.validation import InputError


@dataclass(frozen=True)
class Run:
    method: str
    ratio: float
    k: int | None  # None: the run draws from the whole training set
    n: str         # a number of clips, or "all"
    repeat: int


def run_for(method: str, ratio: float, k: int, n: str, repeat: int) -> Run:
    """The run a request means. Random draws from the whole training set (ratio 1.0, no k) when n is a number
    (the original's "normal" runs of equal N) or when the ratio is 1.0 (with n = "all": the whole set)."""
    if method == "random" and (n != "all" or ratio == 1.0):
        return Run("random", 1.0, None, n, repeat)
    return Run(method, ratio, k, n, repeat)


def parse_n(value) -> str:
    """'all' or a positive whole number of clips, as the text used in file names."""
    text = str(value)
    if text != "all" and not (text.isdigit() and int(text) > 0):
        raise InputError(f"--n {text!r}: give a positive number of clips or 'all'")
    return text


def draw(pool: np.ndarray, n: str, seed: int, repeat: int) -> np.ndarray:
    """n indices from `pool`, uniformly and seeded by (seed, repeat), sorted; every index can be drawn."""
    if n == "all":
        return np.sort(pool)
    if int(n) > len(pool):
        raise InputError(f"--n {n} is more than the {len(pool)} clips kept: lower --n or the ratio")
    return np.sort(np.random.default_rng([seed, repeat]).choice(pool, size=int(n), replace=False))


def model_seed(seed: int, repeat: int) -> int:
    return seed * 1_000_003 + repeat

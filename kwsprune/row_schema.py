"""What a runs.csv row may hold, field by field: every value typed and range-checked when read.

A row is input from a stranger (a colleague, an older kwsprune, a killed process, someone hostile): its values
become file names, figure labels and Markdown, so a value that is not what its column promises is refused, in
one line naming the file, the line and the fix, and never read as something else.
"""

import math
import re

from kwsprune.methods import BALANCED, METHODS
from kwsprune.models import MODELS
from kwsprune.recipe import DTYPES, ENGINES, RESTORE_POLICIES

HEX_ID = re.compile(r"[0-9a-f]{12}")
SHA256 = re.compile(r"[0-9a-f]{64}")
RECIPE = re.compile(r"[a-z_0-9]+=[A-Za-z0-9.,+\-]*(;[a-z_0-9]+=[A-Za-z0-9.,+\-]*)*")
DEVICE = re.compile(r"[a-z]+(:[0-9]+)?")
VERSION = re.compile(r"[0-9A-Za-z.+\-]+")
ENGINE = re.compile("|".join(f"{engine}(-[a-z]+)?" if engine == "keras" else engine for engine in ENGINES))


def _whole(text: str, least: int = 0) -> bool:
    return text.isascii() and text.isdigit() and int(text) >= least


def _real(text: str, low: float, high: float, high_open: bool = False) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and low <= value and (value < high if high_open else value <= high)


def _method(text: str) -> bool:
    base = text[:-len(BALANCED)] if text.endswith(BALANCED) else text
    return base in METHODS


def _optional(check):
    return lambda text: text == "" or check(text)


# field -> (is the text valid, what it must be)
FIELDS = {
    "method": (_method, "a registered method name"),
    "ratio": (lambda t: _real(t, 0, 1), "a fraction removed in [0, 1]"),
    "k": (_optional(lambda t: _whole(t, 1)), "a whole number of clusters, or empty"),
    "n": (lambda t: t == "all" or _whole(t, 1), "a whole number of clips or 'all'"),
    "repeat": (_whole, "a whole number"),
    "seed": (_whole, "a whole number"),
    "model": (lambda t: t in MODELS, f"one of {', '.join(MODELS)}"),
    "engine": (ENGINE.fullmatch, f"one of {', '.join(ENGINES)} (keras with its backend, e.g. keras-tensorflow)"),
    "learning_rate": (lambda t: _real(t, 0, math.inf, high_open=True) and float(t) > 0, "a positive number"),
    "batch_size": (lambda t: t == "auto" or _whole(t, 1), "a whole number or 'auto'"),
    "batch_used": (lambda t: t == "auto" or _whole(t, 1), "a whole number or 'auto'"),
    "max_epochs": (lambda t: _whole(t, 1), "a whole number"),
    "restore_best": (lambda t: t in RESTORE_POLICIES, f"one of {', '.join(RESTORE_POLICIES)}"),
    "dtype": (lambda t: t in DTYPES, f"one of {', '.join(DTYPES)}"),
    "recipe": (RECIPE.fullmatch, "name=value;... as kwsprune writes a recipe"),
    "data": (HEX_ID.fullmatch, "a 12-digit hexadecimal id"),
    "kept": (lambda t: t in ("", "all") or HEX_ID.fullmatch(t), "a 12-digit hexadecimal id, 'all' or empty"),
    "features": (_optional(HEX_ID.fullmatch), "a 12-digit hexadecimal id or empty"),
    "n_init": (_optional(lambda t: _whole(t, 1)), "a whole number or empty"),
    "prune_seed": (_optional(_whole), "a whole number or empty"),
    "pca": (_optional(lambda t: _whole(t, 1)), "a whole number or empty"),
    "n_used": (lambda t: _whole(t, 1), "a whole number"),
    "fraction_kept": (lambda t: _real(t, 0, 1), "a fraction in [0, 1]"),
    "n_classes": (lambda t: _whole(t, 2), "a whole number, 2 or more"),
    "n_test": (lambda t: _whole(t, 1), "a whole number"),
    "chance": (lambda t: _real(t, 0, 1), "a fraction in [0, 1]"),
    "test_loss": (lambda t: t in ("nan", "inf") or _real(t, 0, math.inf, high_open=True),
                  "a number, 0 or more (nan or inf where a run diverged)"),
    "test_acc": (lambda t: _real(t, 0, 1), "an accuracy in [0, 1]"),
    "epochs": (_whole, "a whole number"),
    "seconds": (lambda t: _real(t, 0, math.inf, high_open=True), "a finite number of seconds"),
    "device": (DEVICE.fullmatch, "a device name such as cpu or cuda:0"),
    "code_version": (VERSION.fullmatch, "a version such as 0.1.0"),
    "outcomes": (_optional(SHA256.fullmatch), "a sha256 (64 hexadecimal digits) or empty"),
}


def row_problem(row: dict) -> str | None:
    """What is wrong with a row of text values (the first field that breaks its rule), or None. A row of an older
    kwsprune (no kept set recorded: set aside, never compared) may leave the columns added since empty."""
    older = row.get("kept") == ""
    for field, (valid, must_be) in FIELDS.items():
        text = row.get(field)
        if text is None:
            return f"has no {field}"
        if not valid(text) and not (older and text == ""):
            return f"has {field} {text[:40]!r}, which is not {must_be}"
    if row["kept"] == "all" and row["ratio"] not in ("1.0", "1"):
        return f"draws from the whole set (kept 'all') at ratio {row['ratio']!r}: only ratio 1.0 does"
    if float(row["ratio"]) == 1 and row["kept"] not in ("all", ""):
        return f"removes every clip (ratio {row['ratio']!r}) yet draws from a kept set: only the whole set has ratio 1.0"
    if row["kept"] not in ("all", "") and not row["k"]:
        return "draws from a kept set but has no k"
    return None

"""What every step script shares: logging set-up and turning input errors into one clear line."""

import logging
import sys

from kwsprune.validation import InputError


def run_step(step, *args, **kwargs):
    """Call `step`; an InputError ends the program with 'error: <message>' and exit status 2."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return step(*args, **kwargs)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None

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


def add_training_flags(parser, seed, engine, device, max_epochs, batch_size) -> None:
    """The flags shared by the scripts that train (classification_pruning.py, run_all_classifications.py)."""
    parser.add_argument("--seed", type=int, default=seed, help="draws and model initialisations (default: %(default)s)")
    parser.add_argument("--engine", default=engine, choices=("torch", "keras"),
                        help="torch: many runs in one batched network; keras: the original's model.fit, run by run, "
                             "on the backend KERAS_BACKEND names (default: %(default)s)")
    parser.add_argument("--device", default=device, choices=("auto", "cpu", "cuda"))
    parser.add_argument("--max-epochs", type=int, default=max_epochs, help="(default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=batch_size, help="(default: %(default)s)")


def training_config(args):
    """The TrainConfig that the flags of add_training_flags ask for."""
    from kwsprune.training import TrainConfig

    return TrainConfig(batch_size=args.batch_size, max_epochs=args.max_epochs)

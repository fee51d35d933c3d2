"""What every step script shares: logging set-up, one clear line for input errors, and the shared flags."""

import argparse
import errno
import logging
import math
import os
import sys
from dataclasses import replace
from pathlib import Path

from kwsprune.validation import InputError


def run_step(step, *args, **kwargs):
    """Call `step`. An InputError ends the program with 'error: <message>' and exit status 2; a full disk with one
    line and status 1; Ctrl-C with one line and status 130. A step writes its outputs all at once at its end
    (kwsprune.artefacts.staged), so an interrupted step has changed nothing that a rerun does not redo."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return step(*args, **kwargs)
    except InputError as err:  # a file name of undecodable bytes is shown escaped, not as a UnicodeEncodeError
        print(f"error: {err}".encode("utf-8", "backslashreplace").decode("utf-8"), file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted: the step's unfinished outputs were discarded; run it again to resume", file=sys.stderr)
        raise SystemExit(130) from None
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
        where = f" for {err.filename}" if err.filename else ""
        detail = f" ({err.strerror})" if err.strerror and err.strerror != os.strerror(errno.ENOSPC) else ""
        print(f"error: no space left on the device{where}{detail}: free some space, or pass --data-root on a larger disk; "
              "the step's unfinished outputs were discarded", file=sys.stderr)
        raise SystemExit(1) from None


class _OneLineErrors(argparse.ArgumentParser):
    def error(self, message):
        """A bad flag value: one line, 'error: argument --k: ...', exit status 2 (not argparse's usage block)."""
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def step_parser(doc: str) -> argparse.ArgumentParser:
    """The argument parser of a step script: its docstring as --help, bad values as one line."""
    return _OneLineErrors(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_data_root(parser, default) -> None:
    """--data-root, which every step script takes."""
    parser.add_argument("--data-root", type=data_root, default=default,
                        help="folder holding the step folders (default: the repository)")


def data_root(text: str) -> Path:
    """argparse type of --data-root: a folder, or a path where one can be made."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file: give the folder that holds (or will hold) the step folders")
    return path


def at_least(low: int, most: int | None = None):
    """argparse type: a whole number >= low (and <= most)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is below {low}: give a whole number >= {low}")
        if most is not None and value > most:
            raise argparse.ArgumentTypeError(f"{value} is above {most}: give a whole number in [{low}, {most}]")
        return value
    return parse


MAX_SEED = 2**32 - 1  # what numpy's legacy generators and scikit-learn's random_state take


def seed(text: str) -> int:
    """argparse type of --seed: a whole number in [0, 2**32 - 1]."""
    return at_least(0, most=MAX_SEED)(text)


def _batch_size(text: str):
    from kwsprune.training import AUTO

    if text == AUTO:
        return AUTO
    if not (text.isdigit() and int(text) > 0):
        raise InputError(f"--batch-size {text!r}: give a positive number of clips or {AUTO!r}")
    return int(text)


def add_training_flags(parser, model, recipe, seed_default, engine, device) -> None:
    """The flags shared by the scripts that train (classification_pruning.py, run_all_classifications.py). The
    recipe flags default to the named recipe's values (kwsprune.recipe.RECIPES); without --recipe, the model's own."""
    from kwsprune.models import MODELS
    from kwsprune.recipe import DTYPES, ENGINES, OPTIMIZERS, RECIPES, RESTORE_POLICIES, SCHEDULES, WEIGHTS

    parser.add_argument("--model", default=model, choices=list(MODELS),
                        help="; ".join(f"{name}: {spec.about}" for name, spec in MODELS.items()) + " (default: %(default)s)")
    parser.add_argument("--recipe", default=recipe, choices=list(RECIPES),
                        help="the defaults of the recipe flags below (default: the model's own: kwsprune for the original's "
                             "CNNs, ds-cnn, bc-resnet or bc-resnet-3 for those networks, head for logreg); kwsprune: batch "
                             "auto, best weights always restored; original: batch 512, best weights restored only when early "
                             "stopping fired, as the Keras of 2023; steady: a fixed budget on a cosine, averaged weights")
    parser.add_argument("--batch-size", help="clips per step, or 'auto': the largest power of two <= N / 8, "
                                             "between 16 and 512")
    parser.add_argument("--learning-rate", type=float, help="the initial (plateau) or peak (cosine) learning rate")
    parser.add_argument("--max-epochs", type=at_least(1), help="epoch cap (plateau) or budget (cosine)")
    parser.add_argument("--restore-best", choices=RESTORE_POLICIES, help="weights best: when the best weights are restored")
    parser.add_argument("--dtype", choices=DTYPES, help="float32 (default); float64: exact, slower; bfloat16: the layers in "
                                                        "bfloat16 from float32 weights, for GPUs and CPUs with avx512_bf16")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, help="adam (AdamW with --weight-decay) or sgd with momentum")
    parser.add_argument("--schedule", choices=SCHEDULES, help="plateau: halved when the validation loss stalls; cosine: "
                                                              "warm-up, then a cosine to 0 over --max-epochs")
    parser.add_argument("--warmup-epochs", type=at_least(0), help="cosine: epochs of linear warm-up")
    parser.add_argument("--early-stopping", action=argparse.BooleanOptionalAction,
                        help="stop a run when its validation loss stalls")
    parser.add_argument("--weights", choices=WEIGHTS, help="the weights a run ends with: best by validation loss, last, "
                                                           "or ema (an exponential average)")
    parser.add_argument("--ema-decay", type=float, help="weights ema: the average's decay a step")
    parser.add_argument("--weight-decay", type=float, help="L2 (sgd) or decoupled (adam) weight decay")
    parser.add_argument("--label-smoothing", type=float, help="label smoothing of the loss, in [0, 1)")
    parser.add_argument("--time-masks", type=at_least(0), nargs=2, metavar=("MASKS", "WIDEST"),
                        help="SpecAugment: masks a clip over frames, and the widest")
    parser.add_argument("--freq-masks", type=at_least(0), nargs=2, metavar=("MASKS", "WIDEST"),
                        help="SpecAugment: masks a clip over coefficients or bands, and the widest")
    parser.add_argument("--standardise", action=argparse.BooleanOptionalAction,
                        help="inputs standardised by every training clip's per-coefficient mean and sd")
    parser.add_argument("--penalty", type=float, help="heads: scikit-learn's C, the inverse L2 strength (1.0)")
    parser.add_argument("--seed", type=seed, default=seed_default, help="pruning, draws and model initialisations (default: %(default)s)")
    parser.add_argument("--engine", default=engine, choices=ENGINES,
                        help="torch: many runs in one batched network; keras: the original's model.fit, run by run, "
                             "on the backend KERAS_BACKEND names (default: %(default)s)")
    parser.add_argument("--device", default=device, choices=("auto", "cpu", "cuda"))


RECIPE_FLAGS = ("learning_rate", "max_epochs", "restore_best", "dtype", "optimizer", "schedule", "warmup_epochs",
                "early_stopping", "weights", "ema_decay", "weight_decay", "label_smoothing", "time_masks", "freq_masks",
                "standardise", "penalty")


def training_config(args):
    """The TrainConfig the flags of add_training_flags ask for: the recipe (--recipe, else the model's own), with
    --model and each given flag in its place, checked once."""
    from kwsprune.models import is_head, model_spec
    from kwsprune.recipe import HEAD_FIELDS, RECIPES, check_config

    config = RECIPES[args.recipe or model_spec(args.model).recipe]
    changes = {name: getattr(args, name) for name in RECIPE_FLAGS if getattr(args, name, None) is not None}
    if is_head(args.model):
        if args.recipe not in (None, model_spec(args.model).recipe):
            raise InputError(f"--recipe {args.recipe} trains networks, not --model {args.model} (a head's recipe is "
                             f"{model_spec(args.model).recipe}): drop --recipe, or add --model tiny")
        unread = [name for name in changes if name not in (*HEAD_FIELDS, "dtype")] + (["batch_size"] if args.batch_size else [])
        if unread:
            flag = "--" + unread[0].replace("_", "-")
            raise InputError(f"{flag} does nothing to --model {args.model} (a head is fitted to convergence, not trained "
                             f"by epochs): drop it, or train a network with it, e.g. --model tiny")
    changes["model"] = args.model
    for name in ("time_masks", "freq_masks"):
        if name in changes:
            changes[name] = tuple(changes[name])
    if args.batch_size is not None:
        changes["batch_size"] = _batch_size(args.batch_size)
    if args.learning_rate is not None and not (args.learning_rate > 0 and math.isfinite(args.learning_rate)):
        raise InputError(f"--learning-rate {args.learning_rate}: give a positive finite number (the original's is 5e-3)")
    config = replace(config, **changes)
    check_config(config)
    return config


def add_pruning_flags(parser, ks, n_init, pca) -> None:
    """The flags that name a pruning set-up (pruning.py, and the training scripts that read its kept sets)."""
    parser.add_argument("--k", type=at_least(1), nargs="+", default=ks,
                        help="k-means clusters; several give a K scan (default: %(default)s)")
    parser.add_argument("--n-init", type=at_least(1), default=n_init,
                        help="k-means starts, the best kept (default: %(default)s, as the original's scikit-learn)")
    parser.add_argument("--pca", type=at_least(1), default=pca, help="PCA dimension before the original's k-means (default: none)")
    parser.add_argument("--original-names", action="store_true",
                        help="also write the original's file names (simple/hard/normal), which its scripts read")


def study_from_flags(args):
    """The Study (kwsprune.study) the flags of a training script ask for; flags a script lacks keep their defaults."""
    from kwsprune.methods import with_balance
    from kwsprune.study import Study

    given = {name: getattr(args, name) for name in ("repeats", "alpha", "margin", "generalise_to", "max_repeats",
                                                    "round_size", "seed", "n_init", "pca", "original_names", "engine",
                                                    "device", "backend", "scheduler", "workers", "models_per_job") if hasattr(args, name)}
    methods = args.methods if hasattr(args, "methods") else [args.method]
    return Study(ns=tuple(args.n if isinstance(args.n, list) else [args.n]),
                 methods=tuple(with_balance(methods, getattr(args, "class_balanced", False))),
                 ratios=tuple(args.ratios if hasattr(args, "ratios") else [args.ratio]), ks=tuple(args.k),
                 config=training_config(args), **given)

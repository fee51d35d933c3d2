"""What a sweep is asked, as one frozen description, and the study's record of its comparisons with random.

A Study is built by the training scripts from their flags and taken whole by the sweep and the report. Every
comparison (a method against random at one N or fraction, ratio and K) is registered in the results store the
first time kwsprune trains or reports it, with the share of the family-wise error it may spend
(kwsprune.sequential.batch_alpha): results/studies/{study id}.json, one file per study of the results store (a
recipe on one dataset with one pruning set-up), holding each sweep's description beside the comparisons it added.
"""

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from kwsprune.artefacts import write_text
from kwsprune.claims import store_lock
from kwsprune.paths import format_ratio
from kwsprune.runs import Run, run_for
from kwsprune.sequential import ALPHA, MARGIN, batch_alpha
from kwsprune.test_set import GENERALISE_TO, SPEAKERS
from kwsprune.training import TrainConfig
from kwsprune.validation import InputError

AUTO = "auto"          # --repeats auto: train in rounds until each comparison is decided
STUDIES_DIR = "studies"  # under results/: the comparisons' error shares, a file per study


@dataclass(frozen=True)
class Study:
    """Everything a sweep is asked: sizes, methods, ratios, K, repeats or the stopping rule, recipe, pruning set-up
    and backend."""
    ns: tuple = ("200", "400", "600", "800")   # clips per run, or "all"
    methods: tuple = ("keep_hard", "keep_easy", "random")
    ratios: tuple = (0.1, 0.2, 0.3)            # fractions removed
    ks: tuple = (10,)
    repeats: int | str = 100                   # a number, or AUTO
    alpha: float = ALPHA                       # --repeats auto: the study's family-wise error
    margin: float = MARGIN                     # equivalent: within this of random
    max_repeats: int = 100                     # --repeats auto: undecided after this many
    generalise_to: str = SPEAKERS              # verdicts speak of new speakers, or new clips of the test speakers
    round_size: int = 5                        # --repeats auto: repeats added to every open comparison a round
    config: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    n_init: int = 10
    pca: int | None = None
    original_names: bool = False
    engine: str = "torch"
    device: str = "auto"
    backend: str = "local"
    scheduler: str | None = None
    workers: int = 2
    models_per_job: int = 100

    @property
    def sequential(self) -> bool:
        return self.repeats == AUTO

    @property
    def most_repeats(self) -> int:
        """The repeats a comparison may use: --max-repeats for AUTO, else --repeats."""
        return self.max_repeats if self.sequential else int(self.repeats)


def check_stopping(study: Study) -> None:
    """The stopping rule's values, each refused with the flag to change."""
    if study.repeats != AUTO and not (isinstance(study.repeats, int) and study.repeats >= 1):
        raise InputError(f"--repeats {study.repeats!r}: give a whole number >= 1 or {AUTO!r}")
    if not 0 < study.alpha < 1:
        raise InputError(f"--alpha {study.alpha}: give the family-wise error rate, between 0 and 1 (e.g. 0.05)")
    if not 0 <= study.margin < 1:
        raise InputError(f"--margin {study.margin}: give an accuracy difference in [0, 1) (0.01 is one point)")
    if study.generalise_to not in GENERALISE_TO:
        raise InputError(f"--generalise-to {study.generalise_to!r}: give one of {', '.join(GENERALISE_TO)}")
    if study.max_repeats < 2 or study.round_size < 1:
        raise InputError(f"--max-repeats {study.max_repeats} / --round-size {study.round_size}: give at least 2 "
                         "repeats and rounds of at least 1")


def study_record(study: Study) -> dict:
    """The study as JSON-ready values, from which study_from_record builds it again."""
    return asdict(study)


def study_from_record(record: dict) -> Study:
    values = {f.name: record[f.name] for f in fields(Study) if f.name in record}
    config = record.get("config", {})
    values["config"] = TrainConfig(**{name: tuple(value) if isinstance(value, list) else value
                                      for name, value in config.items()})
    for name in ("ns", "methods", "ratios", "ks"):
        values[name] = tuple(values[name])
    return Study(**values)


Comparison = tuple  # (method, ratio, k, n) as a row writes them, e.g. ("keep_hard", "0.3", "10", "400")


def comparisons(study: Study) -> list[Comparison]:
    """Every method but random against random, at each N, ratio and K of the study."""
    return list(dict.fromkeys((method, format_ratio(ratio), str(k), n) for n in study.ns for method in study.methods
                              if method != "random" for k in study.ks for ratio in study.ratios))


def baseline_run(comparison: Comparison, repeat: int) -> Run:
    """The random run a comparison's method run of this repeat is paired with (kwsprune.runs.run_for)."""
    _, ratio, k, n = comparison
    return run_for("random", float(ratio), int(k), n, repeat)


def comparison_runs(comparison: Comparison, repeats) -> list[Run]:
    """The method's runs and their random partners for these repeats."""
    method, ratio, k, n = comparison
    return [run for repeat in repeats
            for run in (run_for(method, float(ratio), int(k), n, repeat), baseline_run(comparison, repeat))]


def _ledger_path(results_dir, study_key_id: str) -> Path:
    return Path(results_dir) / STUDIES_DIR / f"{study_key_id}.json"


def read_ledger(results_dir, study_key_id: str) -> dict | None:
    path = _ledger_path(results_dir, study_key_id)
    if not path.exists():
        return None
    try:
        ledger = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path} is not readable JSON ({err}): restore it from a backup; deleting it forgets which "
                         "error share each comparison was given") from None
    if isinstance(ledger, dict) and ledger.get("generalise_to", SPEAKERS) not in GENERALISE_TO:
        raise InputError(f"{path}: generalise_to {str(ledger['generalise_to'])[:40]!r} is not one of "
                         f"{', '.join(GENERALISE_TO)}: restore the ledger from a backup (its first sweep's --generalise-to)")
    return ledger


def register(results_dir, study_key_id: str, description: str, new: list[Comparison], study: Study | None) -> dict:
    """Add the comparisons not yet in the study's ledger as one batch, with an equal share of the batch's error, and
    record the sweep that added them (None: the report met them first); returns the ledger."""
    with store_lock(results_dir):  # two sweeps of one study register their comparisons one after the other
        ledger = read_ledger(results_dir, study_key_id)
        alpha = study.alpha if study else ALPHA
        if ledger is None:
            ledger = {"study": description, "alpha": alpha, "generalise_to": study.generalise_to if study else SPEAKERS,
                      "batches": []}
        elif study and generalises_to(ledger) != study.generalise_to:
            raise InputError(f"{_ledger_path(results_dir, study_key_id)}: this study's verdicts speak of new "
                             f"{generalises_to(ledger)}, fixed when its first comparisons were registered; rerun with "
                             f"--generalise-to {generalises_to(ledger)}, or use another --data-root for a new study")
        elif study and study.sequential and abs(ledger["alpha"] - study.alpha) > 1e-12:
            raise InputError(f"{_ledger_path(results_dir, study_key_id)}: this study's family-wise error is "
                             f"{ledger['alpha']}, fixed when its first comparisons were registered; rerun with --alpha "
                             f"{ledger['alpha']}, or use another --data-root for a new study")
        known = {tuple(c) for batch in ledger["batches"] for c in batch["comparisons"]}
        added = [c for c in dict.fromkeys(new) if tuple(c) not in known]
        if not added:
            return ledger
        spent = batch_alpha(ledger["alpha"], len(ledger["batches"]) + 1)
        ledger["batches"].append({"alpha": spent, "alpha_each": spent / len(added),
                                  "margin": study.margin if study else MARGIN,
                                  "max_repeats": study.most_repeats if study else None,
                                  "sweep": study_record(study) if study else None,
                                  "comparisons": [list(c) for c in added]})
        path = _ledger_path(results_dir, study_key_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(ledger, indent=1) + "\n")
        return ledger


def generalises_to(ledger: dict | None) -> str:
    """What a study's verdicts speak of (kwsprune.test_set.GENERALISE_TO); a ledger of an older kwsprune: speakers."""
    return (ledger or {}).get("generalise_to", SPEAKERS)


def shares(ledger: dict | None) -> dict[Comparison, dict]:
    """{comparison: its batch (alpha_each, margin, max_repeats)} of a ledger."""
    if not ledger:
        return {}
    return {tuple(c): batch for batch in ledger["batches"] for c in batch["comparisons"]}

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
from kwsprune.validation import InputError, is_number

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


def read_ledger(results_dir, study_key_id: str, description: str | None = None) -> dict | None:
    """The study's ledger, or None where there is none; a ledger that does not prove itself — of another study (its
    id, or for an older kwsprune's its description, not this one's), shares that do not follow the rule
    (kwsprune.sequential.batch_alpha, split equally), a comparison twice, a value of the wrong type — is refused in
    one line naming the file."""
    path = _ledger_path(results_dir, study_key_id)
    if not path.exists():
        return None
    if path.is_symlink() or not path.is_file():
        raise InputError(f"{path} is not a file: remove it (a study's ledger is a JSON file kwsprune writes)")
    try:
        ledger = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{path} is not readable JSON ({str(err)[:80]}): restore it from a backup; deleting it forgets "
                         "which error share each comparison was given") from None
    problem = ledger_problem(ledger, study_key_id, description)
    if problem is not None:
        fix = ("restore the ledger from a backup (its first sweep's --generalise-to)" if "generalise_to" in problem
               else "restore it from a backup; a ledger is kwsprune's record of each comparison's error share")
        raise InputError(f"{path}: {problem}: {fix}")
    return ledger


def ledger_problem(ledger, study_key_id: str, description: str | None) -> str | None:
    """What is wrong with a ledger read from a file (the first thing), or None where it proves itself."""
    if not isinstance(ledger, dict) or not isinstance(ledger.get("batches"), list):
        return "not a ledger (a JSON object with a list of batches)"
    if ledger.get("id", study_key_id) != study_key_id:
        return f"it is the ledger of study {str(ledger['id'])[:20]!r}, not of this study ({study_key_id})"
    if "id" not in ledger and description is not None and ledger.get("study") != description:
        return "it describes another study than this one"
    alpha = ledger.get("alpha")
    if not is_number(alpha) or not 0 < alpha < 1:
        return f"alpha {str(alpha)[:20]!r} is not a family-wise error in (0, 1)"
    if ledger.get("generalise_to", SPEAKERS) not in GENERALISE_TO:
        return f"generalise_to {str(ledger['generalise_to'])[:40]!r} is not one of {', '.join(GENERALISE_TO)}"
    seen = set()
    for number, batch in enumerate(ledger["batches"], start=1):
        if not isinstance(batch, dict) or not isinstance(batch.get("comparisons"), list) or not batch["comparisons"]:
            return f"batch {number} is not a batch of comparisons"
        spent = batch_alpha(alpha, number)
        if not is_number(batch.get("alpha")) or abs(batch["alpha"] - spent) > 1e-12 * spent:
            return f"batch {number} spends {str(batch.get('alpha'))[:20]}, where the rule gives {spent:g} (alpha / 2^{number})"
        each = spent / len(batch["comparisons"])
        if not is_number(batch.get("alpha_each")) or abs(batch["alpha_each"] - each) > 1e-12 * each:
            return (f"batch {number} gives each comparison {str(batch.get('alpha_each'))[:20]}, where an equal share of "
                    f"{spent:g} among {len(batch['comparisons'])} is {each:g}")
        if not is_number(batch.get("margin")) or not 0 <= batch["margin"] < 1:
            return f"batch {number}'s margin {str(batch.get('margin'))[:20]!r} is not in [0, 1)"
        most = batch.get("max_repeats")
        if most is not None and not (isinstance(most, int) and not isinstance(most, bool) and most >= 1):
            return f"batch {number}'s max_repeats {str(most)[:20]!r} is not a whole number"
        for comparison in batch["comparisons"]:
            if not (isinstance(comparison, list) and len(comparison) == 4 and all(isinstance(v, str) for v in comparison)):
                return f"batch {number} holds {str(comparison)[:40]!r}, which is not a comparison (method, ratio, k, n)"
            if tuple(comparison) in seen:
                return f"the comparison {comparison} is in two batches (it would spend two shares)"
            seen.add(tuple(comparison))
    return None


def register(results_dir, study_key_id: str, description: str, new: list[Comparison], study: Study | None,
             trained: int = 0) -> dict:
    """Add the comparisons not yet in the study's ledger as one batch, with an equal share of the batch's error, and
    record the sweep that added them (None: the report met them first); returns the ledger. `trained`: runs of these
    comparisons the store holds with per-clip outcomes, which a kwsprune that keeps ledgers wrote: with no ledger
    beside them it was deleted, and a new one would forget their shares, so it is refused."""
    with store_lock(results_dir):  # two sweeps of one study register their comparisons one after the other
        ledger = read_ledger(results_dir, study_key_id, description)
        alpha = study.alpha if study else ALPHA
        if ledger is None and trained:
            raise InputError(f"{_ledger_path(results_dir, study_key_id)} is missing, yet the store holds {trained} runs "
                             f"of this study's comparisons: restore it from a backup (it fixed each comparison's share "
                             f"of the error); or, for a new study of these rows, move results/ aside and rerun")
        if ledger is None:
            ledger = {"id": study_key_id, "study": description, "alpha": alpha,
                      "generalise_to": study.generalise_to if study else SPEAKERS, "batches": []}
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

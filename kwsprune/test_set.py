"""The test set a verdict is read on: what its clips are, what a verdict on it can claim, and how far the difference
on it may lie from the difference on new clips or new speakers.

Repeats average away the draw of clips and the training, never the test set: every repeat is scored on the same
clips. So a comparison's difference has two parts (Bouthillier et al. 2021, "Accounting for variance in machine
learning benchmarks"): the difference on this test set, which the repeats' confidence sequence converges on, and its
gap from the difference on the population the test set was drawn from, one fixed error that no repeat shrinks.
`gap_half_width` bounds the gap from the paired per-clip outcomes of every repeat: a cluster-robust variance of the
mean over test clips (clusters are speakers where a verdict speaks of new speakers, clips otherwise, within the
speakers as strata), less the share of that variance that is the training's (each cluster's spread over repeats /
repeats), so the training noise is not counted twice as it is by McNemar or a bootstrap of one run.
"""

from dataclasses import dataclass

import numpy as np
from scipy import stats

from kwsprune.artefacts import load_verified
from kwsprune.paths import DATASET_DIR, step_dir
from kwsprune.validation import InputError

SPEAKERS, CLIPS = "speakers", "clips"   # --generalise-to: new speakers, or new clips of the test speakers
GENERALISE_TO = (SPEAKERS, CLIPS)
MADE_BY = "prepare_dataset.py"


@dataclass(frozen=True)
class HeldOut:
    """The test split as verdicts see it: each clip's class, its speaker (None where the data root does not record
    them) and whether any test speaker also speaks in the training split."""
    labels: np.ndarray
    speakers: np.ndarray | None = None
    speakers_in_training: bool = False


@dataclass(frozen=True)
class Population:
    """What a verdict on a test set speaks of: the clusters resampled (ids), the strata they are resampled within
    (ids) and the claim in words."""
    clusters: np.ndarray
    strata: np.ndarray
    covers: str


def load_test_set(data_root) -> HeldOut:
    """The test split's classes and speakers, checked against the dataset manifest."""
    folder = step_dir(data_root, DATASET_DIR)
    labels = np.asarray(load_verified(folder, "test_y.npy", MADE_BY))
    if not (folder / "test_speakers.npy").exists():
        return HeldOut(labels)
    speakers = np.asarray(load_verified(folder, "test_speakers.npy", MADE_BY))
    train_speakers = np.asarray(load_verified(folder, "train_speakers.npy", MADE_BY))
    for name, values in (("test_speakers.npy", speakers), ("train_speakers.npy", train_speakers)):
        if values.dtype.kind != "U" or values.ndim != 1:
            raise InputError(f"{folder / name}: {values.dtype} {values.shape}, not one speaker name a clip: re-run {MADE_BY}")
    if len(speakers) != len(labels):
        raise InputError(f"{folder / 'test_speakers.npy'} has {len(speakers)} rows but test_y.npy {len(labels)}: "
                         f"re-run {MADE_BY}")
    return HeldOut(labels, speakers, bool(np.isin(speakers, train_speakers).any()))


def population(test_set: HeldOut, generalise_to: str = SPEAKERS) -> Population:
    """The population a verdict on this test set may speak of: new speakers where asked and the test speakers are
    known and unseen in training; new clips of the test speakers where they are known; new clips otherwise."""
    n = len(test_set.labels)
    if test_set.speakers is None:
        return Population(np.arange(n), np.zeros(n, int), f"new clips like these {n} (speakers unknown)")
    _, speaker_ids = np.unique(test_set.speakers, return_inverse=True)
    count = int(speaker_ids.max()) + 1 if n else 0
    word = "speaker" if count == 1 else "speakers"
    if generalise_to == SPEAKERS and not test_set.speakers_in_training:
        return Population(speaker_ids, np.zeros(n, int), f"new speakers ({n} test clips of {count} {word})")
    seen = ", who also speak in training" if test_set.speakers_in_training else ""
    return Population(np.arange(n), speaker_ids, f"new clips of these {count} test {word}{seen} ({n} test clips)")


def _sums(differences, where: Population) -> tuple[float, float, float, float, int]:
    """The two sums of squares of the gap's variance, times n^2: the clusters' spread of their mean residual totals
    (what a resampling of clusters of the repeats' mean outcomes sees) and the training's share of it (each cluster's
    spread over repeats / repeats), with their degrees of freedom, and the test clips n. differences: (repeats, test
    clips) of method's correct minus random's correct (-1, 0, 1), a row a repeat."""
    d = np.atleast_2d(np.asarray(differences, dtype=np.float64))
    repeats, n = d.shape
    _, clusters = np.unique(where.clusters, return_inverse=True)
    _, strata_of_clip = np.unique(where.strata, return_inverse=True)
    sizes = np.bincount(clusters).astype(np.float64)
    stratum = np.zeros(len(sizes), int)
    stratum[clusters] = strata_of_clip
    per_stratum = np.bincount(stratum)
    totals = np.stack([np.bincount(clusters, weights=row, minlength=len(sizes)) for row in d])     # (repeats, clusters)
    residual = totals - sizes * d.mean(axis=1, keepdims=True)
    stratum_means = np.stack([np.bincount(stratum, weights=row) / per_stratum for row in residual])
    centred = residual - stratum_means[:, stratum]
    usable = per_stratum[stratum] > 1
    scale = per_stratum[stratum][usable] / (per_stratum[stratum][usable] - 1)
    observed = float((scale * centred.mean(axis=0)[usable] ** 2).sum())
    training = float((scale * centred.var(axis=0, ddof=1)[usable]).sum()) / repeats if repeats > 1 else 0.0
    return observed, training, float((per_stratum[per_stratum > 1] - 1).sum()), float(usable.sum() * (repeats - 1)), n


def gap_variance(differences, where: Population) -> tuple[float, float]:
    """The variance of the gap between the mean paired difference on this test set (the training's expectation) and
    on its population, the clusters' spread less the training's share, and the degrees of freedom of the estimate
    (Satterthwaite's, for a difference of two sums of squares)."""
    return _split(*_sums(differences, where))


def _split(observed: float, training: float, df_observed: float, df_training: float, n: int) -> tuple[float, float]:
    """gap_variance from the sums of _sums."""
    between = observed - training
    if between <= 0 or df_observed == 0:
        return 0.0, df_observed
    return between / n ** 2, between ** 2 / (observed ** 2 / df_observed + (training ** 2 / df_training if training else 0.0))


def gap_half_width(differences, where: Population, alpha: float) -> float:
    """Half-width of an interval that holds the test set's gap from its population with probability 1 - alpha:
    Student's t times the gap's standard deviation, on Satterthwaite's degrees of freedom; where the training's share
    is most of the clusters' spread and those are few, the clusters' spread alone on its own degrees of freedom (an
    overestimate by the training's share / repeats) is narrower and taken instead; inf where the clusters are too
    few to say anything."""
    sums = _sums(differences, where)
    observed, _, df_observed, _, n = sums
    if df_observed == 0:
        return np.inf
    variance, df = _split(*sums)
    whole = stats.t.ppf(1 - alpha / 2, df_observed) * np.sqrt(observed) / n
    split = stats.t.ppf(1 - alpha / 2, df) * np.sqrt(variance) if variance > 0 else np.inf
    return float(min(split, whole))

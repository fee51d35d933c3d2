"""What kwsprune's differences from the original pruning do to the kept clips, measured on a data root's embeddings.

  python benchmarks/original_differences.py --data-root DIR [--k 10] [--seeds 5]

For the original's keep_hard ("simple") pruning, on the embeddings of DIR (after steps 0-1), it prints:
- k-means starts: the original's scikit-learn ran 10 (n_init); one start (n_init=1, what kwsprune ran before)
  moves clips to other clusters and changes the kept sets. Per seed: inertia of each, the fraction of clips
  whose cluster differs (clusters matched one to one), and how many kept clips differ at each ratio.
- float16 stacking: the original stored the embeddings as float16 before clustering.
- cut-off arithmetic: the original removed int(ratio * size) clips of a cluster, kwsprune floor(ratio * size)
  with a guard against float error (0.29 * 100 = 28.999...), and never empties a cluster.
- the original's [:-0] slice: keep_easy ("hard") keeps nothing of a cluster whose cut-off is 0.
- the original's draws: random.sample(range(1, n)) never draws the first clip, and the class count came
  from the largest label drawn, so a draw missing the last class built a model with too few outputs.
"""

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kwsprune.dataset import load_labels  # noqa: E402
from kwsprune.embedding_scores import kmeans_distances, standardise_clips  # noqa: E402
from kwsprune.embeddings import load_features  # noqa: E402
from kwsprune.selection import keep_by_score, n_removed  # noqa: E402

RATIOS = (0.05, 0.1, 0.15, 0.2, 0.3)  # the original's


def matched_disagreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of clips in different clusters after matching the two clusterings' ids one to one."""
    k = int(max(a.max(), b.max())) + 1
    table = np.zeros((k, k), int)
    np.add.at(table, (a, b), 1)
    rows, cols = linear_sum_assignment(-table)
    return 1 - table[rows, cols].sum() / len(a)


def inertia(features: np.ndarray, clusters: np.ndarray) -> float:
    z = standardise_clips(features)
    return float(sum(((z[clusters == c] - z[clusters == c].mean(axis=0)) ** 2).sum() for c in np.unique(clusters)))


def kept_differ(first, second) -> int:
    return len(np.setdiff1d(first, second)) + len(np.setdiff1d(second, first))


def original_kept(distances, clusters, ratio, largest: bool):
    """The original's remove_points_from_clusters_full: int(frac * size) removed, idx[sorted[:-0]] for hard."""
    kept = []
    for cluster in np.unique(clusters):
        members = np.flatnonzero(clusters == cluster)
        order = np.argsort(distances[members])
        cutoff = int(ratio * len(members))
        kept.append(members[order[:-cutoff]] if largest else members[order[cutoff:]])
    return np.sort(np.concatenate(kept))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, help="a data root after steps 0-1")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=5, help="k-means seeds compared (default: %(default)s)")
    args = parser.parse_args(argv)
    features = np.asarray(load_features(args.data_root), np.float32)
    labels = load_labels(args.data_root, "train", len(features))
    print(f"{len(features)} clips x {features.shape[1]} dims, k = {args.k}")

    print("\nk-means starts: n_init 10 (the original's) against 1")
    print(f"{'seed':>4s} {'inertia 10':>11s} {'inertia 1':>10s} {'clips moved':>12s}  kept clips differing at ratios {RATIOS}")
    for seed in range(args.seeds):
        runs = {n: kmeans_distances(features, args.k, seed, n_init=n) for n in (10, 1)}
        moved = matched_disagreement(runs[10][0], runs[1][0])
        differ = [kept_differ(*(keep_by_score(runs[n][1], r, True, runs[n][0]) for n in (10, 1))) // 2 for r in RATIOS]
        print(f"{seed:4d} {inertia(features, runs[10][0]):11.0f} {inertia(features, runs[1][0]):10.0f} {moved:12.1%}  {differ}")

    print("\nfloat16 stacking (n_init 10, seed 0): float32 against the original's float16")
    base = kmeans_distances(features, args.k, 0, n_init=10)
    half = kmeans_distances(features.astype(np.float16).astype(np.float32), args.k, 0, n_init=10)
    differ = [kept_differ(keep_by_score(base[1], r, True, base[0]), keep_by_score(half[1], r, True, half[0])) // 2
              for r in RATIOS]
    print(f"clips moved {matched_disagreement(base[0], half[0]):.1%}; kept clips differing {differ}")

    print("\ncut-off arithmetic on these clusters (n_init 10, seed 0)")
    sizes = np.bincount(base[0])
    for r in RATIOS:
        theirs = [int(r * s) for s in sizes]
        ours = [n_removed(int(s), r) for s in sizes]
        easy_theirs = original_kept(base[1], base[0], r, largest=True)
        easy_ours = keep_by_score(base[1], r, False, base[0])
        print(f"ratio {r}: clusters whose removal count differs {sum(a != b for a, b in zip(theirs, ours))} of {len(sizes)}; "
              f"keep_easy kept clips differing {kept_differ(easy_theirs, easy_ours) // 2}")
    off_by_one = {r: sum(int(r * n) != math.floor(r * n + 1e-9) for n in range(1, 100001))
                  for r in (*RATIOS, 0.5, 0.7, 0.9, 0.35)}
    print(f"cluster sizes 1..100,000 where int(ratio x size) falls one short: {off_by_one}")
    empty = {r: int((sizes * r < 1).sum()) for r in RATIOS}
    print(f"clusters keep_easy's [:-0] would empty (size < 1 / ratio): {empty}; smallest cluster {sizes.min()} clips")

    print("\nthe original's draws: random.sample(range(1, n), N)")
    n_classes = int(labels.max()) + 1
    rng = np.random.default_rng(0)
    for n in (100, 200, 400, 800):
        if n > len(labels) - 1:
            continue
        missing = np.mean([labels[1 + rng.choice(len(labels) - 1, n, replace=False)].max() < n_classes - 1
                           for _ in range(2000)])
        print(f"N = {n}: the draw misses the last class (a model with too few outputs) in {missing:.2%} of draws; "
              f"clip 0 is never drawn (it would be in {n / len(labels):.1%} of draws)")


if __name__ == "__main__":
    main()

"""Clips that are one recording: a file reached through two paths (a symlinked folder) or byte-identical files.

Within one class and split a second path to the same file is read once, and byte-identical copies are kept and
counted in one line (the Bengali digits hold 906 such files in 197 groups, one clip 50 times); --drop-duplicates
keeps the first of each. Across classes a copy is a clip with two labels, and across splits a test clip seen in
training: those are refused, or with --drop-duplicates every copy is left out.
"""

import os
from concurrent.futures import ThreadPoolExecutor

from tqdm import tqdm

from kwsprune.artefacts import file_sha256


def _place(clip) -> tuple[str, str]:
    return clip.label, clip.split


def copies(clips, threads: int = 4) -> tuple[list, int, list[list], list[list]]:
    """(the clips with each real file once, how many second paths were dropped, the groups of byte-identical clips
    that span classes or splits, those within one class and split). Clips made on the spot (no path) are kept."""
    by_real: dict[str, list] = {}
    for clip in clips:
        by_real.setdefault(os.path.realpath(clip.path) if clip.path else id(clip), []).append(clip)
    once, linked = [], 0
    for group in by_real.values():
        if len({_place(clip) for clip in group}) == 1:
            once.append(group[0])
            linked += len(group) - 1
        else:
            once.extend(group)  # one file under two labels or splits: reported below with the byte-identical copies
    on_disk = [clip for clip in once if clip.path]
    with ThreadPoolExecutor(threads) as pool:
        digests = list(tqdm(pool.map(lambda clip: file_sha256(clip.path), on_disk), total=len(on_disk),
                            desc="looking for copies", unit="clip"))
    by_content: dict[str, list] = {}
    for clip, digest in zip(on_disk, digests):
        by_content.setdefault(digest, []).append(clip)
    groups = sorted((sorted(group, key=lambda clip: clip.relpath) for group in by_content.values() if len(group) > 1),
                    key=lambda group: group[0].relpath)
    spanning = [group for group in groups if len({_place(clip) for clip in group}) > 1]
    within = [group for group in groups if len({_place(clip) for clip in group}) == 1]
    return once, linked, spanning, within


def describe(group) -> str:
    """One group of copies in words: 'a/x.wav (class a, train) = b/x.wav (class b, test) and 3 more'."""
    text = " = ".join(f"{clip.relpath} (class {clip.label}, {clip.split})" for clip in group[:2])
    text += f" and {len(group) - 2} more" if len(group) > 2 else ""
    same_file = len({os.path.realpath(clip.path) for clip in group}) == 1
    return text + (" (one file: a symlinked folder?)" if same_file else "")

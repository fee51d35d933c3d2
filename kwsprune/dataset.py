"""Step 0: clips into `Dataset_as_Numpy/`, and the checked loading of what it wrote.

For each split: `{split}_x.npy` (n, 16000) float32 normalised per clip (--normalise), `{split}_y.npy` (n,) int64,
`{split}_speakers.npy` (n,) str and `{split}_files.txt` (the source name of each row); plus
`labels.json` (class names in id order) and `manifest.json`. Within a split, rows are sorted by the
clip's relative path: the order every later step relies on.
"""

import json
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from kwsprune.artefacts import (check_writable, command_line, file_sha256, load_verified, open_output, rerun, save_npy, staged,
                                verify_file, write_manifest, write_text)
from kwsprune.paths import CLIP_SAMPLES, DATASET_DIR, EMBEDDINGS_DIR, LABELS_FILE, SPLITS, step_dir
from kwsprune.validation import BadClip, InputError, check_labels, check_same_length, check_waveforms, load_npy

log = logging.getLogger(__name__)
MADE_BY = "prepare_dataset.py"
SKIPPED_FILE = "skipped_files.txt"  # --skip-bad-files: each file left out and why


def check_class_count(n_classes: int, source) -> None:
    if n_classes < 2:
        raise InputError(f"{source} has {n_classes} class: a classifier needs at least 2 (one folder per class)")


def check_clips(clips, class_names, source: str, fix: str) -> None:
    """Every class has training clips and every split has clips; otherwise say which is empty and `fix`."""
    if not clips:
        raise InputError(f"{source} holds no audio files")
    check_class_count(len(class_names), source)
    per_split = Counter(clip.split for clip in clips)
    for split in SPLITS:
        if per_split[split] == 0:
            raise InputError(f"{source}: the {split} split is empty ({dict(per_split)} clips per split): {fix}")
    train_labels = Counter(clip.label for clip in clips if clip.split == "train")
    empty = [name for name in class_names if train_labels[name] == 0]
    if empty:
        raise InputError(f"{source}: the classes {empty} have no training clips: add clips or leave those classes out")


def _refuse_bad_names(clips, skip: bool, source) -> tuple[list, list[str]]:
    """Clips whose file names {split}_files.txt can hold one a line; the others are refused, or with `skip` left out
    (a line each for skipped_files.txt, the name as Python's ascii() writes it)."""
    from kwsprune.sources import bad_name

    bad = [(clip, why) for clip in clips if (why := bad_name(clip.relpath))]
    if bad and not skip:
        clip, why = bad[0]
        raise InputError(f"{ascii(clip.relpath)} under {source}: its name {why}, which a list of one name a line cannot "
                         f"hold ({len(bad)} such files): rename them, or pass --skip-bad-files to leave them out")
    if bad:
        log.warning("skipped %d files whose names cannot be listed one a line, the first: %s", len(bad), ascii(bad[0][0].relpath))
    return _leave_out(clips, [(clip, f"{ascii(clip.relpath)}\tits name {why}\n") for clip, why in bad])


def _refuse_copies(clips, drop: bool, source, threads: int) -> tuple[list, list[str]]:
    """Each real file once, and no byte-identical copies across classes or splits: refused, or with `drop` every copy
    left out, and of the copies within a class and split all but the first (a line each for skipped_files.txt).
    See kwsprune.duplicates."""
    from kwsprune.duplicates import copies, describe

    clips, linked, spanning, within = copies(clips, threads)
    if linked:
        log.info("%d files reached through a second path (a symlinked folder) are read once", linked)
    if within:
        largest = max(within, key=len)
        log.warning("%d files are byte-identical copies within their class and split (%d groups, the largest %d copies "
                    "of %s): %s", sum(len(group) for group in within), len(within), len(largest), largest[0].relpath,
                    "the first of each is kept (--drop-duplicates)" if drop else "kept; --drop-duplicates keeps one of each")
    if spanning and not drop:
        raise InputError(f"{source}: {sum(len(group) for group in spanning)} files in {len(spanning)} groups are "
                         "byte-identical across classes or splits (a clip under two labels, or a test clip in training), "
                         f"the first: {describe(spanning[0])}: remove the copies, or pass --drop-duplicates to leave every "
                         "copy out")
    if spanning:
        log.warning("left out %d byte-identical files in %d groups across classes or splits (--drop-duplicates; listed "
                    "in %s), the first: %s", sum(len(group) for group in spanning), len(spanning), SKIPPED_FILE,
                    describe(spanning[0]))
    if not drop:
        return clips, []
    dropped = [(clip, f"byte-identical copies across classes or splits: {describe(group)}")
               for group in spanning for clip in group]
    dropped += [(clip, f"a byte-identical copy of {group[0].relpath}, which is kept") for group in within for clip in group[1:]]
    return _leave_out(clips, [(clip, f"{clip.relpath}\t{why}\n") for clip, why in dropped])


def _leave_out(clips, dropped: list[tuple]) -> tuple[list, list[str]]:
    """(the clips not in `dropped`, the skipped_files.txt line of each that is): dropped holds (clip, line)."""
    gone = {id(clip) for clip, _ in dropped}
    return [clip for clip in clips if id(clip) not in gone], [line for _, line in dropped]


def drop_bad_clips(clips, load, threads: int = 4) -> tuple[list, list[str]]:
    """(the clips `load` accepts, a line 'relpath<TAB>why' for each it refuses as BadClip): --skip-bad-files."""
    def problem(clip):
        try:
            load(clip)
        except BadClip as err:
            return str(err)
        return None

    with ThreadPoolExecutor(threads) as pool:
        problems = list(tqdm(pool.map(problem, clips), total=len(clips), desc="checking clips", unit="clip"))
    skipped = [f"{clip.relpath}\t{why}\n" for clip, why in zip(clips, problems) if why]
    if skipped:
        log.warning("skipped %d bad files (--skip-bad-files; listed in %s), the first: %s", len(skipped), SKIPPED_FILE,
                    skipped[0].split("\t")[1].strip())
    return [clip for clip, why in zip(clips, problems) if not why], skipped


def write_dataset(out_dir, clips, class_names, load, params: dict, threads: int = 4, command: str | None = None,
                  skipped: list[str] | None = None) -> dict:
    """Load every clip with `load(clip) -> (16000,) float32` and write the split arrays and manifest; `skipped`
    (lines of drop_bad_clips) goes to skipped_files.txt."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    class_ids = {name: i for i, name in enumerate(class_names)}
    files = []
    for split in SPLITS:
        split_clips = sorted((c for c in clips if c.split == split), key=lambda c: c.relpath)
        x_path = out_dir / f"{split}_x.npy"
        x = open_output(x_path, np.float32, (len(split_clips), CLIP_SAMPLES))
        with ThreadPoolExecutor(threads) as pool:
            waveforms = pool.map(load, split_clips) if threads > 1 else map(load, split_clips)
            for row, audio in enumerate(tqdm(waveforms, total=len(split_clips), desc=f"{split} clips", unit="clip")):
                x[row] = audio
        x.flush()
        del x
        save_npy(out_dir / f"{split}_y.npy", np.array([class_ids[c.label] for c in split_clips], dtype=np.int64))
        save_npy(out_dir / f"{split}_speakers.npy", np.array([c.speaker for c in split_clips], dtype=str))
        write_text(out_dir / f"{split}_files.txt", "".join(f"{c.relpath}\n" for c in split_clips))
        files += [f"{split}_x.npy", f"{split}_y.npy", f"{split}_speakers.npy", f"{split}_files.txt"]
        log.info("%s: %d clips", split, len(split_clips))
    write_text(out_dir / "labels.json", json.dumps(list(class_names), indent=1) + "\n")
    files.append("labels.json")
    if skipped is not None:
        write_text(out_dir / SKIPPED_FILE, "".join(skipped))
        files.append(SKIPPED_FILE)
    return write_manifest(out_dir, "prepare_dataset", params, inputs={}, files=files, command=command)


def load_split(data_root, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of one split, memory-mapped, after checking them against the dataset manifest."""
    folder = step_dir(data_root, DATASET_DIR)
    x = load_verified(folder, f"{split}_x.npy", MADE_BY)
    y = load_verified(folder, f"{split}_y.npy", MADE_BY)
    check_same_length(x, f"{split}_x.npy", y, f"{split}_y.npy", f"re-run {MADE_BY}")
    return x, y


def load_labels(data_root, split: str, n_rows: int) -> np.ndarray:
    """Class ids of one split, checked against the dataset manifest and against the n_rows of what uses them."""
    folder = step_dir(data_root, DATASET_DIR)
    labels = np.asarray(load_verified(folder, f"{split}_y.npy", MADE_BY))
    if len(labels) != n_rows:
        raise InputError(f"{folder / f'{split}_y.npy'} has {len(labels)} rows but the features have {n_rows}: "
                         f"{rerun(step_dir(data_root, EMBEDDINGS_DIR), 'extract_embeddings.py')}")
    return labels


def class_names(data_root) -> list[str]:
    """The class names in id order, from labels.json, checked against the dataset's manifest (its sha256) and read
    as what it must be: a list of two or more distinct names."""
    folder = step_dir(data_root, DATASET_DIR)
    verify_file(folder, LABELS_FILE, MADE_BY)
    path = folder / LABELS_FILE
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        names = None
    if not (isinstance(names, list) and len(names) >= 2 and all(isinstance(name, str) and name for name in names)
            and len(set(names)) == len(names)):
        raise InputError(f"{path} is not a list of two or more distinct class names: {rerun(folder, MADE_BY)}")
    return names


def import_arrays(source_dir, out_dir, params: dict, how: str = "none", command: str | None = None) -> dict:
    """Bring your own arrays (the original project's way): check {split}_x/_y.npy, normalise each clip as `how`
    says (none: as they are) and write them with a manifest."""
    from kwsprune.audio import normaliser

    source_dir = Path(source_dir)
    arrays = {}
    for split in SPLITS:
        for part in ("x", "y"):
            path = source_dir / f"{split}_{part}.npy"
            arrays[split, part] = load_npy(path, "--source numpy needs train/valid/test _x.npy (n, 16000) float and "
                                                 "_y.npy (n,) integer arrays saved with np.save")
        x, y = arrays[split, "x"], arrays[split, "y"]
        if len(x) == 0:
            raise InputError(f"{source_dir / f'{split}_x.npy'} holds no clips: every split needs some")
        check_waveforms(x, str(source_dir / f"{split}_x.npy"), CLIP_SAMPLES)
        check_labels(y, str(source_dir / f"{split}_y.npy"))
        check_same_length(x, f"{split}_x.npy", y, f"{split}_y.npy", "give one label per clip")
    n_classes = int(max(arrays[s, "y"].max() for s in SPLITS)) + 1
    check_class_count(n_classes, source_dir)
    present = set(np.unique(arrays["train", "y"]).tolist())
    if len(present) < n_classes:  # the first missing ids found by walking up, never a set of every id (a 1e9 typo)
        first = [c for c in range(min(n_classes, len(present) + 9)) if c not in present][:8]
        shown = ", ".join(map(str, first)) + (", ..." if n_classes - len(present) > len(first) else "")
        raise InputError(f"{source_dir / 'train_y.npy'} has no clip of {n_classes - len(present)} class ids ({shown}): "
                         f"class ids must be 0..{n_classes - 1} with every class in training; renumber the labels")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for split in SPLITS:
        x = arrays[split, "x"]
        out = open_output(out_dir / f"{split}_x.npy", np.float32, x.shape)
        for start in range(0, len(x), 4096):
            out[start:start + 4096] = normaliser(how)(x[start:start + 4096])
        out.flush()
        del out
        save_npy(out_dir / f"{split}_y.npy", np.asarray(arrays[split, "y"], dtype=np.int64))
        files += [f"{split}_x.npy", f"{split}_y.npy"]
    write_text(out_dir / "labels.json", json.dumps([str(i) for i in range(n_classes)], indent=1) + "\n")
    return write_manifest(out_dir, "prepare_dataset", params, inputs={}, files=files + ["labels.json"], command=command)


SOURCES = ("speech_commands", "folder", "fsdd", "synth", "numpy", "hf")


def prepare_dataset(
    data_root, source: str, path=None, words="core", speaker_regex=None, resample=True,
    n_speakers=300, seed=0, download=False, version="0.02", threads=4, normalise=None, split="hash",
    skip_bad_files=False, audio_column="audio", label_column="label", drop_duplicates=False,
    valid_list=None, test_list=None,
) -> dict:
    """Step 0 for one source (see SOURCES); returns the manifest written to Dataset_as_Numpy/.

    normalise: peak (default for audio), minmax (the original's) or none (default for numpy arrays).
    split (folder source): hash (Speech Commands' speaker hash), speakers (seeded speaker-grouped 80/10/10)
    or lists (validation_list.txt and testing_list.txt in the folder). audio_column, label_column: the hf source's.
    drop_duplicates: leave out byte-identical files in two classes or splits (kwsprune.duplicates) instead of refusing.
    valid_list, test_list: list files in place of the folder's (speech_commands, folder --split lists), e.g. a
    larger evaluation set; recorded with their sha256."""
    from kwsprune import sources, synth
    from kwsprune.audio import load_clip, normaliser

    out_dir = step_dir(data_root, DATASET_DIR)
    check_writable(out_dir)
    if source != "synth" and path is None:
        raise InputError(f"--source {source} needs --path DIR")
    how = normalise or ("none" if source == "numpy" else "peak")
    normalised = normaliser(how)
    if split != "hash" and source != "folder":
        raise InputError(f"--split {split} is for --source folder; {source} has its own split")
    given_lists = {name: Path(value).resolve() for name, value in (("valid_list", valid_list), ("test_list", test_list))
                   if value is not None}
    if given_lists and not (source == "speech_commands" or (source == "folder" and split == "lists")):
        raise InputError(f"--{next(iter(given_lists)).replace('_', '-')} is for --source speech_commands or --source folder "
                         f"--split lists: {source} splits its clips by its own rule")
    params = {"source": source, "path": None if path is None else str(Path(path).resolve()), "normalise": how}
    command = command_line(MADE_BY, data_root, {
        "--source": source, "--path": params["path"], "--words": words if source in ("speech_commands", "synth") else None,
        "--speaker-regex": speaker_regex, "--no-resample": not resample, "--split": split if source == "folder" else None,
        "--n-speakers": n_speakers if source == "synth" else None,
        "--seed": seed if source == "synth" or split == "speakers" else None, "--normalise": how,
        "--skip-bad-files": skip_bad_files, "--drop-duplicates": drop_duplicates,
        "--audio-column": audio_column if source == "hf" else None, "--label-column": label_column if source == "hf" else None,
        **{f"--{name.replace('_', '-')}": str(value) for name, value in given_lists.items()}})
    load = lambda clip: load_clip(clip.path, resample, how)  # noqa: E731
    fix = "add speakers or use a source with its own split"
    if source == "speech_commands":
        if download:
            sources.download_speech_commands(path, version)
        word_list = sources.CORE_WORDS if words == "core" else "all" if words == "all" else words.split(",")
        clips, names = sources.speech_commands_clips(path, word_list, valid_list, test_list)
        params.update(words=names, split="validation_list.txt / testing_list.txt", resample=resample)
    elif source == "folder":
        regex = speaker_regex or sources.DEFAULT_SPEAKER_REGEX
        clips, names = sources.folder_clips(path, regex, split, seed, valid_list, test_list)
        params.update(speaker_regex=regex, split=sources.FOLDER_SPLIT_RULES[split], resample=resample)
        if split == "speakers":
            params.update(seed=seed)
        fix = ("pass --split speakers (a seeded split by speaker, never empty with 3 speakers or more) or --split lists"
               if split == "hash" else "add clips to that split's list")
    elif source == "fsdd":
        clips, names = sources.fsdd_clips(path)
        params.update(split="index 0-4 test, 5-9 valid, rest train", resample=resample)
    elif source == "synth":
        word_list = sources.CORE_WORDS if words in ("core", "all") else words.split(",")
        clips, names = synth.synth_clips(n_speakers, seed, word_list)
        rate_hz, spoken = synth.speak_words(clips)
        load = lambda clip: normalised(synth.render_clip(clip, spoken[clip.relpath], rate_hz, seed))  # noqa: E731
        params.update(words=names, n_speakers=n_speakers, seed=seed, split="speaker sha1 hash 80/10/10")
        fix = "raise --n-speakers"
    elif source == "hf":
        from kwsprune.hf_source import hf_clips

        clips, names, read = hf_clips(path, audio_column, label_column)
        load = lambda clip: load_clip(read(clip), resample, how, f"{path}: {clip.split}/{clip.relpath}")  # noqa: E731
        params.update(split="the dataset's train / validation / test", resample=resample)
        fix = "give the dataset clips in every split"
    elif source == "numpy":
        with staged(out_dir, replaces_listed=True) as staging:
            return import_arrays(path, staging, params, how, command)
    else:
        raise InputError(f"unknown --source {source!r}: choose one of {', '.join(SOURCES)}")
    clips, skipped = _refuse_bad_names(clips, skip_bad_files, path)
    clips, copies_left_out = _refuse_copies(clips, drop_duplicates, path, threads)
    if drop_duplicates:
        params.update(drop_duplicates=True, duplicates=len(copies_left_out))
        skipped += copies_left_out
    if skip_bad_files:
        clips, bad = drop_bad_clips(clips, load, threads)
        skipped += bad
        params.update(skip_bad_files=True, skipped=len(skipped) - len(copies_left_out))
    skipped = skipped if skip_bad_files or drop_duplicates else None
    check_clips(clips, names, f"{path or 'synth'}", fix)
    params.update({name: {"path": str(value), "sha256": file_sha256(value)} for name, value in given_lists.items()})
    if (shared := sources.shared_speakers(clips)) is not None:
        log.warning("%s", shared)
    with staged(out_dir, replaces_listed=True) as staging:
        return write_dataset(staging, clips, names, load, params, threads, command, skipped)

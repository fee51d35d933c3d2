"""Where clips come from: listing the files of each supported layout with class, speaker and split.

Every lister returns `(clips, class_names)`; a clip's `relpath` is its name relative to the source
folder, the key by which clips are sorted within a split.
"""

import hashlib
import logging
import re
import tarfile
import tempfile
import unicodedata
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from kwsprune.validation import InputError

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff"}
CORE_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SPEECH_COMMANDS_URL = "http://download.tensorflow.org/data/speech_commands_v{version}.tar.gz"
# Speech Commands' own file naming: '<speaker>_nohash_<n>.wav'; anything before the first '_'.
DEFAULT_SPEAKER_REGEX = r"^([^_]+)_"
FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
VALID_PERCENT = 10
TEST_PERCENT = 10
LIST_FILES = {"valid": "validation_list.txt", "test": "testing_list.txt"}
FOLDER_SPLIT_RULES = {"hash": "speaker sha1 hash 80/10/10", "speakers": "seeded speaker-grouped 80/10/10",
                      "lists": "validation_list.txt / testing_list.txt"}


@dataclass(frozen=True)
class Clip:
    relpath: str
    label: str
    speaker: str  # in Unicode NFC: one speaker however a file system spelled the name (macOS writes NFD)
    split: str
    path: Path | None = None  # None for clips made on the spot (the synthesised demo)

    def __post_init__(self):
        object.__setattr__(self, "speaker", unicodedata.normalize("NFC", self.speaker))


def speaker_hash_split(speaker: str, valid_percent=VALID_PERCENT, test_percent=TEST_PERCENT) -> str:
    """The split of a speaker, exactly as Speech Commands' `which_set` assigns it (sha1 of the speaker id)."""
    max_per_class = 2**27 - 1
    digest = int(hashlib.sha1(speaker.encode("utf-8")).hexdigest(), 16)
    percent = (digest % (max_per_class + 1)) * (100.0 / max_per_class)
    if percent < valid_percent:
        return "valid"
    if percent < valid_percent + test_percent:
        return "test"
    return "train"


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith("."))


def _require_dir(path, hint: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path} is not a folder: {hint}")
    return path


def list_files(root: Path, valid_list=None, test_list=None) -> dict[str, Path]:
    """The split lists to read: `valid_list` and `test_list` where given (a larger evaluation set a user wrote),
    else validation_list.txt and testing_list.txt in `root`."""
    given = {"valid": valid_list, "test": test_list}
    return {split: Path(given[split]) if given[split] else root / name for split, name in LIST_FILES.items()}


def read_split_lists(root: Path, hint: str, files: dict[str, Path] | None = None) -> dict[str, set[str]]:
    """Speech Commands' split lists (`files`, by default validation_list.txt and testing_list.txt in `root`), one
    path a line, relative to `root` (absolute paths under `root` are made relative), in Unicode NFC, a byte-order
    mark read as such; an entry in both lists is refused."""
    files = files or list_files(root)
    lists = {}
    for split, list_path in files.items():
        if not list_path.is_file():
            raise InputError(f"{list_path} is missing: {hint}")
        lines = [line.strip() for line in list_path.read_text(encoding="utf-8-sig").splitlines()]  # names may hold spaces
        lists[split] = {_list_entry(line, root) for line in lines if line}
    both = sorted(lists["valid"] & lists["test"])
    if both:
        raise InputError(f"{files['valid']} and {files['test']}: {len(both)} entries are in both lists (the first: {both[0]!r}): "
                         f"a clip belongs to one split, remove it from one list")
    return lists


def _list_entry(line: str, root: Path) -> str:
    entry = unicodedata.normalize("NFC", line.replace("\\", "/"))
    if entry.startswith("/"):
        for base in (root, root.resolve()):
            base_text = unicodedata.normalize("NFC", base.as_posix().rstrip("/")) + "/"
            if entry.startswith(base_text):
                return entry[len(base_text):]
    return entry


def listed_split(relpath: str, lists: dict[str, set[str]]) -> str:
    relpath = unicodedata.normalize("NFC", relpath)
    return "valid" if relpath in lists["valid"] else "test" if relpath in lists["test"] else "train"


def check_list_matches(clips, lists: dict[str, set[str]], root: Path, partial: bool,
                       files: dict[str, Path] | None = None) -> None:
    """Name the list entries that match no clip: an error when none of a list's entries matched (the paths are not
    relative to `root`), else one line counting them (`partial`: a source whose lists name more clips than the
    folder holds, as a sample of Speech Commands, says nothing)."""
    files = files or list_files(root)
    names = {unicodedata.normalize("NFC", clip.relpath) for clip in clips}
    for split, entries in lists.items():
        unmatched = sorted(entries - names)
        if entries and len(unmatched) == len(entries):
            example = f", e.g. {min(names)!r}" if names else ""
            raise InputError(f"{files[split]}: none of its {len(entries)} entries names a file under {root} "
                             f"(the first: {unmatched[0]!r}): write paths relative to {root}{example}")
        if unmatched and not partial:
            log.warning("%s: %d entries name no file under %s (the first: %r); those clips are not in any split",
                        files[split], len(unmatched), root, unmatched[0])


def bad_name(relpath: str) -> str | None:
    """Why a file name cannot be a line of {split}_files.txt (a newline, a control character, bytes that are not
    UTF-8), or None."""
    try:
        relpath.encode("utf-8")
    except UnicodeEncodeError:
        return "holds bytes that are not UTF-8"
    if any(ord(char) < 32 or ord(char) == 127 for char in relpath):
        return "holds a newline or another control character"
    return None


def speaker_split(clips_per_speaker: dict[str, int], seed: int, valid_percent=VALID_PERCENT,
                  test_percent=TEST_PERCENT) -> dict[str, str]:
    """The split of each speaker: speakers in a seeded random order go to test, then validation, until each
    holds its share of the clips, the rest to training; each split gets at least one speaker."""
    if len(clips_per_speaker) < 3:
        raise InputError(f"--split speakers needs at least 3 speakers, found {len(clips_per_speaker)} "
                         f"({sorted(clips_per_speaker)}): check --speaker-regex, or pass --split lists")
    order = [str(s) for s in np.random.default_rng(seed).permutation(sorted(clips_per_speaker))]
    total, split_of = sum(clips_per_speaker.values()), {}
    for split, percent, leave in (("test", test_percent, 2), ("valid", valid_percent, 1)):
        taken = 0
        while len(order) > leave and (taken == 0 or taken < percent / 100 * total):
            speaker = order.pop(0)
            split_of[speaker], taken = split, taken + clips_per_speaker[speaker]
    return {**split_of, **{speaker: "train" for speaker in order}}


def speech_commands_clips(root, words=CORE_WORDS, valid_list=None, test_list=None) -> tuple[list[Clip], list[str]]:
    """Google Speech Commands (v0.01/v0.02), split by its validation_list.txt and testing_list.txt.

    `words` is a list of word folders (class ids in that order) or "all" (every word folder, sorted).
    The lists name clips of the full dataset; those missing from `root` are ignored.
    """
    root = _require_dir(root, "pass the folder that holds the word folders and validation_list.txt, or use --download")
    files = list_files(root, valid_list, test_list)
    lists = read_split_lists(root, "it ships with the Speech Commands archive; extract the whole archive", files)
    available = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
    if words == "all":
        words = available
    unknown = [w for w in words if w not in available]
    if unknown:
        raise InputError(f"{root} has no folder for the words {unknown}: choose --words among {available}")
    clips = []
    for word in words:
        for path in _audio_files(root / word):
            relpath = path.relative_to(root).as_posix()
            split = listed_split(relpath, lists)
            speaker = path.name.split("_nohash_")[0]
            clips.append(Clip(relpath, word, speaker, split, path))
    check_list_matches(clips, lists, root, partial=True, files=files)
    return clips, list(words)


def folder_clips(root, speaker_regex: str = DEFAULT_SPEAKER_REGEX, split: str = "hash",
                 seed: int = 0, valid_list=None, test_list=None) -> tuple[list[Clip], list[str]]:
    """One sub-folder per class (sorted names are the class ids), split as FOLDER_SPLIT_RULES[split] says.

    The speaker is the first group of `speaker_regex` matched against the file name (the whole match
    if it has no group); a file it does not match is its own speaker.
    """
    if split not in FOLDER_SPLIT_RULES:
        raise InputError(f"--split {split!r}: choose one of {', '.join(FOLDER_SPLIT_RULES)}")
    root = _require_dir(root, "pass a folder with one sub-folder of audio files per class")
    try:
        pattern = re.compile(speaker_regex)
    except re.error as err:
        raise InputError(f"--speaker-regex {speaker_regex!r} is not a regular expression ({err}): e.g. the default "
                         f"{DEFAULT_SPEAKER_REGEX!r}, whose first group is the speaker") from None
    class_names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_names:
        raise InputError(f"{root} has no class sub-folders: put each class's audio in a folder named after it")
    clips, unmatched = [], 0
    for label in class_names:
        for path in _audio_files(root / label):
            match = pattern.search(path.name)
            if match is None:
                unmatched += 1
                speaker = path.stem
            else:
                speaker = match.group(1) if pattern.groups else match.group(0)
            clips.append(Clip(path.relative_to(root).as_posix(), label, speaker, "", path))
    if unmatched:
        log.warning("%d file names do not match --speaker-regex %r: each is its own speaker", unmatched, speaker_regex)
    classes_of = {}
    for clip in clips:
        classes_of.setdefault(clip.speaker, set()).add(clip.label)
    if clips and len(class_names) > 1 and len(classes_of) <= len(class_names) and all(len(c) == 1 for c in classes_of.values()):
        example = clips[0].path.name
        raise InputError(f"{root}: --speaker-regex {speaker_regex!r} finds {len(classes_of)} speakers, each in one class "
                         f"only (e.g. {clips[0].speaker!r} from {example!r}): it is reading the class, not the speaker; give "
                         f"--speaker-regex whose first group is the speaker (FSDD-style '0_george_3.wav': '^[^_]+_([^_]+)_')")
    if split == "hash":
        split_of = lambda clip: speaker_hash_split(clip.speaker)  # noqa: E731
    elif split == "speakers":
        speakers = speaker_split(Counter(clip.speaker for clip in clips), seed)
        split_of = lambda clip: speakers[clip.speaker]  # noqa: E731
    else:
        files = list_files(root, valid_list, test_list)
        lists = read_split_lists(root, "--split lists reads validation_list.txt and testing_list.txt (one path a "
                                       "line, relative to the folder, as in Speech Commands) from the folder, or "
                                       "--valid-list and --test-list", files)
        check_list_matches(clips, lists, root, partial=False, files=files)
        split_of = lambda clip: listed_split(clip.relpath, lists)  # noqa: E731
    return [replace(clip, split=split_of(clip)) for clip in clips], class_names


def shared_speakers(clips) -> str | None:
    """One line on the test speakers who also speak in training, or None: verdicts on such a test set speak of new
    clips of those speakers, not of new speakers (kwsprune.test_set.population)."""
    train = {clip.speaker for clip in clips if clip.split == "train"}
    test = {clip.speaker for clip in clips if clip.split == "test"}
    shared = sorted(train & test)
    if not shared:
        return None
    return (f"{len(shared)} of the {len(test)} test speakers also speak in training (the first: {shared[0]!r}): verdicts "
            f"on this data speak of new clips of them, not of new speakers; to judge on new speakers, put each "
            f"speaker's clips in one split")


def fsdd_clips(root) -> tuple[list[Clip], list[str]]:
    """Free Spoken Digit Dataset ('{digit}_{speaker}_{index}.wav'): index 0-4 test, 5-9 valid, the rest train."""
    root = _require_dir(root, "pass the FSDD folder (the one holding recordings/) or recordings/ itself")
    if (root / "recordings").is_dir():
        root = root / "recordings"
    clips = []
    for path in _audio_files(root):
        match = FSDD_NAME.match(path.name)
        if match is None:
            raise InputError(f"{path} is not named '{{digit}}_{{speaker}}_{{index}}.wav': remove it or use --source folder")
        digit, speaker, index = match.group(1), match.group(2), int(match.group(3))
        split = "test" if index < 5 else "valid" if index < 10 else "train"
        clips.append(Clip(path.relative_to(root).as_posix(), digit, speaker, split, path))
    return clips, [str(d) for d in range(10)]


def download_speech_commands(dest, version: str = "0.02", url: str | None = None) -> Path:
    """Fetch and extract the official Speech Commands archive into `dest` (skipped if already there)."""
    dest = Path(dest)
    if (dest / "validation_list.txt").exists():
        return dest
    url = url or SPEECH_COMMANDS_URL.format(version=version)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest, suffix=".tar.gz") as archive:
        log.info("downloading %s", url)
        try:
            with urllib.request.urlopen(url) as response:
                while block := response.read(1 << 20):
                    archive.write(block)
        except (urllib.error.URLError, OSError) as err:
            raise InputError(
                f"could not download {url} ({err}): on a machine with internet, download it and extract it into {dest}"
            ) from None
        archive.flush()
        with tarfile.open(archive.name) as tar:
            tar.extractall(dest, filter="data")
    return dest

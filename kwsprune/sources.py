"""Where clips come from: listing the files of each supported layout with class, speaker and split.

Every lister returns `(clips, class_names)`; a clip's `relpath` is its name relative to the source
folder, the key by which clips are sorted within a split.
"""

import hashlib
import logging
import re
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class Clip:
    relpath: str
    label: str
    speaker: str
    split: str
    path: Path | None = None  # None for clips made on the spot (the synthesised demo)


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


def speech_commands_clips(root, words=CORE_WORDS) -> tuple[list[Clip], list[str]]:
    """Google Speech Commands (v0.01/v0.02), split by its validation_list.txt and testing_list.txt.

    `words` is a list of word folders (class ids in that order) or "all" (every word folder, sorted).
    The lists name clips of the full dataset; those missing from `root` are ignored.
    """
    root = _require_dir(root, "pass the folder that holds the word folders and validation_list.txt, or use --download")
    lists = {}
    for split, name in (("valid", "validation_list.txt"), ("test", "testing_list.txt")):
        list_path = root / name
        if not list_path.exists():
            raise InputError(f"{list_path} is missing: it ships with the Speech Commands archive; extract the whole archive")
        lists[split] = set(list_path.read_text().split())
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
            split = "valid" if relpath in lists["valid"] else "test" if relpath in lists["test"] else "train"
            speaker = path.name.split("_nohash_")[0]
            clips.append(Clip(relpath, word, speaker, split, path))
    return clips, list(words)


def folder_clips(root, speaker_regex: str = DEFAULT_SPEAKER_REGEX) -> tuple[list[Clip], list[str]]:
    """One sub-folder per class (sorted names are the class ids), split 80/10/10 by speaker hash.

    The speaker is the first group of `speaker_regex` matched against the file name (the whole match
    if it has no group); a file it does not match is its own speaker.
    """
    root = _require_dir(root, "pass a folder with one sub-folder of audio files per class")
    pattern = re.compile(speaker_regex)
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
            relpath = path.relative_to(root).as_posix()
            clips.append(Clip(relpath, label, speaker, speaker_hash_split(speaker), path))
    if unmatched:
        log.warning("%d file names do not match --speaker-regex %r: each is its own speaker", unmatched, speaker_regex)
    return clips, class_names


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

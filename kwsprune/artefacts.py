"""Writing step outputs safely and recording what they were computed from.

Every step folder holds a `manifest.json`: the step, its parameters, the sha256 of each input file it
read and of each file it wrote, and the command that makes them again. A step writes all its outputs
into a staging folder and moves them in together once they are complete (`staged`): a failure, a
Ctrl-C or a kill leaves the previous complete outputs, and the next run clears what a kill left.
"""

import datetime
import errno
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import socket
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from kwsprune import __version__
from kwsprune.paths import MANIFEST, REPO_ROOT, STEP_DIRS
from kwsprune.validation import InputError, load_npy

log = logging.getLogger(__name__)


@contextmanager
def atomic_output(path):
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


SHA256 = re.compile(r"[0-9a-f]{64}")
STAGING = ".staging"    # inside a step folder: .staging-{pid}, the outputs of the step that is running
PREVIOUS = ".previous"  # inside a step folder: the outputs being replaced, while the new ones are moved in
FOLDER_LOCK = ".lock"   # inside a step folder: held by the step writing into it


@contextmanager
def staged(folder, replaces_listed: bool = False):
    """All of a step's outputs or none: yield an empty staging folder of this process inside `folder`. When the
    block ends without error its files replace `folder`'s of the same names (manifests, *.json, last); on an error,
    Ctrl-C or a kill, `folder` keeps its previous files. replaces_listed: the files the previous manifest.json lists
    go too (a step that owns the folder); otherwise files the step does not write are left alone. The block holds
    the folder's lock: a second process writing into the same folder (two pruning.py at once) waits for it, then
    starts from its outputs."""
    folder = Path(folder)
    with folder_lock(folder):
        recover(folder)
        staging = folder / f"{STAGING}-{os.getpid()}"
        staging.mkdir()
        try:
            yield staging
            listed = []
            if replaces_listed and (folder / MANIFEST).exists():
                try:
                    listed = [MANIFEST, *json.loads((folder / MANIFEST).read_text())["files"]]
                except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                    listed = [MANIFEST]
                listed = [name for name in listed if _plain_name(name)]  # a crafted manifest names nothing outside
            _move_in(staging, folder, listed)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _plain_name(name) -> bool:
    """A file name of the folder itself: no separator, no '..', nothing a path could be built to leave it with."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name \
        and "\x00" not in name


def refuse_links(folder) -> None:
    """Refuse a step folder that is a symbolic link, or holds one where a step moves files (.previous, .staging*,
    its lock): a step follows nothing out of its data root, so it never moves or deletes files elsewhere."""
    folder = Path(folder)
    for path in [folder, folder / PREVIOUS, folder / FOLDER_LOCK, *folder.glob(f"{STAGING}*")]:
        if path.is_symlink():
            raise InputError(f"{path} is a symbolic link (to {os.readlink(path)}): a step moves files only within its "
                             f"data root; remove the link (and put the folder's files in a real folder)")
    for path in [folder / PREVIOUS, *folder.glob(f"{STAGING}*")]:
        if path.exists() and not path.is_dir():
            raise InputError(f"{path} is not a folder, where a killed step leaves one: remove it")


@contextmanager
def folder_lock(folder):
    """Hold the lock of a step folder (reentrant in a thread): the steps that write into it wait for each other."""
    folder = Path(folder)
    refuse_links(folder)
    check_writable(folder)
    lock = FileLock(folder.resolve() / FOLDER_LOCK, is_singleton=True)  # one lock whatever the path's spelling
    holder = folder / f"{FOLDER_LOCK}.holder"  # who holds it: said to whoever waits (a stopped step holds it forever)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("waiting for another step writing into %s to finish: %s", folder, _holder_text(holder))
        lock.acquire()
    try:
        if lock.lock_counter == 1:
            write_text(holder, json.dumps({"command": " ".join(sys.argv), "host": socket.gethostname(), "pid": os.getpid(),
                                           "since": datetime.datetime.now().isoformat(timespec="seconds")}))
        yield
    finally:
        lock.release()


def _holder_text(holder: Path) -> str:
    """Who holds a step folder's lock, from its holder file (a stranger's file: read as text, never trusted)."""
    try:
        record = json.loads(holder.read_text(encoding="utf-8"))
        who = f"{str(record['command'])[:120]} ({str(record['host'])[:40]}, pid {int(record['pid'])}, since {str(record['since'])[:19]})"
    except (OSError, ValueError, KeyError, TypeError):
        return "a step that left no record of itself"
    return f"{who}; if that step is stopped, continue it (kill -CONT) or end it"


def check_writable(folder, need_bytes: int = 0) -> None:
    """Refuse, in one line and before any work, a folder that cannot be made or written (a read-only data root), or
    whose disk has less than need_bytes free (an OSError ENOSPC: the exit status of a full disk)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise
        raise InputError(f"{folder} cannot be written ({err.strerror}): make it writable, or pass --data-root on a "
                         "folder you can write") from None
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise OSError(errno.ENOSPC, f"{free / 1e6:,.0f} MB free, {need_bytes / 1e6:,.0f} MB needed", str(folder))


def _move_in(staging: Path, folder: Path, dropped: list[str]) -> None:
    names = sorted((p.name for p in staging.iterdir()), key=lambda name: (name.endswith(".json"), name))
    previous = folder / PREVIOUS
    previous.mkdir()
    for name in dict.fromkeys([*names, *dropped]):  # what is replaced goes aside first: a kill here can be undone
        if (folder / name).exists():
            os.replace(folder / name, previous / name)
    for name in names:
        os.replace(staging / name, folder / name)
    shutil.rmtree(previous)


def recover(folder) -> None:
    """Clear what a killed step left in `folder` (call with the folder's lock held, so no other step is writing):
    an unfinished move-in is undone (the previous files go back) unless every new file had been moved in; staging
    folders are removed."""
    folder = Path(folder)
    refuse_links(folder)
    previous, stagings = folder / PREVIOUS, sorted(folder.glob(f"{STAGING}*"))
    if previous.exists():
        if any(any(staging.iterdir()) for staging in stagings):
            for path in previous.iterdir():
                os.replace(path, folder / path.name)
        shutil.rmtree(previous)
    for staging in stagings:
        shutil.rmtree(staging, ignore_errors=True)


def open_output(path, dtype, shape) -> np.memmap:
    """A new .npy file memory-mapped for writing, its disk space reserved first: a full disk fails here, with one
    line, instead of with a bus error half-way through the writes."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    size = os.path.getsize(path)
    try:
        with open(path, "r+b") as f:
            os.posix_fallocate(f.fileno(), 0, size)
    except OSError as err:
        if err.errno == errno.ENOSPC:
            del array
            Path(path).unlink(missing_ok=True)
            raise OSError(errno.ENOSPC, f"{size / 1e6:,.0f} MB did not fit", str(path)) from None
        if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system that cannot reserve: write as is
            raise
    return array


def save_npy(path, array) -> None:
    """np.save, atomically."""
    with atomic_output(path) as tmp:
        np.save(tmp, array)


def write_text(path, text: str) -> None:
    with atomic_output(path) as tmp:
        Path(tmp).write_text(text)


def file_sha256(path, chunk_bytes: int = 1 << 24) -> str:
    """Content hash of a file, read in chunks so memory stays bounded."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def _describe(path: Path) -> dict:
    record = {"sha256": file_sha256(path)}
    if path.suffix == ".npy":
        array = np.load(path, mmap_mode="r")
        record.update(shape=list(array.shape), dtype=str(array.dtype))
    return record


def command_line(script: str, data_root, flags: dict) -> str:
    """`python script --flag value ...` as a user types it: --data-root unless it is the repository, then every
    flag whose value is not None or False (True: the bare flag; a list: its values)."""
    parts = [f"python {script}"]
    if Path(data_root).resolve() != REPO_ROOT:
        parts.append(f"--data-root {shlex.quote(str(data_root))}")
    for flag, value in flags.items():
        if value is True:
            parts.append(flag)
        elif isinstance(value, (list, tuple)):
            parts.append(" ".join([flag, *(shlex.quote(str(v)) for v in value)]))
        elif value is not None and value is not False:
            parts.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(parts)


def write_manifest(folder, step: str, params: dict, inputs: dict, files: list[str], manifest_name=MANIFEST,
                   command: str | None = None, carried: dict | None = None) -> dict:
    """Record how the `files` in `folder` were made: by `step`, with `params`, from `inputs` (name -> sha256), and the
    command that makes them again. `carried`: records of an earlier manifest for files that stay valid beside them."""
    folder = Path(folder)
    manifest = {
        "step": step,
        "kwsprune_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "params": params,
        "inputs": inputs,
        "files": {**(carried or {}), **{name: _describe(folder / name) for name in files}},
    }
    write_text(folder / manifest_name, json.dumps(manifest, indent=1) + "\n")
    return manifest


def rerun(folder, made_by: str, manifest_name=MANIFEST) -> str:
    """What makes `folder`'s outputs again: 're-run' and the command its manifest recorded (with the --data-root
    that `folder` is in now: a copied data root's fix must not rewrite the original), else the script."""
    try:
        command = json.loads((Path(folder) / manifest_name).read_text()).get("command")
    except (OSError, ValueError, AttributeError):
        command = None
    return f"re-run {_here(command, folder) if command else made_by}"


def _here(command: str, folder) -> str:
    """`command` with --data-root set to the data root `folder` is in (none: the repository's)."""
    parts = shlex.split(command)
    if "--data-root" in parts:
        at = parts.index("--data-root")
        del parts[at:at + 2]
    root = data_root_of(folder)
    if root is not None and root.resolve() != REPO_ROOT:
        parts[2:2] = ["--data-root", str(root)]
    return shlex.join(parts)


def data_root_of(folder) -> Path | None:
    """The data root a step folder (or a folder inside one) is in, or None where `folder` is in no step folder."""
    folder = Path(folder)
    for path in (folder, *folder.parents):
        if path.name in STEP_DIRS:
            return path.parent
    return None


def read_manifest(folder, made_by: str, manifest_name=MANIFEST) -> dict:
    """The manifest of a step folder, read as what it must be (an object whose files are plain names each with a
    sha256, whose inputs and params are objects); a clear error names the script to run when it is missing or is
    not one."""
    path = Path(folder) / manifest_name
    if not path.exists():
        raise InputError(f"{path} is missing: run {made_by} first")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{path} is not valid JSON ({str(err)[:80]}): re-run {made_by}") from None
    problem = _manifest_problem(manifest)
    if problem:
        raise InputError(f"{path} is not a manifest kwsprune writes ({problem}): re-run {made_by}")
    return manifest


def _manifest_problem(manifest) -> str | None:
    if not isinstance(manifest, dict):
        return f"a JSON {type(manifest).__name__}, not an object"
    for part in ("files", "inputs", "params"):
        if not isinstance(manifest.get(part, {}), dict):
            return f"its {part} are not an object"
    if "files" not in manifest:
        return "it lists no files"
    for name, record in manifest["files"].items():
        if not _plain_name(name):
            return f"it lists {name[:40]!r}, which is not a file name of its folder"
        if not (isinstance(record, dict) and isinstance(record.get("sha256"), str) and SHA256.fullmatch(record["sha256"])):
            return f"its record of {name[:40]!r} holds no sha256"
    if not all(isinstance(value, str) for value in manifest.get("inputs", {}).values()):
        return "its inputs are not sha256s"
    return None


def verify_file(folder, name: str, made_by: str, manifest_name=MANIFEST, fix: str | None = None) -> str:
    """Check that `folder/name` is the file its manifest recorded; return its sha256. `fix`: the command to suggest
    (default: the one the manifest recorded)."""
    folder = Path(folder)
    record = read_manifest(folder, made_by, manifest_name)["files"].get(name)
    path = folder / name
    fix = fix or rerun(folder, made_by, manifest_name)
    if record is None:
        raise InputError(f"{folder / manifest_name} does not list {name}: {fix}")
    if not path.exists():
        raise InputError(f"{path} is missing: {fix}")
    sha = file_sha256(path)
    if sha != record["sha256"]:
        raise InputError(f"{path} does not match {folder / manifest_name} (it changed after {made_by} wrote it): {fix}")
    return sha


def recorded_sha(folder, name: str, made_by: str, manifest_name=MANIFEST) -> str:
    """The sha256 that `folder`'s manifest records for `name`, without reading the file: enough for a step that
    only needs to know which version its inputs came from, not their content."""
    record = read_manifest(folder, made_by, manifest_name)["files"].get(name)
    if record is None:
        raise InputError(f"{Path(folder) / manifest_name} does not list {name}: {rerun(folder, made_by, manifest_name)}")
    return record["sha256"]


def short_id(*shas: str) -> str:
    """A 12-hex id of one or more sha256s: what rows and file names record."""
    return shas[0][:12] if len(shas) == 1 else hashlib.sha256("\n".join(shas).encode()).hexdigest()[:12]


def load_verified(folder, name: str, made_by: str, manifest_name=MANIFEST) -> np.ndarray:
    """A read-only memory map of `folder/name`, after checking it against the manifest."""
    verify_file(folder, name, made_by, manifest_name)
    return load_npy(Path(folder) / name, rerun(folder, made_by, manifest_name))


def input_key(folder, name: str) -> str:
    """How a manifest names an input file: '<step folder>/<file>', independent of --data-root."""
    return f"{Path(folder).name}/{name}"


def check_computed_from(folder, made_by: str, upstream_folder, upstream_name: str, upstream_sha: str,
                        manifest_name=MANIFEST, fix: str | None = None) -> None:
    """Refuse `folder`'s outputs if they were computed from another version of an upstream file; `fix` is the
    command to suggest (default: re-run made_by)."""
    key = input_key(upstream_folder, upstream_name)
    recorded = read_manifest(folder, made_by, manifest_name)["inputs"].get(key)
    if recorded != upstream_sha:
        raise InputError(
            f"{Path(folder)} was computed from a different {key} than the current one: "
            f"{fix or rerun(folder, made_by, manifest_name)}"
        )

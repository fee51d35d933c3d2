"""Writing step outputs safely and recording what they were computed from.

Every step folder holds a `manifest.json`: the step, its parameters, the sha256 of each input file it
read and of each file it wrote. Outputs are written under a temporary name and renamed into place, so a
failed step never leaves a half-written array behind.
"""

import datetime
import hashlib
import json
import os
import shlex
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from kwsprune import __version__
from kwsprune.paths import MANIFEST, REPO_ROOT
from kwsprune.validation import InputError


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
                   command: str | None = None) -> dict:
    """Record how the `files` in `folder` were made: by `step`, with `params`, from `inputs` (name -> sha256), and the
    command that makes them again."""
    folder = Path(folder)
    manifest = {
        "step": step,
        "kwsprune_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "params": params,
        "inputs": inputs,
        "files": {name: _describe(folder / name) for name in files},
    }
    write_text(folder / manifest_name, json.dumps(manifest, indent=1) + "\n")
    return manifest


def rerun(folder, made_by: str, manifest_name=MANIFEST) -> str:
    """What makes `folder`'s outputs again: 're-run' and the command its manifest recorded, else the script."""
    try:
        command = json.loads((Path(folder) / manifest_name).read_text()).get("command")
    except (OSError, ValueError, AttributeError):
        command = None
    return f"re-run {command or made_by}"


def read_manifest(folder, made_by: str, manifest_name=MANIFEST) -> dict:
    """The manifest of a step folder; a clear error names the script to run when it is missing."""
    path = Path(folder) / manifest_name
    if not path.exists():
        raise InputError(f"{path} is missing: run {made_by} first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path} is not valid JSON ({err}): re-run {made_by}") from None


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
    return np.load(Path(folder) / name, mmap_mode="r")


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

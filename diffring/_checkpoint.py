"""Checkpoints shared by `diffring run --resume` and `diffring sweep --resume`: atomic writes and a
manifest of sha256 checksums, so that a crash or `kill -9` at any instant never leaves a chunk
that is read back as valid.

A checkpoint directory holds `manifest.json` and one `.npz` file per finished chunk (a run
segment, or a chunk of sweep members). Every file is written to a temporary name in the same
directory, flushed with fsync and renamed into place (`os.replace` is atomic on POSIX). A chunk
counts as finished only once the manifest, itself replaced atomically after the chunk, lists it
with its sha256; on load a chunk whose bytes do not match is reported as corrupted and recomputed.
The manifest also holds a fingerprint of the resolved config, so a checkpoint is never resumed
with a different config.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._errors import DiffringError

MANIFEST = "manifest.json"
_FORMAT = 1


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fingerprint(obj: Any) -> str:
    """sha256 of a JSON-able object (a resolved config), keys sorted."""
    return sha256(json.dumps(obj, sort_keys=True, default=str).encode())


def write_atomic(path: str, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or all of the new one."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(d)


def _fsync_dir(d: str) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def check_writable(path: str, need_bytes: int = 0, field: str = "--out") -> None:
    """Fail early, before long work, if `path` (a directory to create or fill) cannot be written or
    its file system has less than `need_bytes` free. Probes with a real temporary file, so it also
    holds for root and read-only mounts; leaves nothing behind."""
    path = os.path.abspath(path)
    probe_dir = path
    while not os.path.isdir(probe_dir):
        if os.path.exists(probe_dir):
            raise DiffringError(field, path, f"{probe_dir} is a file: expected a directory path")
        parent = os.path.dirname(probe_dir)
        if parent == probe_dir:
            break
        probe_dir = parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=".diffring-write-probe-", dir=probe_dir)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise DiffringError(
            field, path, f"cannot write in {probe_dir} ({e.strerror}): choose a writable directory"
        ) from None
    if need_bytes > 0:
        free = shutil.disk_usage(probe_dir).free
        if free < need_bytes:
            raise DiffringError(
                field, path, f"needs about {need_bytes / 2**20:.1f} MiB but {probe_dir} has {free / 2**20:.1f} MiB free"
            )


class Checkpoint:
    """A checkpoint directory: `save(name, arrays)` after each finished chunk, `load(name)` on resume.

    Each opening with `resume` is a new session (numbered in the manifest, and in each chunk's entry:
    the session that computed it). Counters for the logs and the tests: `saved` (chunks computed
    and written by this process),
    `reused` (valid chunks loaded), `corrupted` (chunks listed but missing or failing their sha256,
    hence recomputed).
    """

    def __init__(self, directory: str, fingerprint: str, *, resume: bool):
        self.dir = os.path.abspath(directory)
        self.fingerprint = fingerprint
        self.saved = self.reused = self.corrupted = 0
        path = os.path.join(self.dir, MANIFEST)
        self.chunks: dict[str, dict] = {}
        if resume and os.path.isfile(path):
            try:
                with open(path) as f:
                    m = json.load(f)
                ok = isinstance(m, dict) and m.get("format") == _FORMAT and isinstance(m.get("chunks"), dict)
            except (OSError, ValueError):
                ok = False
            if not ok:
                # The manifest is written atomically, so this is outside damage: start over.
                m = {"fingerprint": fingerprint, "chunks": {}}
                self.corrupted += 1
            if m["fingerprint"] != fingerprint:
                raise DiffringError(
                    "--resume",
                    self.dir,
                    "the checkpoint was made by a different config (or diffring version): resume with the same "
                    "config, or start a new output directory",
                )
            self.chunks = dict(m["chunks"])
            for f in os.listdir(self.dir):  # temporary files of writes a kill interrupted
                if f.startswith(".") and f.endswith(".tmp"):
                    os.unlink(os.path.join(self.dir, f))
            self.session = int(m.get("session", 0)) + 1
        else:
            self.session = 1
            if os.path.isdir(self.dir):
                shutil.rmtree(self.dir)
            os.makedirs(self.dir)
            self._write_manifest()

    def _write_manifest(self) -> None:
        m = {"format": _FORMAT, "fingerprint": self.fingerprint, "session": self.session, "chunks": self.chunks}
        write_atomic(os.path.join(self.dir, MANIFEST), (json.dumps(m, indent=1, sort_keys=True) + "\n").encode())

    def save(self, name: str, arrays: Mapping[str, np.ndarray]) -> None:
        data = npz_bytes(arrays)
        fname = f"{name}.npz"
        write_atomic(os.path.join(self.dir, fname), data)
        self.chunks[name] = {"file": fname, "sha256": sha256(data), "bytes": len(data), "session": self.session}
        self._write_manifest()
        self.saved += 1

    def has(self, name: str) -> bool:
        return name in self.chunks

    def load(self, name: str) -> dict[str, np.ndarray] | None:
        """The arrays of a finished chunk, or None if it is not finished or fails its checksum."""
        entry = self.chunks.get(name)
        if entry is None:
            return None
        try:
            with open(os.path.join(self.dir, entry["file"]), "rb") as f:
                data = f.read()
        except OSError:
            data = None
        if data is None or sha256(data) != entry["sha256"]:
            self.corrupted += 1
            del self.chunks[name]
            return None
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
        self.reused += 1
        return out

    def counters(self) -> dict[str, int]:
        return {"chunks_computed": self.saved, "chunks_reused": self.reused, "chunks_corrupted": self.corrupted}

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

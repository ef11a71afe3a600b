"""Reading user files at the boundary, with errors that name the field."""

from __future__ import annotations

import os

import numpy as np

from ._errors import DiffringError, check_finite_array

_NPY_MAGIC, _ZIP_MAGIC = b"\x93NUMPY", b"PK\x03\x04"


def check_existing_file(field: str, path, what: str = "a file") -> None:
    """That `path` names an existing file, not a directory (each said so in its own words)."""
    if os.path.isdir(path):
        raise DiffringError(field, str(path), f"is a directory; expected {what}")
    if not os.path.isfile(path):
        raise DiffringError(field, str(path), "file not found")


def check_out_path(out: str) -> None:
    """An output directory (`--out`) may be missing or a directory, not a file."""
    if os.path.isfile(out):
        raise DiffringError("--out", out, "is a file: expected a directory path")


def check_file_kind(field: str, path, npz: bool) -> None:
    """That `path` is a file that starts like a .npy array (or, with `npz`, an .npz/zip archive):
    NumPy would read anything else as a pickle and say so, which misleads."""
    if not isinstance(path, str | os.PathLike):
        raise DiffringError(field, path, "expected a file path")
    check_existing_file(field, path)
    magic = _ZIP_MAGIC if npz else _NPY_MAGIC
    try:
        with open(path, "rb") as f:
            head = f.read(len(magic))
    except OSError as e:
        raise DiffringError(field, str(path), f"could not read it ({e.strerror})") from None
    if head != magic:
        what = "an .npz archive (np.savez or scipy.sparse.save_npz)" if npz else "a .npy array file (np.save)"
        raise DiffringError(field, str(path), f"not {what}: it does not start like one")


def load_array_file(field: str, path: str, *, sparse_ok: bool = False) -> np.ndarray:
    """Load a .npy array (or, with `sparse_ok`, a `scipy.sparse.save_npz` file) as a dense array."""
    check_file_kind(field, path, npz=str(path).endswith(".npz") and sparse_ok)
    try:
        if str(path).endswith(".npz") and sparse_ok:
            import scipy.sparse as sp

            a = sp.load_npz(path).toarray()
        else:
            a = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - unreadable user file
        raise DiffringError(field, str(path), f"could not read it as an array file ({type(e).__name__}: {e})") from None
    if isinstance(a, np.lib.npyio.NpzFile):
        a.close()
        raise DiffringError(field, str(path), "expected a .npy array file, not an .npz archive")
    if a.dtype.kind not in "biuf":
        raise DiffringError(field, str(path), f"expected a numeric array, got dtype {a.dtype}")
    check_finite_array(field, a)
    return np.asarray(a)


def load_npz_arrays(field: str, path: str, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Load the named arrays from an .npz archive."""
    check_file_kind(field, path, npz=True)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in names if k not in z.files]
            if missing:
                raise DiffringError(field, str(path), f"expected an .npz with arrays {list(names)}; missing {missing}")
            out = {k: np.asarray(z[k]) for k in names}
    except DiffringError:
        raise
    except Exception as e:  # noqa: BLE001
        raise DiffringError(field, str(path), f"could not read it as an .npz archive ({type(e).__name__})") from None
    for k, a in out.items():
        if a.dtype.kind not in "biuf":
            raise DiffringError(f"{field}[{k}]", str(path), f"expected a numeric array, got dtype {a.dtype}")
        check_finite_array(f"{field}[{k}]", a)
    return out

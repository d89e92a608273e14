"""Atomic file writes and model checkpoints.

Every file is written *atomically*: the bytes go to a temporary file in the same directory,
which is flushed, ``fsync``-ed and then renamed over the target with :func:`os.replace`.  A
reader (or a crash) therefore sees either the old file or the complete new one, never a
half-written file, and no temporary file is left behind when writing fails.

A checkpoint is one uncompressed ``.npz`` archive (as :func:`numpy.savez` writes it) holding the arrays of a
``Module.state_dict()`` under their own names (``"0.w"``, ``"2.b"``, ...) plus a JSON string
under the reserved name ``"__meta__"``.  The meta always carries
``"format": "minisnn-checkpoint"`` and ``"version": 1``; :func:`load_checkpoint` checks them.
Loading never unpickles anything (``allow_pickle=False``).

Example
-------
>>> save_checkpoint("run/best.npz", net.state_dict(), {"epoch": 12, "val_iou": 0.71})  # doctest: +SKIP
>>> state, meta = load_checkpoint("run/best.npz")                                      # doctest: +SKIP
>>> net.load_state_dict(state)                                                          # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

__all__ = [
    "CheckpointError",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "to_jsonable",
    "save_checkpoint",
    "load_checkpoint",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
]

CHECKPOINT_FORMAT = "minisnn-checkpoint"
CHECKPOINT_VERSION = 1
_META_KEY = "__meta__"


class CheckpointError(ValueError):
    """A checkpoint file is missing, is not a minisnn checkpoint, or is damaged."""


# ----------------------------------------------------------------------------- atomic writes


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once: os.umask can only be read by setting it


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, creating missing parent directories.

    Parameters
    ----------
    path : str or os.PathLike
        The target file.  An existing file is replaced only once the new content is safely on
        disk; if anything fails before that, it is left untouched.
    data : bytes
        The complete new content.

    Notes
    -----
    The temporary file is ``.<name>.<random>.tmp`` in the target's directory (a rename is only
    atomic within one file system) and is removed if writing fails.  The new file gets the
    permissions of the file it replaces, or the usual ``0o666 & ~umask`` for a new file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_UMASK
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj):
    """Return a copy of ``obj`` that :func:`json.dumps` accepts with ``allow_nan=False``.

    NumPy scalars become Python numbers, arrays become (nested) lists, paths become strings,
    tuples become lists and non-finite floats (``nan``, ``inf``) become ``None`` (JSON
    ``null``).  Dictionary keys that are NumPy scalars or paths are converted the same way.

    Raises
    ------
    TypeError
        For an object JSON has no representation for (naming its type).
    """
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        obj = float(obj)
        return obj if math.isfinite(obj) else None
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, dict):
        return {_json_key(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    raise TypeError(f"to_jsonable: objects of type {type(obj).__name__} cannot be written as JSON")


def _json_key(key):
    if isinstance(key, (np.generic, os.PathLike)):
        return to_jsonable(key)
    return key


def atomic_write_json(path, obj) -> None:
    """Write ``obj`` as indented JSON (plus a final newline) to ``path`` atomically.

    NumPy scalars and arrays, paths and non-finite floats are converted first with
    :func:`to_jsonable` (``nan``/``inf`` are written as ``null``), so the file is strict JSON.
    """
    text = json.dumps(to_jsonable(obj), indent=2, allow_nan=False)
    atomic_write_text(path, text + "\n")


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(path, state: dict[str, np.ndarray], meta: dict) -> None:
    """Save ``state`` (name -> array) and ``meta`` (JSON-able dict) as one ``.npz`` file.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write, used exactly as given (no ``.npz`` is appended).  It is written
        atomically: an existing checkpoint stays intact if saving fails.
    state : dict of str to numpy.ndarray
        Typically ``module.state_dict()``.  Arrays keep their dtype and shape.
    meta : dict
        Anything :func:`to_jsonable` accepts (epoch, metrics, configuration, ...).
        ``"format"`` and ``"version"`` are added; ``nan`` is stored as ``None``.

    Raises
    ------
    ValueError
        If a state name is not a string or is the reserved ``"__meta__"``, an array has
        ``object`` dtype (it could only be stored by pickling), or ``meta`` contradicts the
        format or version.
    """
    if not isinstance(meta, dict):
        raise ValueError(f"save_checkpoint: meta must be a dict, got {type(meta).__name__}")
    for key in ("format", "version"):
        expected = CHECKPOINT_FORMAT if key == "format" else CHECKPOINT_VERSION
        if key in meta and meta[key] != expected:
            raise ValueError(f"save_checkpoint: meta[{key!r}] is reserved ({expected!r}), got {meta[key]!r}")
    arrays = {}
    for name, value in state.items():
        if not isinstance(name, str) or name == _META_KEY:
            raise ValueError(f"save_checkpoint: state names must be strings other than {_META_KEY!r}, got {name!r}")
        value = np.asarray(value)
        if value.dtype.hasobject:
            raise ValueError(f"save_checkpoint: state[{name!r}] has object dtype and cannot be saved without pickle")
        arrays[name] = value
    full_meta = {**meta, "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION}
    arrays[_META_KEY] = np.array(json.dumps(to_jsonable(full_meta), allow_nan=False))
    # the layout numpy.savez writes (one uncompressed NAME.npy per array), done by hand so
    # that names such as "file" cannot collide with savez's own keyword arguments
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, value in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, value, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path) -> tuple[dict[str, np.ndarray], dict]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Returns
    -------
    state : dict of str to numpy.ndarray
        The arrays in the order they were saved, ready for ``module.load_state_dict``.
    meta : dict
        The saved meta, including ``"format"`` and ``"version"``.

    Raises
    ------
    CheckpointError
        With a one-line message naming the file, if it is missing, is not a minisnn checkpoint
        (not an ``.npz`` archive, no ``__meta__``, another format or version), is corrupt or
        truncated, or holds meta that is not valid JSON.
    """
    path = Path(path)

    def fail(reason: str) -> CheckpointError:
        return CheckpointError(f"{path}: {' '.join(reason.split())}")

    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise fail("no such checkpoint file") from None
    except OSError as e:
        raise fail(f"cannot open checkpoint ({e.strerror or e})") from None
    with f:
        magic = f.read(4)
        if not magic:
            raise fail("empty file (a truncated or interrupted write?)")
        if magic != b"PK\x03\x04":
            raise fail("not a minisnn checkpoint (not an .npz archive)")
        f.seek(0)
        try:
            with np.load(f, allow_pickle=False) as npz:
                if _META_KEY not in npz.files:
                    raise fail(f"not a minisnn checkpoint (no {_META_KEY!r} entry)")
                state = {name: npz[name] for name in npz.files if name != _META_KEY}
                meta_array = npz[_META_KEY]
        except CheckpointError:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError) as e:
            raise fail(f"corrupt or truncated checkpoint ({type(e).__name__}: {e})") from None
    if meta_array.shape != () or meta_array.dtype.kind != "U":
        raise fail(f"bad meta: {_META_KEY!r} is not a JSON string")
    try:
        meta = json.loads(str(meta_array))
    except json.JSONDecodeError as e:
        raise fail(f"bad meta JSON ({e})") from None
    if not isinstance(meta, dict):
        raise fail(f"bad meta JSON (expected an object, got {type(meta).__name__})")
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise fail(f"not a minisnn checkpoint (format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT!r})")
    if meta.get("version") != CHECKPOINT_VERSION:
        raise fail(f"unsupported checkpoint version {meta.get('version')!r} (this minisnn reads {CHECKPOINT_VERSION})")
    return state, meta

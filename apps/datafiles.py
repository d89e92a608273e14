"""What both data loaders share: their error, and the npz cache of decoded arrays.

:class:`DataError` is the one exception a loader raises for a problem with the user's data (a
one-line message that names the file); catching it catches both apps' problems.

The cache keeps a data set's decoded arrays in one ``.npz`` file named by a key: the SHA-256 of
the loader's settings and of the name, size and modification time (``st_mtime_ns``) of every
source file, so an edited, added or removed file changes the key and the data is read again.
Files are written atomically (:func:`minisnn.io.atomic_write_bytes`); a file that cannot be
read, or holds another key, is a miss, never an error.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from ..io import atomic_write_bytes


class DataError(ValueError):
    """A problem with the input data, explained in one line that names the file (and CSV line)."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).splitlines()))


def cache_key(settings: dict, files, root: Path) -> str:
    """First 16 hex digits of the SHA-256 of ``settings`` (JSON) and of each source file's
    ``name<TAB>size<TAB>mtime_ns`` line, in the order given (``name`` relative to ``root``, or
    the absolute path for a file outside it)."""
    h = hashlib.sha256()
    h.update(json.dumps(settings).encode())
    for path in files:
        st = path.stat()
        try:
            name = path.relative_to(root).as_posix()
        except ValueError:
            name = path.as_posix()
        h.update(f"\n{name}\t{st.st_size}\t{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def read_cache(path: Path, key: str) -> dict | None:
    """Every array of the cache file ``path`` (strings as lists of ``str``), or None if it is
    absent, unreadable or written under another key.  The caller checks shapes and dtypes."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            return {k: ([str(s) for s in z[k]] if z[k].dtype.kind == "U" else z[k])
                    for k in z.files if k != "key"}
    except Exception:  # a damaged cache is only a cache: ignore it, read again and rewrite it
        return None


def write_cache(path: Path, key: str, **arrays) -> None:
    """Write ``arrays`` and ``key`` to the cache file ``path``, atomically."""
    buf = io.BytesIO()
    np.savez(buf, key=np.array(key), **arrays)
    atomic_write_bytes(path, buf.getvalue())


__all__ = ["DataError", "cache_key", "read_cache", "write_cache"]

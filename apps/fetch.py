"""Download, verify and safely unpack the two public data sets (the engine of ``minisnn-data fetch``).

What :func:`fetch` does, in order
---------------------------------
1. **Idempotence.**  If ``DEST/.minisnn-data-<name>.json`` (the *marker*) exists, every file it
   lists is checked (size and SHA-256).  All good: nothing else happens, no network access.  A
   missing or changed file: the marker is removed and the fetch runs again (the kept archive is
   reused if its checksum still matches).
2. **Download** ``url`` to ``DEST/.<archive>.partial``.  An existing ``.partial`` is resumed with an
   HTTP ``Range: bytes=N-`` request (a server that answers ``200`` instead of ``206`` is read from
   the start again).  A progress bar (:class:`minisnn.apps.progress.Bar`) shows the KiB received.
3. **Verify** the size (against ``Content-Length`` / ``Content-Range`` and the catalogue size when it
   is known) and the checksum (MD5 or SHA-256).  A download that stopped early stays
   ``.partial`` (the next run resumes it); a file of the wrong size or checksum is renamed to
   ``DEST/<archive>.corrupt``, so it is never resumed nor mistaken for a good one.  Only a verified
   file is renamed to ``DEST/<archive>``.
4. **Extract** into a fresh staging folder ``DEST/.minisnn-staging-<name>/``.  Every member is
   checked before anything is written: absolute paths, ``..`` components, links whose target leaves
   the destination and device/FIFO entries are rejected with an :class:`UnsafeArchive` error naming
   the member (and the staging folder is deleted, so nothing of such an archive reaches ``DEST``).
   Links that stay inside are not created (neither data set needs one); macOS junk (``__MACOSX/``,
   ``._*`` AppleDouble files, ``.DS_Store``) is skipped.  File modes from the archive are ignored.
5. **Move** the extracted files into ``DEST`` (``os.replace``, file by file) and write the marker
   atomically (:func:`minisnn.io.atomic_write_json`) as the very last step: without a marker a
   folder is never "complete".

Every failure raises :class:`FetchError` (a one-line message naming the URL or file and what was
expected); the command line prints it and exits with status 1.

Sources (the official, public locations; cited where each URL and checksum was found)
--------------------------------------------------------------------------------------
* ``caltech101``: CaltechDATA record of Caltech 101 (Li, Andreeto, Ranzato & Perona, 2022,
  doi:10.22002/D1.20086), https://data.caltech.edu/records/mzrjq-6wc02, file ``caltech-101.zip``
  (about 137 MB), MD5 ``3138e1922a9193bfa496528edbbc45d0``: the URL/MD5 pair in mlverse/torchvision
  (the R port of torchvision), ``R/dataset-caltech.R``, ``caltech101_dataset$resources``; several
  other public download scripts use the same pair.  The zip holds
  ``caltech-101/101_ObjectCategories.tar.gz`` and ``caltech-101/Annotations.tar``, the two files of
  the old vision.caltech.edu page, which pytorch/vision ``torchvision/datasets/caltech.py`` verified
  with MD5 ``b224c7392d521a49829488ab0f1120d9`` and ``6f83eeb1f24d99cab4eb377263132c91``.  Those
  nested checksums are not enforced (nothing shows that the zipped copies are byte-identical; the
  zip's own MD5 covers its contents).  Only ``101_ObjectCategories/airplanes/`` and
  ``Annotations/Airplanes_Side_2/`` are extracted: the original Caltech-101 layout that
  :func:`minisnn.apps.loc_data.load_boxes` reads.
* ``msd-hippocampus``: Medical Segmentation Decathlon Task04_Hippocampus (Simpson et al. 2019,
  arXiv:1902.09063; CC-BY-SA 4.0), ``Task04_Hippocampus.tar`` from the AWS S3 mirror
  https://msd-for-monai.s3-us-west-2.amazonaws.com/Task04_Hippocampus.tar, MD5
  ``9d24dba78a72977dbd1d2e110310f31b`` -- both from Project-MONAI/MONAI ``monai/apps/datasets.py``
  (``DecathlonDataset.resource`` and ``DecathlonDataset.md5``).  The MSD's own distribution is a
  Google Drive folder linked from http://medicaldecathlon.com/ (public download scripts list file id
  ``1RzPB1_bqzQhlWvU-YGvZzhx2omcDh38C`` for this tar, with the same MD5); the S3 URL is the default
  because it is a plain HTTPS object URL, which answers Range requests (resume).  The tar unpacks to
  ``Task04_Hippocampus/{imagesTr,labelsTr,imagesTs,dataset.json}`` plus macOS ``._*`` files, which
  are skipped; :func:`minisnn.apps.seg_data.load_volumes` reads ``DEST/Task04_Hippocampus``.

Neither archive's exact byte size was found in a citable source, so the size is checked against
what the server announces (``Content-Length`` / ``Content-Range``) unless ``size`` is given.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import posixpath
import re
import shutil
import socket
import stat
import tarfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from ..io import atomic_write_json
from .progress import Bar

__all__ = ["Source", "SOURCES", "FetchError", "UnsafeArchive", "FetchResult", "fetch", "download",
           "marker_path", "verify_marker", "url_env_var"]

MARKER_FORMAT = "minisnn-data-marker"
MARKER_VERSION = 1
_CHUNK = 1 << 16


class FetchError(Exception):
    """A download, verification or extraction failure, explained in one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class UnsafeArchive(FetchError):
    """An archive member that would land outside the destination (or is a device file)."""


@dataclass(frozen=True)
class Source:
    """One downloadable data set: where it is, how to check it, how to unpack it."""

    name: str  # the command-line name, e.g. "caltech101"
    url: str  # the official public URL
    filename: str  # the archive's file name in DEST
    checksum: tuple  # (algorithm, hex digest): ("md5", "...") or ("sha256", "...")
    size: int | None  # bytes, when a citable source gives it; else None (checked against Content-Length)
    data_dir: str  # the folder (relative to DEST) to pass as --data; "." for DEST itself
    reference: str  # what the data set is and where the URL comes from (recorded in the marker)


SOURCES = {
    "caltech101": Source(
        name="caltech101",
        url="https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip",
        filename="caltech-101.zip",
        checksum=("md5", "3138e1922a9193bfa496528edbbc45d0"),
        size=None,
        data_dir=".",
        reference="CaltechDATA record mzrjq-6wc02 (doi:10.22002/D1.20086), Caltech 101, CC BY 4.0",
    ),
    "msd-hippocampus": Source(
        name="msd-hippocampus",
        url="https://msd-for-monai.s3-us-west-2.amazonaws.com/Task04_Hippocampus.tar",
        filename="Task04_Hippocampus.tar",
        checksum=("md5", "9d24dba78a72977dbd1d2e110310f31b"),
        size=None,
        data_dir="Task04_Hippocampus",
        reference="Medical Segmentation Decathlon Task04_Hippocampus (medicaldecathlon.com), AWS mirror "
                  "listed in MONAI's DecathlonDataset, CC-BY-SA 4.0",
    ),
}


def url_env_var(name: str) -> str:
    """The environment variable that overrides the URL of ``name``: ``MINISNN_DATA_URL_CALTECH101``..."""
    return "MINISNN_DATA_URL_" + re.sub(r"[^A-Z0-9]", "_", name.upper())


def marker_path(dest: Path, name: str) -> Path:
    return Path(dest) / f".minisnn-data-{name}.json"


@dataclass
class FetchResult:
    """What :func:`fetch` did."""

    data_dir: Path  # the folder to pass as --data
    nothing_to_do: bool  # True: the marker verified, no download, no extraction
    files: int  # files listed in the marker
    downloaded: bool  # False when a verified archive already in DEST was reused
    skipped: dict  # counts of archive members not extracted: junk, links, unselected


# ----------------------------------------------------------------------------- download


def _hash_file(path: Path, algo: str):
    """A hashlib object fed with the whole file."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            h.update(chunk)
    return h


def _content_range_total(value: str | None) -> tuple[int | None, int | None]:
    """``(start, total)`` from ``bytes START-END/TOTAL`` or ``bytes */TOTAL`` (None where absent)."""
    m = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value or "")
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


def _open(url: str, offset: int, timeout: float):
    headers = {"User-Agent": "minisnn-data/1 (+https://github.com/)", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as e:
        if e.code == 416 and offset:
            _, total = _content_range_total(e.headers.get("Content-Range"))
            e.close()
            return ("416", total)
        e.close()
        raise FetchError(f"{url}: HTTP {e.code} {e.reason} (expected 200 with the archive)") from None
    except URLError as e:
        raise FetchError(f"{url}: cannot connect ({e.reason})") from None
    except (socket.timeout, TimeoutError):
        raise FetchError(f"{url}: no answer within {timeout:g} s (--timeout)") from None
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise FetchError(f"{url}: cannot download ({type(e).__name__}: {e})") from None


def _kib(n: int) -> int:
    """Bytes -> KiB, rounded up (the progress bar's unit)."""
    return -(-n // 1024)


def _quarantine(path: Path, corrupt: Path) -> Path:
    """Rename a bad download so that it is neither resumed nor taken for the real archive."""
    os.replace(path, corrupt)
    return corrupt


def download(url: str, target: Path, checksum: tuple, *, size: int | None = None, timeout: float = 60.0,
             quiet: bool = False, stream=None, log: Callable[[str], None] = lambda m: None) -> None:
    """Download ``url`` to ``target`` via ``.<target>.partial`` (resumed), verify, then rename.

    Three steps: ask the server for the bytes after what the ``.partial`` holds
    (:func:`_request`), append them while hashing (:func:`_receive`), check the size and the
    checksum (:func:`_verify`).

    Raises :class:`FetchError`: HTTP or network error, a download that stopped early (the
    ``.partial`` is kept for the next run to resume), a size or checksum mismatch (the file is
    renamed to ``<target>.corrupt``).
    """
    target = Path(target)
    algo = checksum[0]
    partial = target.parent / f".{target.name}.partial"
    if partial.exists() and not partial.is_file():
        raise FetchError(f"{partial}: exists and is not a file (expected a partial download or nothing)")
    resp, total = _request(url, partial, timeout, log)
    if resp is None:  # the partial file is already whole
        h, interrupted = _hash_file(partial, algo), None
    else:
        with resp:
            h, total, interrupted = _receive(resp, url, partial, algo, size, total, log,
                                             f"download {target.name}", quiet, stream)
    _verify(url, partial, target.parent / f"{target.name}.corrupt", h, checksum, size, total, interrupted)
    os.replace(partial, target)


def _request(url: str, partial: Path, timeout: float, log) -> tuple:
    """``(response, total size or None)`` for the bytes after the ``partial`` file's; the
    response is None when the server has nothing after them (HTTP 416 at its full size).  A
    ``partial`` longer than the server's file is deleted and the download starts over."""
    offset = partial.stat().st_size if partial.is_file() else 0
    resp = _open(url, offset, timeout)
    if not isinstance(resp, tuple):
        return resp, None
    total = resp[1]  # 416: the server has nothing after byte `offset`
    if total is not None and total == offset:
        log(f"{partial.name}: already complete ({offset} bytes)")
        return None, total
    log(f"{partial.name}: {offset} bytes but the server's file has {total}; starting over")
    partial.unlink()
    resp = _open(url, 0, timeout)
    if isinstance(resp, tuple):
        raise FetchError(f"{url}: HTTP 416 Range Not Satisfiable for a request without a range")
    return resp, None


def _receive(resp, url: str, partial: Path, algo: str, size, total, log, label: str, quiet: bool, stream) -> tuple:
    """Write the response's bytes to ``partial`` (appended to a resumed range, or from the
    start), hashing them, with a progress bar; returns ``(hash, total size or None, why the
    connection broke or None)``."""
    offset = partial.stat().st_size if partial.is_file() else 0
    status = getattr(resp, "status", 200)
    if offset and status == 206:
        start, total = _content_range_total(resp.headers.get("Content-Range"))
        if start != offset:
            raise FetchError(f"{url}: asked for bytes from {offset}, the server sent a range starting at "
                             f"{start} (Content-Range {resp.headers.get('Content-Range')!r})")
        h, mode = _hash_file(partial, algo), "ab"
        log(f"resuming {partial.name} at {offset} bytes")
    else:
        if offset:
            log(f"{url}: the server ignored the range request (HTTP {status}); starting over")
        offset, h, mode = 0, hashlib.new(algo), "wb"
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
    if size is not None and total is not None and total != size:
        raise FetchError(f"{url}: the server announces {total} bytes, expected {size} (a different file? check --url)")
    done, interrupted = offset, None
    with open(partial, mode) as f, Bar(_kib(total) if total else 0, label, unit="KiB",
                                       quiet=quiet or not total, stream=stream) as bar:
        bar.update(_kib(done))
        while True:
            try:
                chunk = resp.read(_CHUNK)
            except (http.client.HTTPException, OSError) as e:  # reset, timeout, IncompleteRead
                interrupted = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                break
            if not chunk:
                break
            try:
                f.write(chunk)
            except OSError as e:
                raise FetchError(f"{partial}: cannot write ({e.strerror or e})") from None
            h.update(chunk)
            before = _kib(done)
            done += len(chunk)
            bar.update(_kib(done) - before)
        f.flush()
        os.fsync(f.fileno())
    return h, total, interrupted


def _verify(url: str, partial: Path, corrupt: Path, h, checksum: tuple, size, total, interrupted) -> None:
    """FetchError unless ``partial`` is whole and its checksum right: a download that stopped
    before the announced size is kept to resume; anything else wrong is moved to ``corrupt``."""
    got = partial.stat().st_size
    if total is not None and got < total:
        why = f" ({interrupted})" if interrupted else " (the connection closed early)"
        raise FetchError(f"{url}: download interrupted after {got} of {total} bytes{why}; {partial} is kept: "
                         f"run the same command again to resume")
    problem = None
    if interrupted and total is None:
        problem = f"download failed after {got} bytes ({interrupted}) and the size is unknown"
    elif total is not None and got > total:
        problem = f"got {got} bytes, the server announced {total}"
    elif size is not None and got != size:
        problem = f"got {got} bytes, expected {size}"
    elif h.hexdigest() != checksum[1].lower():
        problem = (f"{checksum[0]} of the {got} bytes downloaded is {h.hexdigest()}, expected {checksum[1].lower()} "
                   f"(corrupt or not the official file)")
    if problem:
        _quarantine(partial, corrupt)
        raise FetchError(f"{url}: {problem}; moved to {corrupt}")


# ----------------------------------------------------------------------------- safe extraction


_JUNK_NAMES = {".DS_Store", "Thumbs.db"}


def _is_junk(path: PurePosixPath) -> bool:
    """macOS / Windows litter: ``__MACOSX/...``, ``._name`` AppleDouble files, ``.DS_Store``."""
    return "__MACOSX" in path.parts or path.name.startswith("._") or path.name in _JUNK_NAMES


def _safe_path(archive, name: str) -> PurePosixPath | None:
    """The member name as a relative path inside the destination; UnsafeArchive if it escapes."""
    n = name.replace("\\", "/")
    if n.startswith("/") or re.match(r"[A-Za-z]:", n):
        raise UnsafeArchive(f"{archive}: member {name!r} has an absolute path (expected paths relative to the "
                            f"destination); nothing was extracted")
    parts = [p for p in n.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"{archive}: member {name!r} contains '..' and would escape the destination; "
                            f"nothing was extracted")
    if any("\x00" in p for p in parts):
        raise UnsafeArchive(f"{archive}: member {name!r} has a NUL byte in its name; nothing was extracted")
    return PurePosixPath(*parts) if parts else None


def _check_link(archive, member: PurePosixPath, target: str, hard: bool) -> None:
    """UnsafeArchive if a link's target is absolute or leaves the destination."""
    t = target.replace("\\", "/")
    what = "hard link" if hard else "symlink"
    if t.startswith("/") or re.match(r"[A-Za-z]:", t):
        raise UnsafeArchive(f"{archive}: {what} {member.as_posix()!r} -> {target!r} points outside the destination "
                            f"(absolute target); nothing was extracted")
    base = "" if hard else posixpath.dirname(member.as_posix())  # tar hard links are relative to the root
    resolved = posixpath.normpath(posixpath.join(base, t))
    if resolved == ".." or resolved.startswith("../"):
        raise UnsafeArchive(f"{archive}: {what} {member.as_posix()!r} -> {target!r} points outside the "
                            f"destination; nothing was extracted")


def _write_member(src, dest_root: Path, rel: PurePosixPath) -> tuple[int, str]:
    """Stream one member into ``dest_root/rel``: ``(size, sha256)``.

    Errors reading ``src`` propagate as they are (the caller names the archive); errors writing
    the file become a :class:`FetchError` naming it.
    """
    out = dest_root.joinpath(*rel.parts)
    root = os.path.realpath(dest_root)
    h = hashlib.sha256()
    n = 0
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if os.path.commonpath([root, os.path.realpath(out.parent)]) != root:  # belt and braces
            raise UnsafeArchive(f"member {rel.as_posix()!r} would be written outside {dest_root}; nothing was "
                                f"extracted")
        if out.is_dir():
            raise FetchError(f"member {rel.as_posix()!r} is both a folder and a file in the archive")
        f = open(out, "wb")
    except OSError as e:
        raise FetchError(f"{out}: cannot write ({e.strerror or e})") from None
    with f:
        while True:
            chunk = src.read(_CHUNK)
            if not chunk:
                break
            try:
                f.write(chunk)
            except OSError as e:
                raise FetchError(f"{out}: cannot write ({e.strerror or e})") from None
            h.update(chunk)
            n += len(chunk)
    return n, h.hexdigest()


Select = Callable[[PurePosixPath], "PurePosixPath | None"]


def _count(skipped: dict, key: str) -> None:
    skipped[key] = skipped.get(key, 0) + 1


def extract_tar(archive: Path, dest_root: Path, select: Select, skipped: dict, label: str | None = None) -> dict:
    """Extract the selected regular files of a (possibly compressed) tar into ``dest_root``.

    Every member is checked (even the unselected ones), in one streaming pass; an unsafe member
    raises :class:`UnsafeArchive` (the caller deletes ``dest_root``).  Returns ``{relpath: [size,
    sha256]}`` of the files written, relative to ``dest_root``.  ``label`` names the archive in
    messages (default: its path).
    """
    files: dict = {}
    name = label or str(archive)
    try:
        with tarfile.open(archive, "r:*") as tf:
            for member in tf:
                rel = _safe_path(name, member.name)
                if rel is None:
                    continue
                if member.issym() or member.islnk():
                    _check_link(name, rel, member.linkname, hard=member.islnk())
                    _count(skipped, "links")
                    continue
                if not (member.isfile() or member.isdir()):
                    raise UnsafeArchive(f"{name}: member {member.name!r} is a device or FIFO entry (expected "
                                        f"regular files and folders); nothing was extracted")
                if member.isdir() or _is_junk(rel):
                    if member.isfile():
                        _count(skipped, "junk")
                    continue
                out = select(rel)
                if out is None:
                    _count(skipped, "unselected")
                    continue
                src = tf.extractfile(member)
                if src is None:
                    raise FetchError(f"{name}: cannot read member {member.name!r}")
                with src:
                    files[out.as_posix()] = list(_write_member(src, dest_root, out))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise FetchError(f"{name}: not a readable tar archive ({type(e).__name__}: {e})") from None
    return files


def zip_members(archive: Path, zf: zipfile.ZipFile) -> list:
    """``[(relpath, info)]`` of a zip's regular files, every entry checked first (UnsafeArchive)."""
    out = []
    for info in zf.infolist():
        rel = _safe_path(archive, info.filename)
        if rel is None:
            continue
        mode = (info.external_attr >> 16) & 0o170000
        if mode == stat.S_IFLNK:
            _check_link(archive, rel, zf.read(info).decode("utf-8", "replace"), hard=False)
            continue
        if mode not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeArchive(f"{archive}: member {info.filename!r} is a device or FIFO entry; nothing was "
                                f"extracted")
        if info.is_dir():
            continue
        out.append((rel, info))
    return out


# ----------------------------------------------------------------------------- the two data sets


def _under(*prefix: str) -> Select:
    """Select members whose path contains ``prefix`` as consecutive folders; keep the path from there on."""
    k = len(prefix)

    def select(rel: PurePosixPath):
        parts = rel.parts
        for i in range(len(parts) - k):
            if parts[i:i + k] == prefix:
                return PurePosixPath(*parts[i:])
        return None

    return select


def _unpack_caltech101(archive: Path, staging: Path, skipped: dict, log) -> dict:
    """The CaltechDATA zip -> its two nested archives -> the airplanes images and annotations."""
    nested = staging / ".nested"
    wanted: dict = {"101_ObjectCategories.tar.gz": None, "Annotations.tar": None}
    try:
        with zipfile.ZipFile(archive) as zf:
            for rel, info in zip_members(archive, zf):  # every entry checked, even the unused ones
                if rel.name in wanted and not _is_junk(rel):
                    if wanted[rel.name] is not None:
                        raise FetchError(f"{archive}: two members named {rel.name} "
                                         f"({wanted[rel.name][0]} and {rel})")
                    wanted[rel.name] = (rel, info)
            inner = {name: f"{archive} ({found[0].as_posix()})" for name, found in wanted.items() if found}
            for name, found in wanted.items():
                if found is None:
                    raise FetchError(f"{archive}: no {name} inside (expected the CaltechDATA caltech-101.zip "
                                     f"holding caltech-101/101_ObjectCategories.tar.gz and "
                                     f"caltech-101/Annotations.tar)")
                log(f"extracting {found[0].as_posix()} from {archive.name}")
                with zf.open(found[1]) as src:
                    _write_member(src, nested, PurePosixPath(name))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, zlib.error) as e:
        raise FetchError(f"{archive}: not a readable zip archive ({type(e).__name__}: {e})") from None
    files = {}
    log("extracting 101_ObjectCategories/airplanes/")
    files.update(extract_tar(nested / "101_ObjectCategories.tar.gz", staging,
                             _under("101_ObjectCategories", "airplanes"), skipped,
                             inner["101_ObjectCategories.tar.gz"]))
    log("extracting Annotations/Airplanes_Side_2/")
    files.update(extract_tar(nested / "Annotations.tar", staging, _under("Annotations", "Airplanes_Side_2"),
                             skipped, inner["Annotations.tar"]))
    shutil.rmtree(nested)
    n_img = sum(1 for f in files if f.startswith("101_ObjectCategories/airplanes/") and f.endswith(".jpg"))
    n_ann = sum(1 for f in files if f.startswith("Annotations/Airplanes_Side_2/") and f.endswith(".mat"))
    if not n_img or not n_ann:
        raise FetchError(f"{archive}: found {n_img} images in 101_ObjectCategories/airplanes/ and {n_ann} "
                         f"annotations in Annotations/Airplanes_Side_2/ (expected both)")
    log(f"{n_img} airplane images, {n_ann} annotations")
    return files


def _unpack_msd(archive: Path, staging: Path, skipped: dict, log) -> dict:
    """The Decathlon tar -> Task04_Hippocampus/{imagesTr,labelsTr,imagesTs,dataset.json}."""
    log(f"extracting {archive.name}")
    files = extract_tar(archive, staging, lambda rel: rel, skipped)
    tops = {f.split("/")[0] for f in files}
    for top in sorted(tops):
        if any(f.startswith(f"{top}/imagesTr/") for f in files) and any(f.startswith(f"{top}/labelsTr/")
                                                                        for f in files):
            n = sum(1 for f in files if f.startswith(f"{top}/imagesTr/"))
            log(f"{n} training images in {top}/imagesTr")
            return files
    raise FetchError(f"{archive}: no <task>/imagesTr/ and <task>/labelsTr/ inside (expected the Decathlon "
                     f"Task04_Hippocampus.tar)")


_UNPACK = {"caltech101": _unpack_caltech101, "msd-hippocampus": _unpack_msd}


# ----------------------------------------------------------------------------- marker


def verify_marker(dest: Path, name: str) -> tuple[bool, str, dict | None]:
    """``(ok, message, marker)``: does every file the marker lists still have its size and SHA-256?"""
    import json

    path = marker_path(dest, name)
    if not path.is_file():
        return False, "no marker", None
    try:
        marker = json.loads(path.read_text())
        files = marker["files"]
        if marker.get("format") != MARKER_FORMAT or not isinstance(files, dict) or not files:
            raise ValueError("not a marker")
    except (OSError, ValueError, KeyError, TypeError) as e:
        return False, f"{path}: unreadable marker ({type(e).__name__})", None
    for rel, (size, digest) in sorted(files.items()):
        p = Path(dest).joinpath(*PurePosixPath(rel).parts)
        try:
            st = p.stat()
        except OSError:
            return False, f"{p}: missing", marker
        if st.st_size != size:
            return False, f"{p}: {st.st_size} bytes, expected {size}", marker
        if _hash_file(p, "sha256").hexdigest() != digest:
            return False, f"{p}: content changed (sha256 differs)", marker
    return True, f"{len(files)} files verified", marker


# ----------------------------------------------------------------------------- fetch


def fetch(name: str, dest, *, url: str | None = None, checksum: tuple | None = None, size: int | None = None,
          timeout: float = 60.0, keep_archive: bool = True, quiet: bool = False, stream=None,
          log: Callable[[str], None] | None = None) -> FetchResult:
    """Fetch data set ``name`` (a key of :data:`SOURCES`) into ``dest``; see the module docstring.

    ``url`` overrides the official URL (else ``$MINISNN_DATA_URL_<NAME>``), ``checksum``
    (``("md5" | "sha256", hex)``) and ``size`` the expected checksum and byte count.
    """
    if name not in SOURCES:
        raise FetchError(f"unknown data set {name!r} (expected one of {', '.join(SOURCES)})")
    src = SOURCES[name]
    url = url or os.environ.get(url_env_var(name)) or src.url
    checksum = checksum or src.checksum
    if checksum[0] not in ("md5", "sha256"):
        raise FetchError(f"unknown checksum type {checksum[0]!r} (expected md5 or sha256)")
    digits = 32 if checksum[0] == "md5" else 64
    if not re.fullmatch(r"[0-9a-fA-F]{%d}" % digits, checksum[1]):
        raise FetchError(f"bad checksum {checksum[0]} {checksum[1]!r} (expected {digits} hex digits for {checksum[0]})")
    size = size if size is not None else src.size
    log = log or (lambda m: None)
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise FetchError(f"{dest}: exists and is not a folder (expected a folder for --dest)")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FetchError(f"{dest}: cannot create the folder ({e.strerror or e})") from None
    data_dir = dest / src.data_dir if src.data_dir != "." else dest
    marker = marker_path(dest, name)

    if marker.exists():
        ok, message, old = verify_marker(dest, name)
        if ok:
            return FetchResult(data_dir, True, len(old["files"]), False, old.get("skipped", {}))
        log(f"{message}; fetching again")
        marker.unlink()

    archive = dest / src.filename
    downloaded = False
    if archive.is_file():
        digest = _hash_file(archive, checksum[0]).hexdigest()
        if digest == checksum[1].lower() and (size is None or archive.stat().st_size == size):
            log(f"{archive} already downloaded, {checksum[0]} verified")
        else:
            corrupt = dest / f"{src.filename}.corrupt"
            _quarantine(archive, corrupt)
            log(f"{archive}: {checksum[0]} {digest} does not match {checksum[1]}; moved to {corrupt}")
    if not archive.is_file():
        log(f"downloading {url}")
        t0 = time.perf_counter()
        download(url, archive, checksum, size=size, timeout=timeout, quiet=quiet, stream=stream, log=log)
        log(f"{archive.name}: {archive.stat().st_size} bytes in {time.perf_counter() - t0:.1f} s, "
            f"{checksum[0]} verified")
        downloaded = True

    staging = dest / f".minisnn-staging-{name}"
    if staging.exists():
        shutil.rmtree(staging)
    skipped: dict = {}
    try:
        staging.mkdir()
        files = _UNPACK[name](archive, staging, skipped, log)
        for rel in files:  # move into place, file by file
            out = dest.joinpath(*PurePosixPath(rel).parts)
            out.parent.mkdir(parents=True, exist_ok=True)
            if out.is_dir() and not out.is_symlink():
                raise FetchError(f"{out}: is a folder, expected to put a file of {archive.name} there")
            os.replace(staging.joinpath(*PurePosixPath(rel).parts), out)
    except OSError as e:
        raise FetchError(f"{dest}: cannot extract {archive.name} ({e.strerror or e}: {e.filename})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    atomic_write_json(marker, {
        "format": MARKER_FORMAT, "version": MARKER_VERSION, "dataset": name, "url": url,
        "archive": src.filename, "checksum": f"{checksum[0]}:{checksum[1].lower()}",
        "archive_size": archive.stat().st_size, "reference": src.reference, "data_dir": src.data_dir,
        "skipped": skipped, "files": files,
    })
    if not keep_archive:
        archive.unlink()
    return FetchResult(data_dir, False, len(files), downloaded, skipped)

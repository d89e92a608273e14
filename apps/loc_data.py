"""Bounding-box data for the LocNet localization app: Caltech-101 airplanes, real or synthetic.

Every data set is returned as a :class:`BoxData`: images ``(N, 3, H, W)`` float32 in [0, 1] and one
box per image, ``(N, 4)`` float32 ``[x1, y1, x2, y2]`` in [0, 1].

Layouts read by :func:`load_boxes`
----------------------------------
``load_boxes(data_dir)`` detects which of two layouts ``data_dir`` holds:

(a) **CSV layout** (the Keras "bounding box regression" tutorial layout, the one in
    ``../shared/data/caltech101-airplanes``)::

        data_dir/airplanes.csv       exactly one *.csv file, rows filename,startX,startY,endX,endY
        data_dir/images/image_0001.jpg ...

    No header row (a header on the first row is tolerated), integer pixel coordinates, origin at
    the top-left corner, ``(startX, startY)`` the top-left and ``(endX, endY)`` the bottom-right
    corner of the box.

(b) **Original Caltech-101 layout**::

        data_dir/101_ObjectCategories/airplanes/image_0001.jpg ...
        data_dir/Annotations/Airplanes_Side_2/annotation_0001.mat ...

    ``image_XXXX.jpg`` pairs with ``annotation_XXXX.mat``, whose field ``box_coord`` is
    ``[top, bottom, left, right]`` = ``[y1, y2, x1, x2]`` (note the order).

If both are present the CSV layout wins.

Normalization
-------------
Images are converted to RGB, resized to ``size = (H, W)`` with PIL's bilinear filter (the aspect
ratio is *not* kept) and scaled to [0, 1].  Boxes are divided by the width and height of the
*original* image, so ``[x1 / width, y1 / height, x2 / width, y2 / height]`` -- the same box in
relative coordinates whatever ``size`` is.  A box with zero width or height (``image_0118.jpg`` in
the real data) cannot be learned or scored with IoU: it is dropped and reported in
``BoxData.dropped``.  Every other problem (missing or broken image, a 16/32-bit or float image
that 8-bit RGB would saturate, malformed CSV row, box outside the image, ...) raises
:class:`DataError` with a one-line message naming the file (and the CSV line).  A JPEG whose
compressed data is damaged but whose structure is intact decodes (to damaged pixels) like any
decoder would show it: JPEG has no checksum to tell.

Disk cache
----------
Decoding 800 JPEGs takes a few seconds, so ``load_boxes(..., cache_dir=d)`` keeps the decoded
pixels (as uint8) and boxes in one ``.npz`` file in ``d``, named after its *key*: the first 16 hex
digits of the SHA-256 of the layout, the target size, :data:`CACHE_FORMAT_VERSION` and the name,
size in bytes and modification time (``st_mtime_ns``) of every source file (the CSV or ``.mat``
files and every image).  Editing, replacing or touching any source file, or asking for another
size, gives a new key and so a fresh decode.  The file is written atomically (a temporary file in
the same folder, then :func:`os.replace`), so a crash never leaves a half-written cache behind; a
cache file that cannot be read anyway is ignored and rewritten.  Files of older keys are left in
place: delete the folder to reclaim the space.

Synthetic data
--------------
:func:`synthetic_boxes` draws a seeded stand-in for the real set (cluttered backgrounds, one
airplane silhouette per image) in a few milliseconds per image (about 3 s for 800 images at
100 x 150), for tests and for running the app without the real data.

Splits
------
:func:`split_indices` (one seeded train/test split) and :func:`kfold_indices` (seeded k-fold
cross-validation) return sorted index arrays.
"""

from __future__ import annotations

import csv
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.io
from PIL import Image, ImageDraw

from .datafiles import DataError, cache_key, read_cache, write_cache

__all__ = [
    "BoxData",
    "DataError",
    "load_boxes",
    "synthetic_boxes",
    "split_indices",
    "kfold_indices",
    "DEFAULT_SIZE",
    "CACHE_FORMAT_VERSION",
]

#: Default input size ``(H, W)``; the real images are about 400 x 150 pixels (W x H).
DEFAULT_SIZE = (100, 150)

#: Part of the cache key: bump it whenever the decoding or the cache file contents change.
CACHE_FORMAT_VERSION = 2  # 2: 16-bit and float images are refused (issue 8)

#: Folders of the original Caltech-101 layout, relative to ``data_dir``.
CALTECH_IMAGE_DIR = Path("101_ObjectCategories") / "airplanes"
CALTECH_ANNOTATION_DIR = Path("Annotations") / "Airplanes_Side_2"

_CSV_FIELDS = ("filename", "startX", "startY", "endX", "endY")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_CALTECH_IMAGE = re.compile(r"image_([0-9]+)\.jpg")
_CALTECH_ANNOTATION = re.compile(r"annotation_([0-9]+)\.mat")

# What PIL raises for a file it cannot decode: UnidentifiedImageError and "image file is
# truncated" are OSErrors; some broken headers give ValueError, SyntaxError or EOFError.
_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


@dataclass
class BoxData:
    """Images and one bounding box per image.

    Attributes
    ----------
    images : ndarray, shape (N, 3, H, W), float32
        RGB pixels in [0, 1], resized to ``(H, W)``.
    boxes : ndarray, shape (N, 4), float32
        ``[x1, y1, x2, y2]`` in [0, 1]: pixel coordinates divided by the width and height of the
        original image; ``x1 < x2`` and ``y1 < y2``.
    names : list of str
        One identifier per image: the file name (``"image_0001.jpg"``) or ``"synthetic_00012"``.
    source : str
        Where the data came from: the folder path, or ``"synthetic (seed 0, 200 images)"``.
    dropped : list of str
        The rows left out because their box has zero width or height, with the reason, e.g.
        ``"image_0118.jpg: zero height box (104,38,126,38)"``.
    """

    images: np.ndarray
    boxes: np.ndarray
    names: list[str]
    source: str
    dropped: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- real data


@dataclass
class _Row:
    """One annotated image before decoding: where it is and its box in pixels."""

    name: str  # identifier reported in BoxData.names (the image file name)
    image: Path  # the image file
    coords: tuple  # (x1, y1, x2, y2) in pixels, as given by the annotation
    annotation: Path  # the CSV file or the .mat file the box comes from
    line: int | None = None  # CSV line number; None for a .mat annotation
    labels: tuple = ("startX", "startY", "endX", "endY")  # names of coords in messages

    def where(self) -> str:
        """Prefix of error messages about the box: ``"<csv>: line N"`` or ``"<annotation.mat>"``."""
        return f"{self.annotation}: line {self.line}" if self.line is not None else str(self.annotation)

    def where_image(self) -> str:
        """Prefix of error messages about the image file."""
        if self.line is not None:
            return f"{self.annotation}: line {self.line}: image {self.image}"
        return str(self.image)


def load_boxes(data_dir, size=DEFAULT_SIZE, *, cache_dir=None,
               progress: Callable[[int, int], None] | None = None) -> BoxData:
    """Load the airplane images and their boxes from ``data_dir`` (CSV or Caltech-101 layout).

    Parameters
    ----------
    data_dir : str or Path
        Folder in one of the two layouts described in the module docstring.
    size : (int, int)
        ``(H, W)`` the images are resized to.
    cache_dir : str or Path, optional
        Folder for the decoded-array cache (created if missing).  ``None``: no cache.
    progress : callable, optional
        ``progress(done, total)``, called as the images are decoded (``total`` counts every
        annotated image, dropped ones included); on a cache hit it is called once with
        ``done == total``.

    Returns
    -------
    BoxData
        Images in annotation order (CSV row order, or by image number), degenerate boxes dropped.

    Raises
    ------
    DataError
        No data in a known layout, a malformed annotation, a missing or undecodable image, a box
        outside its image, a start coordinate after the end one, a duplicate file name.  The
        message is one line and names the file (and the CSV line).
    ValueError
        ``size`` is not two positive integers.
    """
    size = _check_size(size)
    data_dir = Path(data_dir)
    layout = _find_layout(data_dir)
    if layout == "csv":
        rows = csv_rows(_csv_file(data_dir), data_dir)
    else:
        rows = _caltech_rows(data_dir)
    for row in rows:
        _check_order(row)

    cache_file = key = None
    if cache_dir is not None:
        key = _cache_key(layout, size, data_dir, rows)
        cache_file = Path(cache_dir) / f"airplanes_{key}.npz"
        cached = _read_cache(cache_file, key, size)
        if cached is not None:
            pixels, boxes, names, dropped = cached
            if progress is not None:
                total = len(names) + len(dropped)
                progress(total, total)
            return BoxData(_to_float(pixels), boxes, names, str(data_dir), dropped)

    pixels, boxes, names, dropped = _decode_rows(rows, size, progress)
    if not names:
        raise DataError(f"{data_dir}: every box has zero width or height, no image left ({dropped[0]})")
    if cache_file is not None:
        try:
            _write_cache(cache_file, key, pixels, boxes, names, dropped)
        except OSError as e:  # the cache is only a speed-up: warn and go on
            warnings.warn(f"could not write the data cache {cache_file}: {e}", stacklevel=2)
    return BoxData(_to_float(pixels), boxes, names, str(data_dir), dropped)


def _check_size(size) -> tuple[int, int]:
    """``size`` as a tuple of two positive ints, or ValueError."""
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (H, W), two positive integers, got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"size must be (H, W), two positive integers, got {size!r}")
    return h, w


def _find_layout(data_dir: Path) -> str:
    """``"csv"`` or ``"caltech"``: which layout ``data_dir`` holds (DataError if neither)."""
    expected = (f"expected {data_dir}/*.csv with {data_dir}/images/, or the Caltech-101 layout "
                f"101_ObjectCategories/airplanes + Annotations/Airplanes_Side_2")
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: no airplanes data found (no such directory): {expected}")
    if _csv_files(data_dir):
        return "csv"
    has_images = (data_dir / CALTECH_IMAGE_DIR).is_dir()
    has_annotations = (data_dir / CALTECH_ANNOTATION_DIR).is_dir()
    if has_images and has_annotations:
        return "caltech"
    if has_images != has_annotations:
        found, missing = ((CALTECH_IMAGE_DIR, CALTECH_ANNOTATION_DIR) if has_images
                          else (CALTECH_ANNOTATION_DIR, CALTECH_IMAGE_DIR))
        raise DataError(f"{data_dir}: found {found.as_posix()} but not {missing.as_posix()}: {expected}")
    raise DataError(f"{data_dir}: no airplanes data found: {expected}")


def _csv_files(data_dir: Path) -> list[Path]:
    """The ``*.csv`` files of ``data_dir`` (hidden files such as macOS ``._x.csv`` left out)."""
    return sorted(p for p in data_dir.glob("*.csv") if p.is_file() and not p.name.startswith("."))


def _csv_file(data_dir: Path) -> Path:
    """The one CSV file of the CSV layout, after checking that ``images/`` is there too."""
    files = _csv_files(data_dir)
    if len(files) > 1:
        names = ", ".join(p.name for p in files)
        raise DataError(f"{data_dir}: found {len(files)} CSV files ({names}): expected exactly one")
    if not (data_dir / "images").is_dir():
        raise DataError(f"{files[0]}: the images folder {data_dir / 'images'} is missing")
    return files[0]


def _looks_like_header(fields: list[str]) -> bool:
    """A header row: mentions startX, or has non-numeric text in all four coordinate fields."""
    if any("startx" in f.lower() for f in fields):
        return True
    if len(fields) != len(_CSV_FIELDS):
        return False
    return all(f and not _is_number(f) for f in fields[1:])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_rows(csv_path: Path, data_dir: Path, problems: list | None = None) -> list[_Row]:
    """Parse ``filename,startX,startY,endX,endY`` rows (blank lines skipped, header tolerated).

    The first malformed or duplicate row raises DataError; with a ``problems`` list each is
    appended there as ``(kind, message)`` instead (kind ``"malformed"`` or ``"duplicate"``) and
    left out, so ``minisnn-data check`` can report them all."""
    rows: list[_Row] = []
    first_line: dict[str, int] = {}  # file name -> line it was first listed on
    line = 0
    seen_a_row = False
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            for fields in reader:
                line = reader.line_num
                fields = [x.strip() for x in fields]
                if not any(fields):
                    continue
                if not seen_a_row and _looks_like_header(fields):
                    seen_a_row = True
                    continue
                seen_a_row = True
                try:
                    row = _parse_csv_row(fields, csv_path, line, data_dir)
                    if row.name in first_line:
                        raise _Duplicate(f"{row.where()}: duplicate filename {row.name} (first listed on line "
                                         f"{first_line[row.name]})")
                except DataError as e:
                    if problems is None:
                        raise
                    problems.append(("duplicate" if isinstance(e, _Duplicate) else "malformed", str(e)))
                    continue
                first_line[row.name] = line
                rows.append(row)
    except UnicodeDecodeError as e:
        raise DataError(f"{csv_path}: not a UTF-8 text file ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise DataError(f"{csv_path}: line {line + 1}: {e}") from None
    except OSError as e:
        raise DataError(f"{csv_path}: cannot read the file ({e.strerror or e})") from None
    if not rows and problems is None:
        raise DataError(f"{csv_path}: no rows: expected lines filename,startX,startY,endX,endY")
    return rows


class _Duplicate(DataError):
    """A file name listed twice in the CSV file."""


def _parse_csv_row(fields, csv_path, line, data_dir) -> _Row:
    """One CSV row as a :class:`_Row` (DataError naming the file and line if malformed)."""
    where = f"{csv_path}: line {line}"
    if len(fields) != len(_CSV_FIELDS):
        text = ",".join(fields)
        text = text if len(text) <= 80 else text[:77] + "..."
        raise DataError(f"{where}: expected 5 fields filename,startX,startY,endX,endY, "
                        f"got {len(fields)}: {text!r}")
    name = fields[0]
    if not name:
        raise DataError(f"{where}: empty filename")
    if escapes_folder(name):
        raise DataError(f"{where}: filename {name!r} leaves the images folder: expected a path inside "
                        f"{data_dir / 'images'} (no absolute path, no '..')")
    coords = []
    for label, text in zip(_CSV_FIELDS[1:], fields[1:]):
        if not _INTEGER.fullmatch(text):
            raise DataError(f"{where}: {label} must be an integer pixel coordinate, got {text!r}")
        coords.append(int(text))
    return _Row(name, data_dir / "images" / name, tuple(coords), csv_path, line)


def escapes_folder(name: str) -> bool:
    """True if the CSV file name ``name`` would read a file outside the images folder: an
    absolute path or one with a ``..`` component (as archive extraction refuses such members)."""
    path = Path(name.replace("\\", "/"))
    return path.is_absolute() or path.drive != "" or ".." in path.parts


def caltech_files(data_dir: Path) -> tuple[dict, dict]:
    """``({number: image path}, {number: annotation path})`` of the Caltech-101 layout, keyed by
    the four digits of ``image_XXXX.jpg`` / ``annotation_XXXX.mat`` (a missing folder: empty)."""
    image_dir, annotation_dir = data_dir / CALTECH_IMAGE_DIR, data_dir / CALTECH_ANNOTATION_DIR

    def numbered(folder, pattern):
        return {m.group(1): p for p in (sorted(folder.iterdir()) if folder.is_dir() else [])
                if (m := pattern.fullmatch(p.name))}

    return numbered(image_dir, _CALTECH_IMAGE), numbered(annotation_dir, _CALTECH_ANNOTATION)


def _caltech_rows(data_dir: Path) -> list[_Row]:
    """Pair ``image_XXXX.jpg`` with ``annotation_XXXX.mat`` and read the boxes."""
    image_dir, annotation_dir = data_dir / CALTECH_IMAGE_DIR, data_dir / CALTECH_ANNOTATION_DIR
    images, annotations = caltech_files(data_dir)
    lonely_images = sorted(images.keys() - annotations.keys(), key=int)
    if lonely_images:
        num = lonely_images[0]
        more = f" (and {len(lonely_images) - 1} more images without one)" if len(lonely_images) > 1 else ""
        raise DataError(f"{images[num]}: no annotation file {annotation_dir / f'annotation_{num}.mat'}{more}")
    lonely_annotations = sorted(annotations.keys() - images.keys(), key=int)
    if lonely_annotations:
        num = lonely_annotations[0]
        more = (f" (and {len(lonely_annotations) - 1} more annotations without one)"
                if len(lonely_annotations) > 1 else "")
        raise DataError(f"{annotations[num]}: no image file {image_dir / f'image_{num}.jpg'}{more}")
    if not images:
        raise DataError(f"{image_dir}: no image_XXXX.jpg files (and no annotation_XXXX.mat files in "
                        f"{annotation_dir})")
    return [caltech_row(images[num], annotations[num]) for num in sorted(images, key=int)]


def caltech_row(image: Path, annotation: Path) -> _Row:
    """One image and its annotation's box (DataError if the .mat file cannot give one)."""
    top, bottom, left, right = _read_box_coord(annotation)
    return _Row(image.name, image, (left, top, right, bottom), annotation, labels=("left", "top", "right", "bottom"))


def _read_box_coord(path: Path) -> list:
    """``box_coord`` of a Caltech-101 annotation: ``[top, bottom, left, right]``, ints if integral."""
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as e:  # scipy raises many types for a bad file (ValueError, MatReadError, ...)
        raise DataError(f"{path}: cannot read the .mat file ({type(e).__name__}: {e})") from None
    if "box_coord" not in mat:
        raise DataError(f"{path}: no 'box_coord' field (expected [top, bottom, left, right])")
    try:
        values = np.asarray(mat["box_coord"], dtype=np.float64).ravel()
    except (TypeError, ValueError):
        values = None
    if values is None or values.size != 4 or not np.all(np.isfinite(values)):
        shape = np.shape(mat["box_coord"])
        raise DataError(f"{path}: box_coord must hold 4 finite numbers [top, bottom, left, right], "
                        f"got an array of shape {shape}")
    return [int(v) if float(v).is_integer() else float(v) for v in values]


def _fmt_box(coords) -> str:
    """``(x1,y1,x2,y2)`` as in the CSV file."""
    return "(" + ",".join(str(v) for v in coords) + ")"


def _check_order(row: _Row) -> None:
    """DataError if a start coordinate is after the end one."""
    x1, y1, x2, y2 = row.coords
    lx1, ly1, lx2, ly2 = row.labels
    for a, b, la, lb in ((x1, x2, lx1, lx2), (y1, y2, ly1, ly2)):
        if a > b:
            raise DataError(f"{row.where()}: {la} {a} > {lb} {b} in the box {_fmt_box(row.coords)} of {row.name}")


def _degenerate(row: _Row) -> str | None:
    """Why the box of ``row`` is unusable (zero width and/or height), or None."""
    x1, y1, x2, y2 = row.coords
    what = [w for w, zero in (("width", x1 == x2), ("height", y1 == y2)) if zero]
    if not what:
        return None
    return f"{row.name}: zero {' and '.join(what)} box {_fmt_box(row.coords)}"


def _decode_image(path: Path, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode one image: ``(pixels, (width, height))``.

    ``pixels`` is ``(3, H, W)`` uint8 RGB resized to ``size = (H, W)`` with the bilinear filter;
    ``(width, height)`` is the size of the original image.  Raises what PIL raises.
    """
    with Image.open(path) as img:
        img.load()  # decode now, so that a truncated file fails here
        if img.mode == "F" or img.mode.startswith("I"):  # convert("RGB") would saturate them
            raise ValueError(f"{img.mode} pixels (16/32-bit integer or float) are not supported; "
                             f"expected an 8-bit image such as a JPEG")
        original = img.size
        rgb = img.convert("RGB").resize((size[1], size[0]), Image.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1), original


def _decode_rows(rows: list[_Row], size, progress):
    """Decode and check every row: ``(uint8 pixels, boxes, names, dropped)``.

    Dropped rows are decoded and checked too (their image must exist and hold the box).
    """
    reasons = [_degenerate(row) for row in rows]
    n_kept = sum(r is None for r in reasons)
    pixels = np.empty((n_kept, 3) + size, np.uint8)
    boxes = np.empty((n_kept, 4), np.float32)
    names, dropped = [], []
    for i, (row, reason) in enumerate(zip(rows, reasons)):
        try:
            image, (width, height) = _decode_image(row.image, size)
        except FileNotFoundError:
            raise DataError(f"{row.where_image()}: file not found") from None
        except _IMAGE_ERRORS as e:
            raise DataError(f"{row.where_image()}: cannot decode the image ({type(e).__name__}: {e})") from None
        x1, y1, x2, y2 = row.coords
        if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
            raise DataError(f"{row.where()}: the box {_fmt_box(row.coords)} of {row.name} lies outside its "
                            f"{width}x{height} image (expected 0 <= x <= {width}, 0 <= y <= {height})")
        if reason is None:
            j = len(names)
            pixels[j] = image
            boxes[j] = (x1 / width, y1 / height, x2 / width, y2 / height)
            names.append(row.name)
        else:
            dropped.append(reason)
        if progress is not None:
            progress(i + 1, len(rows))
    return pixels, boxes, names, dropped


def _to_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [0, 1] (the one conversion used everywhere, so results match)."""
    out = pixels.astype(np.float32)
    out /= np.float32(255.0)
    return out


# ----------------------------------------------------------------------------- disk cache


def _cache_key(layout: str, size, data_dir: Path, rows: list[_Row]) -> str:
    """The cache key (:func:`minisnn.apps.datafiles.cache_key`): layout, size, format version and
    the annotation and image files."""
    sources = list(dict.fromkeys(row.annotation for row in rows))  # the CSV, or every .mat, once
    for row in rows:
        if not row.image.is_file():
            raise DataError(f"{row.where_image()}: file not found")
    settings = {"version": CACHE_FORMAT_VERSION, "layout": layout, "size": list(size)}
    return cache_key(settings, sources + [row.image for row in rows], data_dir)


def _read_cache(path: Path, key: str, size):
    """``(pixels, boxes, names, dropped)`` from a cache file, or None if absent, stale or corrupt."""
    z = read_cache(path, key)
    if z is None or not {"pixels", "boxes", "names", "dropped"} <= z.keys():
        return None
    pixels, boxes, names, dropped = z["pixels"], z["boxes"], list(z["names"]), list(z["dropped"])
    n = len(names)
    if (pixels.dtype != np.uint8 or pixels.shape != (n, 3) + tuple(size)
            or boxes.dtype != np.float32 or boxes.shape != (n, 4)):
        return None
    return pixels, boxes, names, dropped


def _write_cache(path: Path, key: str, pixels, boxes, names, dropped) -> None:
    write_cache(path, key, pixels=pixels, boxes=boxes, names=np.array(names, dtype=str),
                dropped=np.array(dropped, dtype=str))


# ----------------------------------------------------------------------------- synthetic data


def synthetic_boxes(n: int, size=DEFAULT_SIZE, seed: int = 0) -> BoxData:
    """A seeded synthetic stand-in for the airplanes set.

    Each image has a cluttered background (smooth colour gradients, a glow, sometimes a ground
    band, random rectangles, ellipses, lines and coloured specks, pixel noise) and one airplane
    silhouette -- an elongated-ellipse fuselage, two swept wings, a tail fin, usually a tail plane
    and engines -- in one random colour that contrasts with the background, at a random place and
    scale, facing left or right.  As in the real data the box is wide: about 50-95 % of the image
    width and 25-70 % of its height.  The box is the exact tight box of the silhouette's pixels.

    Parameters
    ----------
    n : int
        Number of images.
    size : (int, int)
        ``(H, W)``; the images are drawn at this size directly.
    seed : int
        The same seed gives the same arrays, bit for bit.

    Returns
    -------
    BoxData
        ``names`` are ``"synthetic_00000"``, ...; ``source`` is
        ``"synthetic (seed <seed>, <n> images)"``; nothing is dropped.
    """
    h, w = _check_size(size)
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    images = np.empty((n, 3, h, w), np.float32)
    boxes = np.empty((n, 4), np.float32)
    for i in range(n):
        rgb, mask = _draw_scene(rng, (h, w))
        images[i] = _to_float(rgb.transpose(2, 0, 1))
        boxes[i] = _mask_box(mask)
    names = [f"synthetic_{i:05d}" for i in range(n)]
    return BoxData(images, boxes, names, f"synthetic (seed {seed}, {n} images)", [])


def _mask_box(mask: np.ndarray) -> np.ndarray:
    """Tight box of the True pixels of an ``(H, W)`` mask, normalized:
    ``[min_col / W, min_row / H, (max_col + 1) / W, (max_row + 1) / H]``."""
    h, w = mask.shape
    cols = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    if cols.size == 0:
        raise ValueError("empty mask: no silhouette pixel")
    return np.array([cols[0] / w, rows[0] / h, (cols[-1] + 1) / w, (rows[-1] + 1) / h], np.float32)


def _random_colour(rng, low=0, high=256) -> tuple:
    return tuple(int(c) for c in rng.integers(low, high, 3))


def _draw_scene(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Draw one synthetic image: ``(rgb, mask)``.

    ``rgb`` is ``(H, W, 3)`` uint8; ``mask`` is ``(H, W)`` bool, True on the airplane's pixels
    (exactly the pixels the airplane was drawn on; nothing is drawn over it afterwards, only
    pixel noise is added).  :func:`synthetic_boxes` calls this ``n`` times with one generator and
    takes the box from the mask with :func:`_mask_box`.
    """
    h, w = size
    img = _background(rng, h, w)
    draw = ImageDraw.Draw(img)
    _clutter(rng, draw, h, w)
    mask_img = Image.new("L", (w, h), 0)
    _draw_plane(rng, img, draw, ImageDraw.Draw(mask_img), h, w)
    rgb = np.asarray(img, dtype=np.float32)
    rgb += np.float32(rng.uniform(2.0, 10.0)) * rng.standard_normal(rgb.shape, dtype=np.float32)
    rgb = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return rgb, np.asarray(mask_img) > 0


def _background(rng, h, w) -> Image.Image:
    """A smooth background: a linear gradient between two colours plus a soft glow."""
    xs = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :]  # (1, W)
    ys = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]  # (H, 1)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    t = xs * np.float32(np.cos(angle)) + ys * np.float32(np.sin(angle))  # (H, W)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-9)
    c0, c1 = rng.uniform(0.0, 255.0, (2, 3)).astype(np.float32)
    bg = c0 + t[..., None] * (c1 - c0)
    cx, cy = rng.uniform(0.0, 1.0, 2)
    radius = rng.uniform(0.2, 0.8)
    # a Gaussian glow is separable: exp(-(dx^2 + dy^2) / 2r^2) = exp(-dx^2 / 2r^2) * exp(-dy^2 / 2r^2)
    glow = np.exp(-((ys - cy) ** 2) / (2.0 * radius**2)) * np.exp(-((xs - cx) ** 2) / (2.0 * radius**2))
    bg += glow[..., None].astype(np.float32) * rng.uniform(-70.0, 70.0, 3).astype(np.float32)
    return Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8), "RGB")


def _clutter(rng, draw: ImageDraw.ImageDraw, h, w) -> None:
    """Background clutter: maybe a ground band, then rectangles, ellipses, lines and specks."""
    if rng.random() < 0.4:
        top = rng.uniform(0.65, 0.95) * h
        draw.rectangle([0, top, w, h], fill=_random_colour(rng, 30, 180))
    for _ in range(int(rng.integers(4, 15))):
        colour = _random_colour(rng)
        bw, bh = rng.uniform(0.03, 0.4) * w, rng.uniform(0.03, 0.4) * h
        x0, y0 = rng.uniform(-0.1 * w, w), rng.uniform(-0.1 * h, h)
        xy = [x0, y0, x0 + bw, y0 + bh]
        kind = int(rng.integers(5))
        if kind == 0:
            draw.rectangle(xy, fill=colour)
        elif kind == 1:
            draw.ellipse(xy, fill=colour)
        elif kind == 2:
            draw.rectangle(xy, outline=colour, width=int(rng.integers(1, 4)))
        elif kind == 3:
            draw.ellipse(xy, outline=colour, width=int(rng.integers(1, 4)))
        else:
            draw.line(xy, fill=colour, width=int(rng.integers(1, 4)))
    for _ in range(int(rng.integers(0, 4))):  # specks of a few colours
        k = int(rng.integers(10, 80))
        points = np.column_stack([rng.uniform(0, w, k), rng.uniform(0, h, k)])
        draw.point([tuple(p) for p in points], fill=_random_colour(rng))


def _draw_plane(rng, img: Image.Image, draw: ImageDraw.ImageDraw, mask_draw: ImageDraw.ImageDraw, h, w) -> None:
    """Draw one airplane silhouette on ``draw`` and, with the same geometry, in white on ``mask_draw``.

    The plane is designed in a unit box (u along the fuselage from tail 0 to nose 1, v down from the
    top of the tail fin 0 to the tip of the near wing 1) and mapped onto a random pixel box.
    """
    box_w = rng.uniform(0.5, 0.95) * w
    box_h = rng.uniform(0.25, 0.7) * h
    x0 = rng.uniform(0.0, w - box_w)
    y0 = rng.uniform(0.0, h - box_h)
    mirror = rng.random() < 0.5  # nose on the left instead of the right

    def point(u, v):
        return (x0 + (1.0 - u if mirror else u) * box_w, y0 + v * box_h)

    # colour: dark on a light background, light on a dark one (per-channel random within that range)
    region = np.asarray(img.crop((int(x0), int(y0), int(x0 + box_w) + 1, int(y0 + box_h) + 1)))
    luminance = float(region.reshape(-1, 3).mean(axis=0) @ np.array([0.299, 0.587, 0.114]))
    base = np.array(_random_colour(rng, 0, 110) if luminance > 127 else _random_colour(rng, 145, 256), float)

    def shade(factor):
        return tuple(int(c) for c in np.clip(base * factor, 0, 255))

    def polygon(uv, colour):
        xy = [point(u, v) for u, v in uv]
        draw.polygon(xy, fill=colour)
        mask_draw.polygon(xy, fill=255)

    def ellipse(u0, v0, u1, v1, colour):
        (xa, ya), (xb, yb) = point(u0, v0), point(u1, v1)
        xy = [min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb)]
        draw.ellipse(xy, fill=colour)
        mask_draw.ellipse(xy, fill=255)

    axis = rng.uniform(0.35, 0.55)  # v of the fuselage axis
    half = rng.uniform(0.06, 0.13)  # fuselage half thickness

    # far wing: up and back from the fuselage, shorter (seen in perspective), a bit darker
    root = rng.uniform(0.45, 0.6)
    chord = rng.uniform(0.12, 0.22)
    tip_v = axis * rng.uniform(0.3, 0.7)
    sweep = rng.uniform(0.05, 0.2)
    polygon([(root, axis), (root - chord, axis), (root - chord - sweep - 0.05, tip_v),
             (root - sweep, tip_v)], shade(0.75))

    # tail fin: its top is the top of the box (v = 0)
    top_back = rng.uniform(0.0, 0.04)
    top_front = top_back + rng.uniform(0.05, 0.12)
    fin_root_front = rng.uniform(0.18, 0.3)
    polygon([(rng.uniform(0.02, 0.06), axis - 0.3 * half), (top_back, 0.0), (top_front, 0.0),
             (fin_root_front, axis - 0.3 * half)], shade(0.9))

    # tail plane (horizontal stabilizer), seen slightly from below
    if rng.random() < 0.8:
        stab_v = axis + rng.uniform(0.08, 0.2)
        polygon([(0.04, axis), (0.16, axis), (0.08, stab_v), (0.03, stab_v)], shade(0.85))

    # fuselage: an elongated ellipse from tail (u = 0) to nose (u = 1)
    ellipse(0.0, axis - half, 1.0, axis + half, shade(1.0))

    # near wing: down and back, its tip is the bottom of the box (v = 1)
    root = rng.uniform(0.5, 0.65)
    chord = rng.uniform(0.15, 0.25)
    sweep = rng.uniform(0.05, 0.25)
    tip_chord = rng.uniform(0.05, 0.1)
    polygon([(root, axis), (root - chord, axis), (root - sweep - tip_chord, 1.0), (root - sweep, 1.0)],
            shade(0.95))

    # engines under the near wing
    for k in range(int(rng.integers(0, 3))):
        f = (k + 1) / 3.0  # fraction of the way from the root to the tip
        v = axis + f * (1.0 - axis)
        u = root - f * sweep - 0.02
        length = rng.uniform(0.07, 0.12)
        ellipse(u - length * 0.2, v - 0.05, u + length * 0.8, v + 0.05, shade(0.7))


# ----------------------------------------------------------------------------- splits


def split_indices(n: int, test_fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded train/test split of ``range(n)``.

    The indices are shuffled with ``np.random.default_rng(seed).permutation(n)``; the first
    ``round(test_fraction * n)`` go to the test set -- at least 1 and at most ``n - 1`` when
    ``n >= 2`` (with ``n < 2`` the test set is empty).

    Parameters
    ----------
    n : int
        Number of items.
    test_fraction : float
        In (0, 1).
    seed : int
        The same seed gives the same split.

    Returns
    -------
    (train_idx, test_idx) : two sorted int64 arrays, disjoint, together ``range(n)``.
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n_test = int(round(test_fraction * n))
    n_test = min(max(n_test, 1), n - 1) if n >= 2 else 0
    perm = np.random.default_rng(seed).permutation(n).astype(np.int64)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def kfold_indices(n: int, k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded k-fold cross-validation splits of ``range(n)``.

    The indices are shuffled with ``np.random.default_rng(seed).permutation(n)`` and cut into
    ``k`` test folds whose sizes differ by at most one; they are disjoint and cover ``range(n)``.

    Parameters
    ----------
    n : int
        Number of items.
    k : int
        Number of folds, ``2 <= k <= n``.
    seed : int
        The same seed gives the same folds.

    Returns
    -------
    list of (train_idx, test_idx)
        ``k`` pairs of sorted int64 arrays; each pair is disjoint and together ``range(n)``.
    """
    n, k = int(n), int(k)
    if not 2 <= k <= n:
        raise ValueError(f"k must be between 2 and n = {n}, got {k}")
    perm = np.random.default_rng(seed).permutation(n).astype(np.int64)
    folds = np.array_split(perm, k)
    out = []
    for i, test in enumerate(folds):
        train = np.concatenate([f for j, f in enumerate(folds) if j != i])
        out.append((np.sort(train), np.sort(test)))
    return out

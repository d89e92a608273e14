"""Hippocampus volumes for the segmentation app (CAE on 2-D MRI slices): real or synthetic.

Every data set is returned as a :class:`SegData`: per subject the intensity-normalized image cropped
to a fixed box, ``(S, D, H, W)`` float32, the binary hippocampus mask cropped the same way,
``(S, D, H, W)`` uint8, and one :class:`Subject` record per subject (file names, original shape and
affine, where the crop box sits) so that predictions can be written back into the original grid
with :func:`save_prediction`.  :func:`to_slices` cuts the chosen subjects into the 2-D slices the
network sees; :func:`split_subjects` splits by subject (never by slice, so no subject leaks from
training into validation or test); :func:`volume_dice` scores per-subject 3-D Dice.

Layout read by :func:`load_volumes`
-----------------------------------
The Medical Segmentation Decathlon (MSD) layout, as in ``../shared/data/msd-task04-hippocampus``::

    data_dir/imagesTr/hippocampus_001.nii.gz     the MRI crop (any real numeric dtype)
    data_dir/labelsTr/hippocampus_001.nii.gz     its segmentation: 0 background, 1 head, 2 body+tail

``images/`` + ``labels/`` (the Udacity names) are accepted as well; if ``imagesTr/`` exists it is
used.  Images and labels are paired by file name (``<name>.nii.gz`` or ``<name>.nii``); hidden
files (names starting with ``.``, such as the ``._hippocampus_001.nii.gz`` resource forks macOS
leaves on foreign drives, or ``.DS_Store``) and files that are not NIfTI are ignored.  Subjects are
sorted by name.  **An image without a label is an error** (a silently smaller training set is worse
than a clear message); a label without an image is useless but harmless: it is skipped and listed in
:attr:`SegData.skipped`.

Every other problem raises :class:`DataError` with a one-line message that names the file: an
unreadable or corrupt file (nibabel errors, truncated or non-gzip data), a volume that is not 3-D
(a 4-D volume with trailing singleton axes, ``(X, Y, Z, 1)``, is squeezed and accepted), a
non-numeric image, NaN or inf in the image, a singular affine (no invertible voxel-to-world map, so
no prediction could be written back), an image/label shape or affine mismatch (affines compared
with ``np.allclose(atol=1e-3)``), label values outside {0, 1, 2} (float-stored labels with integer
values 0/1/2, like ``hippocampus_003`` in the real set, are fine).  The network segments the whole
hippocampus, so the mask is ``label > 0``.

Intensity normalization
-----------------------
The real images mix dtypes (float32 and uint8) and unrelated intensity scales (peaks from about 112
to 1.7e6), so each volume is normalized on its own: take the nonzero voxels (all voxels if there are
none -- zero is the usual "outside the scan" value), clip the whole volume to their 1st..99th
percentiles (a few hot or dark voxels must not set the scale), then z-score with the mean and
standard deviation of those clipped nonzero voxels (no division when the deviation is 0).  The
result is float32, has mean ~0 and standard deviation ~1 over the nonzero voxels whatever the file's
scale, and ``DataError`` guarantees it is finite.

Crop axes and placement
-----------------------
``crop = (D, H, W)`` is given in the volume's own array axes ``(i, j, k)`` as nibabel returns them
(no transposition), and the 2-D slices are taken along the **first** axis: ``D`` slices of
``H x W``.  In the real set every affine is a 1 mm identity rotation (RAS), so ``i`` is left-right
(31-43 voxels), ``j`` posterior-anterior (40-59) and ``k`` inferior-superior (24-47).  Slicing along
``i`` gives **sagittal** slices, the plane that shows the hippocampus' long section (the head in
front, the body and tail curving back and up), with both label classes in one slice; the labelled
structure spans about 17-27 voxels in ``i``, 29-48 in ``j`` and 14-37 in ``k``.  Hence
:data:`DEFAULT_CROP` ``= (32, 56, 48)``: 56 x 48 slices cover every volume's ``j``/``k`` extent
almost entirely, and 32 slices along ``i``.  The paper cropped 24 x 56 x 48; 24 slices would cut the
hippocampus of wide cases (up to 27 voxels), so we keep 32 as a margin: with the centred box below
all 260 real cases keep every labelled voxel.

The box is centred on the volume centre -- ``start = (shape - crop) // 2`` per axis -- and is placed
from the **image only, never from the label**: a label-centred box would tell the network where the
answer is (at test time there is no label), inflate the scores and make the slices of a test subject
depend on its ground truth.  The MSD volumes are already cropped around one hippocampus, so the
volume centre is a fair, label-free guess.  Where the volume is smaller than the box, ``start`` is
negative and the box is zero-padded: 0 in the normalized image (the volume's mean intensity) and 0
(background) in the mask.  :attr:`Subject.crop_start` records the box so :func:`save_prediction` can
put it back.

Disk cache
----------
Reading 260 gzipped volumes takes a couple of seconds, so ``load_volumes(..., cache_dir=d)`` keeps
the result in one ``.npz`` file in ``d`` named ``hippocampus_<key>.npz``, where the key is the first
16 hex digits of the SHA-256 of the crop, :data:`CACHE_FORMAT_VERSION`, the two folder names and the
name, size in bytes and modification time (``st_mtime_ns``) of every NIfTI file in them.  Touching
or replacing any file, or asking for another crop, gives a new key.  The file is written atomically
(:func:`minisnn.io.atomic_write_bytes`); a cache file that cannot be read is ignored and rewritten.

Synthetic data
--------------
:func:`synthetic_volumes` draws a seeded stand-in (brain-like texture and a banana-shaped two-part
"hippocampus"), writes it as NIfTI files in the MSD layout and reads it back with
:func:`load_volumes`, so the real loader path is exercised; 40 subjects take 1-3 s.
"""

from __future__ import annotations

import gzip
import shutil
import struct
import tempfile
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError
from nibabel.wrapstruct import WrapStructError
from scipy import ndimage

from ..io import atomic_write_bytes
from .datafiles import DataError, cache_key, read_cache, write_cache

__all__ = [
    "DEFAULT_CROP",
    "CACHE_FORMAT_VERSION",
    "DataError",
    "Subject",
    "SegData",
    "load_volumes",
    "synthetic_volumes",
    "split_subjects",
    "to_slices",
    "save_prediction",
    "volume_dice",
]

#: Default crop box ``(D, H, W)`` in the volume's array axes ``(i, j, k)``; slices are taken along
#: ``i`` (sagittal in the real data), giving ``D = 32`` slices of ``56 x 48``.  See the module docstring.
DEFAULT_CROP = (32, 56, 48)

#: Part of the cache key: bump it whenever the loading, the normalization or the cache contents change.
CACHE_FORMAT_VERSION = 2  # 2: singular affines are refused (issue 8)

#: Label values allowed in a label file (0 background, 1 anterior, 2 posterior hippocampus).
LABEL_VALUES = (0, 1, 2)

#: Pairs of (image folder, label folder) that :func:`load_volumes` recognises, in order of preference.
LAYOUTS = (("imagesTr", "labelsTr"), ("images", "labels"))

_AFFINE_ATOL = 1e-3

# What reading a broken NIfTI file can raise: nibabel's own errors, OSError (missing file,
# gzip.BadGzipFile, "Expected N bytes" for truncated data), EOFError (truncated gzip stream),
# zlib.error (corrupt deflate data), ValueError (nonsensical header fields), OverflowError
# (a memory map of a negative length: a corrupt vox_offset or dim), struct.error / IndexError
# (a header too short or with impossible fields).
_READ_ERRORS = (ImageFileError, HeaderDataError, WrapStructError, OSError, EOFError, zlib.error,
                ValueError, TypeError, MemoryError, OverflowError, IndexError, struct.error)


@dataclass
class Subject:
    """Where one subject's volumes came from and where its crop box sits.

    Attributes
    ----------
    name : str
        The file name without ``.nii.gz`` / ``.nii``, e.g. ``"hippocampus_001"``.
    image_path : str
        The image file.
    label_path : str or None
        The label file (always set by :func:`load_volumes`; ``None`` is for unlabelled images).
    shape : tuple of int
        The original 3-D shape ``(X, Y, Z)`` (after squeezing a trailing singleton axis).
    affine : ndarray, shape (4, 4), float64
        The original voxel-to-world affine.
    crop_start : tuple of int
        ``(i0, j0, k0)``: the original voxel index of the crop box's first voxel; negative where the
        box sticks out of the volume (zero padding).
    """

    name: str
    image_path: str
    label_path: str | None
    shape: tuple
    affine: np.ndarray
    crop_start: tuple


@dataclass
class SegData:
    """Cropped, normalized volumes and their binary hippocampus masks.

    Attributes
    ----------
    images : ndarray, shape (S, D, H, W), float32
        Per subject the normalized volume inside the crop box: ``D`` slices of ``H x W`` along the
        volume's first axis; 0 where padded.
    masks : ndarray, shape (S, D, H, W), uint8
        ``label > 0`` in the same box: 1 hippocampus (head or tail), 0 background or padding.
    subjects : list of Subject
        One record per subject, sorted by name.
    source : str
        The folder path, or ``"synthetic (seed <seed>, <n> subjects)"``.
    skipped : list of str
        Files left out, with the reason: labels without an image, e.g.
        ``"labelsTr/hippocampus_010.nii.gz: label without an image, skipped"``.
    """

    images: np.ndarray
    masks: np.ndarray
    subjects: list[Subject]
    source: str
    skipped: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- real data


def load_volumes(data_dir, crop=DEFAULT_CROP, *, cache_dir=None,
                 progress: Callable[[int, int], None] | None = None) -> SegData:
    """Load the image/label pairs of ``data_dir`` (MSD layout), normalized and cropped.

    Parameters
    ----------
    data_dir : str or Path
        Folder holding ``imagesTr/`` + ``labelsTr/`` (or ``images/`` + ``labels/``) with
        ``<name>.nii.gz`` (or ``.nii``) files paired by name.
    crop : (int, int, int)
        ``(D, H, W)`` crop box in the volume's array axes; slices along the first axis.
    cache_dir : str or Path, optional
        Folder for the array cache (created if missing).  ``None``: no cache.
    progress : callable, optional
        ``progress(done, total)``, called after each subject is read (``total`` = number of image
        files); on a cache hit it is called once with ``done == total``.

    Returns
    -------
    SegData
        Subjects sorted by name; labels without an image listed in ``skipped``.

    Raises
    ------
    DataError
        No data in the expected layout, an image without a label, an unreadable file, a non-3-D
        volume, NaN/inf in an image, an image/label shape or affine mismatch, label values outside
        {0, 1, 2}.  The message is one line and names the file.
    ValueError
        ``crop`` is not three positive integers.
    """
    crop = _check_crop(crop)
    data_dir = Path(data_dir)
    image_dir, label_dir = _find_layout(data_dir)
    images = _nifti_files(image_dir)
    labels = _nifti_files(label_dir)
    if not images:
        raise DataError(f"{image_dir}: no .nii.gz or .nii images{_expected(data_dir)}")
    missing = sorted(images.keys() - labels.keys())
    if missing:
        more = f" (and {len(missing) - 1} more images without one)" if len(missing) > 1 else ""
        raise DataError(f"{images[missing[0]]}: no label {label_dir / (missing[0] + '.nii.gz')} (or .nii): "
                        f"every image needs a label file of the same name{more}")
    skipped = [f"{labels[name].relative_to(data_dir).as_posix()}: label without an image, skipped"
               for name in sorted(labels.keys() - images.keys())]
    names = sorted(images)
    total = len(names)

    cache_file = key = None
    if cache_dir is not None:
        key = _cache_key(crop, data_dir, list(images.values()) + list(labels.values()))
        cache_file = Path(cache_dir) / f"hippocampus_{key}.npz"
        cached = _read_cache(cache_file, key, crop, names)
        if cached is not None:
            vols, masks, shapes, affines, starts = cached
            subjects = [Subject(name, str(images[name]), str(labels[name]), tuple(int(v) for v in shape),
                                affine.copy(), tuple(int(v) for v in start))
                        for name, shape, affine, start in zip(names, shapes, affines, starts)]
            if progress is not None:
                progress(total, total)
            return SegData(vols, masks, subjects, str(data_dir), skipped)

    vols = np.zeros((total,) + crop, np.float32)
    masks = np.zeros((total,) + crop, np.uint8)
    subjects = []
    for s, name in enumerate(names):
        image, mask, affine = _read_pair(images[name], labels[name])
        start = _crop_start(image.shape, crop)
        vols[s] = _crop(_normalize(image), start, crop)
        masks[s] = _crop(mask, start, crop)
        subjects.append(Subject(name, str(images[name]), str(labels[name]), tuple(int(v) for v in image.shape),
                                affine, start))
        if progress is not None:
            progress(s + 1, total)

    if cache_file is not None:
        try:
            _write_cache(cache_file, key, vols, masks, subjects)
        except OSError as e:  # the cache is only a speed-up: warn and go on
            warnings.warn(f"could not write the data cache {cache_file}: {e}", stacklevel=2)
    return SegData(vols, masks, subjects, str(data_dir), skipped)


def _check_crop(crop) -> tuple[int, int, int]:
    """``crop`` as a tuple of three positive ints, or ValueError."""
    try:
        values = tuple(int(v) for v in crop)
    except (TypeError, ValueError):
        raise ValueError(f"crop must be (D, H, W), three positive integers, got {crop!r}") from None
    if len(values) != 3 or min(values) < 1:
        raise ValueError(f"crop must be (D, H, W), three positive integers, got {crop!r}")
    return values


def _expected(data_dir: Path) -> str:
    return (f": expected {data_dir}/imagesTr/ and {data_dir}/labelsTr/ (or images/ and labels/) "
            f"holding <name>.nii.gz image/label pairs")


def _find_layout(data_dir: Path) -> tuple[Path, Path]:
    """``(image_dir, label_dir)`` of ``data_dir`` (DataError naming the folder if there is none)."""
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: no such directory{_expected(data_dir)}")
    for image_name, label_name in LAYOUTS:
        has_images = (data_dir / image_name).is_dir()
        has_labels = (data_dir / label_name).is_dir()
        if has_images and has_labels:
            return data_dir / image_name, data_dir / label_name
        if has_images or has_labels:
            found, missing = (image_name, label_name) if has_images else (label_name, image_name)
            raise DataError(f"{data_dir}: found {found}/ but not {missing}/{_expected(data_dir)}")
    raise DataError(f"{data_dir}: no hippocampus data found{_expected(data_dir)}")


def _nifti_name(filename: str) -> str | None:
    """``"x"`` for ``"x.nii.gz"`` / ``"x.nii"``; None for hidden or non-NIfTI files."""
    if filename.startswith("."):
        return None
    for suffix in (".nii.gz", ".nii"):
        if filename.endswith(suffix) and len(filename) > len(suffix):
            return filename[: -len(suffix)]
    return None


def _nifti_files(folder: Path) -> dict[str, Path]:
    """``{name: path}`` of the NIfTI files in ``folder`` (DataError if a name appears twice)."""
    out: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        name = _nifti_name(path.name)
        if name is None or not path.is_file():
            continue
        if name in out:
            raise DataError(f"{path}: duplicate volume {name} (also {out[name].name})")
        out[name] = path
    return out


@contextmanager
def _nibabel_quiet():
    """Keep nibabel's header fix-up notes ("vox offset ... too low", "sform_code 33 not valid")
    off stderr: the checks below decide whether a file is usable, in one line."""
    logger = nib.imageglobals.logger
    disabled, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = disabled


def _read_volume(path: Path, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``(data, affine)`` of one NIfTI file, data 3-D; DataError naming ``path`` otherwise."""
    try:
        with _nibabel_quiet():
            img = nib.load(str(path))
            data = np.array(np.asanyarray(img.dataobj))  # a plain in-memory array, even for a memmap
            affine = img.affine
    except _READ_ERRORS as e:
        kind = "zlib.error" if isinstance(e, zlib.error) else type(e).__name__
        text = f"{kind}: {e}"
        text = text if len(text) <= 200 else text[:197] + "..."
        raise DataError(f"{path}: cannot read the {what} as NIfTI ({text})") from None
    shape = data.shape
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data.reshape(data.shape[:-1])
    if data.ndim != 3:
        raise DataError(f"{path}: expected a 3-D {what} (a trailing singleton axis is allowed), got shape {shape}")
    if min(data.shape) < 1:
        raise DataError(f"{path}: the {what} is empty, shape {shape}")
    if not (np.issubdtype(data.dtype, np.integer) or np.issubdtype(data.dtype, np.floating)):
        raise DataError(f"{path}: the {what} data type {data.dtype} is not a real number type")
    if affine is None or np.shape(affine) != (4, 4) or not np.all(np.isfinite(affine)):
        raise DataError(f"{path}: the {what} has no valid 4x4 affine")
    affine = np.array(affine, np.float64)
    if not _writable_affine(affine):  # else save_prediction would fail at the very end of a run
        row = "; ".join(" ".join(f"{v:g}" for v in r) for r in affine[:3])
        raise DataError(f"{path}: the {what}'s affine is singular (voxel axes collapse: {row}); "
                        f"expected an invertible voxel-to-world matrix")
    return data, affine


def _writable_affine(affine: np.ndarray) -> bool:
    """Whether a NIfTI header can hold ``affine`` as its qform and sform (what :func:`save_prediction` writes)."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"), _nibabel_quiet():
            warnings.simplefilter("ignore")
            header = nib.Nifti1Header()
            header.set_sform(affine, code=1)
            header.set_qform(affine, code=1)
    except (HeaderDataError, ValueError, np.linalg.LinAlgError):
        return False
    return True


@dataclass
class PairScan:
    """One image/label pair as read, and what is wrong with it.

    ``problems`` is ``[(kind, message)]`` in the order found, each message one line naming the
    file; the kinds are ``"unreadable"``, ``"non-finite"``, ``"shape"``, ``"affine"`` and
    ``"label values"``.  A pair is usable when the list is empty.  ``label`` holds the raw
    label values (None if it could not be read), ``affine`` the image's."""

    image: np.ndarray | None
    label: np.ndarray | None
    affine: np.ndarray | None
    problems: list


def scan_pair(image_path: Path, label_path: Path) -> PairScan:
    """Read one image/label pair and list its problems (:class:`PairScan`); the loader and
    ``minisnn-data check`` both read pairs through this."""
    try:
        image, affine = _read_volume(image_path, "image")
    except DataError as e:
        return PairScan(None, None, None, [("unreadable", str(e))])
    problems = []
    if np.issubdtype(image.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(image)))
        if bad:
            problems.append(("non-finite", f"{image_path}: the image has {bad} NaN or inf voxel{'s' if bad != 1 else ''}"))
    try:
        label, label_affine = _read_volume(label_path, "label")
    except DataError as e:
        return PairScan(image, None, affine, problems + [("unreadable", str(e))])
    if label.shape != image.shape:
        problems.append(("shape", f"{label_path}: label shape {label.shape} does not match the image's "
                                  f"{image.shape} ({image_path})"))
        return PairScan(image, label, affine, problems)
    if not np.allclose(label_affine, affine, rtol=0.0, atol=_AFFINE_ATOL):
        diff = float(np.max(np.abs(label_affine - affine)))
        problems.append(("affine", f"{label_path}: label affine differs from the image's by up to {diff:.4g} "
                                   f"({image_path})"))
    bad_values = [v for v in np.unique(label).tolist() if v not in LABEL_VALUES]
    if bad_values:
        shown = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in bad_values[:5])
        more = f" (and {len(bad_values) - 5} more)" if len(bad_values) > 5 else ""
        problems.append(("label values", f"{label_path}: label values outside {{0, 1, 2}}: {shown}{more}"))
    return PairScan(image, label, affine, problems)


def _read_pair(image_path: Path, label_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(image, mask, affine)``: the raw image, ``label > 0`` as uint8 and the image's affine;
    DataError with the pair's first problem."""
    scan = scan_pair(image_path, label_path)
    if scan.problems:
        raise DataError(scan.problems[0][1])
    return scan.image, (scan.label > 0).astype(np.uint8), scan.affine


def _normalize(volume: np.ndarray) -> np.ndarray:
    """Clip to the 1st..99th percentile of the nonzero voxels, z-score with their stats; float32."""
    v = volume.astype(np.float64)
    ref = v[v != 0]
    if ref.size == 0:
        ref = v.ravel()
    lo, hi = np.percentile(ref, [1.0, 99.0])
    v = np.clip(v, lo, hi)
    ref = np.clip(ref, lo, hi)
    mean, std = float(ref.mean()), float(ref.std())
    v -= mean
    if std > 0.0:
        v /= std
    return v.astype(np.float32)


def _crop_start(shape, crop) -> tuple[int, int, int]:
    """Start of the crop box centred on the volume: ``(shape - crop) // 2`` per axis (may be < 0)."""
    return tuple(int((n - c) // 2) for n, c in zip(shape, crop))


def _overlap(start, crop, shape) -> tuple[tuple, tuple]:
    """``(box_slices, volume_slices)``: where the box and the volume overlap, in each one's indices."""
    box, vol = [], []
    for s, c, n in zip(start, crop, shape):
        lo, hi = max(s, 0), min(s + c, n)
        hi = max(hi, lo)
        box.append(slice(lo - s, hi - s))
        vol.append(slice(lo, hi))
    return tuple(box), tuple(vol)


def _crop(volume: np.ndarray, start, crop) -> np.ndarray:
    """The ``crop``-sized box of ``volume`` at ``start``, zeros where it sticks out."""
    out = np.zeros(crop, volume.dtype)
    box, vol = _overlap(start, crop, volume.shape)
    out[box] = volume[vol]
    return out


def _uncrop(box_values: np.ndarray, start, shape) -> np.ndarray:
    """Inverse of :func:`_crop`: a ``shape`` volume, ``box_values`` placed at ``start``, zeros elsewhere."""
    out = np.zeros(shape, box_values.dtype)
    box, vol = _overlap(start, box_values.shape, shape)
    out[vol] = box_values[box]
    return out


# ----------------------------------------------------------------------------- cache


def _cache_key(crop, data_dir: Path, files: list[Path]) -> str:
    """The cache key (:func:`minisnn.apps.datafiles.cache_key`): crop, format version and every
    source file."""
    return cache_key({"version": CACHE_FORMAT_VERSION, "crop": list(crop)}, sorted(files), data_dir)


def _read_cache(path: Path, key: str, crop, names: list[str]):
    """``(images, masks, shapes, affines, starts)`` from a cache file, or None if absent, stale or corrupt."""
    z = read_cache(path, key)
    if z is None or not {"images", "masks", "names", "shapes", "affines", "starts"} <= z.keys():
        return None
    if list(z["names"]) != names:
        return None
    vols, masks, shapes, affines, starts = z["images"], z["masks"], z["shapes"], z["affines"], z["starts"]
    s = len(names)
    if (vols.dtype != np.float32 or vols.shape != (s,) + crop or masks.dtype != np.uint8
            or masks.shape != (s,) + crop or shapes.shape != (s, 3) or affines.shape != (s, 4, 4)
            or starts.shape != (s, 3)):
        return None
    return vols, masks, shapes, affines, starts


def _write_cache(path: Path, key: str, vols, masks, subjects: list[Subject]) -> None:
    write_cache(path, key, images=vols, masks=masks, names=np.array([s.name for s in subjects], dtype=str),
                shapes=np.array([s.shape for s in subjects], np.int64).reshape(-1, 3),
                affines=np.array([s.affine for s in subjects], np.float64).reshape(-1, 4, 4),
                starts=np.array([s.crop_start for s in subjects], np.int64).reshape(-1, 3))


# ----------------------------------------------------------------------------- writing NIfTI


def _nifti_gz_bytes(data: np.ndarray, affine: np.ndarray, level: int = 6) -> bytes:
    """A gzipped single-file NIfTI-1 image (1 mm units), byte-for-byte reproducible (gzip mtime 0)."""
    img = nib.Nifti1Image(data, np.asarray(affine, np.float64))
    img.header.set_data_dtype(data.dtype)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(np.asarray(affine, np.float64), code=1)
    img.set_sform(np.asarray(affine, np.float64), code=1)
    return gzip.compress(img.to_bytes(), compresslevel=level, mtime=0)


def save_prediction(subject: Subject, prob: np.ndarray, out_dir, crop=DEFAULT_CROP) -> tuple[Path, Path]:
    """Write a predicted probability box back into the subject's original grid, as NIfTI.

    Parameters
    ----------
    subject : Subject
        The subject the prediction is for (its ``shape``, ``affine`` and ``crop_start`` are used).
    prob : ndarray, shape crop = (D, H, W)
        Foreground probabilities inside the crop box (e.g. the network's output for the subject's
        ``D`` slices, stacked in order).
    out_dir : str or Path
        Output folder (created if missing).
    crop : (int, int, int)
        The crop the data was loaded with; ``prob`` must have this shape.

    Returns
    -------
    (prob_path, mask_path) : two Paths
        ``<out_dir>/<name>_prob.nii.gz`` (float32 probabilities) and ``<out_dir>/<name>_mask.nii.gz``
        (uint8, 1 where ``prob >= 0.5``), both in the subject's original shape and affine: the box is
        put back at ``crop_start``, the parts of it outside the volume are dropped and the voxels
        outside the box are 0.  Each file is written atomically.

    Raises
    ------
    ValueError
        ``prob`` has the wrong shape or holds NaN/inf.
    """
    crop = _check_crop(crop)
    prob = np.asarray(prob)
    if prob.shape != crop:
        raise ValueError(f"prob must have the crop shape {crop}, got {prob.shape}")
    prob = prob.astype(np.float32)
    if not np.all(np.isfinite(prob)):
        raise ValueError(f"prob of {subject.name} holds NaN or inf")
    full = _uncrop(prob, subject.crop_start, tuple(subject.shape))
    mask = (full >= 0.5).astype(np.uint8)
    out_dir = Path(out_dir)
    prob_path = out_dir / f"{subject.name}_prob.nii.gz"
    mask_path = out_dir / f"{subject.name}_mask.nii.gz"
    atomic_write_bytes(prob_path, _nifti_gz_bytes(full, subject.affine))
    atomic_write_bytes(mask_path, _nifti_gz_bytes(mask, subject.affine))
    return prob_path, mask_path


# ----------------------------------------------------------------------------- synthetic data


_SYNTH_DTYPES = ("float32", "int16", "float32", "uint8")  # cycled over the subjects


def synthetic_volumes(n: int, shape=(36, 50, 35), crop=DEFAULT_CROP, seed: int = 0,
                      workdir=None) -> SegData:
    """A seeded synthetic stand-in for the hippocampus set, written as NIfTI and read back.

    Each subject is a small volume whose shape is ``shape`` plus a random integer in [-3, 3] per
    axis (the real volumes are 31-43 x 40-59 x 24-47).  The "brain" is smooth random noise thresholded
    into three tissue classes (dark CSF-like, grey, bright white matter) with soft edges, a smooth
    bias field and voxel noise.  The "hippocampus" is a curved tube (a banana) running roughly along
    the second axis (posterior-anterior) and rising by 15-40 degrees towards the third (up) from its
    thick head (label 1) to its tapering tail (label 2), as in the real sagittal slices, with a
    random centre (within 3 voxels of the volume centre, so the centred crop keeps
    it), direction, bend, length, thickness and head/tail split; it is grey-matter-like, slightly
    brighter or darker than grey matter, and lined by a thin dark CSF-like rim on its upper side,
    so it can be learned.  Labelled voxels: about 1300-3500 per subject (real: about 2000-4700).

    Images are stored with a dtype cycling over float32 (scale x 500-5000), int16 (scale x 100-1000)
    and uint8 (peak 112-255), like the mixed real data; labels are uint8 except every seventh
    subject's, stored as float32 0/1/2 (as two real labels are).  Affines are 1 mm identity
    rotations with a random translation.

    Parameters
    ----------
    n : int
        Number of subjects (>= 1).
    shape : (int, int, int)
        Mean volume shape; each axis must be >= 20.
    crop : (int, int, int)
        Passed to :func:`load_volumes`.
    seed : int
        The same seed gives the same files and arrays, bit for bit.
    workdir : str or Path, optional
        Where ``imagesTr/synthetic_001.nii.gz ...`` and ``labelsTr/...`` are written (kept).  It must
        not already hold other NIfTI files in those folders.  ``None``: a temporary folder, deleted
        once the files are read back (the ``image_path`` / ``label_path`` of the subjects then name
        files that no longer exist; ``shape``, ``affine`` and ``crop_start`` are all
        :func:`save_prediction` needs).

    Returns
    -------
    SegData
        Read back by :func:`load_volumes`; ``source`` is ``"synthetic (seed <seed>, <n> subjects)"``.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    try:
        base = tuple(int(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be three integers >= 20, got {shape!r}") from None
    if len(base) != 3 or min(base) < 20:
        raise ValueError(f"shape must be three integers >= 20, got {shape!r}")
    crop = _check_crop(crop)
    names = [f"synthetic_{i + 1:03d}" for i in range(n)]

    tmp = None
    if workdir is None:
        tmp = tempfile.mkdtemp(prefix="minisnn-seg-synthetic-")
        root = Path(tmp)
    else:
        root = Path(workdir)
        for folder in ("imagesTr", "labelsTr"):
            if (root / folder).is_dir():
                extra = sorted(set(_nifti_files(root / folder)) - set(names))
                if extra:
                    raise ValueError(f"{root / folder} already holds other NIfTI files ({extra[0]}.nii.gz, ...): "
                                     f"give an empty workdir")
    try:
        rng = np.random.default_rng(seed)
        (root / "imagesTr").mkdir(parents=True, exist_ok=True)
        (root / "labelsTr").mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(names):
            vol_shape = tuple(int(b + d) for b, d in zip(base, rng.integers(-3, 4, 3)))
            intensity, label = _synthetic_subject(rng, vol_shape)
            image = _to_dtype(rng, intensity, _SYNTH_DTYPES[i % len(_SYNTH_DTYPES)])
            label = label.astype(np.float32 if i % 7 == 3 else np.uint8)
            affine = np.eye(4)
            affine[:3, 3] = rng.integers(-20, 21, 3)
            # plain writes: generated files need no crash safety, and fsync would double the time
            (root / "imagesTr" / f"{name}.nii.gz").write_bytes(_nifti_gz_bytes(image, affine, level=1))
            (root / "labelsTr" / f"{name}.nii.gz").write_bytes(_nifti_gz_bytes(label, affine, level=1))
        data = load_volumes(root, crop)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    data.source = f"synthetic (seed {seed}, {n} subjects)"
    return data


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _rotation(rng, max_deg: float) -> np.ndarray:
    """A random rotation matrix: small angles (up to ``max_deg``) about the three axes."""
    out = np.eye(3)
    for axis in range(3):
        a = np.deg2rad(rng.uniform(-max_deg, max_deg))
        c, s = np.cos(a), np.sin(a)
        p, q = [k for k in range(3) if k != axis]
        r = np.eye(3)
        r[p, p], r[p, q], r[q, p], r[q, q] = c, -s, s, c
        out = r @ out
    return out


def _synthetic_subject(rng: np.random.Generator, shape: tuple) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic subject: ``(intensity, label)``, intensity float64 in about [0.1, 1.1], label uint8."""
    # brain-like background: three tissue classes from thresholded smooth noise, soft edges
    field_ = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=2.5, mode="wrap")
    field_ /= field_.std()
    csf, gm, wm = 0.25, 0.6, 0.9
    t_low, t_high = rng.uniform(-1.0, -0.6), rng.uniform(0.3, 0.7)
    tissue = np.where(field_ < t_low, csf, np.where(field_ > t_high, wm, gm))
    tissue = ndimage.gaussian_filter(tissue, sigma=0.8)

    # the hippocampus: a banana-shaped tube, head (t = 0, label 1) to tail (t = 1, label 2)
    scale = rng.uniform(0.9, 1.1)
    length = rng.uniform(26.0, 34.0) * scale
    r_head, r_tail = rng.uniform(4.8, 6.2) * scale, rng.uniform(2.8, 3.8) * scale
    bend = rng.uniform(3.0, 7.0) * scale
    split = rng.uniform(0.4, 0.55)
    tilt = np.deg2rad(rng.uniform(15.0, 40.0))  # the tail rises, as in the real sagittal slices
    rot = _rotation(rng, 12.0)
    u = rot @ np.array([0.0, -np.cos(tilt), np.sin(tilt)])  # long axis: anterior head to posterior tail
    w = rot @ np.array([0.0, np.sin(tilt), np.cos(tilt)])  # bend direction: up, across the long axis
    centre = (np.array(shape) - 1) / 2.0 + rng.uniform(-3.0, 3.0, 3)
    ts = np.linspace(0.0, 1.0, 24)
    curve = (centre + np.outer(ts - 0.5, u) * length
             + np.outer(4.0 * (ts - 0.5) ** 2 - 1.0 / 3.0, w) * bend)  # (K, 3)
    radius = r_head + (r_tail - r_head) * ts

    # distances to the curve, only inside its bounding box (plus a margin)
    margin = r_head + 2.0
    lo = np.maximum(np.floor(curve.min(0) - margin).astype(int), 0)
    hi = np.minimum(np.ceil(curve.max(0) + margin).astype(int) + 1, shape)
    grid = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), -1)
    points = grid.reshape(-1, 3).astype(np.float32)
    curve32 = curve.astype(np.float32)
    # |p - c|^2 = |p|^2 - 2 p.c + |c|^2: one small matrix product instead of a (P, K, 3) array
    d2 = points @ (-2.0 * curve32.T)  # (P, K)
    d2 += (points**2).sum(1)[:, None]
    d2 += (curve32**2).sum(1)[None, :]
    nearest = d2.argmin(1)
    dist = np.sqrt(np.maximum(d2[np.arange(len(points)), nearest], 0.0))
    r = radius[nearest]
    inside = dist <= r
    up = ((points - curve32[nearest]) @ w.astype(np.float32)) > 0.0
    rim = (dist > r) & (dist <= r + 1.3) & up

    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    box_shape = tuple(hi - lo)
    label = np.zeros(shape, np.uint8)
    label[box] = np.where(inside, np.where(ts[nearest] < split, 1, 2), 0).reshape(box_shape)
    contrast = rng.choice([-1.0, 1.0]) * rng.uniform(0.1, 0.2)
    sub = tissue[box]
    sub[rim.reshape(box_shape)] = csf + 0.05
    sub[inside.reshape(box_shape)] = gm + contrast
    tissue[box] = sub

    # partial volume, bias field, noise
    tissue = ndimage.gaussian_filter(tissue, sigma=0.6)
    axes = [np.linspace(-1.0, 1.0, s) for s in shape]
    g = rng.uniform(-0.1, 0.1, 3)
    bias = 1.0 + g[0] * axes[0][:, None, None] + g[1] * axes[1][None, :, None] + g[2] * axes[2][None, None, :]
    intensity = tissue * bias + rng.normal(0.0, 0.03, shape)
    return np.clip(intensity, 0.05, None), label


def _to_dtype(rng, intensity: np.ndarray, dtype: str) -> np.ndarray:
    """Store ``intensity`` as the real data does: float32 or int16 at an arbitrary scale, or uint8."""
    if dtype == "float32":
        return (intensity * rng.uniform(500.0, 5000.0)).astype(np.float32)
    if dtype == "int16":
        return np.rint(intensity * rng.uniform(100.0, 1000.0)).astype(np.int16)
    peak = rng.uniform(112.0, 255.0)
    return np.clip(np.rint(intensity / intensity.max() * peak), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- splits, slices, scores


def split_subjects(n: int, test_fraction: float = 0.1, val_fraction: float = 0.1,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A seeded train/validation/test split of ``range(n)`` subjects (split by subject, never by slice).

    The indices are shuffled with ``np.random.default_rng(seed).permutation(n)``; the first
    ``round(test_fraction * n)`` go to the test set, the next ``round(val_fraction * n)`` to the
    validation set, the rest to training.  A set whose fraction is > 0 gets at least one subject
    when ``n >= 3`` (so with the defaults all three are non-empty); with ``n < 3`` the rounded sizes
    are used as they are (``n = 2`` with the defaults holds nothing out).  Training always keeps at
    least one subject.

    Parameters
    ----------
    n : int
        Number of subjects (>= 1).
    test_fraction, val_fraction : float
        In [0, 1), with ``test_fraction + val_fraction < 1``.
    seed : int
        The same seed gives the same split.

    Returns
    -------
    (train_idx, val_idx, test_idx) : three sorted int64 arrays, disjoint, together ``range(n)``.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    tf, vf = float(test_fraction), float(val_fraction)
    if not (0.0 <= tf < 1.0 and 0.0 <= vf < 1.0 and tf + vf < 1.0):
        raise ValueError(f"test_fraction and val_fraction must be in [0, 1) with a sum < 1, got {tf} and {vf}")
    n_test = int(round(tf * n))
    n_val = int(round(vf * n))
    if n >= 3:
        n_test = max(n_test, 1) if tf > 0 else 0
        n_val = max(n_val, 1) if vf > 0 else 0
    # training keeps at least one subject: shrink the larger held-out set first
    while n_test + n_val > n - 1:
        if n_val >= n_test and n_val > 0:
            n_val -= 1
        else:
            n_test -= 1
    perm = np.random.default_rng(seed).permutation(n).astype(np.int64)
    test = perm[:n_test]
    val = perm[n_test:n_test + n_val]
    train = perm[n_test + n_val:]
    return np.sort(train), np.sort(val), np.sort(test)


def to_slices(data: SegData, idx) -> tuple[np.ndarray, np.ndarray]:
    """The 2-D slices of the chosen subjects, as network input and target.

    Parameters
    ----------
    data : SegData
        The loaded volumes.
    idx : sequence of int
        Subject indices (e.g. one of the arrays of :func:`split_subjects`), in the order wanted.

    Returns
    -------
    images : ndarray, shape (len(idx) * D, 1, H, W), float32
    masks : ndarray, shape (len(idx) * D, 1, H, W), float32 in {0, 1}
        Subject-major: rows ``k * D .. (k + 1) * D - 1`` are the ``D`` slices (along the volume's
        first axis, in order) of subject ``idx[k]``.
    """
    idx = np.asarray(idx)
    if idx.dtype == bool:
        raise ValueError("idx must hold subject indices, not a boolean mask")
    if idx.size == 0:
        idx = idx.astype(np.int64)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"idx must be a 1-D sequence of subject indices, got {idx!r}")
    s, d, h, w = data.images.shape
    if idx.size and (idx.min() < 0 or idx.max() >= s):
        raise ValueError(f"subject index out of range for {s} subjects: {idx.min()}..{idx.max()}")
    images = data.images[idx].reshape(-1, 1, h, w).astype(np.float32, copy=False)
    masks = data.masks[idx].reshape(-1, 1, h, w).astype(np.float32)
    return images, masks


def volume_dice(pred_masks, true_masks) -> np.ndarray:
    """Per-subject Dice ``2 |P & T| / (|P| + |T|)`` of binary volumes; 1.0 when both are empty.

    Parameters
    ----------
    pred_masks, true_masks : array_like, shape (S, ...)
        Binary masks (bool, or numbers in {0, 1}), one per subject along the first axis, e.g.
        ``(S, D, H, W)``.  Threshold probabilities first.

    Returns
    -------
    ndarray, shape (S,), float64
    """
    pred, true = np.asarray(pred_masks), np.asarray(true_masks)
    if pred.shape != true.shape:
        raise ValueError(f"pred_masks and true_masks must have the same shape, got {pred.shape} and {true.shape}")
    if pred.ndim < 1:
        raise ValueError("masks must have a subject axis first: (S, ...)")
    for name, a in (("pred_masks", pred), ("true_masks", true)):
        if a.dtype != bool and not np.all((a == 0) | (a == 1)):
            raise ValueError(f"{name} must be binary (0/1); threshold probabilities first")
    p = pred.astype(bool).reshape(len(pred), -1)
    t = true.astype(bool).reshape(len(true), -1)
    inter = np.count_nonzero(p & t, axis=1).astype(np.float64)
    total = (np.count_nonzero(p, axis=1) + np.count_nonzero(t, axis=1)).astype(np.float64)
    out = np.ones(len(p), np.float64)
    nz = total > 0
    out[nz] = 2.0 * inter[nz] / total[nz]
    return out

"""Tests of minisnn.apps.seg_data: the MSD layout, normalization, the centred crop, validation
messages, the disk cache, the synthetic set, splits, slices, Dice and writing predictions back.
The real data lives outside the repo (../shared/data/msd-task04-hippocampus); its test is skipped
when it is absent (all 260 subjects load in a few seconds, so no subset is needed)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage

from minisnn.apps import seg_data as SD
from minisnn.apps.seg_data import (DEFAULT_CROP, DataError, SegData, Subject, load_volumes, save_prediction,
                                   split_subjects, synthetic_volumes, to_slices, volume_dice)

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "msd-task04-hippocampus"
CROP = DEFAULT_CROP


# ----------------------------------------------------------------------------- fixtures


def _affine(offset=(1.0, 2.0, 3.0)) -> np.ndarray:
    a = np.eye(4)
    a[:3, 3] = offset
    return a


def write_nifti(path: Path, data: np.ndarray, affine=None) -> Path:
    """Save with nibabel itself (not the module's writer), gzipped if the name says so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, _affine() if affine is None else affine), str(path))
    return path


def brain(shape, seed, scale=1000.0) -> np.ndarray:
    """A positive float64 'image': smooth-ish values with a few hot voxels."""
    rng = np.random.default_rng(seed)
    img = (1.0 + rng.random(shape)) * scale
    img.flat[rng.integers(0, img.size, 5)] = 50.0 * scale  # outliers the clipping must tame
    return img


def label_for(shape, seed) -> np.ndarray:
    """A 0/1/2 label: a block of 1s and a block of 2s near the centre."""
    lab = np.zeros(shape, np.uint8)
    c = [s // 2 for s in shape]
    lab[c[0] - 3:c[0] + 3, c[1] - 6:c[1], c[2] - 4:c[2] + 4] = 1
    lab[c[0] - 3:c[0] + 3, c[1]:c[1] + 6, c[2] - 4:c[2] + 4] = 2
    return lab


def make_dir(root: Path, subjects, layout=("imagesTr", "labelsTr")) -> Path:
    """Write ``(name, image, label)`` triples in the MSD layout under ``root``."""
    for name, image, label in subjects:
        write_nifti(root / layout[0] / f"{name}.nii.gz", image)
        if label is not None:
            write_nifti(root / layout[1] / f"{name}.nii.gz", label)
    return root


# three subjects: bigger than the crop, smaller than the crop (4-D, int16), uint8 mixed
SHAPE_BIG, SHAPE_SMALL, SHAPE_MIX = (40, 60, 50), (30, 50, 40), (35, 51, 35)


@pytest.fixture
def three(tmp_path) -> Path:
    big = brain(SHAPE_BIG, 0, scale=1e5).astype(np.float32)
    small = np.rint(brain(SHAPE_SMALL, 1, scale=300.0)).astype(np.int16)[..., None]  # (X, Y, Z, 1)
    mix = np.clip(brain(SHAPE_MIX, 2, scale=100.0), 0, 255).astype(np.uint8)
    small_label = label_for(SHAPE_SMALL, 1)[..., None]
    mix_label = label_for(SHAPE_MIX, 2).astype(np.float32)  # float-stored 0/1/2, as in the real set
    return make_dir(tmp_path / "data", [("hippocampus_003", mix, mix_label),
                                        ("hippocampus_001", big, label_for(SHAPE_BIG, 0)),
                                        ("hippocampus_002", small, small_label)])


# ----------------------------------------------------------------------------- loading


def test_load_shapes_dtypes_crop_and_padding(three):
    data = load_volumes(three)
    assert isinstance(data, SegData)
    assert [s.name for s in data.subjects] == ["hippocampus_001", "hippocampus_002", "hippocampus_003"]
    assert data.images.shape == (3,) + CROP and data.images.dtype == np.float32
    assert data.masks.shape == (3,) + CROP and data.masks.dtype == np.uint8
    assert set(np.unique(data.masks)) <= {0, 1}
    assert np.all(np.isfinite(data.images))
    assert data.source == str(three) and data.skipped == []
    for subject, shape in zip(data.subjects, (SHAPE_BIG, SHAPE_SMALL, SHAPE_MIX)):
        assert subject.shape == shape  # the 4-D (X, Y, Z, 1) volume is squeezed
        assert subject.crop_start == tuple((n - c) // 2 for n, c in zip(shape, CROP))
        np.testing.assert_allclose(subject.affine, _affine())
        assert Path(subject.image_path).parent.name == "imagesTr"
        assert Path(subject.label_path).parent.name == "labelsTr"

    # bigger than the crop: the centred box of the normalized volume and of the label
    big = np.asanyarray(nib.load(data.subjects[0].image_path).dataobj)
    lab = np.asanyarray(nib.load(data.subjects[0].label_path).dataobj)
    i0, j0, k0 = data.subjects[0].crop_start
    box = np.s_[i0:i0 + CROP[0], j0:j0 + CROP[1], k0:k0 + CROP[2]]
    np.testing.assert_allclose(data.images[0], SD._normalize(big)[box], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(data.masks[0], (lab[box] > 0).astype(np.uint8))
    assert data.masks[0].sum() == (lab > 0).sum()  # the centred box keeps the whole structure

    # smaller than the crop: the volume sits at -crop_start inside the box, zeros around it
    i0, j0, k0 = (-v for v in data.subjects[1].crop_start)
    inner = np.s_[i0:i0 + SHAPE_SMALL[0], j0:j0 + SHAPE_SMALL[1], k0:k0 + SHAPE_SMALL[2]]
    padded = np.ones(CROP, bool)
    padded[inner] = False
    assert np.all(data.images[1][padded] == 0) and np.all(data.masks[1][padded] == 0)
    assert data.masks[1][inner].sum() == (label_for(SHAPE_SMALL, 1) > 0).sum()
    # normalization: the whole volume is in the box, so its nonzero voxels have mean 0 and std 1
    voxels = data.images[1][inner]
    assert abs(float(voxels.mean())) < 1e-4 and abs(float(voxels.std()) - 1.0) < 1e-4
    # the hot voxels were clipped to the 99th percentile
    assert float(data.images.max()) < 5.0


def test_normalization_ignores_dtype_and_scale():
    rng = np.random.default_rng(0)
    base = 1.0 + rng.random((20, 20, 20))
    as_float = SD._normalize((base * 1.7e6).astype(np.float32))
    as_int16 = SD._normalize(np.rint(base * 3000).astype(np.int16))
    as_uint8 = SD._normalize(np.rint(base * 120).astype(np.uint8))
    np.testing.assert_allclose(as_float, as_int16, atol=2e-3)
    np.testing.assert_allclose(as_float, as_uint8, atol=0.05)
    # zeros (outside the scan) do not enter the statistics
    with_zeros = base.copy()
    with_zeros[:5] = 0.0
    out = SD._normalize(with_zeros)
    assert abs(float(out[5:].mean())) < 0.02 and abs(float(out[5:].std()) - 1.0) < 0.02
    # a constant volume gives zeros, not NaN; an all-zero one too
    assert np.all(SD._normalize(np.full((4, 4, 4), 7.0)) == 0)
    assert np.all(SD._normalize(np.zeros((4, 4, 4))) == 0)


def test_images_labels_layout_hidden_files_and_lonely_label(tmp_path):
    shape = (34, 52, 40)
    root = make_dir(tmp_path / "d", [("b", brain(shape, 0).astype(np.float32), label_for(shape, 0)),
                                     ("a", brain(shape, 1).astype(np.float32), label_for(shape, 1))],
                    layout=("images", "labels"))
    (root / "images" / "._a.nii.gz").write_bytes(b"\x00\x05\x16\x07 AppleDouble junk")
    (root / "labels" / "._a.nii.gz").write_bytes(b"junk")
    (root / "images" / ".DS_Store").write_bytes(b"junk")
    (root / "dataset.json").write_text("{}")
    (root / "images" / "notes.txt").write_text("not a volume")
    write_nifti(root / "labels" / "c.nii.gz", label_for(shape, 2))  # a label without an image
    data = load_volumes(root, crop=(16, 24, 20))
    assert [s.name for s in data.subjects] == ["a", "b"]
    assert data.images.shape == (2, 16, 24, 20)
    assert data.skipped == ["labels/c.nii.gz: label without an image, skipped"]


def test_uncompressed_nii_accepted(tmp_path):
    shape = (20, 30, 25)
    write_nifti(tmp_path / "imagesTr" / "x.nii", brain(shape, 0).astype(np.float32))
    write_nifti(tmp_path / "labelsTr" / "x.nii", label_for(shape, 0))
    data = load_volumes(tmp_path, crop=(8, 8, 8))
    assert data.images.shape == (1, 8, 8, 8) and data.masks.sum() > 0


def test_progress_and_cache(three, tmp_path, monkeypatch):
    calls = []
    cache = tmp_path / "cache"
    first = load_volumes(three, cache_dir=cache, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    files = list(cache.glob("hippocampus_*.npz"))
    assert len(files) == 1

    # a cache hit reads no volume and gives the same data
    def no_read(*args):
        raise AssertionError("volume read despite a valid cache")

    monkeypatch.setattr(SD, "_read_pair", no_read)
    calls.clear()
    second = load_volumes(three, cache_dir=cache, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(3, 3)]
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_array_equal(second.masks, first.masks)
    for a, b in zip(first.subjects, second.subjects):
        assert (a.name, a.image_path, a.label_path, a.shape, a.crop_start) == \
               (b.name, b.image_path, b.label_path, b.shape, b.crop_start)
        np.testing.assert_array_equal(a.affine, b.affine)
    monkeypatch.undo()

    # another crop or a touched file: a new key
    load_volumes(three, crop=(8, 8, 8), cache_dir=cache)
    st = os.stat(first.subjects[0].image_path)
    os.utime(first.subjects[0].image_path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    load_volumes(three, cache_dir=cache)
    assert len(list(cache.glob("hippocampus_*.npz"))) == 3

    # a corrupt cache file is ignored and rewritten
    newest = max(cache.glob("hippocampus_*.npz"), key=lambda p: p.stat().st_mtime_ns)
    newest.write_bytes(b"not an npz")
    again = load_volumes(three, cache_dir=cache)
    np.testing.assert_array_equal(again.images, first.images)
    with np.load(newest) as z:
        assert z["images"].shape == (3,) + CROP


# ----------------------------------------------------------------------------- bad input

GOOD_SHAPE = (20, 24, 22)


def _good_image():
    return brain(GOOD_SHAPE, 0).astype(np.float32)


def _case(root: Path, kind: str) -> str:
    """Build a broken data folder; return the file (or folder) name the message must contain."""
    img_dir, lab_dir = root / "imagesTr", root / "labelsTr"
    image, label = _good_image(), label_for(GOOD_SHAPE, 0)
    # one good pair first, so the error is about the named file and not the first one read
    write_nifti(img_dir / "aaa_good.nii.gz", image)
    write_nifti(lab_dir / "aaa_good.nii.gz", label)
    name = "case_007"
    img_path, lab_path = img_dir / f"{name}.nii.gz", lab_dir / f"{name}.nii.gz"
    if kind == "shape mismatch":
        write_nifti(img_path, image)
        write_nifti(lab_path, label[:, :-1])
        return str(lab_path)
    if kind == "affine mismatch":
        write_nifti(img_path, image)
        write_nifti(lab_path, label, _affine((1.0, 2.0, 3.01)))
        return str(lab_path)
    if kind == "image without label":
        write_nifti(img_path, image)
        return str(img_path)
    if kind == "2-D image":
        write_nifti(img_path, image[:, :, 0])
        write_nifti(lab_path, label[:, :, 0])
        return str(img_path)
    if kind == "4-D image":
        write_nifti(img_path, np.stack([image, image], -1))
        write_nifti(lab_path, label)
        return str(img_path)
    if kind in ("NaN image", "inf image"):
        image[3, 4, 5] = np.nan if kind == "NaN image" else np.inf
        write_nifti(img_path, image)
        write_nifti(lab_path, label)
        return str(img_path)
    if kind == "label value 3":
        label[0, 0, 0] = 3
        write_nifti(img_path, image)
        write_nifti(lab_path, label)
        return str(lab_path)
    if kind == "label value 0.5":
        write_nifti(img_path, image)
        write_nifti(lab_path, label.astype(np.float32) * 0.5)
        return str(lab_path)
    if kind == "garbage image":
        img_path.write_bytes(b"this is not a NIfTI file" * 20)
        write_nifti(lab_path, label)
        return str(img_path)
    if kind == "empty image":
        img_path.write_bytes(b"")
        write_nifti(lab_path, label)
        return str(img_path)
    if kind == "truncated gzip":  # header readable, the data stream ends early (EOFError)
        write_nifti(img_path, image)
        img_path.write_bytes(img_path.read_bytes()[:-2000])
        write_nifti(lab_path, label)
        return str(img_path)
    if kind == "truncated data":  # a complete gzip stream with too few data bytes
        write_nifti(img_path, image)
        img_path.write_bytes(gzip.compress(gzip.decompress(img_path.read_bytes())[:-100]))
        write_nifti(lab_path, label)
        return str(img_path)
    if kind == "corrupt label":
        write_nifti(img_path, image)
        good = gzip.compress(b"\x00" * 4000)
        lab_path.write_bytes(good[:12] + bytes(b ^ 0x5A for b in good[12:]))
        return str(lab_path)
    if kind == "duplicate name":
        write_nifti(img_path, image)
        write_nifti(img_dir / f"{name}.nii", image)
        write_nifti(lab_path, label)
        return name
    raise AssertionError(kind)


BAD_CASES = ["shape mismatch", "affine mismatch", "image without label", "2-D image", "4-D image",
             "NaN image", "inf image", "label value 3", "label value 0.5", "garbage image", "empty image",
             "truncated gzip", "truncated data", "corrupt label", "duplicate name"]


@pytest.mark.parametrize("kind", BAD_CASES)
def test_bad_input_raises_one_line_data_error(tmp_path, kind):
    expected = _case(tmp_path, kind)
    with pytest.raises(DataError) as info:
        load_volumes(tmp_path, crop=(8, 8, 8))
    message = str(info.value)
    assert expected in message, message
    assert "\n" not in message
    assert isinstance(info.value, ValueError)


def test_bad_input_messages(tmp_path):
    def message(kind):
        root = tmp_path / kind.replace(" ", "_")
        _case(root, kind)
        with pytest.raises(DataError) as info:
            load_volumes(root, crop=(8, 8, 8))
        return str(info.value)

    assert "label shape (20, 23, 22) does not match the image's (20, 24, 22)" in message("shape mismatch")
    assert "label affine differs" in message("affine mismatch")
    assert "no label" in message("image without label") and "every image needs a label" in \
        message("image without label")
    assert "expected a 3-D image" in message("4-D image")
    assert "the image has 1 NaN or inf voxel" in message("NaN image")
    assert "label values outside {0, 1, 2}: 3" in message("label value 3")
    assert "label values outside {0, 1, 2}: 0.5" in message("label value 0.5")
    assert "cannot read the image as NIfTI" in message("truncated gzip")


def test_bad_folders(tmp_path):
    with pytest.raises(DataError, match="no such directory.*expected .*imagesTr"):
        load_volumes(tmp_path / "missing")
    with pytest.raises(DataError, match="no hippocampus data found"):
        load_volumes(tmp_path)
    (tmp_path / "imagesTr").mkdir()
    with pytest.raises(DataError, match="found imagesTr/ but not labelsTr/"):
        load_volumes(tmp_path)
    (tmp_path / "labelsTr").mkdir()
    (tmp_path / "imagesTr" / "._x.nii.gz").write_bytes(b"junk")
    with pytest.raises(DataError, match="imagesTr: no .nii.gz or .nii images"):
        load_volumes(tmp_path)
    with pytest.raises(ValueError, match="crop must be"):
        load_volumes(tmp_path, crop=(8, 8))


# ----------------------------------------------------------------------------- splits, slices, Dice


def test_split_subjects_sizes_and_determinism():
    train, val, test = split_subjects(260)
    assert (len(train), len(val), len(test)) == (208, 26, 26)
    for n in (3, 4, 10):
        parts = split_subjects(n)
        assert all(len(p) >= 1 for p in parts)
    a, b = split_subjects(50, seed=1), split_subjects(50, seed=1)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, split_subjects(50, seed=2)))
    assert [len(p) for p in split_subjects(1)] == [1, 0, 0]
    assert [len(p) for p in split_subjects(2)] == [2, 0, 0]  # round(0.1 * 2) = 0: nothing held out
    assert [len(p) for p in split_subjects(2, 0.5, 0.0)] == [1, 0, 1]
    assert len(split_subjects(10, val_fraction=0.0)[1]) == 0
    for bad in (dict(test_fraction=1.0), dict(val_fraction=-0.1), dict(test_fraction=0.5, val_fraction=0.5)):
        with pytest.raises(ValueError):
            split_subjects(10, **bad)


@given(n=st.integers(1, 400), tf=st.floats(0.0, 0.45), vf=st.floats(0.0, 0.45), seed=st.integers(0, 99))
def test_split_subjects_partition(n, tf, vf, seed):
    train, val, test = split_subjects(n, tf, vf, seed)
    joined = np.concatenate([train, val, test])
    assert sorted(joined.tolist()) == list(range(n))  # disjoint, together range(n)
    assert all(p.dtype == np.int64 and np.all(np.diff(p) > 0) for p in (train, val, test))
    assert len(train) >= 1
    if n >= 3:
        assert (len(test) >= 1) == (tf > 0) and (len(val) >= 1) == (vf > 0)


def _toy_data(s=3, d=2, h=3, w=4) -> SegData:
    images = np.arange(s * d * h * w, dtype=np.float32).reshape(s, d, h, w)
    masks = (images.astype(np.int64) % 3 == 0).astype(np.uint8)
    subjects = [Subject(f"s{i}", f"s{i}.nii.gz", None, (d, h, w), np.eye(4), (0, 0, 0)) for i in range(s)]
    return SegData(images, masks, subjects, "toy")


def test_to_slices_shapes_and_order():
    data = _toy_data()
    images, masks = to_slices(data, [2, 0])
    assert images.shape == (4, 1, 3, 4) and masks.shape == (4, 1, 3, 4)
    assert images.dtype == np.float32 and masks.dtype == np.float32
    assert set(np.unique(masks)) <= {0.0, 1.0}
    # subject-major: subject 2's slices 0, 1, then subject 0's slices 0, 1
    for row, (subject, sl) in enumerate([(2, 0), (2, 1), (0, 0), (0, 1)]):
        np.testing.assert_array_equal(images[row, 0], data.images[subject, sl])
        np.testing.assert_array_equal(masks[row, 0], data.masks[subject, sl])
    empty_images, _ = to_slices(data, np.array([], np.int64))
    assert empty_images.shape == (0, 1, 3, 4)
    with pytest.raises(ValueError):
        to_slices(data, [3])
    with pytest.raises(ValueError):
        to_slices(data, [0.5])


def test_volume_dice_hand_cases():
    a = np.zeros((4, 2, 3, 3), np.uint8)
    b = np.zeros_like(a)
    a[0, 0, 0, :2] = 1          # subject 0: |P| = 2, |T| = 2, overlap 1 -> 0.5
    b[0, 0, 0, 1:3] = 1
    a[1, 1] = 1                 # subject 1: identical -> 1
    b[1, 1] = 1
    a[2, 0, 0, 0] = 1           # subject 2: prediction only -> 0
    # subject 3: both empty -> 1
    np.testing.assert_allclose(volume_dice(a, b), [0.5, 1.0, 0.0, 1.0])
    np.testing.assert_allclose(volume_dice(a.astype(bool), b.astype(np.float32)), [0.5, 1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="same shape"):
        volume_dice(a, b[:2])
    with pytest.raises(ValueError, match="binary"):
        volume_dice(a * 0.7, b)


# ----------------------------------------------------------------------------- predictions


def test_save_prediction_round_trip(three, tmp_path):
    data = load_volumes(three)
    rng = np.random.default_rng(0)
    for subject in data.subjects:
        prob = rng.random(CROP).astype(np.float32)
        prob_path, mask_path = save_prediction(subject, prob, tmp_path / "out")
        assert prob_path == tmp_path / "out" / f"{subject.name}_prob.nii.gz"
        assert mask_path == tmp_path / "out" / f"{subject.name}_mask.nii.gz"
        p_img, m_img = nib.load(str(prob_path)), nib.load(str(mask_path))
        for img in (p_img, m_img):
            assert img.shape == subject.shape
            np.testing.assert_allclose(img.affine, subject.affine, atol=1e-6)
        assert p_img.get_data_dtype() == np.float32 and m_img.get_data_dtype() == np.uint8
        p, m = np.asanyarray(p_img.dataobj), np.asanyarray(m_img.dataobj)
        # where the box lies inside the volume the written values are the input ones
        box, vol = SD._overlap(subject.crop_start, CROP, subject.shape)
        np.testing.assert_array_equal(p[vol], prob[box])
        np.testing.assert_array_equal(m[vol], (prob[box] >= 0.5).astype(np.uint8))
        outside = np.ones(subject.shape, bool)
        outside[vol] = False
        assert np.all(p[outside] == 0) and np.all(m[outside] == 0)
        # cropping the written volume again gives the input back (where it lies inside)
        np.testing.assert_array_equal(SD._crop(p, subject.crop_start, CROP)[box], prob[box])
    assert not [f for f in (tmp_path / "out").iterdir() if f.name.startswith(".")]  # no temp files left
    with pytest.raises(ValueError, match="crop shape"):
        save_prediction(data.subjects[0], np.zeros((4, 4, 4)), tmp_path / "out")


# ----------------------------------------------------------------------------- synthetic


def test_synthetic_deterministic_and_written_as_nifti(tmp_path):
    a = synthetic_volumes(5, seed=4, workdir=tmp_path / "a")
    b = synthetic_volumes(5, seed=4)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.masks, b.masks)
    assert [(s.name, s.shape, s.crop_start) for s in a.subjects] == \
           [(s.name, s.shape, s.crop_start) for s in b.subjects]
    assert a.source == b.source == "synthetic (seed 4, 5 subjects)"
    c = synthetic_volumes(5, seed=5)
    assert not np.array_equal(a.images, c.images)

    # the files are in the MSD layout, with mixed dtypes and 0/1/2 labels, and load_volumes reads them
    images = sorted((tmp_path / "a" / "imagesTr").glob("*.nii.gz"))
    labels = sorted((tmp_path / "a" / "labelsTr").glob("*.nii.gz"))
    assert [p.name for p in images] == [p.name for p in labels] == [f"synthetic_00{i}.nii.gz" for i in range(1, 6)]
    dtypes = {str(nib.load(str(p)).get_data_dtype()) for p in images}
    assert {"float32", "int16"} <= dtypes
    assert {0, 1, 2} <= set(np.unique(np.asanyarray(nib.load(str(labels[0])).dataobj)).tolist())
    again = load_volumes(tmp_path / "a")
    np.testing.assert_array_equal(again.images, a.images)
    assert all(Path(s.image_path).is_file() for s in a.subjects)

    with pytest.raises(ValueError, match="already holds other NIfTI files"):
        synthetic_volumes(2, workdir=tmp_path / "a")
    with pytest.raises(ValueError):
        synthetic_volumes(0)


def test_synthetic_forty_are_learnable():
    # (its speed, ~1.5-2.5 s, is not asserted: timings belong in benchmarks, not in tests)
    data = synthetic_volumes(40, seed=0)
    assert data.images.shape == (40,) + CROP and np.all(np.isfinite(data.images))
    per_subject = data.masks.reshape(40, -1).sum(1)
    assert np.all(per_subject > 500)
    assert len({s.shape for s in data.subjects}) > 1  # random sizes
    # the structure stands out from a 2-voxel shell around it: smoother inside, different on average
    diffs = []
    for image, mask in zip(data.images, data.masks):
        shell = ndimage.binary_dilation(mask > 0, iterations=2) & (mask == 0)
        inside = image[mask > 0]
        assert inside.std() < image[shell].std()
        diffs.append(abs(float(inside.mean()) - float(image[shell].mean())))
    assert np.mean(diffs) > 0.2
    # a constant prior mask is a weak but non-trivial baseline (the structure is placed near the centre)
    prior = (data.masks[:30].mean(0) >= 0.5)[None]
    dice = volume_dice(np.broadcast_to(prior, data.masks[30:].shape), data.masks[30:])
    assert 0.1 < float(dice.mean()) < 0.95


# ----------------------------------------------------------------------------- real data


@pytest.mark.skipif(not REAL_DATA.is_dir(),
                    reason="../shared/data/msd-task04-hippocampus not present (real data lives outside the repo)")
def test_real_data_all_260():
    data = load_volumes(REAL_DATA)
    assert len(data.subjects) == 260 and data.skipped == []
    assert data.images.shape == (260,) + CROP and data.masks.shape == (260,) + CROP
    assert np.all(np.isfinite(data.images))
    assert set(np.unique(data.masks)) == {0, 1}
    shapes = np.array([s.shape for s in data.subjects])
    assert shapes.min(0).tolist() == [31, 40, 24] and shapes.max(0).tolist() == [43, 59, 47]
    for s in data.subjects:
        np.testing.assert_allclose(s.affine[:3, :3], np.eye(3), atol=1e-6)
    # every subject keeps a sizeable hippocampus inside the centred box (PROVENANCE: >= 2047 labelled voxels)
    assert data.masks.reshape(260, -1).sum(1).min() >= 2047
    assert data.subjects[0].name == "hippocampus_001" and data.subjects[0].shape == (35, 51, 35)


def test_both_loaders_raise_the_same_data_error():
    # one class: an except clause for the data's problems catches both apps'
    from minisnn.apps import datafiles, loc_data

    assert DataError is loc_data.DataError is datafiles.DataError

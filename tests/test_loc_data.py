"""Tests of minisnn.apps.loc_data: both layouts, validation messages, the disk cache, the synthetic
set and the splits.  The real data lives outside the repo (../shared/data/caltech101-airplanes);
its test is skipped when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from minisnn.apps import loc_data as L
from minisnn.apps.loc_data import (BoxData, DataError, kfold_indices, load_boxes, split_indices,
                                   synthetic_boxes)

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "caltech101-airplanes"
SIZE = (12, 18)  # (H, W) used for the small fixtures

# name, original width, height, box (x1, y1, x2, y2) in pixels
FIXTURE = [
    ("image_0001.jpg", 40, 30, (4, 3, 36, 27)),
    ("image_0002.jpg", 50, 20, (0, 0, 50, 20)),
    ("image_0003.jpg", 36, 24, (10, 5, 30, 15)),
]


# ----------------------------------------------------------------------------- fixtures


def _write_jpeg(path: Path, width: int, height: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path, quality=90)


def make_csv_dir(root: Path, specs=FIXTURE, lines=None) -> Path:
    """CSV layout: root/airplanes.csv + root/images/*.jpg (``lines`` overrides the CSV text)."""
    (root / "images").mkdir(parents=True)
    for i, (name, w, h, _) in enumerate(specs):
        _write_jpeg(root / "images" / name, w, h, seed=i)
    if lines is None:
        lines = [f"{name},{x1},{y1},{x2},{y2}" for name, _, _, (x1, y1, x2, y2) in specs]
    (root / "airplanes.csv").write_text("\n".join(lines) + "\n")
    return root


def make_caltech_dir(root: Path, specs=FIXTURE) -> Path:
    """Original layout: 101_ObjectCategories/airplanes/image_XXXX.jpg + annotation_XXXX.mat."""
    image_dir = root / "101_ObjectCategories" / "airplanes"
    annotation_dir = root / "Annotations" / "Airplanes_Side_2"
    image_dir.mkdir(parents=True)
    annotation_dir.mkdir(parents=True)
    for i, (name, w, h, (x1, y1, x2, y2)) in enumerate(specs):
        _write_jpeg(image_dir / name, w, h, seed=i)
        number = name[len("image_"):-len(".jpg")]
        scipy.io.savemat(annotation_dir / f"annotation_{number}.mat",
                         {"box_coord": np.array([[y1, y2, x1, x2]]), "obj_contour": np.zeros((2, 3))})
    return root


def expected_boxes(specs=FIXTURE) -> np.ndarray:
    return np.array([[x1 / w, y1 / h, x2 / w, y2 / h] for _, w, h, (x1, y1, x2, y2) in specs], np.float32)


def assert_same(a: BoxData, b: BoxData) -> None:
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    assert a.names == b.names and a.dropped == b.dropped


def raises_one_line(data_dir, *needles, **kwargs) -> str:
    """load_boxes must raise a one-line DataError containing every needle."""
    with pytest.raises(DataError) as info:
        load_boxes(data_dir, SIZE, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and "\r" not in msg, msg
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    return msg


# ----------------------------------------------------------------------------- real data


@pytest.mark.skipif(not REAL_DATA.exists(),
                    reason="../shared/data/caltech101-airplanes not present (real data lives outside the repo)")
def test_real_data_loads():
    data = load_boxes(REAL_DATA, (32, 48))
    assert data.images.shape == (799, 3, 32, 48) and data.images.dtype == np.float32
    assert data.boxes.shape == (799, 4) and data.boxes.dtype == np.float32
    assert len(data.names) == 799 and "image_0118.jpg" not in data.names
    assert data.dropped == ["image_0118.jpg: zero height box (104,38,126,38)"]
    assert data.source == str(REAL_DATA)
    assert data.images.min() >= 0.0 and data.images.max() <= 1.0
    b = data.boxes
    assert np.all((b >= 0) & (b <= 1))
    assert np.all(b[:, 0] < b[:, 2]) and np.all(b[:, 1] < b[:, 3])
    with Image.open(REAL_DATA / "images" / "image_0001.jpg") as img:
        w, h = img.size
    np.testing.assert_allclose(b[0], np.array([49 / w, 30 / h, 349 / w, 137 / h], np.float32))


# ----------------------------------------------------------------------------- the two layouts


def test_caltech_layout_loads_normalized_boxes(tmp_path):
    data = load_boxes(make_caltech_dir(tmp_path / "caltech"), SIZE)
    assert data.images.shape == (3, 3) + SIZE and data.images.dtype == np.float32
    assert data.names == [name for name, *_ in FIXTURE]
    assert data.dropped == [] and data.source == str(tmp_path / "caltech")
    np.testing.assert_array_equal(data.boxes, expected_boxes())
    # pixels: RGB, bilinear-resized to (H, W), channels first, / 255
    path = tmp_path / "caltech" / "101_ObjectCategories" / "airplanes" / "image_0002.jpg"
    with Image.open(path) as img:
        ref = np.asarray(img.convert("RGB").resize((SIZE[1], SIZE[0]), Image.BILINEAR), np.float32) / 255
    np.testing.assert_allclose(data.images[1], ref.transpose(2, 0, 1), atol=1e-7)


def test_csv_layout_gives_the_same_result(tmp_path):
    caltech = load_boxes(make_caltech_dir(tmp_path / "caltech"), SIZE)
    csv = load_boxes(make_csv_dir(tmp_path / "csv"), SIZE)
    assert_same(caltech, csv)
    assert csv.source == str(tmp_path / "csv")


def test_csv_header_and_blank_lines_are_tolerated(tmp_path):
    lines = ["filename,startX,startY,endX,endY", "image_0001.jpg, 4, 3, 36, 27", "",
             "image_0002.jpg,0,0,50,20", "image_0003.jpg,10,5,30,15", ""]
    data = load_boxes(make_csv_dir(tmp_path, lines=lines), SIZE)
    np.testing.assert_array_equal(data.boxes, expected_boxes())


def test_degenerate_boxes_are_dropped_and_reported(tmp_path):
    specs = FIXTURE + [("image_0004.jpg", 30, 30, (5, 7, 20, 7)), ("image_0005.jpg", 30, 30, (9, 2, 9, 20))]
    for data in (load_boxes(make_csv_dir(tmp_path / "csv", specs), SIZE),
                 load_boxes(make_caltech_dir(tmp_path / "caltech", specs), SIZE)):
        assert data.names == [name for name, *_ in FIXTURE]
        assert data.dropped == ["image_0004.jpg: zero height box (5,7,20,7)",
                                "image_0005.jpg: zero width box (9,2,9,20)"]
        np.testing.assert_array_equal(data.boxes, expected_boxes())


def test_only_degenerate_boxes_is_an_error(tmp_path):
    specs = [("image_0001.jpg", 30, 30, (5, 7, 20, 7))]
    raises_one_line(make_csv_dir(tmp_path, specs), "zero width or height", "image_0001.jpg: zero height box")


def test_progress_is_reported(tmp_path):
    calls = []
    load_boxes(make_csv_dir(tmp_path), SIZE, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


# ----------------------------------------------------------------------------- cache


def _spy_decoding(monkeypatch) -> list:
    calls = []
    decode = L._decode_image

    def spy(*args):
        calls.append(args[0])
        return decode(*args)

    monkeypatch.setattr(L, "_decode_image", spy)
    return calls


def test_second_load_hits_the_cache(tmp_path, monkeypatch):
    specs = FIXTURE + [("image_0004.jpg", 30, 30, (5, 7, 20, 7))]  # a dropped row survives the cache
    data_dir, cache = make_csv_dir(tmp_path / "data", specs), tmp_path / "cache"
    first = load_boxes(data_dir, SIZE, cache_dir=cache)
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"  # no temporary file left behind
    assert len(files[0].stem.split("_")[-1]) == 16  # keyed by 16 hex digits

    calls = _spy_decoding(monkeypatch)
    progress = []
    second = load_boxes(data_dir, SIZE, cache_dir=cache, progress=lambda d, t: progress.append((d, t)))
    assert calls == [] and progress == [(4, 4)]
    assert_same(first, second)
    assert second.source == first.source and second.dropped == ["image_0004.jpg: zero height box (5,7,20,7)"]


def test_touching_a_source_file_or_changing_the_size_invalidates_the_cache(tmp_path, monkeypatch):
    data_dir, cache = make_csv_dir(tmp_path / "data"), tmp_path / "cache"
    first = load_boxes(data_dir, SIZE, cache_dir=cache)
    calls = _spy_decoding(monkeypatch)

    image = data_dir / "images" / "image_0002.jpg"
    st = image.stat()
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = load_boxes(data_dir, SIZE, cache_dir=cache)
    assert len(calls) == 3 and len(list(cache.glob("*.npz"))) == 2
    assert_same(first, again)

    os.utime(data_dir / "airplanes.csv", ns=(st.st_atime_ns, st.st_mtime_ns + 2 * 10**9))
    load_boxes(data_dir, SIZE, cache_dir=cache)
    assert len(calls) == 6

    other = load_boxes(data_dir, (8, 10), cache_dir=cache)
    assert len(calls) == 9 and other.images.shape == (3, 3, 8, 10)
    load_boxes(data_dir, (8, 10), cache_dir=cache)
    assert len(calls) == 9


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_corrupt_cache_file_is_ignored_and_rewritten(tmp_path, monkeypatch, damage):
    data_dir, cache = make_csv_dir(tmp_path / "data"), tmp_path / "cache"
    first = load_boxes(data_dir, SIZE, cache_dir=cache)
    (file,) = cache.glob("*.npz")
    content = file.read_bytes()
    file.write_bytes({"garbage": b"this is not a zip file" * 10, "truncated": content[: len(content) // 2],
                      "empty": b""}[damage])
    calls = _spy_decoding(monkeypatch)
    again = load_boxes(data_dir, SIZE, cache_dir=cache)
    assert len(calls) == 3
    assert_same(first, again)
    assert file.read_bytes() == content  # rewritten
    load_boxes(data_dir, SIZE, cache_dir=cache)
    assert len(calls) == 3  # and used again


# ----------------------------------------------------------------------------- bad input

ROWS = [f"{name},{x1},{y1},{x2},{y2}" for name, _, _, (x1, y1, x2, y2) in FIXTURE]


def _with_line(n: int, text: str) -> list[str]:
    lines = list(ROWS)
    lines[n - 1] = text
    return lines


@pytest.mark.parametrize("lines, needles", [
    (_with_line(2, "image_0002.jpg,0,0,50"), ["line 2", "5 fields", "got 4"]),
    (_with_line(2, "image_0002.jpg,0,0,50,20,7"), ["line 2", "5 fields", "got 6"]),
    (_with_line(2, "image_0002.jpg,0,0,50.5,20"), ["line 2", "endX", "'50.5'"]),
    (_with_line(3, "image_0003.jpg,10,five,30,15"), ["line 3", "startY", "'five'"]),
    (_with_line(2, ",0,0,50,20"), ["line 2", "empty filename"]),
    (ROWS[:1] + ["filename,startX,startY,endX,endY"] + ROWS[1:], ["line 2", "startX", "'startX'"]),
    (_with_line(3, "image_0009.jpg,10,5,30,15"), ["line 3", "image_0009.jpg", "not found"]),
    (_with_line(2, "image_0002.jpg,0,0,51,20"), ["line 2", "image_0002.jpg", "outside", "50x20"]),
    (_with_line(1, "image_0001.jpg,-1,3,36,27"), ["line 1", "image_0001.jpg", "outside"]),
    (_with_line(3, "image_0003.jpg,10,5,30,25"), ["line 3", "outside", "36x24"]),
    (_with_line(3, "image_0003.jpg,30,5,10,15"), ["line 3", "startX 30 > endX 10", "image_0003.jpg"]),
    (_with_line(3, "image_0003.jpg,10,15,30,5"), ["line 3", "startY 15 > endY 5"]),
    (_with_line(3, "image_0001.jpg,10,5,30,15"), ["line 3", "duplicate", "image_0001.jpg", "line 1"]),
    ([], ["no rows"]),
], ids=["too-few-fields", "too-many-fields", "float", "text", "no-name", "header-not-first",
        "missing-image", "right-outside", "negative", "bottom-outside",
        "x-reversed", "y-reversed", "duplicate", "empty"])
def test_bad_csv_rows_raise_one_line_errors(tmp_path, lines, needles):
    data_dir = make_csv_dir(tmp_path, lines=lines)
    raises_one_line(data_dir, "airplanes.csv", *needles)


@pytest.mark.parametrize("where", ["parent", "absolute", "nested-parent"])
def test_csv_filenames_that_leave_the_images_folder_are_refused(tmp_path, where):
    # a real, readable JPEG outside the images folder: listing it must not read it
    outside = tmp_path / "outside.jpg"
    _write_jpeg(outside, 36, 24, seed=9)
    name = {"parent": "../../outside.jpg", "absolute": str(outside),
            "nested-parent": "sub/../../../outside.jpg"}[where]
    data_dir = make_csv_dir(tmp_path / "data", lines=ROWS[:1] + [f"{name},4,3,30,20"] + ROWS[1:])
    assert (data_dir / "images" / name).resolve() == outside.resolve()  # the row does point at it
    raises_one_line(data_dir, "airplanes.csv", "line 2", repr(name), "leaves the images folder")


def test_non_utf8_csv(tmp_path):
    data_dir = make_csv_dir(tmp_path)
    (data_dir / "airplanes.csv").write_bytes(b"image_0001.jpg,4,3,36,27\nimage\xff.jpg,1,2,3,4\n")
    raises_one_line(data_dir, "airplanes.csv", "UTF-8")


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_unreadable_images_raise_one_line_errors(tmp_path, damage):
    specs = [("image_0001.jpg", 40, 30, (4, 3, 36, 27)), ("image_0002.jpg", 160, 120, (0, 0, 50, 20))]
    for layout, make in (("csv", make_csv_dir), ("caltech", make_caltech_dir)):
        data_dir = make(tmp_path / layout, specs)
        image = next(data_dir.rglob("image_0002.jpg"))
        content = image.read_bytes()
        image.write_bytes({"garbage": b"not a jpeg at all" * 20, "truncated": content[: len(content) // 2],
                           "empty": b""}[damage])
        msg = raises_one_line(data_dir, "image_0002.jpg", "cannot decode")
        assert ("line 2" in msg) == (layout == "csv")


def _caltech_damage(root: Path, how: str) -> None:
    annotation_dir = root / "Annotations" / "Airplanes_Side_2"
    if how == "no-annotation":
        (annotation_dir / "annotation_0002.mat").unlink()
    elif how == "no-image":
        (root / "101_ObjectCategories" / "airplanes" / "image_0003.jpg").unlink()
    elif how == "corrupt-mat":
        (annotation_dir / "annotation_0001.mat").write_bytes(b"MATLAB? no." * 30)
    elif how == "no-box_coord":
        scipy.io.savemat(annotation_dir / "annotation_0001.mat", {"obj_contour": np.zeros((2, 3))})
    elif how == "short-box_coord":
        scipy.io.savemat(annotation_dir / "annotation_0001.mat", {"box_coord": np.array([[1, 2, 3]])})
    elif how == "outside":
        scipy.io.savemat(annotation_dir / "annotation_0001.mat", {"box_coord": np.array([[3, 27, 4, 41]])})
    elif how == "top-after-bottom":
        scipy.io.savemat(annotation_dir / "annotation_0002.mat", {"box_coord": np.array([[15, 5, 0, 50]])})


@pytest.mark.parametrize("how, needles", [
    ("no-annotation", ["image_0002.jpg", "no annotation file", "annotation_0002.mat"]),
    ("no-image", ["annotation_0003.mat", "no image file", "image_0003.jpg"]),
    ("corrupt-mat", ["annotation_0001.mat", "cannot read the .mat file"]),
    ("no-box_coord", ["annotation_0001.mat", "no 'box_coord' field"]),
    ("short-box_coord", ["annotation_0001.mat", "4 finite numbers"]),
    ("outside", ["annotation_0001.mat", "outside", "40x30"]),
    ("top-after-bottom", ["annotation_0002.mat", "top 15 > bottom 5"]),
])
def test_bad_caltech_data_raise_one_line_errors(tmp_path, how, needles):
    data_dir = make_caltech_dir(tmp_path)
    _caltech_damage(data_dir, how)
    raises_one_line(data_dir, *needles)


def test_no_data_in_a_known_layout(tmp_path):
    expected = "no airplanes data found"
    raises_one_line(tmp_path / "missing", "missing", expected, "101_ObjectCategories/airplanes")
    (tmp_path / "empty").mkdir()
    raises_one_line(tmp_path / "empty", "empty", expected, "*.csv")
    (tmp_path / "wrong" / "pictures").mkdir(parents=True)
    (tmp_path / "wrong" / "boxes.txt").write_text("image_0001.jpg,1,2,3,4\n")
    raises_one_line(tmp_path / "wrong", "wrong", expected)
    half = tmp_path / "half" / "101_ObjectCategories" / "airplanes"
    half.mkdir(parents=True)
    raises_one_line(tmp_path / "half", "half", "Annotations/Airplanes_Side_2")


def test_csv_layout_problems(tmp_path):
    no_images = tmp_path / "no_images"
    no_images.mkdir()
    (no_images / "airplanes.csv").write_text("\n".join(ROWS) + "\n")
    raises_one_line(no_images, "airplanes.csv", "images folder")
    two = make_csv_dir(tmp_path / "two")
    (two / "extra.csv").write_text("\n".join(ROWS) + "\n")
    raises_one_line(two, "2 CSV files", "airplanes.csv", "extra.csv")


def test_bad_size_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="size"):
        load_boxes(make_csv_dir(tmp_path), (0, 5))
    with pytest.raises(ValueError, match="size"):
        synthetic_boxes(2, (10,))


# ----------------------------------------------------------------------------- synthetic data


def test_synthetic_is_deterministic_and_seeded():
    a = synthetic_boxes(12, (40, 60), seed=3)
    b = synthetic_boxes(12, (40, 60), seed=3)
    c = synthetic_boxes(12, (40, 60), seed=4)
    assert_same(a, b)
    assert not np.array_equal(a.images, c.images) and not np.array_equal(a.boxes, c.boxes)
    assert a.images.shape == (12, 3, 40, 60) and a.images.dtype == np.float32
    assert a.boxes.shape == (12, 4) and a.boxes.dtype == np.float32
    assert a.names[0] == "synthetic_00000" and a.names[11] == "synthetic_00011"
    assert a.source == "synthetic (seed 3, 12 images)" and a.dropped == []
    assert a.images.min() >= 0 and a.images.max() <= 1


def test_synthetic_boxes_are_the_tight_boxes_of_the_drawn_planes():
    n, (h, w) = 30, (50, 75)
    data = synthetic_boxes(n, (h, w), seed=7)
    rng = np.random.default_rng(7)  # synthetic_boxes draws scene after scene from this generator
    for i in range(n):
        rgb, mask = L._draw_scene(rng, (h, w))
        np.testing.assert_array_equal(data.images[i], rgb.transpose(2, 0, 1).astype(np.float32) / np.float32(255))
        x1, y1, x2, y2 = (int(round(v)) for v in data.boxes[i] * [w, h, w, h])
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        assert not mask[:, :x1].any() and not mask[:, x2:].any()
        assert not mask[:y1].any() and not mask[y2:].any()
        inside = mask[y1:y2, x1:x2]
        assert inside[:, 0].any() and inside[:, -1].any() and inside[0].any() and inside[-1].any()


def test_synthetic_boxes_look_like_the_real_ones():
    data = synthetic_boxes(100, (50, 75), seed=0)
    b = data.boxes
    assert np.all((b >= 0) & (b <= 1)) and np.all(b[:, 0] < b[:, 2]) and np.all(b[:, 1] < b[:, 3])
    widths, heights = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    assert np.mean((widths >= 0.45) & (widths <= 1.0)) >= 0.9
    assert np.mean((heights >= 0.2) & (heights <= 0.8)) >= 0.9
    assert widths.std() > 0.05 and heights.std() > 0.05  # random scales
    centres = (b[:, 0] + b[:, 2]) / 2
    assert centres.std() > 0.02  # random positions


def test_synthetic_800_images_have_the_real_sets_shapes():
    # (how long it takes is not asserted here: timings belong in benchmarks, not in tests
    # that run on shared machines; it is ~2 s on two quiet cores)
    data = synthetic_boxes(800, (100, 150), seed=0)
    assert data.images.shape == (800, 3, 100, 150) and data.boxes.shape == (800, 4)


# ----------------------------------------------------------------------------- splits


def test_split_indices():
    train, test = split_indices(100, 0.1, seed=0)
    assert len(test) == 10 and len(train) == 90
    assert set(train).isdisjoint(test) and sorted(np.concatenate([train, test])) == list(range(100))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
    again = split_indices(100, 0.1, seed=0)
    np.testing.assert_array_equal(train, again[0])
    np.testing.assert_array_equal(test, again[1])
    assert not np.array_equal(test, split_indices(100, 0.1, seed=1)[1])
    assert [len(t) for _, t in (split_indices(n, 0.01) for n in (0, 1, 2, 5, 799))] == [0, 0, 1, 1, 8]
    assert [len(t) for _, t in (split_indices(n, 0.99) for n in (2, 5))] == [1, 4]  # train keeps one
    with pytest.raises(ValueError):
        split_indices(10, 0.0)
    with pytest.raises(ValueError):
        split_indices(10, 1.0)


def test_kfold_indices():
    folds = kfold_indices(23, 5, seed=2)
    assert len(folds) == 5
    assert sorted(len(test) for _, test in folds) == [4, 4, 5, 5, 5]
    tests = np.concatenate([test for _, test in folds])
    assert sorted(tests) == list(range(23))  # disjoint test folds covering everything
    for train, test in folds:
        assert set(train).isdisjoint(test) and len(train) + len(test) == 23
    again = kfold_indices(23, 5, seed=2)
    assert all(np.array_equal(a[1], b[1]) and np.array_equal(a[0], b[0]) for a, b in zip(folds, again))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, kfold_indices(23, 5, seed=3)))
    for bad_k in (1, 24):
        with pytest.raises(ValueError):
            kfold_indices(23, bad_k)

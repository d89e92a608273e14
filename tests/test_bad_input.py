"""Bad input, everywhere (issue 8): property-based tests that feed the data loaders and the command
line damaged files and out-of-range values.

Every case must end in a one-line error that names the file, field or option (exit status 2 on the
command line), or load correctly -- never a traceback, never wrong numbers.  The only documented,
counted skips are the loaders' own: zero-width/height boxes (``BoxData.dropped``) and labels without
an image (``SegData.skipped``).  Example counts are kept small (the file runs in seconds).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from minisnn.apps.cli import eval_main, train_main
from minisnn.apps.common import RunState, existing_run_files, prepare_out, run_settings
from minisnn.apps.loc import make_config
from minisnn.apps.loc_data import DataError as BoxError
from minisnn.apps.loc_data import load_boxes
from minisnn.apps.seg_data import DataError as VolumeError
from minisnn.apps.seg_data import load_volumes, save_prediction

FEW = settings(max_examples=25, deadline=None, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SIZE = (6, 8)  # (H, W) the test images are resized to
CROP = (6, 6, 6)


@contextmanager
def folder():
    with tempfile.TemporaryDirectory(prefix="minisnn-bad-") as d:
        yield Path(d)


def one_line(text: str) -> str:
    assert "\n" not in text and "\r" not in text, repr(text)
    assert "Traceback" not in text
    return text


# ----------------------------------------------------------------------------- images (LocNet)

# name, width, height, box
IMAGES = [("image_0001.jpg", 40, 30, (4, 3, 36, 27)), ("image_0002.jpg", 24, 20, (0, 0, 24, 20)),
          ("image_0003.jpg", 36, 24, (10, 5, 30, 15))]


def jpeg_bytes(width, height, seed=0) -> bytes:
    buf = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def csv_folder(root: Path, lines=None, images=IMAGES) -> Path:
    (root / "images").mkdir(parents=True)
    for i, (name, w, h, _) in enumerate(images):
        (root / "images" / name).write_bytes(jpeg_bytes(w, h, seed=i))
    if lines is None:
        lines = [f"{n},{x1},{y1},{x2},{y2}" for n, _, _, (x1, y1, x2, y2) in images]
    (root / "airplanes.csv").write_text("\n".join(lines) + "\n")
    return root


def damage(content: bytes, how: str, data) -> bytes:
    """Truncate, flip bytes in (anywhere / the first 600 bytes), or replace with random bytes."""
    if how == "truncate":
        return content[: data.draw(st.integers(0, len(content) - 1), label="keep")]
    if how == "random":
        return data.draw(st.binary(max_size=2000), label="bytes")
    out = bytearray(content)
    limit = len(out) if how == "flip" else min(len(out), 600)
    for pos, value in data.draw(st.lists(st.tuples(st.integers(0, limit - 1), st.integers(0, 255)), min_size=1,
                                         max_size=12), label="flips"):
        out[pos] = value
    return bytes(out)


@FEW
@given(how=st.sampled_from(["truncate", "random", "flip", "header"]), data=st.data())
def test_a_damaged_jpeg_is_a_one_line_error_or_decodes_with_the_right_boxes(how, data):
    with folder() as root:
        csv_folder(root)
        victim = root / "images" / "image_0002.jpg"
        victim.write_bytes(damage(victim.read_bytes(), how, data))
        try:
            got = load_boxes(root, SIZE)
        except BoxError as e:
            msg = one_line(str(e))
            assert "image_0002.jpg" in msg and "line 2" in msg
            return
        # it decoded (a damaged entropy-coded segment still decodes; JPEG has no checksum):
        # then the numbers are the right ones for what was decoded
        assert how in ("flip", "header"), f"a {how} JPEG was accepted"
        assert got.names == [n for n, *_ in IMAGES]
        assert got.images.dtype == np.float32 and np.all((got.images >= 0) & (got.images <= 1))
        with Image.open(victim) as im:
            width, height = im.size
        expected = [(4 / 40, 3 / 30, 36 / 40, 27 / 30), (0, 0, 24 / width, 20 / height),
                    (10 / 36, 5 / 24, 30 / 36, 15 / 24)]
        np.testing.assert_array_equal(got.boxes, np.array(expected, np.float32))


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _expected_boxes(rows):
    """The oracle: the boxes load_boxes must return for these CSV rows, or None if it must refuse them."""
    sizes = {n: (w, h) for n, w, h, _ in IMAGES}
    rows = [r for r in rows if any(r)]  # blank lines are skipped
    if rows and len(rows[0]) == 5 and all(f and not _is_number(f) for f in rows[0][1:]):
        rows = rows[1:]  # a header row
    if not rows:
        return None
    boxes, dropped, seen = [], [], set()
    for fields in rows:
        if len(fields) != 5 or not fields[0] or fields[0] in seen or fields[0] not in sizes:
            return None
        seen.add(fields[0])
        if not all(f.isascii() and f.lstrip("+-").isdigit() and len(f) - len(f.lstrip("+-")) <= 1
                   for f in fields[1:]):
            return None  # integer pixel coordinates only
        x1, y1, x2, y2 = (int(f) for f in fields[1:])
        w, h = sizes[fields[0]]
        if x1 > x2 or y1 > y2 or x1 < 0 or y1 < 0 or x2 > w or y2 > h:
            return None
        if x1 == x2 or y1 == y2:
            dropped.append(fields[0])
        else:
            boxes.append((fields[0], (x1 / w, y1 / h, x2 / w, y2 / h)))
    return (boxes, dropped) if boxes else None


coordinate = st.one_of(st.integers(-5, 45).map(str), st.sampled_from(["", "1.5", "nan", "1e3", "x", "-0", "+7", "٣"]))
csv_row = st.tuples(st.sampled_from(["image_0001.jpg", "image_0002.jpg", "image_0003.jpg", "image_0009.jpg", ""]),
                    st.lists(coordinate, min_size=2, max_size=6)).map(lambda t: [t[0], *t[1]])


@FEW
@given(rows=st.lists(csv_row, max_size=4))
def test_csv_rows_load_exactly_when_they_are_valid(rows):
    expected = _expected_boxes(rows)
    with folder() as root:
        csv_folder(root, lines=[",".join(r) for r in rows])
        try:
            got = load_boxes(root, SIZE)
        except BoxError as e:
            assert expected is None, f"valid rows {rows} refused: {e}"
            assert "airplanes.csv" in one_line(str(e)) or "image_" in str(e)
            return
    assert expected is not None, f"invalid rows {rows} accepted"
    boxes, dropped = expected
    assert got.names == [n for n, _ in boxes]
    np.testing.assert_array_equal(got.boxes, np.array([b for _, b in boxes], np.float32))
    assert [d.split(":")[0] for d in got.dropped] == dropped  # the documented, counted skip


def _refused(make, load, error, words):
    """A folder built by ``make`` makes ``load(root)`` raise ``error``: one line holding every word."""
    with folder() as root:
        make(root)
        with pytest.raises(error) as info:
            load(root)
        for word in words:
            assert word in one_line(str(info.value))


@pytest.mark.parametrize("make, words", [
    (lambda root: None, ["no airplanes data found"]),
    (lambda root: (root / "images").mkdir() or (root / "a.csv").write_text(""), ["a.csv", "no rows"]),
    (lambda root: (root / "images").mkdir() or (root / "a.csv").write_text("filename,startX,startY,endX,endY\n"),
     ["a.csv", "no rows"]),
    (lambda root: (root / "a.csv").write_text("image_0001.jpg,1,2,3,4\n"), ["images folder", "missing"]),
    (lambda root: (root / "101_ObjectCategories" / "airplanes").mkdir(parents=True)
     or (root / "Annotations" / "Airplanes_Side_2").mkdir(parents=True), ["no image_XXXX.jpg files"]),
], ids=["empty-folder", "empty-csv", "header-only", "no-images-folder", "empty-caltech-folders"])
def test_empty_airplane_folders(make, words):
    _refused(make, lambda root: load_boxes(root, SIZE), BoxError, words)


def test_16_bit_images_are_refused_not_saturated():
    with folder() as root:
        csv_folder(root)
        Image.fromarray(np.full((20, 24), 40000, np.uint16)).save(root / "images" / "image_0002.jpg", format="PNG")
        with pytest.raises(BoxError, match=r"image_0002.jpg.*I;16 pixels .* not supported"):
            load_boxes(root, SIZE)


# ----------------------------------------------------------------------------- volumes (segmentation)

SHAPE = (8, 9, 7)


def nifti_bytes(data, affine=None) -> bytes:
    return nib.Nifti1Image(data, np.eye(4) if affine is None else affine).to_bytes()


def volumes():
    rng = np.random.default_rng(0)
    image = (rng.random(SHAPE) * 1000).astype(np.float32)
    label = np.zeros(SHAPE, np.uint8)
    label[2:5, 3:6, 2:4] = 1
    label[5:7, 3:6, 2:4] = 2
    return image, label


def msd_folder(root: Path, image=None, label=None, gz=True, n=2) -> Path:
    good_image, good_label = volumes()
    ext = ".nii.gz" if gz else ".nii"
    for i in range(n):
        for sub, content in (("imagesTr", good_image if image is None or i else image),
                             ("labelsTr", good_label if label is None or i else label)):
            (root / sub).mkdir(parents=True, exist_ok=True)
            raw = content if isinstance(content, bytes) else nifti_bytes(content)
            compress = gz and not isinstance(content, bytes)  # bytes are written as given
            (root / sub / f"s{i}{ext}").write_bytes(gzip.compress(raw) if compress else raw)
    return root


def assert_sane(data, n=2):
    assert data.images.shape == (n,) + CROP and np.isfinite(data.images).all()
    assert set(np.unique(data.masks)) <= {0, 1}
    with folder() as out:  # what the app does at the end of a run must work for whatever loaded
        for subject in data.subjects:
            save_prediction(subject, np.zeros(CROP, np.float32), out, crop=CROP)


@FEW
@given(target=st.sampled_from(["imagesTr", "labelsTr"]), gz=st.booleans(),
       how=st.sampled_from(["truncate", "random", "flip", "header"]), data=st.data())
def test_a_damaged_nifti_is_a_one_line_error_or_loads_sane_volumes(target, gz, how, data):
    image, label = volumes()
    raw = nifti_bytes(image if target == "imagesTr" else label)
    stored = gzip.compress(raw) if gz else raw
    if how in ("truncate", "random") or not gz:
        damaged = damage(stored, how, data)
    else:  # a valid gzip stream of a damaged NIfTI
        damaged = gzip.compress(damage(raw, how, data))
    with folder() as root:
        msd_folder(root, gz=gz, **{("image" if target == "imagesTr" else "label"): damaged})
        victim = root / target / f"s0{'.nii.gz' if gz else '.nii'}"
        try:
            got = load_volumes(root, CROP)
        except VolumeError as e:
            assert str(victim) in one_line(str(e)) or str(root / "labelsTr" / victim.name) in str(e)
            return
        # truncated data or random bytes never load (a gzip stream cut in its 8-byte trailer
        # still holds all the data, and nibabel does not read the trailer)
        assert how in ("flip", "header") or (how == "truncate" and gz and len(damaged) >= len(stored) - 8), \
            f"{how} {target} accepted"
        assert_sane(got)


label_value = st.sampled_from([0, 1, 2, 3, -1, 255, 0.5, 1.0000001, float("nan"), float("inf")])


@FEW
@given(values=st.lists(label_value, min_size=1, max_size=3), image_value=st.sampled_from([None, float("nan"),
                                                                                         float("inf"), -float("inf")]))
def test_bad_label_values_and_non_finite_images_are_refused(values, image_value):
    image, label = volumes()
    label = label.astype(np.float32)
    label.flat[:len(values)] = values
    if image_value is not None:
        image[1, 2, 3] = image_value
    with folder() as root:
        msd_folder(root, image=image, label=label)
        bad_label = any(not (v in (0, 1, 2)) for v in values)
        try:
            got = load_volumes(root, CROP)
        except VolumeError as e:
            msg = one_line(str(e))
            if image_value is not None:
                assert "imagesTr/s0.nii.gz" in msg and "NaN or inf" in msg
            else:
                assert "labelsTr/s0.nii.gz" in msg and "label values outside {0, 1, 2}" in msg
            return
        assert not bad_label and image_value is None
        assert_sane(got)
        start = [(n - c) // 2 for n, c in zip(SHAPE, CROP)]  # the centred crop box
        box = tuple(slice(a, a + c) for a, c in zip(start, CROP))
        np.testing.assert_array_equal(got.masks[0], (label > 0)[box])


def _with_sform_rows(data, rows) -> bytes:
    """A NIfTI whose sform rows are ``rows`` (written into the header bytes: nibabel would not write them)."""
    import struct

    img = nib.Nifti1Image(data, np.eye(4))
    img.set_sform(np.eye(4), code=1)
    img.set_qform(np.eye(4), code=0)
    raw = bytearray(img.to_bytes())
    raw[280:328] = struct.pack("<12f", *np.asarray(rows, np.float32).ravel())
    return bytes(raw)


@pytest.mark.parametrize("rows", [np.zeros((3, 4)), [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]]], ids=["zero", "rank-2"])
def test_a_singular_affine_is_refused_at_load_not_at_the_end_of_the_run(rows):
    image, label = volumes()
    with folder() as root:
        msd_folder(root, image=_with_sform_rows(image, rows), label=_with_sform_rows(label, rows), gz=False)
        with pytest.raises(VolumeError, match=r"s0.nii: the image's affine is singular"):
            load_volumes(root, CROP)


@pytest.mark.parametrize("make, words", [
    (lambda root: None, ["no hippocampus data found"]),
    (lambda root: (root / "imagesTr").mkdir() or (root / "labelsTr").mkdir(), ["imagesTr", "no .nii.gz or .nii"]),
    (lambda root: (root / "imagesTr").mkdir(), ["found imagesTr/ but not labelsTr/"]),
    (lambda root: (root / "imagesTr").mkdir() or (root / "labelsTr").mkdir()
     or (root / "imagesTr" / "notes.txt").write_text("x"), ["no .nii.gz or .nii images"]),
], ids=["empty-folder", "empty-subfolders", "no-labels-folder", "no-nifti"])
def test_empty_volume_folders(make, words):
    _refused(make, lambda root: load_volumes(root, CROP), VolumeError, words)


def test_a_label_without_an_image_is_a_counted_skip():
    with folder() as root:
        msd_folder(root, n=3)
        (root / "imagesTr" / "s2.nii.gz").unlink()
        got = load_volumes(root, CROP)
        assert len(got.subjects) == 2 and got.skipped == ["labelsTr/s2.nii.gz: label without an image, skipped"]


# ----------------------------------------------------------------------------- the command line

def invoke(group, args):
    result = CliRunner().invoke(group, args)
    text = (result.output or "").strip()
    assert not (result.exception and not isinstance(result.exception, SystemExit)), repr(result.exception)
    return result.exit_code, text


def assert_one_line_error(code, text, *words):
    assert code == 2, text
    lines = text.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for word in words:
        assert word in lines[0], (word, lines[0])


CPUS = os.cpu_count() or 1
finite_nonpositive = st.floats(max_value=0.0, allow_nan=False) | st.sampled_from([float("nan"), float("-inf")])
BAD_VALUES = {
    "--epochs": st.integers(max_value=-1), "--hybrid-epochs": st.integers(max_value=-1),
    "--batch-size": st.integers(max_value=0), "--steps": st.integers(max_value=0),
    "--train-steps": st.integers(max_value=0), "--seed": st.integers(max_value=-1),
    "--threads": st.integers(max_value=0) | st.integers(min_value=CPUS + 1),
    "--lr": finite_nonpositive | st.just(float("inf")), "--hybrid-lr": finite_nonpositive | st.just(float("inf")),
    "--folds": st.integers(max_value=1),
}


@FEW
@given(option=st.sampled_from(sorted(BAD_VALUES)), data=st.data(), app=st.sampled_from(["loc", "seg"]))
def test_out_of_range_options_are_one_line_errors(option, data, app):
    if option == "--folds" and app == "seg":
        option, value = "--subjects", data.draw(st.integers(max_value=2).filter(lambda v: v != 0), label="value")
    else:
        value = data.draw(BAD_VALUES[option], label="value")
    with folder() as out:
        code, text = invoke(train_main, [app, "--preset", "tiny", "--out", str(out), option, str(value)])
        assert_one_line_error(code, text, option)
        assert existing_run_files(out) == []  # nothing was written


@FEW
@given(option=st.sampled_from(["--epochs", "--batch-size", "--steps", "--lr", "--threads", "--seed"]),
       value=st.text(min_size=1, max_size=6).filter(lambda s: not _is_number(s.strip()) and not s.startswith("-")))
def test_non_numbers_are_one_line_errors(option, value):
    with folder() as out:
        code, text = invoke(train_main, ["loc", "--preset", "tiny", "--out", str(out), option, value])
        assert_one_line_error(code, text, option)


def test_unknown_options_commands_and_presets_are_one_line_errors():
    assert_one_line_error(*invoke(train_main, ["loc", "--epoch", "3"]), "--epoch")
    assert_one_line_error(*invoke(train_main, ["lox"]), "lox")
    assert_one_line_error(*invoke(train_main, ["seg", "--preset", "huge"]), "--preset", "huge")
    assert_one_line_error(*invoke(eval_main, ["loc"]), "--checkpoint")


def test_data_and_output_paths_that_are_not_folders():
    with folder() as root:
        (root / "file").write_text("x")
        assert_one_line_error(*invoke(train_main, ["loc", "--data", str(root / "nope"), "--out", str(root / "o")]),
                              "--data", "no such folder")
        assert_one_line_error(*invoke(train_main, ["loc", "--data", str(root / "file"), "--out", str(root / "o")]),
                              "--data", "is a file")
        assert_one_line_error(*invoke(train_main, ["seg", "--out", str(root / "file")]), "--out", "is a file")
        assert_one_line_error(*invoke(train_main, ["seg", "--preset", "tiny", "--out", str(root / "file" / "sub")]),
                              "--out", "cannot write there")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes to any folder")
def test_an_unwritable_output_folder_is_a_one_line_error():
    with folder() as root:
        out = root / "locked"
        out.mkdir()
        out.chmod(0o500)
        try:
            assert_one_line_error(*invoke(train_main, ["loc", "--preset", "tiny", "--out", str(out)]),
                                  str(out), "cannot write there")
        finally:
            out.chmod(0o700)


@settings(FEW, max_examples=10)
@given(how=st.sampled_from(["truncate", "random"]), data=st.data())
def test_damaged_data_through_the_cli(how, data):
    """Files no decoder can read (the loaders' tests above cover damage that still decodes)."""
    with folder() as root:
        csv_folder(root / "planes")
        victim = root / "planes" / "images" / "image_0003.jpg"
        victim.write_bytes(damage(victim.read_bytes(), how, data))
        label = gzip.compress(nifti_bytes(volumes()[1]))
        keep = data.draw(st.integers(0, len(label) - 9), label="keep")  # not just the gzip trailer
        msd_folder(root / "mri", n=3, label=label[:keep] if how == "truncate" else data.draw(st.binary(max_size=999)))
        for app, data_dir, name in (("loc", root / "planes", "image_0003.jpg"), ("seg", root / "mri", "s0.nii.gz")):
            code, text = invoke(train_main, [app, "--preset", "tiny", "--data", str(data_dir), "--out",
                                             str(root / f"out_{app}"), "--quiet", "--no-cache"])
            lines = [line for line in text.splitlines() if line.startswith("error")]
            assert code == 2 and len(lines) == 1 and name in lines[0] and "Traceback" not in text, text


# ----------------------------------------------------------------------------- the output folder, --resume


def test_an_earlier_run_is_never_clobbered_and_overwrite_removes_only_its_files():
    with folder() as out:
        for name in ("results.json", "state/run.json", "state/ann_train.npz", "predictions/s_prob.nii.gz",
                     "fold1/report.md", "notes.txt", "predictions/readme.txt"):
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_text("x")
        with pytest.raises(ValueError) as info:
            prepare_out(out)
        msg = one_line(str(info.value))
        assert str(out) in msg and "--overwrite" in msg and "--resume" in msg
        assert_one_line_error(*invoke(train_main, ["loc", "--preset", "tiny", "--out", str(out)]), "--overwrite")
        prepare_out(out, overwrite=True)
        left = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
        assert left == [".minisnn-train.lock", "notes.txt", "predictions/readme.txt"]
        with pytest.raises(ValueError, match="holds no run to continue"):
            prepare_out(out, resume=True)
        with pytest.raises(ValueError, match="exclude each other"):
            prepare_out(out, resume=True, overwrite=True)


@pytest.mark.skipif(os.name != "posix", reason="the lock is a POSIX flock")
def test_a_folder_in_use_by_another_run_is_refused():
    import fcntl

    with folder() as out:
        with open(out / ".minisnn-train.lock", "a") as held:  # as a running minisnn-train holds it
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            for extra in ([], ["--resume"], ["--overwrite"]):
                code, text = invoke(train_main, ["loc", "--preset", "tiny", "--out", str(out), *extra])
                assert_one_line_error(code, text, str(out), "in use by another minisnn-train run")
        assert existing_run_files(out) == []


def test_resume_refuses_other_settings_and_a_damaged_record():
    cfg = make_config("tiny", epochs=2, lr=0.001)
    with folder() as out:
        RunState(out, "loc", run_settings(cfg), log=lambda m: None)
        other = make_config("tiny", epochs=5, lr=0.01)
        with pytest.raises(ValueError) as info:
            RunState(out, "loc", run_settings(other), resume=True, log=lambda m: None)
        msg = one_line(str(info.value))
        assert "config.epochs 2 (now 5)" in msg and "config.lr 0.001 (now 0.01)" in msg
        with pytest.raises(ValueError, match="not seg"):
            RunState(out, "seg", run_settings(cfg), resume=True, log=lambda m: None)
        (out / "state" / "run.json").write_text("{not json")
        with pytest.raises(ValueError, match=r"run.json: not a readable run record"):
            RunState(out, "loc", run_settings(cfg), resume=True, log=lambda m: None)


SMALL_RUN = ["loc", "--preset", "tiny", "--epochs", "1", "--hybrid-epochs", "1", "--steps", "2", "--quiet",
             "--no-cache"]


def train_in_a_subprocess(out, *extra):
    """A whole (small) run, in its own process with one thread: quick even on a busy machine."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "minisnn.apps.cli", *SMALL_RUN, "--threads", "1", "--out", str(out),
                           *extra], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("small_run")
    train_in_a_subprocess(out)
    return out


@settings(FEW, max_examples=15)
@given(how=st.sampled_from(["truncate", "random", "flip"]), data=st.data())
def test_damaged_checkpoints_are_one_line_errors(small_run, how, data):
    with folder() as root:
        ann = root / "ann.npz"
        ann.write_bytes(damage((small_run / "ann.npz").read_bytes(), how, data))
        code, text = invoke(eval_main, ["loc", "--checkpoint", str(ann), "--quiet"])
        if code == 0:  # flipped bytes inside an array's data: the zip's CRC is not checked by numpy
            assert how == "flip"
            return
        assert_one_line_error(code, text, str(ann))


def test_resume_with_a_damaged_training_checkpoint(small_run):
    state = small_run / "state" / "ann_train.npz"
    kept = state.read_bytes()
    try:
        state.write_bytes(kept[: len(kept) // 3])
        code, text = invoke(train_main, [*SMALL_RUN, "--out", str(small_run), "--resume"])
        lines = [line for line in text.splitlines() if line.startswith("error")]
        assert code == 2 and len(lines) == 1 and "ann_train.npz" in lines[0] and "Traceback" not in text, text
        state.unlink()
        code, text = invoke(train_main, [*SMALL_RUN, "--out", str(small_run), "--resume"])
        lines = [line for line in text.splitlines() if line.startswith("error")]
        assert code == 2 and "ann_train.npz is missing" in lines[0], text
        code, text = invoke(eval_main, ["loc", "--checkpoint", str(small_run / "state" / "hybrid_train.npz")])
        assert_one_line_error(code, text, "hybrid_train.npz", "not a LocNet checkpoint")
    finally:
        state.write_bytes(kept)
    assert json.loads((small_run / "state" / "run.json").read_text())["phases"] == ["ann", "hybrid", "outputs"]


def test_overwrite_replaces_an_earlier_run(small_run):
    before = (small_run / "results.json").stat().st_mtime_ns
    (small_run / "notes.txt").write_text("mine")
    train_in_a_subprocess(small_run, "--overwrite")
    assert (small_run / "results.json").stat().st_mtime_ns != before
    assert (small_run / "notes.txt").read_text() == "mine"
    assert json.loads((small_run / "state" / "run.json").read_text())["phases"] == ["ann", "hybrid", "outputs"]

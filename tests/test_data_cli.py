"""``minisnn-data fetch`` and ``minisnn-data check`` against small archives built here and served
from a local HTTP server on 127.0.0.1 (with Range support): the good path for both data sets,
a corrupted and a truncated download, resume of a partial file, idempotence, path-escape
archives, and ``check`` on good and bad folders."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner
from PIL import Image

from minisnn.apps.data_cli import main
from minisnn.apps.fetch import marker_path
from minisnn.apps.loc_data import load_boxes
from minisnn.apps.seg_data import load_volumes

# name, width, height, box (x1, y1, x2, y2) in pixels
PLANES = [("0001", 40, 30, (4, 3, 36, 27)), ("0002", 50, 20, (0, 0, 50, 20)), ("0003", 36, 24, (10, 5, 30, 15))]


# ----------------------------------------------------------------------------- archives


def _tar(entries, mode="w") -> bytes:
    """A tar (``mode`` "w" or "w:gz") of ``[(name, bytes)]``; bytes None: a folder; ("->", target): a symlink."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            elif isinstance(data, tuple):
                info.type, info.linkname = tarfile.SYMTYPE, data[1]
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _jpeg(width, height, seed) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _mat(box) -> bytes:
    x1, y1, x2, y2 = box
    buf = io.BytesIO()  # the real files: box_coord = [top, bottom, left, right], obj_contour 2 x N
    scipy.io.savemat(buf, {"box_coord": np.array([[y1, y2, x1, x2]], np.int16), "obj_contour": np.zeros((2, 5))})
    return buf.getvalue()


def caltech_zip(extra_image_members=(), zip_extra=()) -> bytes:
    """The CaltechDATA layout in miniature: caltech-101/{101_ObjectCategories.tar.gz, Annotations.tar}."""
    images = [("101_ObjectCategories", None), ("101_ObjectCategories/airplanes", None)]
    images += [(f"101_ObjectCategories/airplanes/image_{n}.jpg", _jpeg(w, h, i))
               for i, (n, w, h, _) in enumerate(PLANES)]
    images += [("101_ObjectCategories/airplanes/._image_0001.jpg", b"\x00\x05\x16\x07junk"),
               ("101_ObjectCategories/Faces/image_0001.jpg", _jpeg(8, 8, 9))]
    images += list(extra_image_members)
    annotations = [(f"Annotations/Airplanes_Side_2/annotation_{n}.mat", _mat(box)) for n, _, _, box in PLANES]
    annotations += [("Annotations/Faces_2/annotation_0001.mat", _mat((1, 1, 5, 5)))]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("caltech-101/101_ObjectCategories.tar.gz", _tar(images, "w:gz"))
        zf.writestr("caltech-101/Annotations.tar", _tar(annotations))
        zf.writestr("caltech-101/show_annotation.m", "% viewer\n")
        zf.writestr("__MACOSX/caltech-101/._Annotations.tar", b"junk")
        for name, data in zip_extra:
            info = zipfile.ZipInfo(name)
            if isinstance(data, tuple):  # ("->", target): a Unix symlink entry
                info.create_system, info.external_attr, data = 3, 0o120777 << 16, data[1].encode()
            zf.writestr(info, data)
    return buf.getvalue()


def _nifti(data: np.ndarray, affine=None) -> bytes:
    img = nib.Nifti1Image(data, np.eye(4) if affine is None else affine)
    return gzip.compress(img.to_bytes(), mtime=0)


def _volume_pair(seed, shape=(10, 12, 8)):
    rng = np.random.default_rng(seed)
    image = rng.uniform(0, 100, shape).astype(np.float32)
    label = np.zeros(shape, np.uint8)
    label[3:7, 4:8, 2:6] = 1
    label[5:7, 6:8, 4:6] = 2
    return image, label


def msd_tar(extra=()) -> bytes:
    """Task04_Hippocampus.tar in miniature: 2 training pairs, 1 test image, dataset.json, macOS junk."""
    entries = [("Task04_Hippocampus", None), ("Task04_Hippocampus/imagesTr", None),
               ("Task04_Hippocampus/labelsTr", None)]
    for i in (1, 2):
        image, label = _volume_pair(i)
        entries += [(f"Task04_Hippocampus/imagesTr/hippocampus_00{i}.nii.gz", _nifti(image)),
                    (f"Task04_Hippocampus/labelsTr/hippocampus_00{i}.nii.gz", _nifti(label)),
                    (f"Task04_Hippocampus/imagesTr/._hippocampus_00{i}.nii.gz", b"\x00\x05\x16\x07junk")]
    entries += [("Task04_Hippocampus/imagesTs/hippocampus_003.nii.gz", _nifti(_volume_pair(3)[0])),
                ("Task04_Hippocampus/dataset.json",
                 json.dumps({"name": "Hippocampus", "numTraining": 2, "numTest": 1,
                             "labels": {"0": "background", "1": "Anterior", "2": "Posterior"}}).encode())]
    return _tar(entries + list(extra))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------- the server


class Server:
    """Files served from memory; ``log`` records (path, Range header, bytes sent) per request."""

    def __init__(self):
        self.files: dict[str, tuple[bytes, str]] = {}  # path -> (content, behaviour)
        self.log: list[tuple] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path not in server.files:
                    self.send_error(404, "Not Found")
                    return
                data, how = server.files[self.path]
                rng = self.headers.get("Range")
                m = re.fullmatch(r"bytes=(\d+)-", rng or "")
                start = int(m.group(1)) if m and how != "norange" else 0
                if start >= len(data) and start:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    server.log.append((self.path, rng, 0))
                    return
                body = data[start:]
                if start:
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if how == "truncate":  # announce everything, send half, hang up
                    body = body[: len(body) // 2]
                self.wfile.write(body)
                self.wfile.flush()
                server.log.append((self.path, rng, len(body)))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def add(self, path: str, data: bytes, how: str = "ok") -> str:
        self.files[path] = (data, how)
        return self.url(path)


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.fixture(scope="module")
def caltech():
    return caltech_zip()


@pytest.fixture(scope="module")
def msd():
    return msd_tar()


def run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def assert_one_line_error(result, *needles, status=1):
    assert result.exit_code == status, result.output
    assert "Traceback" not in result.output
    err = result.stderr.strip().splitlines()
    assert len(err) >= 1 and err[-1].startswith("error: "), result.stderr
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1, err
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def fetch(name, dest, url, data, *extra):
    return run("fetch", name, "--dest", dest, "--url", url, "--sha256", sha256(data), *extra)


def _files(dest: Path) -> set:
    return {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}


# ----------------------------------------------------------------------------- fetch: good paths


def test_fetch_caltech101_gives_the_caltech_layout_load_boxes_reads(server, caltech, tmp_path):
    url = server.add("/caltech-101.zip", caltech)
    result = fetch("caltech101", tmp_path, url, caltech)
    assert result.exit_code == 0, result.output
    assert f"Use --data {tmp_path}" in result.stdout
    assert "download caltech-101.zip" in result.stderr  # the progress bar
    data = load_boxes(tmp_path)
    assert data.names == [f"image_{n}.jpg" for n, *_ in PLANES]
    expected = [[x1 / w, y1 / h, x2 / w, y2 / h] for _, w, h, (x1, y1, x2, y2) in PLANES]
    np.testing.assert_allclose(data.boxes, expected, rtol=1e-6)
    files = _files(tmp_path)
    assert "caltech-101.zip" in files and marker_path(tmp_path, "caltech101").is_file()
    assert not any("Faces" in f or "/._" in f or "MACOSX" in f or "partial" in f or "staging" in f for f in files)
    marker = json.loads(marker_path(tmp_path, "caltech101").read_text())
    assert len(marker["files"]) == 6 and marker["checksum"] == f"sha256:{sha256(caltech)}"


def test_second_run_verifies_and_does_nothing_and_a_damaged_folder_is_repaired(server, caltech, tmp_path):
    url = server.add("/c2.zip", caltech)
    assert fetch("caltech101", tmp_path, url, caltech).exit_code == 0
    n = len(server.log)
    dead = "http://127.0.0.1:9/never-contacted.zip"
    again = fetch("caltech101", tmp_path, dead, caltech)
    assert again.exit_code == 0, again.output
    assert "already fetched and verified (6 files); nothing to do" in again.stdout
    assert len(server.log) == n
    # delete an image: the next run notices, and re-extracts from the kept archive (no download)
    (tmp_path / "101_ObjectCategories" / "airplanes" / "image_0002.jpg").unlink()
    repaired = fetch("caltech101", tmp_path, dead, caltech)
    assert repaired.exit_code == 0, repaired.output
    assert "image_0002.jpg: missing; fetching again" in repaired.stderr
    assert len(load_boxes(tmp_path).names) == 3


def test_fetch_msd_hippocampus_gives_a_folder_load_volumes_reads(server, msd, tmp_path):
    url = server.add("/Task04_Hippocampus.tar", msd)
    result = fetch("msd-hippocampus", tmp_path, url, msd, "--remove-archive")
    assert result.exit_code == 0, result.output
    data_dir = tmp_path / "Task04_Hippocampus"
    assert f"Use --data {data_dir}" in result.stdout and "2 junk" in result.stdout
    data = load_volumes(data_dir)
    assert [s.name for s in data.subjects] == ["hippocampus_001", "hippocampus_002"]
    files = _files(tmp_path)
    assert "Task04_Hippocampus/imagesTs/hippocampus_003.nii.gz" in files
    assert "Task04_Hippocampus/dataset.json" in files
    assert not any("/._" in f for f in files) and "Task04_Hippocampus.tar" not in files


def test_the_url_can_come_from_the_environment(server, msd, tmp_path):
    url = server.add("/env/Task04_Hippocampus.tar", msd)
    result = run("fetch", "msd-hippocampus", "--dest", tmp_path, "--sha256", sha256(msd), "--quiet",
                 env={"MINISNN_DATA_URL_MSD_HIPPOCAMPUS": url})
    assert result.exit_code == 0, result.output
    assert server.log[-1][0] == "/env/Task04_Hippocampus.tar"


# ----------------------------------------------------------------------------- fetch: bad downloads


def test_a_corrupted_download_is_reported_and_never_looks_complete(server, caltech, tmp_path):
    bad = bytearray(caltech)
    bad[len(bad) // 2] ^= 0xFF
    url = server.add("/corrupt.zip", bytes(bad))
    result = fetch("caltech101", tmp_path, url, caltech)
    line = assert_one_line_error(result, url, "sha256", sha256(caltech), "moved to")
    assert "corrupt" in line
    assert _files(tmp_path) == {"caltech-101.zip.corrupt"}  # no archive, no partial, no data, no marker


def test_a_truncated_download_is_kept_as_partial_and_resumed_by_the_next_run(server, msd, tmp_path):
    url = server.add("/truncated.tar", msd, "truncate")
    result = fetch("msd-hippocampus", tmp_path, url, msd)
    half = len(msd) // 2
    assert_one_line_error(result, url, f"interrupted after {half} of {len(msd)} bytes", "run the same command again")
    assert _files(tmp_path) == {".Task04_Hippocampus.tar.partial"}
    assert (tmp_path / ".Task04_Hippocampus.tar.partial").stat().st_size == half
    server.files["/truncated.tar"] = (msd, "ok")  # the server recovers
    resumed = fetch("msd-hippocampus", tmp_path, url, msd)
    assert resumed.exit_code == 0, resumed.output
    assert server.log[-1] == ("/truncated.tar", f"bytes={half}-", len(msd) - half)
    assert f"resuming .Task04_Hippocampus.tar.partial at {half} bytes" in resumed.stderr
    assert len(load_volumes(tmp_path / "Task04_Hippocampus").subjects) == 2


def test_an_existing_partial_prefix_is_resumed_with_a_range_request(server, caltech, tmp_path):
    url = server.add("/resume.zip", caltech)
    (tmp_path / ".caltech-101.zip.partial").write_bytes(caltech[:1000])
    result = fetch("caltech101", tmp_path, url, caltech)
    assert result.exit_code == 0, result.output
    assert server.log[-1] == ("/resume.zip", "bytes=1000-", len(caltech) - 1000)
    assert len(load_boxes(tmp_path).names) == 3


def test_a_server_without_range_support_gets_a_fresh_download(server, msd, tmp_path):
    url = server.add("/norange.tar", msd, "norange")
    (tmp_path / ".Task04_Hippocampus.tar.partial").write_bytes(b"x" * 500)  # and a wrong prefix at that
    result = fetch("msd-hippocampus", tmp_path, url, msd)
    assert result.exit_code == 0, result.output
    assert server.log[-1] == ("/norange.tar", "bytes=500-", len(msd))


def test_a_wrong_partial_prefix_ends_as_corrupt_and_the_next_run_starts_over(server, msd, tmp_path):
    url = server.add("/prefix.tar", msd)
    (tmp_path / ".Task04_Hippocampus.tar.partial").write_bytes(b"x" * 500)
    assert_one_line_error(fetch("msd-hippocampus", tmp_path, url, msd), "sha256", "moved to")
    assert not (tmp_path / ".Task04_Hippocampus.tar.partial").exists()
    assert fetch("msd-hippocampus", tmp_path, url, msd).exit_code == 0


@pytest.mark.parametrize("how, needles", [
    ("404", ["HTTP 404"]),
    ("refused", ["cannot connect"]),
    ("bad-checksum-option", ["bad checksum", "64 hex digits"]),
    ("dest-is-a-file", ["exists and is not a folder"]),
])
def test_other_failures_are_one_line_errors(server, msd, tmp_path, how, needles):
    url = server.add("/m.tar", msd)
    if how == "404":
        result = fetch("msd-hippocampus", tmp_path, server.url("/missing.tar"), msd)
    elif how == "refused":
        result = fetch("msd-hippocampus", tmp_path, "http://127.0.0.1:9/x.tar", msd, "--timeout", "5")
    elif how == "bad-checksum-option":
        result = run("fetch", "msd-hippocampus", "--dest", tmp_path, "--url", url, "--sha256", "abc")
    else:
        (tmp_path / "file").write_text("x")
        result = fetch("msd-hippocampus", tmp_path / "file", url, msd)
    assert_one_line_error(result, *needles)
    assert not marker_path(tmp_path, "msd-hippocampus").exists()


def test_usage_errors_are_one_line(tmp_path):
    assert_one_line_error(run("fetch", "imagenet", "--dest", tmp_path), "'imagenet' is not one of", status=2)
    assert_one_line_error(run("fetch", "caltech101"), "Missing option '--dest'", status=2)
    assert_one_line_error(run("fetch", "caltech101", "--dest", tmp_path, "--md5", "a", "--sha256", "b"),
                          "not both", status=2)


# ----------------------------------------------------------------------------- fetch: unsafe archives


@pytest.mark.parametrize("evil, needle", [
    (("Task04_Hippocampus/imagesTr/../../../escaped.txt", b"pwned"), "contains '..'"),
    (("/tmp/minisnn-escaped-absolute.txt", b"pwned"), "absolute path"),
    (("Task04_Hippocampus/link", ("->", "../../escaped-dir")), "points outside the destination"),
    (("Task04_Hippocampus/abslink", ("->", "/etc")), "points outside the destination"),
])
def test_msd_archives_with_escaping_members_are_rejected(server, tmp_path, evil, needle):
    data = msd_tar(extra=[evil])
    url = server.add(f"/evil-{abs(hash(evil[0]))}.tar", data)
    dest = tmp_path / "dest"
    line = assert_one_line_error(fetch("msd-hippocampus", dest, url, data), needle, "nothing was extracted")
    assert repr(evil[0]) in line
    assert _files(tmp_path) == {"dest/Task04_Hippocampus.tar"}  # nothing extracted, nothing outside, no marker
    assert not Path("/tmp/minisnn-escaped-absolute.txt").exists()


def test_links_that_stay_inside_are_skipped_not_created(server, tmp_path):
    data = msd_tar(extra=[("Task04_Hippocampus/imagesTr/hippocampus_009.nii.gz", ("->", "hippocampus_001.nii.gz"))])
    result = fetch("msd-hippocampus", tmp_path, server.add("/inside-link.tar", data), data)
    assert result.exit_code == 0, result.output
    assert "1 links" in result.stdout
    assert not any(p.is_symlink() for p in tmp_path.rglob("*"))
    assert len(load_volumes(tmp_path / "Task04_Hippocampus").subjects) == 2


@pytest.mark.parametrize("zip_extra, image_extra, needle", [
    ([("../escaped.txt", b"pwned")], [], "contains '..'"),
    ([], [("101_ObjectCategories/airplanes/../../../escaped.jpg", b"pwned")], "contains '..'"),
    ([("caltech-101/link", ("->", "../../outside"))], [], "points outside the destination"),
    ([], [("101_ObjectCategories/airplanes/link.jpg", ("->", "/etc/passwd"))], "points outside the destination"),
])
def test_caltech_archives_with_escaping_members_are_rejected(server, tmp_path, zip_extra, image_extra, needle):
    data = caltech_zip(extra_image_members=image_extra, zip_extra=zip_extra)
    url = server.add(f"/evil-{abs(hash(repr((zip_extra, image_extra))))}.zip", data)
    dest = tmp_path / "dest"
    assert_one_line_error(fetch("caltech101", dest, url, data), needle)
    assert _files(tmp_path) == {"dest/caltech-101.zip"}


# ----------------------------------------------------------------------------- check


def test_check_on_fetched_folders(server, caltech, msd, tmp_path):
    fetch("caltech101", tmp_path / "c", server.add("/cc.zip", caltech), caltech)
    result = run("check", tmp_path / "c", "--quiet")
    assert result.exit_code == 0, result.output
    for text in ("Caltech-101 layout", "3 image_XXXX.jpg", "unreadable images:  0",
                 "load_boxes OK: 3 images", "marker verified", "verdict:            usable"):
        assert text in result.stdout, (text, result.stdout)
    fetch("msd-hippocampus", tmp_path / "m", server.add("/mm.tar", msd), msd)
    result = run("check", tmp_path / "m", "--quiet")  # finds Task04_Hippocampus/ inside
    assert result.exit_code == 0, result.output
    for text in ("Decathlon NIfTI layout", "2 images, 2 labels, 2 pairs", "label values:       {0, 1, 2}",
                 "imagesTs:           1 unlabelled", "numTraining 2", "marker verified", "load_volumes OK: 2 subjects"):
        assert text in result.stdout, (text, result.stdout)


def _csv_folder(root: Path, lines: list[str]) -> Path:
    (root / "images").mkdir(parents=True)
    for i, (n, w, h, _) in enumerate(PLANES):
        (root / "images" / f"image_{n}.jpg").write_bytes(_jpeg(w, h, i))
    (root / "airplanes.csv").write_text("\n".join(lines) + "\n")
    return root


def test_check_csv_layout_reports_degenerate_boxes_and_stays_usable(tmp_path):
    lines = ["image_0001.jpg,4,3,36,27", "image_0002.jpg,0,5,50,5", "image_0003.jpg,10,5,30,15"]
    result = run("check", _csv_folder(tmp_path, lines), "--quiet")
    assert result.exit_code == 0, result.output
    assert "degenerate (zero width or height) 1" in result.stdout
    assert "image_0002.jpg: zero height box (0,5,50,5)" in result.stdout
    assert "load_boxes OK: 2 images, 1 dropped" in result.stdout


@pytest.mark.parametrize("damage, report_text, reason", [
    ("missing image", "1 listed but missing", "file not found"),
    ("truncated image", "unreadable images:  1", "cannot decode"),
    ("box outside", "outside the image 1", "lies outside"),
    ("malformed row", "1 malformed", "expected 5 fields"),
    ("name outside the folder", "1 malformed", "leaves the images folder"),
])
def test_check_bad_csv_folders_are_unusable(tmp_path, damage, report_text, reason):
    lines = ["image_0001.jpg,4,3,36,27", "image_0002.jpg,0,0,50,20", "image_0003.jpg,10,5,30,15"]
    if damage == "missing image":
        lines.append("image_0004.jpg,1,1,5,5")
    elif damage == "box outside":
        lines[1] = "image_0002.jpg,0,0,51,20"
    elif damage == "malformed row":
        lines[2] = "image_0003.jpg,10,5,30"
    elif damage == "name outside the folder":
        lines[2] = "../images/../../outside.jpg,10,5,30,15"
        (tmp_path / "outside.jpg").write_bytes(_jpeg(36, 24, 7))
        tmp_path = tmp_path / "data"
    d = _csv_folder(tmp_path, lines)
    if damage == "truncated image":
        p = d / "images" / "image_0003.jpg"
        p.write_bytes(p.read_bytes()[:200])
    result = run("check", d, "--quiet")
    assert report_text in result.stdout, result.stdout
    assert_one_line_error(result, "is unusable", reason)


def _msd_folder(root: Path, label_shape=None, label_affine=None, label_value=None) -> Path:
    for sub in ("imagesTr", "labelsTr"):
        (root / sub).mkdir(parents=True)
    for i in (1, 2):
        image, label = _volume_pair(i)
        if i == 2 and label_shape is not None:
            label = np.zeros(label_shape, np.uint8)
        if i == 2 and label_value is not None:
            label[0, 0, 0] = label_value
        (root / "imagesTr" / f"hippocampus_00{i}.nii.gz").write_bytes(_nifti(image))
        affine = label_affine if i == 2 and label_affine is not None else None
        (root / "labelsTr" / f"hippocampus_00{i}.nii.gz").write_bytes(_nifti(label, affine))
    return root


@pytest.mark.parametrize("kwargs, report_text, reason", [
    ({"label_shape": (10, 12, 9)}, "shape mismatches:   1", "does not match"),
    ({"label_affine": np.diag([2.0, 1.0, 1.0, 1.0])}, "affine mismatches:  1", "affine differs"),
    ({"label_value": 7}, "1 labels with values outside", "outside {0, 1, 2}: 7"),
])
def test_check_bad_decathlon_folders_are_unusable(tmp_path, kwargs, report_text, reason):
    result = run("check", _msd_folder(tmp_path, **kwargs), "--quiet")
    assert report_text in result.stdout, result.stdout
    assert_one_line_error(result, "is unusable", "hippocampus_002", reason)


def test_check_ignores_macos_junk_files_as_load_volumes_does(tmp_path):
    d = _msd_folder(tmp_path)
    for sub in ("imagesTr", "labelsTr"):  # AppleDouble files as in the official tar, plus .DS_Store
        (d / sub / "._hippocampus_001.nii.gz").write_bytes(b"\x00\x05\x16\x07 not NIfTI")
    (d / "imagesTr" / ".DS_Store").write_bytes(b"junk")
    result = run("check", d, "--quiet")
    assert result.exit_code == 0, result.output
    assert "ignored files:      3 hidden" in result.stdout and "2 images, 2 labels, 2 pairs" in result.stdout


def test_check_unreadable_nifti_and_missing_label(tmp_path):
    d = _msd_folder(tmp_path)
    (d / "labelsTr" / "hippocampus_001.nii.gz").write_bytes(b"not gzip at all")
    (d / "imagesTr" / "hippocampus_009.nii.gz").write_bytes(_nifti(_volume_pair(9)[0]))
    result = run("check", d, "--quiet")
    assert "1 images without a label" in result.stdout and "unreadable files:   1" in result.stdout
    assert_one_line_error(result, "is unusable", "hippocampus_009", "no label")


def test_check_folders_of_no_known_kind(tmp_path):
    assert_one_line_error(run("check", tmp_path / "nope"), "no such folder")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run("check", tmp_path / "empty"), "not a known data folder", "imagesTr/ + labelsTr/")

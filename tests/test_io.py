"""minisnn.io: atomic writes (nothing half-written, no temp files left), JSON conversion,
checkpoint round trips and every way a checkpoint file can be wrong."""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

import minisnn as ms
from minisnn import io as mio
from minisnn.io import (
    CheckpointError,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    load_checkpoint,
    save_checkpoint,
    to_jsonable,
)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def one_line_naming(err: pytest.ExceptionInfo, path: Path) -> str:
    msg = str(err.value)
    assert "\n" not in msg and path.name in msg
    return msg


# ----------------------------------------------------------------------------- atomic writes


def test_atomic_write_creates_parents_and_replaces(tmp_path):
    target = tmp_path / "a" / "b" / "file.bin"
    atomic_write_bytes(target, b"first")
    assert target.read_bytes() == b"first"
    atomic_write_bytes(str(target), b"second")
    assert target.read_bytes() == b"second"
    assert listing(target.parent) == ["file.bin"]


def test_atomic_write_text_is_utf8(tmp_path):
    atomic_write_text(tmp_path / "t.md", "µ-snn ✓\n")
    assert (tmp_path / "t.md").read_bytes() == "µ-snn ✓\n".encode("utf-8")


def test_new_file_has_ordinary_permissions(tmp_path):
    atomic_write_bytes(tmp_path / "f", b"x")
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o666 & ~mio._UMASK


@pytest.mark.parametrize("write", ["bytes", "checkpoint"])
def test_failed_replace_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch, write):
    target = tmp_path / "ck.npz"
    save_checkpoint(target, {"w": np.ones(3)}, {"epoch": 1})
    before = target.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        if write == "bytes":
            atomic_write_bytes(target, b"new content")
        else:
            save_checkpoint(target, {"w": np.zeros(3)}, {"epoch": 2})
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert listing(tmp_path) == ["ck.npz"]
    state, meta = load_checkpoint(target)
    assert meta["epoch"] == 1 and np.array_equal(state["w"], np.ones(3))


def test_failure_while_writing_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def broken_fsync(fd):
        raise OSError("I/O error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="I/O error"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert listing(tmp_path) == ["out.txt"]


def test_interrupt_during_write_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "out.json"

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_json(target, {"a": 1})
    assert listing(tmp_path) == []


# ----------------------------------------------------------------------------- JSON


def test_json_writer_handles_numpy_paths_and_nan(tmp_path):
    obj = {
        "f32": np.float32(0.5), "i64": np.int64(7), "flag": np.bool_(True), "arr": np.array([[1, 2], [3, 4]]),
        "farr": np.array([1.5, np.nan, np.inf]), "nan": float("nan"), "inf": -math.inf, "path": Path("a/b.png"),
        "tuple": (1, np.float64(2.5)), "nested": [{"x": np.nan}], np.int32(3): "numpy key", "none": None,
    }
    atomic_write_json(tmp_path / "r.json", obj)
    text = (tmp_path / "r.json").read_text()
    assert text.endswith("\n") and "NaN" not in text and "Infinity" not in text
    back = json.loads(text)
    assert back == {
        "f32": 0.5, "i64": 7, "flag": True, "arr": [[1, 2], [3, 4]], "farr": [1.5, None, None], "nan": None,
        "inf": None, "path": str(Path("a/b.png")), "tuple": [1, 2.5], "nested": [{"x": None}], "3": "numpy key",
        "none": None,
    }
    assert type(back["i64"]) is int and type(back["flag"]) is bool


def test_json_writer_rejects_unknown_types_and_keeps_old_file(tmp_path):
    target = tmp_path / "r.json"
    atomic_write_json(target, {"ok": 1})
    with pytest.raises(TypeError, match="object"):
        atomic_write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"ok": 1}
    assert listing(tmp_path) == ["r.json"]


def test_to_jsonable_scalars():
    assert to_jsonable(np.float64("nan")) is None
    assert to_jsonable(np.uint8(200)) == 200
    assert to_jsonable(np.array(2.0)) == 2.0


# ----------------------------------------------------------------------------- checkpoints


def test_round_trip_keeps_dtypes_shapes_order_and_meta(tmp_path, rng):
    state = {
        "0.w": rng.standard_normal((4, 3)).astype(np.float32),
        "0.b": rng.standard_normal(4),
        "2.w": rng.standard_normal((2, 1, 3, 3)).astype(np.float32),
        "count": np.arange(5, dtype=np.int64),
        "scalar": np.float64(3.5),
        "file": np.zeros(2),  # a numpy.savez keyword: must still be stored as data
    }
    meta = {"epoch": 12, "metrics": {"val_iou": np.float32(0.625), "hist": [0.1, 0.2]},
            "config": {"layers": [8, 16], "name": "loc", "lr": None}, "nan_metric": float("nan")}
    path = tmp_path / "run" / "best.npz"
    save_checkpoint(path, state, meta)
    loaded, m = load_checkpoint(path)
    assert list(loaded) == list(state)
    for k, v in state.items():
        assert loaded[k].dtype == np.asarray(v).dtype and np.array_equal(loaded[k], v), k
    assert m == {"epoch": 12, "metrics": {"val_iou": 0.625, "hist": [0.1, 0.2]},
                 "config": {"layers": [8, 16], "name": "loc", "lr": None}, "nan_metric": None,
                 "format": "minisnn-checkpoint", "version": 1}
    assert listing(path.parent) == ["best.npz"]
    # an ordinary .npz that numpy itself reads
    with np.load(path) as npz:
        assert set(npz.files) == set(state) | {"__meta__"}


def test_module_state_dict_round_trip(tmp_path, rng):
    net = ms.Sequential(ms.Conv2d(1, 2, 3, rng=rng), ms.Flatten(), ms.Dense(2 * 4 * 4, 3, rng=rng))
    save_checkpoint(tmp_path / "net.npz", net.state_dict(), {"kind": "ann"})
    other = ms.Sequential(ms.Conv2d(1, 2, 3, rng=rng), ms.Flatten(), ms.Dense(2 * 4 * 4, 3, rng=rng))
    state, meta = load_checkpoint(tmp_path / "net.npz")
    other.load_state_dict(state)
    for (k, a), (_, b) in zip(net.state_dict().items(), other.state_dict().items()):
        assert a.dtype == b.dtype and np.array_equal(a, b), k
    assert meta["kind"] == "ann"


def test_save_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="__meta__"):
        save_checkpoint(tmp_path / "c.npz", {"__meta__": np.zeros(1)}, {})
    with pytest.raises(ValueError, match="strings"):
        save_checkpoint(tmp_path / "c.npz", {1: np.zeros(1)}, {})
    with pytest.raises(ValueError, match="object dtype"):
        save_checkpoint(tmp_path / "c.npz", {"w": np.array([None, 1], dtype=object)}, {})
    with pytest.raises(ValueError, match="format"):
        save_checkpoint(tmp_path / "c.npz", {}, {"format": "other"})
    with pytest.raises(ValueError, match="meta must be a dict"):
        save_checkpoint(tmp_path / "c.npz", {}, [1])
    assert listing(tmp_path) == []


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_missing_file(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert "no such" in one_line_naming(err, path)


@pytest.mark.parametrize("content, words", [
    (b"not a checkpoint", "not a minisnn checkpoint"),
    (b"", "empty"),
    (b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", "not a minisnn checkpoint"),
])
def test_not_a_checkpoint(tmp_path, content, words):
    path = tmp_path / "bogus.npz"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert words in one_line_naming(err, path)


def test_npz_without_meta(tmp_path):
    path = tmp_path / "plain.npz"
    path.write_bytes(_npz_bytes(w=np.ones(3)))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert "not a minisnn checkpoint" in one_line_naming(err, path) and "__meta__" in str(err.value)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_file(tmp_path, keep):
    path = tmp_path / "cut.npz"
    save_checkpoint(path, {"w": np.arange(1000, dtype=np.float32)}, {"epoch": 1})
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert "corrupt or truncated" in one_line_naming(err, path)


def test_corrupted_bytes(tmp_path):
    path = tmp_path / "flip.npz"
    save_checkpoint(path, {"w": np.arange(1000, dtype=np.float32)}, {"epoch": 1})
    data = bytearray(path.read_bytes())
    data[2000] ^= 0xFF  # inside the array data: the zip CRC no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert "corrupt or truncated" in one_line_naming(err, path)


@pytest.mark.parametrize("meta, words", [
    (np.array("{not json"), "bad meta JSON"),
    (np.array("[1, 2]"), "bad meta JSON"),
    (np.arange(3), "not a JSON string"),
    (np.array(json.dumps({"format": "something-else", "version": 1})), "not a minisnn checkpoint"),
    (np.array(json.dumps({"version": 1})), "not a minisnn checkpoint"),
    (np.array(json.dumps({"format": "minisnn-checkpoint", "version": 2})), "unsupported checkpoint version 2"),
])
def test_bad_meta(tmp_path, meta, words):
    path = tmp_path / "meta.npz"
    path.write_bytes(_npz_bytes(w=np.ones(2), __meta__=meta))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert words in one_line_naming(err, path)


def test_pickled_member_is_refused(tmp_path):
    path = tmp_path / "pickle.npz"
    meta = json.dumps({"format": "minisnn-checkpoint", "version": 1})
    path.write_bytes(_npz_bytes(w=np.array([{"a": 1}], dtype=object), __meta__=np.array(meta)))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    one_line_naming(err, path)


def test_directory_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path)
    one_line_naming(err, tmp_path)


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


def test_zip_that_is_not_npz(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert "not a minisnn checkpoint" in one_line_naming(err, path)

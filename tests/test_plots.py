"""minisnn.apps.plots: each figure is a valid PNG of the requested size that really shows its
data (series colours in the plot area, box outlines at the expected pixels), edge cases do not
crash, group labels do not overlap, and bad input raises a one-line ValueError."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from minisnn.apps import plots
from minisnn.apps.plots import PALETTE, bar_chart, image_grid, line_chart, nice_ticks

WHITE = (255, 255, 255)


def load(path, size=None) -> np.ndarray:
    """Open the PNG, check format, mode and size, and return its pixels (H, W, 3)."""
    with Image.open(path) as img:
        assert img.format == "PNG" and img.mode == "RGB"
        if size is not None:
            assert img.size == tuple(size)
        pixels = np.asarray(img.convert("RGB"))
    packed = (pixels[..., 0].astype(np.int32) << 16) | (pixels[..., 1].astype(np.int32) << 8) | pixels[..., 2]
    assert len(np.unique(packed)) >= 4, "the figure is (nearly) blank"
    return pixels


def has_color(pixels: np.ndarray, color) -> np.ndarray:
    return np.all(pixels == np.array(color, np.uint8), axis=-1)


def no_temp_files(folder) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".")]


# ----------------------------------------------------------------------------- nice_ticks


@pytest.mark.parametrize("lo, hi, expected", [
    (0.0, 1.0, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    (0.0, 4.0, [0, 1, 2, 3, 4]),
    (0.0, 100.0, [0, 20, 40, 60, 80, 100]),
    (-2.0, 2.0, [-2, -1, 0, 1, 2]),
    (0.13, 0.71, [0, 0.2, 0.4, 0.6, 0.8]),
    (5.0, 5.0, [4.5, 5.0, 5.5]),      # equal values: padded by 10 %
    (0.0, 0.0, [-1, -0.5, 0, 0.5, 1]),
])
def test_nice_ticks_hand_cases(lo, hi, expected):
    np.testing.assert_allclose(nice_ticks(lo, hi), expected, atol=1e-12)


@given(st.floats(-1e6, 1e6), st.floats(1e-3, 1e6))
def test_nice_ticks_properties(lo, width):
    hi = lo + width
    ticks = nice_ticks(lo, hi)
    step = ticks[1] - ticks[0]
    assert 3 <= len(ticks) <= 8
    slack = 1e-8 * max(step, abs(lo), abs(hi))  # rounding noise must not add a tick
    assert ticks[0] <= lo + slack and ticks[-1] >= hi - slack
    np.testing.assert_allclose(np.diff(ticks), step, rtol=0, atol=1e-9 * max(abs(ticks).max(), step))
    mantissa = step / 10.0 ** math.floor(math.log10(step))
    assert min(abs(mantissa - m) for m in (1, 2, 5, 10)) < 1e-6


def test_tick_labels_are_short():
    assert plots._tick_labels(nice_ticks(0, 1)) == ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
    assert plots._tick_labels(nice_ticks(-20, 20)) == ["-20", "-10", "0", "10", "20"]
    assert plots._tick_labels(np.array([-0.0, 1e7])) == ["0", "1e+07"]


# ----------------------------------------------------------------------------- line_chart


def test_line_chart_draws_each_series_in_the_plot_area(tmp_path):
    path = tmp_path / "figs" / "line.png"
    line_chart(path, {"rising": ([0, 5, 10], [0, 5, 10]), "falling": ([0, 10], [10, 0])},
               title="two lines", xlabel="epoch", ylabel="IoU", size=(500, 300))
    px = load(path, (500, 300))
    h, w = px.shape[:2]
    # the legend is at the top: the lower half shows only the plot, where both lines pass
    lower_left, lower_right = px[h // 2:, : w // 2], px[h // 2:, w // 2:]
    assert has_color(lower_left, PALETTE[0]).sum() > 30     # "rising" starts bottom-left
    assert has_color(lower_right, PALETTE[1]).sum() > 30    # "falling" ends bottom-right
    assert no_temp_files(path.parent)


def test_line_chart_line_without_markers_is_drawn(tmp_path):
    path = tmp_path / "l.png"
    line_chart(path, {"s": ([1, 2], [0, 1])}, title="", xlabel="", ylabel="", markers=False)
    px = load(path, (640, 420))
    assert has_color(px[px.shape[0] // 3:], PALETTE[0]).sum() > 100


@pytest.mark.parametrize("series, kwargs", [
    ({"one point": ([3], [0.5])}, {}),
    ({"one point": ([3], [0.5])}, {"markers": False}),
    ({"flat": ([1, 2, 3], [0.7, 0.7, 0.7])}, {}),
    ({"zeros": ([1, 2, 3], [0, 0, 0])}, {}),
    ({"gaps": ([1, 2, 3, 4, 5], [0.1, None, float("nan"), 0.4, 0.5])}, {}),
    ({"all nan": ([1, 2], [None, float("nan")]), "ok": ([1, 2], [1, 2])}, {}),
    ({"only nan": ([1, 2], [None, None])}, {}),
    ({"T": ([1, 3, 10, 30, 100, 1000], [0.1, 0.3, 0.5, 0.6, 0.7, 0.7])}, {"logx": True}),
    ({"T": ([5], [1.0])}, {"logx": True}),
    ({"T": ([1e-3, 1e9], [0, 1])}, {"logx": True}),
    ({"big": ([0, 1], [1e8, 3e8]), "tiny": ([0, 1], [1e-7, 2e-7])}, {}),
    ({f"s{i}": ([0, 1], [i, i + 1]) for i in range(11)}, {}),  # more series than colours
    ({"numpy": (np.arange(4), np.float32([1, 2, 3, 4]))}, {}),
])
def test_line_chart_edge_cases(tmp_path, series, kwargs):
    path = tmp_path / "edge.png"
    line_chart(path, series, title="edge case", xlabel="x", ylabel="y", size=(400, 300), **kwargs)
    load(path, (400, 300))


def test_single_point_is_visible(tmp_path):
    path = tmp_path / "p.png"
    line_chart(path, {"p": ([3], [0.5])}, title="t", xlabel="x", ylabel="y", markers=False)
    px = load(path)
    assert has_color(px[px.shape[0] // 3:], PALETTE[0]).sum() >= 9


def test_long_legend_wraps(tmp_path):
    series = {f"a rather long series name {i}": ([0, 1], [i, i]) for i in range(8)}
    line_chart(tmp_path / "w.png", series, title="t", xlabel="x", ylabel="y", size=(400, 420))
    px = load(tmp_path / "w.png", (400, 420))
    for color in PALETTE:
        assert has_color(px, color).any()


@pytest.mark.parametrize("series, kwargs, words", [
    ({}, {}, "no series"),
    ({"a": ([1, 2, 3], [1, 2])}, {}, "3 x values but 2 y values"),
    ({"a": ([], [])}, {}, "empty"),
    ({"a": [1, 2, 3]}, {}, "pair"),
    ({"a": ([1, 2], [[1], [2]])}, {}, "1-D"),
    ({"a": ([1, 2], ["x", 2])}, {}, "numbers"),
    ({"a": ([0, 1], [1, 2])}, {"logx": True}, "x <= 0"),
    ({"a": ([1, 2], [1, 2])}, {"size": (60, 40)}, "too small"),
])
def test_line_chart_bad_input(tmp_path, series, kwargs, words):
    with pytest.raises(ValueError, match="line_chart") as err:
        line_chart(tmp_path / "bad.png", series, title="t", xlabel="x", ylabel="y", **kwargs)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "bad.png").exists()


# ----------------------------------------------------------------------------- bar_chart


def bar_runs(row: np.ndarray, colors) -> list[tuple[int, int]]:
    """(first, last) columns of the runs of bar-coloured pixels in one image row."""
    mask = np.zeros(len(row), bool)
    for c in colors:
        mask |= has_color(row, c)
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(int), 0]))
    return list(zip(edges[::2], edges[1::2] - 1))


def test_bar_chart_draws_grouped_bars(tmp_path):
    path = tmp_path / "bars.png"
    bar_chart(path, ["L0", "L1", "L2"], {"converted": [100, 10, 90], "hybrid": [20, 100, 10]},
              title="rates", ylabel="Hz", size=(480, 320))
    px = load(path, (480, 320))
    for color in PALETTE[:2]:
        assert has_color(px[px.shape[0] // 2:], color).sum() > 200
    # at mid-height the tall bars are cut: converted L0, hybrid L1, converted L2
    row = px[px.shape[0] * 3 // 5]
    runs = bar_runs(row, PALETTE[:2])
    assert [tuple(row[a]) for a, _ in runs] == [PALETTE[0], PALETTE[1], PALETTE[0]]


def test_bar_chart_group_labels_do_not_overlap(tmp_path):
    groups = [f"layer_conv_{i}" for i in range(9)]
    path = tmp_path / "nine.png"
    bar_chart(path, groups, {"converted": [100.0] * 9, "hybrid": [90.0] * 9}, title="rates", ylabel="Hz")
    px = load(path, (640, 420))
    h = px.shape[0]
    runs = bar_runs(px[h // 2], PALETTE[:2])
    assert len(runs) == 18  # 9 groups x 2 series, separated by a pixel
    bar_bottom = max(np.flatnonzero(has_color(px[:, runs[0][0]], PALETTE[0])))
    band = px[bar_bottom + 2:]                    # below the zero line: tick marks and labels
    assert (band != 255).any(axis=-1).sum() > 500  # the labels are there
    for (_, last), (first, _) in zip(runs[1::2], runs[2::2]):
        boundary = (last + first) // 2           # between two groups: no label ink crosses it
        assert np.all(band[:, boundary] == 255), f"a label crosses column {boundary}"


@pytest.mark.parametrize("groups, series", [
    (["only"], {"a": [3.0]}),
    (["a", "b"], {"zeros": [0, 0]}),
    (["a", "b", "c"], {"neg": [-1, 2, None], "nan": [float("nan")] * 3}),
    ([f"g{i}" for i in range(40)], {"s": list(range(40)), "t": list(range(40))}),
    (["a very long group label that would not fit anywhere at all " * 3, "b"], {"s": [1, 2]}),
])
def test_bar_chart_edge_cases(tmp_path, groups, series):
    path = tmp_path / "edge.png"
    bar_chart(path, groups, series, title="edge", ylabel="y", size=(400, 300))
    load(path, (400, 300))


@pytest.mark.parametrize("groups, series, words", [
    ([], {"a": []}, "no groups"),
    (["a"], {}, "no series"),
    (["a", "b"], {"s": [1]}, "1 values for 2 groups"),
    (["a"], {"s": ["x"]}, "numbers"),
])
def test_bar_chart_bad_input(tmp_path, groups, series, words):
    with pytest.raises(ValueError, match="bar_chart") as err:
        bar_chart(tmp_path / "bad.png", groups, series, title="t", ylabel="y")
    assert words in str(err.value) and "\n" not in str(err.value)


# ----------------------------------------------------------------------------- image_grid


def find_tile(px: np.ndarray, color) -> tuple[int, int, int, int]:
    """Bounding box (x0, y0, x1, y1) of the pixels of ``color``."""
    ys, xs = np.nonzero(has_color(px, color))
    return xs.min(), ys.min(), xs.max(), ys.max()


def solid(rgb, h=20, w=20) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, float)[:, None, None], (3, h, w)).copy()


GREEN_BG, PINK_BG = (0.2, 0.6, 0.4), (0.8, 0.4, 0.6)  # tile colours no text or box uses


def test_image_grid_box_outlines_at_expected_pixels(tmp_path):
    path = tmp_path / "grid.png"
    red, blue = (255, 0, 0), (0, 0, 255)
    images = [solid(GREEN_BG), solid(PINK_BG, 20, 30)]
    boxes = [{"truth": np.array([0.25, 0.25, 0.75, 0.75])},
             {"pred": np.array([0.9, 0.5, 0.1, 0.0])}]  # corners given in the wrong order
    image_grid(path, images, boxes, colors={"truth": red, "pred": blue}, titles=["IoU 0.91", "IoU 0.10"],
               cols=2, scale=2)
    px = load(path)
    # tile 1: 20 x 20 at scale 2 -> 40 x 40; box from pixel 10 to 30
    x0, y0, x1, y1 = find_tile(px, (51, 153, 102))
    assert (x1 - x0 + 1, y1 - y0 + 1) == (40, 40)
    for dx, dy in [(10, 10), (30, 10), (10, 30), (30, 30), (20, 10), (11, 20)]:
        assert tuple(px[y0 + dy, x0 + dx]) == red, (dx, dy)
    assert tuple(px[y0 + 20, x0 + 20]) == (51, 153, 102)
    assert tuple(px[y0 + 9, x0 + 9]) == (51, 153, 102)
    # tile 2: 30 wide x 20 high -> 60 x 40; box x 6..54, y 0..20
    x0, y0, _, _ = find_tile(px, (204, 102, 153))
    for dx, dy in [(6, 0), (54, 0), (6, 20), (54, 20)]:
        assert tuple(px[y0 + dy, x0 + dx]) == blue, (dx, dy)
    # the legend row is above the tiles and shows both colours; the titles are below
    assert has_color(px[:y0], red).any() and has_color(px[:y0], blue).any()
    assert (px[y0 + 41:] != 255).any()


def test_image_grid_layout_and_scale(tmp_path, rng):
    images = [rng.uniform(0, 1, (3, 16, 24)) for _ in range(5)]
    boxes = [{"a": rng.uniform(0, 1, 4), "b": rng.uniform(0, 1, (2, 4))} for _ in images]
    path = tmp_path / "g.png"
    image_grid(path, images, boxes, colors={"a": (0, 200, 0), "b": "red", "unused": (0, 0, 0)}, cols=3, scale=3)
    px = load(path)
    assert px.shape[1] >= 3 * 24 * 3 and px.shape[0] >= 2 * 16 * 3
    assert has_color(px, (0, 200, 0)).sum() > 50 and has_color(px, (255, 0, 0)).sum() > 50


@pytest.mark.parametrize("image", [
    np.full((3, 8, 8), 2.0),            # clipped to white
    np.full((3, 8, 8), np.nan),         # shown black
    np.zeros((3, 1, 1)),
])
def test_image_grid_odd_values(tmp_path, image):
    image_grid(tmp_path / "o.png", [image], [{"b": [0, 0, 1, 1]}], colors={"b": (255, 0, 0)},
               titles=["a long caption wider than the tiny image"])
    load(tmp_path / "o.png")


@pytest.mark.parametrize("kwargs, words", [
    (dict(images=[]), "no images"),
    (dict(images=[np.zeros((8, 8, 3))]), "(3, H, W)"),
    (dict(images=[np.zeros((3, 8))]), "(3, H, W)"),
    (dict(boxes=[]), "box dicts"),
    (dict(titles=["a", "b"]), "titles"),
    (dict(boxes=[{"nocolour": [0, 0, 1, 1]}]), "no colour"),
    (dict(boxes=[{"b": [0, 0, 1]}]), "4 finite numbers"),
    (dict(boxes=[{"b": [0, 0, np.nan, 1]}]), "4 finite numbers"),
    (dict(colors={"b": (0, 0, 300)}), "0..255"),
    (dict(colors={"b": (0, 0)}), "0..255"),
    (dict(cols=0), "cols"),
    (dict(scale=1.5), "scale"),
])
def test_image_grid_bad_input(tmp_path, kwargs, words):
    args = dict(images=[np.zeros((3, 8, 8))], boxes=[{"b": [0, 0, 1, 1]}], colors={"b": (255, 0, 0)})
    args.update(kwargs)
    if "images" in kwargs and kwargs["images"] and "boxes" not in kwargs:
        args["boxes"] = [{}]
    images, boxes = args.pop("images"), args.pop("boxes")
    with pytest.raises(ValueError, match="image_grid") as err:
        image_grid(tmp_path / "bad.png", images, boxes, **args)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "bad.png").exists()

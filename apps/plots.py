"""Small PNG figures drawn with Pillow only: line charts, grouped bar charts and image grids.

A deliberately tiny plotting kit for the reports (no matplotlib).  A chart is laid out top
to bottom as::

    +-------------------------------------------+
    |                   title                   |
    |        [#] series a    [#] series b       |   legend row(s), wrapped to the width
    |  y  1.0 -+--------------------------+     |
    |  l       |                          |     |
    |  a  0.5 -+        plot area         |     |
    |  b       |                          |     |
    |  e  0.0 -+--------------------------+     |
    |  l       0      10      20      30        |   x tick labels (or group labels)
    |                   xlabel                  |
    +-------------------------------------------+

Tick values come from :func:`nice_ticks` (steps of 1, 2 or 5 x 10^k).  Series take their
colours from :data:`PALETTE` in order.  Every figure is an RGB PNG, rendered in memory and then
written with :func:`minisnn.io.atomic_write_bytes`, so a reader never sees half a file.
"""

from __future__ import annotations

import functools
import io
import math

import numpy as np
from PIL import Image, ImageColor, ImageDraw, ImageFont

from ..io import atomic_write_bytes

__all__ = ["PALETTE", "nice_ticks", "line_chart", "bar_chart", "image_grid"]

#: Series colours, in order of use (repeated after the eighth series).
PALETTE = [
    (31, 119, 180),   # blue
    (255, 127, 14),   # orange
    (44, 160, 44),    # green
    (214, 39, 40),    # red
    (148, 103, 189),  # purple
    (140, 86, 75),    # brown
    (227, 119, 194),  # pink
    (23, 190, 207),   # cyan
]
BACKGROUND = (255, 255, 255)
INK = (40, 40, 40)       # text, frame and tick marks
GRID = (228, 228, 228)   # grid lines
PAD = 8                  # the spacing unit, in pixels
TICK = 4                 # length of a tick mark
SMALL, NORMAL, LARGE = 11, 12, 15  # font sizes: tick labels, axis labels and legend, title


# ----------------------------------------------------------------------------- text


@functools.lru_cache(maxsize=None)
def _font(size: int):
    """Pillow's built-in font at ``size`` pixels (a fixed-size bitmap font before Pillow 10.1)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def _text_size(font, text: str) -> tuple[int, int]:
    left, top, right, bottom = font.getbbox(text)
    return right - left, bottom - top


def _line_height(font) -> int:
    return _text_size(font, "Ag")[1]


_FRACTION = {"left": 0.0, "top": 0.0, "center": 0.5, "right": 1.0, "bottom": 1.0}


def _text(draw, xy, text, font, ha="left", va="top", fill=INK) -> None:
    """Draw ``text`` aligned to ``xy`` (ha: left/center/right, va: top/center/bottom).

    Horizontally the text's own ink box is aligned; vertically the box of "Ag", so that texts
    with and without descenders sit on the same baseline.
    """
    left, _, right, _ = font.getbbox(text)
    _, top, _, bottom = font.getbbox("Ag")
    x = xy[0] - left - _FRACTION[ha] * (right - left)
    y = xy[1] - top - _FRACTION[va] * (bottom - top)
    draw.text((round(x), round(y)), text, font=font, fill=fill)


def _vtext(img, xy, text, font, ha="center", va="center", fill=INK) -> None:
    """Like :func:`_text`, rotated 90 degrees so that it reads from bottom to top."""
    left, top, right, bottom = font.getbbox(text)
    mask = Image.new("L", (max(right - left, 1), max(bottom - top, 1)))
    ImageDraw.Draw(mask).text((-left, -top), text, font=font, fill=255)
    mask = mask.transpose(Image.Transpose.ROTATE_90)
    x = round(xy[0] - _FRACTION[ha] * mask.width)
    y = round(xy[1] - _FRACTION[va] * mask.height)
    img.paste(fill, (x, y, x + mask.width, y + mask.height), mask)


def _shorten(font, text: str, max_width: float) -> str:
    """``text``, cut and ended with ".." if it is wider than ``max_width``."""
    if _text_size(font, text)[0] <= max_width:
        return text
    while text and _text_size(font, text + "..")[0] > max_width:
        text = text[:-1]
    return text + ".."


# ----------------------------------------------------------------------------- legend


def _legend_rows(items, width, font) -> list[list[tuple[str, tuple, int]]]:
    """Split legend entries ``(name, colour)`` into rows no wider than ``width``."""
    rows, row, used = [], [], 0
    for name, color in items:
        w = _legend_entry_width(font, name)
        if row and used + 2 * PAD + w > width:
            rows.append(row)
            row, used = [], 0
        used += (2 * PAD if row else 0) + w
        row.append((name, color, w))
    return rows + [row] if row else rows


def _legend_entry_width(font, name: str) -> int:
    """A colour square one line high, a small gap and the name."""
    return _line_height(font) + 4 + _text_size(font, name)[0]


def _draw_legend(draw, rows, y, width, font) -> int:
    """Draw the rows centred on the canvas from ``y`` down; return the y below them."""
    h = _line_height(font)
    for row in rows:
        x = (width - sum(w for _, _, w in row) - 2 * PAD * (len(row) - 1)) // 2
        for name, color, w in row:
            draw.rectangle([x, y, x + h - 1, y + h - 1], fill=color)
            _text(draw, (x + h + 4, y + h / 2), name, font, va="center")
            x += w + 2 * PAD
        y += h + PAD // 2
    return y


# ----------------------------------------------------------------------------- axes


def nice_ticks(lo: float, hi: float, n: int = 5) -> np.ndarray:
    """About ``n`` evenly spaced "nice" tick values (a step of 1, 2 or 5 x 10^k) covering a range.

    Parameters
    ----------
    lo, hi : float
        The data range (finite).  An empty range ``lo == hi`` is widened by 10 % of ``|lo|``
        on each side (by 1 around zero), so a constant series still gets an axis.
    n : int
        The wanted number of ticks: the step giving the count closest to ``n`` is chosen
        (on a tie, the one whose ticks span the shorter interval).

    Returns
    -------
    numpy.ndarray
        Ticks with ``ticks[0] <= lo`` and ``ticks[-1] >= hi``: use them as the axis limits.

    Examples
    --------
    >>> nice_ticks(0.0, 1.0).tolist()
    [0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"nice_ticks: the range must be finite, got ({lo}, {hi})")
    lo, hi = min(lo, hi), max(lo, hi)
    if lo == hi:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    mag = 10.0 ** math.floor(math.log10((hi - lo) / n))
    candidates = []
    for step in (m * mag for m in (1, 2, 5, 10, 20, 50)):
        first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
        # the tick count closest to n; on a tie, the tighter axis
        candidates.append((abs(last - first + 1 - n), (last - first) * step, first, last, step))
    _, _, first, last, step = min(candidates)
    return np.arange(first, last + 1) * step


def _tick_labels(ticks) -> list[str]:
    """Labels with as many decimals as the step needs ("0.25" rather than "0.250000001")."""
    step = ticks[1] - ticks[0]
    if max(abs(ticks[0]), abs(ticks[-1])) >= 1e6 or step < 1e-4:
        return [f"{t + 0.0:.3g}" for t in ticks]
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return [f"{t + 0.0:.{decimals}f}" for t in ticks]  # + 0.0 turns -0.0 into 0.0


def _log_ticks(x: np.ndarray) -> np.ndarray:
    """Exponents k of the decade ticks 10^k covering positive ``x`` (at most about 7 ticks)."""
    if x.size == 0:
        return np.array([0, 1])
    k0 = math.floor(math.log10(x.min()) + 1e-9)
    k1 = math.ceil(math.log10(x.max()) - 1e-9)
    if k0 == k1:
        k0, k1 = k0 - 1, k1 + 1
    step = max(1, math.ceil((k1 - k0) / 6))
    return np.arange(k0, k1 + step, step)


def _scale(v, v0, v1, p0, p1):
    """Map ``v`` from the data interval [v0, v1] to the pixel interval [p0, p1]."""
    return p0 + (np.asarray(v, dtype=np.float64) - v0) / (v1 - v0) * (p1 - p0)


def _span(values: np.ndarray) -> tuple[float, float]:
    return (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)


def _start_chart(size, title, legend_items):
    """A blank canvas with the title and legend drawn; returns (img, draw, y below them)."""
    width, height = _check_size(size)
    img = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(img)
    y = PAD
    if title:
        _text(draw, (width / 2, y), title, _font(LARGE), ha="center")
        y += _line_height(_font(LARGE)) + PAD
    rows = _legend_rows(legend_items, width - 2 * PAD, _font(NORMAL))
    y = _draw_legend(draw, rows, y, width, _font(NORMAL))
    return img, draw, y + PAD


def _left_margin(ylabel, labels) -> int:
    """Room for the rotated y label, the tick labels and the tick marks."""
    ylabel_w = _line_height(_font(NORMAL)) + PAD if ylabel else 0
    return PAD + ylabel_w + max(_text_size(_font(SMALL), s)[0] for s in labels) + TICK + 3


def _draw_y_axis(img, draw, box, ticks, ylabel) -> None:
    """Horizontal grid lines, tick marks and labels at ``ticks``, and the rotated y label."""
    left, top, right, bottom = box
    for t, label in zip(ticks, _tick_labels(ticks)):
        y = round(float(_scale(t, ticks[0], ticks[-1], bottom, top)))
        draw.line([(left, y), (right, y)], fill=GRID)
        draw.line([(left - TICK, y), (left, y)], fill=INK)
        _text(draw, (left - TICK - 3, y), label, _font(SMALL), ha="right", va="center")
    if ylabel:
        _vtext(img, (PAD, (top + bottom) / 2), ylabel, _font(NORMAL), ha="left")


def _check_size(size) -> tuple[int, int]:
    width, height = (int(v) for v in size)
    if width < 1 or height < 1:
        raise ValueError(f"size must be two positive integers (width, height), got {size!r}")
    return width, height


def _check_plot_box(fn, box, size) -> None:
    left, top, right, bottom = box
    if right - left < 20 or bottom - top < 20:
        raise ValueError(f"{fn}: size {tuple(size)} is too small for the title, legend and labels")


def _save(img: Image.Image, path) -> None:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def _floats(what: str, values) -> np.ndarray:
    """A 1-D float64 array, with ``None`` entries turned into NaN."""
    try:
        a = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a 1-D sequence of numbers (or None)") from None
    if a.ndim != 1:
        raise ValueError(f"{what} must be a 1-D sequence of numbers (or None), got shape {a.shape}")
    return a


# ----------------------------------------------------------------------------- line chart


def line_chart(path, series: dict[str, tuple[list, list]], *, title: str, xlabel: str, ylabel: str,
               size=(640, 420), logx: bool = False, markers: bool = True) -> None:
    """Draw named ``(x, y)`` series as lines on one pair of axes and save a PNG.

    Parameters
    ----------
    path : str or os.PathLike
        The PNG to write (atomically).
    series : dict of str to (x, y)
        One line per entry, coloured from :data:`PALETTE` in order and listed in the legend.
        Points whose x or y is NaN or None are skipped (the line joins their neighbours).
    title, xlabel, ylabel : str
        Texts around the axes (an empty string leaves one out).
    size : (int, int)
        Width and height of the image in pixels.
    logx : bool
        Logarithmic x axis with ticks at powers of ten; every x must then be positive.
    markers : bool
        Draw a dot at each point.  A series with a single point always gets its dot.

    Raises
    ------
    ValueError
        If ``series`` is empty, a series has no points or different numbers of x and y values,
        ``logx`` meets an x <= 0, or ``size`` is too small for the labels.
    """
    if not series:
        raise ValueError("line_chart: no series to plot")
    data = {}
    for name, xy in series.items():
        try:
            x, y = xy
        except (TypeError, ValueError):
            raise ValueError(f"line_chart: series {name!r} must be a pair (x, y)") from None
        x, y = _floats(f"line_chart: x of series {name!r}", x), _floats(f"line_chart: y of series {name!r}", y)
        if len(x) != len(y):
            raise ValueError(f"line_chart: series {name!r} has {len(x)} x values but {len(y)} y values")
        if len(x) == 0:
            raise ValueError(f"line_chart: series {name!r} is empty")
        keep = np.isfinite(x) & np.isfinite(y)
        if logx and np.any(x[keep] <= 0):
            raise ValueError(f"line_chart: series {name!r} has x <= 0, which a logarithmic x axis cannot show")
        data[name] = (x[keep], y[keep])

    all_x = np.concatenate([x for x, _ in data.values()])
    all_y = np.concatenate([y for _, y in data.values()])
    if logx:  # the axis runs over log10(x): the ticks are exponents
        xticks = _log_ticks(all_x)
        xlabels = [f"{10.0 ** k:g}" for k in xticks]
    else:
        xticks = nice_ticks(*_span(all_x))
        xlabels = _tick_labels(xticks)
    yticks = nice_ticks(*_span(all_y))
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(data)}

    img, draw, top = _start_chart(size, title, colors.items())
    width, height = img.size
    small, normal = _font(SMALL), _font(NORMAL)
    left = _left_margin(ylabel, _tick_labels(yticks))
    right = width - PAD - max(PAD, _text_size(small, xlabels[-1])[0] // 2)
    bottom = height - PAD - TICK - 3 - _line_height(small) - (PAD + _line_height(normal) if xlabel else 0)
    box = (left, top, right, bottom)
    _check_plot_box("line_chart", box, size)

    _draw_y_axis(img, draw, box, yticks, ylabel)
    for t, label in zip(xticks, xlabels):
        x = round(float(_scale(t, xticks[0], xticks[-1], left, right)))
        draw.line([(x, top), (x, bottom)], fill=GRID)
        draw.line([(x, bottom), (x, bottom + TICK)], fill=INK)
        _text(draw, (x, bottom + TICK + 3), label, small, ha="center")
    if xlabel:
        _text(draw, ((left + right) / 2, height - PAD), xlabel, normal, ha="center", va="bottom")

    for name, (x, y) in data.items():
        px = _scale(np.log10(x) if logx else x, xticks[0], xticks[-1], left, right)
        py = _scale(y, yticks[0], yticks[-1], bottom, top)
        points = [(round(a), round(b)) for a, b in zip(px, py)]
        if len(points) > 1:
            draw.line(points, fill=colors[name], width=2, joint="curve")
        if markers or len(points) == 1:
            for a, b in points:
                draw.ellipse([a - 3, b - 3, a + 3, b + 3], fill=colors[name])
    draw.rectangle(box, outline=INK)
    _save(img, path)


# ----------------------------------------------------------------------------- bar chart


def bar_chart(path, groups: list[str], series: dict[str, list[float]], *, title: str, ylabel: str,
              size=(640, 420)) -> None:
    """Draw grouped bars (one bar per series in each group) and save a PNG.

    For example per-layer firing rates, ``groups = ["conv1", "conv2", ...]`` and
    ``series = {"converted": [...], "hybrid": [...]}``.  Bars start at zero (negative values
    hang below it); a NaN or None value leaves its bar out.  Group labels that do not fit side
    by side are turned upright (and shortened with ".." if very long), so they never overlap.

    Raises
    ------
    ValueError
        If ``groups`` or ``series`` is empty, a series does not have one value per group, or
        ``size`` is too small for the labels.
    """
    if not groups:
        raise ValueError("bar_chart: no groups")
    if not series:
        raise ValueError("bar_chart: no series to plot")
    values = {}
    for name, v in series.items():
        values[name] = _floats(f"bar_chart: series {name!r}", v)
        if len(values[name]) != len(groups):
            raise ValueError(f"bar_chart: series {name!r} has {len(values[name])} values for {len(groups)} groups")
    finite = np.concatenate(list(values.values()))
    finite = finite[np.isfinite(finite)]
    lo, hi = _span(finite)
    yticks = nice_ticks(min(lo, 0.0), max(hi, 0.0))
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(values)}

    img, draw, top = _start_chart(size, title, colors.items())
    width, height = img.size
    left, right = _left_margin(ylabel, _tick_labels(yticks)), width - 2 * PAD
    slot = (right - left) / len(groups)
    labels, font, upright = _fit_group_labels([str(g) for g in groups], slot, height // 3)
    label_h = max(_text_size(font, s)[0] for s in labels) if upright else _line_height(font)
    bottom = height - PAD - TICK - 3 - label_h
    box = (left, top, right, bottom)
    _check_plot_box("bar_chart", box, size)

    _draw_y_axis(img, draw, box, yticks, ylabel)
    zero = float(_scale(0.0, yticks[0], yticks[-1], bottom, top))
    bar_w = 0.8 * slot / len(values)
    for g, label in enumerate(labels):
        for s, (name, v) in enumerate(values.items()):
            if np.isfinite(v[g]):
                x0 = left + (g + 0.1) * slot + s * bar_w
                y = float(_scale(v[g], yticks[0], yticks[-1], bottom, top))
                x1 = max(round(x0 + bar_w) - (2 if bar_w > 3 else 1), round(x0))  # 1-pixel gaps
                draw.rectangle([round(x0), round(min(y, zero)), x1, round(max(y, zero))], fill=colors[name])
        x = round(left + (g + 0.5) * slot)
        draw.line([(x, bottom), (x, bottom + TICK)], fill=INK)
        if upright:
            _vtext(img, (x, bottom + TICK + 3), label, font, ha="center", va="top")
        else:
            _text(draw, (x, bottom + TICK + 3), label, font, ha="center")
    draw.line([(left, round(zero)), (right, round(zero))], fill=INK)
    draw.rectangle(box, outline=INK)
    _save(img, path)


def _fit_group_labels(labels, slot, max_length):
    """Choose how to write the group labels: side by side if they fit in their slots,
    otherwise upright, in a smaller font if need be and cut to ``max_length`` pixels.

    Returns ``(labels, font, upright)``.
    """
    font = _font(SMALL)
    if max(_text_size(font, s)[0] for s in labels) <= slot - 4:
        return labels, font, False
    for size in (SMALL, 9, 7):  # upright labels are one line high: shrink that to the slot
        font = _font(size)
        if _line_height(font) <= slot - 2:
            break
    return [_shorten(font, s, max_length) for s in labels], font, True


# ----------------------------------------------------------------------------- image grid


def image_grid(path, images: list[np.ndarray], boxes: list[dict[str, np.ndarray]], *,
               colors: dict[str, tuple], titles: list[str] | None = None, cols: int = 4,
               scale: int = 2) -> None:
    """Draw images in a grid with labelled box outlines and save a PNG.

    Parameters
    ----------
    path : str or os.PathLike
        The PNG to write (atomically).
    images : list of numpy.ndarray, each (3, H, W)
        RGB images with values in [0, 1] (outside values are clipped, NaN shows black).
        Each is enlarged ``scale`` times (nearest neighbour).
    boxes : list of dict of str to array_like
        For each image, ``name -> [x1, y1, x2, y2]`` in normalised coordinates (0..1 across
        the image; corners in either order; clipped to the image), or an array ``(K, 4)`` of
        several boxes with that name.  Each is outlined ``scale`` pixels wide in
        ``colors[name]``; later names are drawn on top.
    colors : dict of str to colour
        The colour of each box name, as an ``(r, g, b)`` tuple of 0..255 (or a Pillow colour
        name).  A legend row at the top lists them in this order.
    titles : list of str, optional
        A caption under each image, e.g. ``"IoU 0.91 / 0.85 / 0.88"``.
    cols : int
        Images per row.
    scale : int
        Enlargement factor.

    Notes
    -----
    A box edge at normalised ``v`` is drawn from pixel ``min(round(v * W * scale), W * scale - 1)``
    of the enlarged image (inwards), so ``[0.25, 0.25, 0.75, 0.75]`` on a 20 x 20 image at
    scale 2 has its top-left corner at pixel (10, 10) of the tile.

    Raises
    ------
    ValueError
        If there are no images, an image is not (3, H, W), ``boxes`` or ``titles`` do not have
        one entry per image, a box is not four finite numbers, a box name has no colour, or
        ``cols``/``scale`` is not a positive integer.
    """
    if not images:
        raise ValueError("image_grid: no images")
    if len(boxes) != len(images):
        raise ValueError(f"image_grid: {len(boxes)} box dicts for {len(images)} images")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"image_grid: {len(titles)} titles for {len(images)} images")
    for name, value in (("cols", cols), ("scale", scale)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"image_grid: {name} must be a positive integer, got {value!r}")
    rgb = {name: _rgb(name, c) for name, c in colors.items()}
    tiles = [_tile(i, image, scale) for i, image in enumerate(images)]

    font = _font(NORMAL)
    caption_h = _line_height(font) + 6 if titles else 0
    cell_w = max(max(t.width for t in tiles), max((_text_size(font, s)[0] for s in titles or [""])))
    cell_h = max(t.height for t in tiles) + caption_h
    cols = min(int(cols), len(tiles))
    rows = math.ceil(len(tiles) / cols)
    widest_entry = max((_legend_entry_width(font, name) for name in rgb), default=0)
    width = max(PAD + cols * (cell_w + PAD), widest_entry + 2 * PAD)
    legend = _legend_rows(rgb.items(), width - 2 * PAD, font)
    top = PAD + len(legend) * (_line_height(font) + PAD // 2) + (PAD // 2 if legend else 0)
    img = Image.new("RGB", (width, top + rows * (cell_h + PAD)), BACKGROUND)
    draw = ImageDraw.Draw(img)
    _draw_legend(draw, legend, PAD, width, font)

    for i, tile in enumerate(tiles):
        cell_x = PAD + (i % cols) * (cell_w + PAD)
        cell_y = top + (i // cols) * (cell_h + PAD)
        x0 = cell_x + (cell_w - tile.width) // 2
        img.paste(tile, (x0, cell_y))
        for name, b in boxes[i].items():
            if name not in rgb:
                raise ValueError(f"image_grid: box {name!r} of image {i} has no colour in `colors`")
            for x1, y1, x2, y2 in _boxes(i, name, b):
                corners = [x0 + _pixel(min(x1, x2), tile.width), cell_y + _pixel(min(y1, y2), tile.height),
                           x0 + _pixel(max(x1, x2), tile.width), cell_y + _pixel(max(y1, y2), tile.height)]
                draw.rectangle(corners, outline=rgb[name], width=int(scale))
        if titles:
            _text(draw, (cell_x + cell_w / 2, cell_y + cell_h - caption_h + 4), str(titles[i]), font, ha="center")
    _save(img, path)


def _tile(i: int, image, scale: int) -> Image.Image:
    """The (3, H, W) float image as an enlarged RGB Pillow image."""
    a = np.asarray(image, dtype=np.float64)
    if a.ndim != 3 or a.shape[0] != 3 or a.shape[1] == 0 or a.shape[2] == 0:
        raise ValueError(f"image_grid: image {i} must have shape (3, H, W), got {a.shape}")
    pixels = np.clip(np.nan_to_num(a, nan=0.0), 0.0, 1.0).transpose(1, 2, 0)
    tile = Image.fromarray((pixels * 255 + 0.5).astype(np.uint8))
    return tile.resize((tile.width * scale, tile.height * scale), Image.Resampling.NEAREST)


def _pixel(v: float, n: int) -> int:
    """The pixel (0..n-1) of normalised coordinate ``v`` across ``n`` pixels."""
    return min(max(round(v * n), 0), n - 1)


def _boxes(i: int, name: str, b) -> np.ndarray:
    b = np.asarray(b, dtype=np.float64)
    if b.size == 0 or b.shape[-1] != 4 or b.ndim > 2 or not np.all(np.isfinite(b)):
        raise ValueError(f"image_grid: box {name!r} of image {i} must be 4 finite numbers "
                         f"[x1, y1, x2, y2] (or K x 4), got shape {b.shape}")
    return b.reshape(-1, 4)


def _rgb(name: str, color) -> tuple[int, int, int]:
    try:
        rgb = ImageColor.getrgb(color)[:3] if isinstance(color, str) else tuple(int(c) for c in color)
    except (TypeError, ValueError):
        rgb = ()
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise ValueError(f"image_grid: colour of {name!r} must be (r, g, b) with values 0..255, got {color!r}")
    return rgb

"""The data command line: ``minisnn-data fetch caltech101|msd-hippocampus --dest DIR`` and
``minisnn-data check DIR``.

``fetch`` downloads a data set from its official public source, with a progress bar, resume of a
partial download, size and checksum verification, safe extraction and a completion marker, so a
second run verifies the files and does nothing (:mod:`minisnn.apps.fetch` has the details and the
sources).  ``--url`` or ``$MINISNN_DATA_URL_CALTECH101`` / ``$MINISNN_DATA_URL_MSD_HIPPOCAMPUS``
point it at a mirror (which must serve the same bytes, or give ``--md5`` / ``--sha256``).

``check`` detects which kind of data folder ``DIR`` is -- the airplanes CSV layout
(``*.csv`` + ``images/``), the original Caltech-101 layout (``101_ObjectCategories/airplanes`` +
``Annotations/Airplanes_Side_2``) or the Medical Segmentation Decathlon NIfTI layout
(``imagesTr/`` + ``labelsTr/``) -- scans every file and prints a report (counts, unreadable files,
degenerate boxes, shape/affine mismatches, label values, ...), then loads the folder with the
app's own loader (:func:`~minisnn.apps.loc_data.load_boxes` or
:func:`~minisnn.apps.seg_data.load_volumes`), whose verdict decides: usable (exit 0) or not
(exit 1, with the loader's one-line reason).

Exit status: 0 success, 1 a failed fetch or an unusable folder, 2 a usage error.  Every error is
one line on stderr, ``error: ...``, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .fetch import SOURCES, FetchError, fetch, marker_path, url_env_var, verify_marker

EXAMPLES = 5  # problems listed per kind in the check report


class _OneLineErrors(click.Group):
    """A click group whose usage errors are one line (``error: ...``) instead of click's block."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False,
                              **extra)
        except click.exceptions.NoArgsIsHelpError as e:  # bare "minisnn-data": show the help
            click.echo(e.ctx.get_help() if e.ctx else str(e))
            sys.exit(0)
        except click.ClickException as e:
            hint = ""
            ctx = getattr(e, "ctx", None)
            if ctx is not None:
                hint = f" (see {ctx.command_path} --help)"
            click.echo(f"error: {' '.join(e.format_message().split())}{hint}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("error: interrupted (a partial download is kept: run the same command again to resume)",
                       err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


def _fail(message: str, status: int = 1):
    click.echo(f"error: {' '.join(str(message).split())}", err=True)
    sys.exit(status)


@click.group(cls=_OneLineErrors, help="Download and validate the data sets of the minisnn apps.")
def main():
    pass


def _sources_help() -> str:
    lines = []
    for s in SOURCES.values():
        lines.append(f"{s.name}: {s.url} ({s.checksum[0]} {s.checksum[1]}; --data DEST"
                     f"{'' if s.data_dir == '.' else '/' + s.data_dir}; URL override ${url_env_var(s.name)})")
    return "\b\n" + "\n".join(lines)


@main.command("fetch", epilog=_sources_help())
@click.argument("name", metavar="NAME", type=click.Choice(list(SOURCES)))
@click.option("--dest", type=click.Path(path_type=Path), required=True,
              help="Folder to download and unpack into (created if missing).")
@click.option("--url", default=None, help="Download from this URL instead (a mirror, or a local server in tests).")
@click.option("--md5", default=None, help="Expected MD5 of the archive instead of the official one.")
@click.option("--sha256", default=None, help="Expected SHA-256 of the archive instead of the official MD5.")
@click.option("--size", type=int, default=None, help="Expected size of the archive in bytes.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for the server.")
@click.option("--keep-archive/--remove-archive", default=True, show_default=True,
              help="Keep the verified archive in --dest after unpacking (a later repair needs no download).")
@click.option("--quiet", is_flag=True, help="No progress bar and no progress messages.")
def fetch_cmd(name, dest, url, md5, sha256, size, timeout, keep_archive, quiet):
    """Download data set NAME from its official source into --dest, verify and unpack it.

    A partial download (DEST/.<archive>.partial) is resumed; the archive's size and checksum are
    verified before anything is unpacked; members that would land outside --dest are refused; a
    marker file written last makes a second run verify the files and do nothing.
    """
    if md5 and sha256:
        _fail("give --md5 or --sha256, not both", 2)
    if timeout <= 0:
        _fail(f"--timeout must be > 0, got {timeout:g}", 2)
    if size is not None and size < 1:
        _fail(f"--size must be >= 1, got {size}", 2)
    checksum = ("md5", md5) if md5 else ("sha256", sha256) if sha256 else None
    log = (lambda m: None) if quiet else (lambda m: click.echo(m, err=True))
    try:
        res = fetch(name, dest, url=url, checksum=checksum, size=size, timeout=timeout, keep_archive=keep_archive,
                    quiet=quiet, log=log)
    except FetchError as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"{e.filename or dest}: {e.strerror or e}")
    if res.nothing_to_do:
        click.echo(f"{name}: {dest} already fetched and verified ({res.files} files); nothing to do. "
                   f"Use --data {res.data_dir}")
    else:
        skipped = ", ".join(f"{v} {k}" for k, v in sorted(res.skipped.items()) if v)
        click.echo(f"{name}: ready, {res.files} files in {dest}{f' (skipped: {skipped})' if skipped else ''}. "
                   f"Use --data {res.data_dir}")


# ----------------------------------------------------------------------------- check


class _Report:
    """The lines of a check report: ``key: value`` plus indented examples."""

    def __init__(self):
        self.lines: list[str] = []

    def add(self, key: str, value) -> None:
        self.lines.append(f"{key + ':':<20}{value}")

    def examples(self, label: str, items: list[str]) -> None:
        for item in items[:EXAMPLES]:
            self.lines.append(f"  {label}: {item}")
        if len(items) > EXAMPLES:
            self.lines.append(f"  ... and {len(items) - EXAMPLES} more")


def _range(values) -> str:
    return f"{min(values)}-{max(values)}" if values else "-"


def _detect(d: Path) -> tuple[str | None, Path, str]:
    """``(kind, folder, note)``: ``"loc-csv"``, ``"loc-caltech"``, ``"msd"`` or None."""
    if [p for p in d.glob("*.csv") if p.is_file() and not p.name.startswith(".")]:
        return "loc-csv", d, ""
    if (d / "101_ObjectCategories").is_dir() or (d / "Annotations").is_dir():
        return "loc-caltech", d, ""
    for images, labels in (("imagesTr", "labelsTr"), ("images", "labels")):
        if (d / images).is_dir() or (d / labels).is_dir():
            return "msd", d, ""
    subs = [p for p in sorted(d.iterdir()) if p.is_dir() and (p / "imagesTr").is_dir()]
    if len(subs) == 1:  # the --dest of "fetch msd-hippocampus": look inside Task04_Hippocampus/
        return "msd", subs[0], f"(the Decathlon folder inside {d})"
    return None, d, ""


@main.command("check")
@click.argument("data_dir", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--quiet", is_flag=True, help="No progress bar.")
def check_cmd(data_dir, quiet):
    """Validate a data folder of either app and print a report; exit 1 if it is unusable.

    DIR is the airplanes CSV layout (*.csv + images/), the original Caltech-101 layout
    (101_ObjectCategories/airplanes + Annotations/Airplanes_Side_2) or the Decathlon layout
    (imagesTr/ + labelsTr/, e.g. Task04_Hippocampus).
    """
    if not data_dir.is_dir():
        _fail(f"{data_dir}: no such folder (expected a data folder to check)")
    kind, folder, note = _detect(data_dir)
    if kind is None:
        _fail(f"{data_dir}: not a known data folder: expected *.csv + images/ (airplanes), "
              f"101_ObjectCategories/airplanes + Annotations/Airplanes_Side_2 (Caltech-101), "
              f"or imagesTr/ + labelsTr/ (Decathlon)")
    report = _Report()
    report.add("folder", f"{folder} {note}".rstrip())
    for name in SOURCES:
        if marker_path(data_dir, name).is_file():
            ok, message, _ = verify_marker(data_dir, name)
            report.add("fetched", f"by minisnn-data fetch {name}: {'marker verified, ' if ok else 'CHANGED: '}"
                                  f"{message}")
    try:
        if kind == "msd":
            usable, reason = _check_msd(folder, report, quiet)
        else:
            usable, reason = _check_loc(folder, kind, report, quiet)
    except OSError as e:
        usable, reason = False, f"{e.filename or folder}: {e.strerror or e}"
    report.add("verdict", "usable" if usable else f"UNUSABLE: {reason}")
    click.echo("\n".join(report.lines))
    if not usable:
        _fail(f"{folder} is unusable: {reason}")


def _bar(total: int, label: str, quiet: bool):
    from .progress import Bar

    return Bar(total, label, quiet=quiet)


# ----------------------------------------------------------------------------- check: airplanes


def _csv_rows(csv_path: Path, d: Path, report: _Report) -> list:
    """``[(name, image path, (x1, y1, x2, y2), where)]`` of the well-formed rows, parsed by the
    loader's own :func:`~minisnn.apps.loc_data.csv_rows`; the malformed and duplicate ones reported."""
    from .loc_data import DataError, csv_rows

    problems = []
    try:
        rows = csv_rows(csv_path, d, problems)
    except DataError as e:  # the file itself (encoding, CSV syntax, unreadable)
        rows, problems = [], problems + [("malformed", str(e))]
    found = {kind: [message.removeprefix(f"{csv_path}: ") for k, message in problems if k == kind]
             for kind in ("malformed", "duplicate")}
    report.add("annotations", f"{csv_path.name}: {len(rows) + len(problems)} rows, {len(found['malformed'])} "
                              f"malformed, {len(found['duplicate'])} duplicate names")
    report.examples("malformed", found["malformed"])
    report.examples("duplicate", found["duplicate"])
    return [(r.name, r.image, r.coords, f"line {r.line}") for r in rows]


def _caltech_rows(d: Path, report: _Report) -> list:
    """The image/annotation pairs as the loader pairs and reads them
    (:func:`~minisnn.apps.loc_data.caltech_files`, :func:`~minisnn.apps.loc_data.caltech_row`),
    the unpaired and unreadable files reported."""
    from .loc_data import CALTECH_ANNOTATION_DIR, CALTECH_IMAGE_DIR, DataError, caltech_files, caltech_row

    image_dir, ann_dir = d / CALTECH_IMAGE_DIR, d / CALTECH_ANNOTATION_DIR
    images, anns = caltech_files(d)
    lonely_i = sorted(images.keys() - anns.keys(), key=int)
    lonely_a = sorted(anns.keys() - images.keys(), key=int)
    report.add("annotations", f"{len(anns)} annotation_XXXX.mat in {ann_dir.relative_to(d)}"
                              f"{'' if ann_dir.is_dir() else ' (folder missing)'}; {len(lonely_a)} without an image")
    report.add("images", f"{len(images)} image_XXXX.jpg in {image_dir.relative_to(d)}"
                         f"{'' if image_dir.is_dir() else ' (folder missing)'}; {len(lonely_i)} without an annotation")
    report.examples("no annotation", [images[k].name for k in lonely_i])
    report.examples("no image", [anns[k].name for k in lonely_a])
    rows, bad = [], []
    for num in sorted(images.keys() & anns.keys(), key=int):
        try:
            row = caltech_row(images[num], anns[num])
        except DataError as e:
            bad.append(f"{anns[num].name}: {str(e).removeprefix(f'{anns[num]}: ')}"[:120])
            continue
        rows.append((row.name, row.image, row.coords, anns[num].name))
    report.add("unreadable .mat", len(bad))
    report.examples("unreadable", bad)
    return rows


def _check_loc(d: Path, kind: str, report: _Report, quiet: bool) -> tuple[bool, str]:
    from PIL import Image

    from .loc_data import load_boxes

    if kind == "loc-csv":
        csvs = sorted(p for p in d.glob("*.csv") if p.is_file() and not p.name.startswith("."))
        report.add("kind", "airplanes boxes, CSV layout (*.csv + images/)")
        rows = _csv_rows(csvs[0], d, report) if len(csvs) == 1 else []
        if len(csvs) > 1:
            report.add("annotations", f"{len(csvs)} CSV files ({', '.join(p.name for p in csvs)}): expected one")
        on_disk = ({p.name for p in (d / "images").iterdir() if p.is_file() and not p.name.startswith(".")}
                   if (d / "images").is_dir() else set())
        listed = {r[0] for r in rows}
        missing = sorted(n for n in listed if not (d / "images" / n).is_file())
        report.add("images", f"{len(on_disk)} files in images/{'' if (d / 'images').is_dir() else ' (missing)'}; "
                             f"{len(missing)} listed but missing; {len(on_disk - listed)} not listed")
        report.examples("missing", missing)
    else:
        report.add("kind", "airplanes boxes, Caltech-101 layout (101_ObjectCategories/airplanes + "
                           "Annotations/Airplanes_Side_2)")
        rows = _caltech_rows(d, report)

    unreadable, widths, heights = [], [], []
    degenerate, reversed_, outside, box_w, box_h = [], [], [], [], []
    with _bar(len(rows), "check images", quiet) as bar:
        for name, path, (x1, y1, x2, y2), where in rows:
            bar.update(1)
            if not path.is_file():
                continue
            try:
                with Image.open(path) as img:
                    img.load()
                    w, h = img.size
            except Exception as e:  # PIL raises OSError, ValueError, SyntaxError, ... for a broken file
                unreadable.append(f"{name}: {type(e).__name__}: {e}"[:120])
                continue
            widths.append(w)
            heights.append(h)
            box = f"({x1},{y1},{x2},{y2})"
            if x1 > x2 or y1 > y2:
                reversed_.append(f"{name} ({where}): start after end {box}")
            elif x1 == x2 or y1 == y2:
                what = " and ".join(k for k, z in (("width", x1 == x2), ("height", y1 == y2)) if z)
                degenerate.append(f"{name}: zero {what} box {box}")
            if min(x1, y1) < 0 or x2 > w or y2 > h:
                outside.append(f"{name} ({where}): box {box} outside its {w}x{h} image")
            box_w.append(x2 - x1)
            box_h.append(y2 - y1)
    report.add("unreadable images", len(unreadable))
    report.examples("unreadable", unreadable)
    report.add("image sizes", f"width {_range(widths)}, height {_range(heights)} px ({len(widths)} images read)")
    report.add("boxes", f"{len(rows)}; degenerate (zero width or height) {len(degenerate)}; start after end "
                        f"{len(reversed_)}; outside the image {len(outside)}")
    report.examples("degenerate", degenerate)
    report.examples("start after end", reversed_)
    report.examples("outside", outside)
    if box_w:
        report.add("box sizes", f"width {_range(box_w)}, height {_range(box_h)} px")
    try:
        data = load_boxes(d, size=(8, 12))
    except ValueError as e:  # DataError: the loader's one-line reason
        report.add("loader", f"load_boxes FAILED: {e}")
        return False, str(e)
    report.add("loader", f"load_boxes OK: {len(data.names)} images, {len(data.dropped)} dropped "
                         f"(zero-size boxes are left out of training and scoring)")
    return True, ""


# ----------------------------------------------------------------------------- check: Decathlon


def _nifti_listing(folder: Path) -> tuple[dict, int, int]:
    """``({name: path}, hidden files, other files)`` of a folder, named as the loader names them."""
    from .seg_data import _nifti_name

    out, hidden, other = {}, 0, 0
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
        if not p.is_file():
            continue
        name = _nifti_name(p.name)
        if name is not None:
            out.setdefault(name, p)
        elif p.name.startswith("."):
            hidden += 1
        else:
            other += 1
    return out, hidden, other


def _dataset_json(d: Path, report: _Report) -> None:
    meta = d / "dataset.json"
    if meta.is_file():
        try:
            info = json.loads(meta.read_text())
            labels = ", ".join(f"{k} {v}" for k, v in dict(info.get("labels", {})).items())
            report.add("dataset.json", f"{info.get('name', '?')}: numTraining {info.get('numTraining', '?')}, "
                                       f"numTest {info.get('numTest', '?')}, labels {labels or '?'}")
        except (OSError, ValueError, TypeError, AttributeError) as e:
            report.add("dataset.json", f"unreadable ({type(e).__name__})")


#: the report's line per kind of :class:`~minisnn.apps.seg_data.PairScan` problem, and its example label
_PAIR_PROBLEMS = {"unreadable": ("unreadable files", "unreadable"), "shape": ("shape mismatches", "shape"),
                  "affine": ("affine mismatches", "affine"), "non-finite": ("non-finite images", "non-finite")}


def _check_msd(d: Path, report: _Report, quiet: bool) -> tuple[bool, str]:
    """Every pair read with the loader's own :func:`~minisnn.apps.seg_data.scan_pair`; its
    problems counted by kind, with the volumes' dtypes, shapes, voxel sizes and label values."""
    import numpy as np

    from .seg_data import LAYOUTS, load_volumes, scan_pair

    image_dir, label_dir = next(((d / i, d / la) for i, la in LAYOUTS if (d / i).is_dir() or (d / la).is_dir()),
                                (d / LAYOUTS[0][0], d / LAYOUTS[0][1]))
    report.add("kind", f"segmentation volumes, Decathlon NIfTI layout ({image_dir.name}/ + {label_dir.name}/)")
    _dataset_json(d, report)
    images, hid_i, oth_i = _nifti_listing(image_dir)
    labels, hid_l, oth_l = _nifti_listing(label_dir)
    pairs = sorted(images.keys() & labels.keys())
    no_label = sorted(images.keys() - labels.keys())
    no_image = sorted(labels.keys() - images.keys())
    report.add("files", f"{len(images)} images, {len(labels)} labels, {len(pairs)} pairs; {len(no_label)} images "
                        f"without a label; {len(no_image)} labels without an image (skipped)")
    report.examples("no label", [images[k].name for k in no_label])
    report.examples("no image", [labels[k].name for k in no_image])
    if hid_i + hid_l + oth_i + oth_l:
        report.add("ignored files", f"{hid_i + hid_l} hidden (e.g. macOS ._* / .DS_Store), "
                                    f"{oth_i + oth_l} not NIfTI")
    if (d / "imagesTs").is_dir():
        report.add("imagesTs", f"{len(_nifti_listing(d / 'imagesTs')[0])} unlabelled test images (not used)")

    found = {kind: [] for kind in (*_PAIR_PROBLEMS, "label values")}
    empty, dtypes_i, dtypes_l, shapes, values_seen, spacing = [], {}, {}, [], set(), set()
    with _bar(len(pairs), "check volumes", quiet) as bar:
        for name in pairs:
            bar.update(1)
            scan = scan_pair(images[name], labels[name])
            for kind, message in scan.problems:
                found[kind].append(f"{name}: {message.split(': ', 1)[-1]}"[:120])
            if scan.image is None:
                continue
            dtypes_i[str(scan.image.dtype)] = dtypes_i.get(str(scan.image.dtype), 0) + 1
            shapes.append(scan.image.shape)
            spacing.add(tuple(round(float(z), 3) for z in np.sqrt((scan.affine[:3, :3] ** 2).sum(axis=0))))
            if scan.label is None or scan.label.shape != scan.image.shape:
                continue
            dtypes_l[str(scan.label.dtype)] = dtypes_l.get(str(scan.label.dtype), 0) + 1
            vals = np.unique(scan.label).tolist()
            values_seen.update(vals)
            if not any(v > 0 for v in vals):
                empty.append(name)
    for kind, (line, example) in _PAIR_PROBLEMS.items():
        report.add(line, len(found[kind]))
        report.examples(example, found[kind])
    shown = ", ".join(f"{v:g}" for v in sorted(values_seen)[:10]) + (" ..." if len(values_seen) > 10 else "")
    report.add("label values", f"{{{shown}}}; {len(found['label values'])} labels with values outside {{0, 1, 2}}; "
                               f"{len(empty)} with no foreground")
    report.examples("outside {0,1,2}", found["label values"])
    report.examples("no foreground", empty)
    report.add("dtypes", "images " + (", ".join(f"{k} {v}" for k, v in sorted(dtypes_i.items())) or "-")
               + "; labels " + (", ".join(f"{k} {v}" for k, v in sorted(dtypes_l.items())) or "-"))
    if shapes:
        axes = list(zip(*shapes))
        report.add("shapes", ", ".join(f"{a} {_range(v)}" for a, v in zip("xyz", axes))
                   + "; voxel sizes " + ", ".join("x".join(f"{z:g}" for z in s) for s in sorted(spacing)[:3])
                   + (" ..." if len(spacing) > 3 else ""))
    try:
        data = load_volumes(d)
    except ValueError as e:  # DataError: the loader's one-line reason
        report.add("loader", f"load_volumes FAILED: {e}")
        return False, str(e)
    report.add("loader", f"load_volumes OK: {len(data.subjects)} subjects, {len(data.skipped)} labels skipped")
    return True, ""

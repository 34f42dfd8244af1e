"""The matrix report as a real browser draws it: Debian's Chromium, headless, screenshots
report.html built from synthetic runs, and the screenshot must show the outcome colours, with
the differing test (pass on one kernel, FAIL on the other) above the identical rows, and the
behaviour tables above the matrix, each kernel's recorded values in its own column.

Skipped only when Chromium is missing outside CI; under CI (`CI` set) a missing Chromium fails.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from matrixfakes import matrix_dir
from pngread import Image, decode

from lab.matrix import html as matrixhtml
from lab.matrix import table as matrix

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def where(image: Image, colour: str, tolerance: int = 3) -> dict[int, list[int]]:
    """y -> the x positions of pixels of this colour (within tolerance per channel)."""
    want = rgb(colour)
    found: dict[int, list[int]] = {}
    for y in range(image.height):
        row = image.rows[y]
        xs = [x for x in range(image.width)
              if all(abs(row[3 * x + i] - want[i]) <= tolerance for i in range(3))]
        if len(xs) >= 20:  # a cell's worth, not an anti-aliased glyph edge
            found[y] = xs
    return found


# Tall enough for every row of the fixtures: the last row (a skip) sits near y 855, so a 900-pixel
# window cut it off whenever the fonts came out a few pixels taller.
WINDOW_HEIGHT = 1400


def screenshot(report: Path, tmp: Path, height: int = WINDOW_HEIGHT) -> Image:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (make setup installs it): the browser test must run under CI")
        pytest.skip("chromium is not installed (apt-get install chromium, or make setup)")
    png = tmp / "shot.png"
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           "--hide-scrollbars", "--virtual-time-budget=5000", f"--user-data-dir={tmp / 'profile'}", f"--window-size=1200,{height}",
                           f"--screenshot={png}", report.as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    assert png.exists(), f"chromium wrote no screenshot (rc {done.returncode}):\n{done.stderr[-2000:]}"
    return decode(png.read_bytes())


def test_browser_draws_the_matrix_with_differences_first(tmp_path: Path) -> None:
    directory = matrix_dir(tmp_path, identical=30)
    report = matrixhtml.write(matrix.load(directory), directory / "report.html")
    image = screenshot(report, tmp_path)
    assert (image.width, image.height) == (1200, WINDOW_HEIGHT)
    colours = matrixhtml.COLOURS
    passes, fails, skips = where(image, colours["pass"]), where(image, colours["fail"]), where(image, colours["skip"])
    assert passes and fails and skips, f"outcome colours missing: pass {len(passes)}, fail {len(fails)}, skip {len(skips)} rows"
    # The differing row: pass (6.1) and FAIL (6.12) side by side, 6.1's column to the left.
    row_y = max(fails)
    assert row_y in passes and min(passes[row_y]) < min(fails[row_y]), "no pass|FAIL row in the screenshot"
    # ... above the 30 identical passing rows (each ~20 px tall), which start below it.
    below = [y for y in passes if y > row_y]
    assert len(below) > 200, f"only {len(below)} pass-coloured pixel rows below the differing row"
    # The skip row is identical on both kernels, so it is among the identical rows, below the FAIL.
    assert max(skips) > row_y


def runs(xs: list[int]) -> list[tuple[int, int]]:
    """The horizontal stretches (first x, last x) of these sorted pixel positions."""
    found: list[tuple[int, int]] = []
    for x in xs:
        if found and x == found[-1][1] + 1:
            found[-1] = (found[-1][0], x)
        else:
            found.append((x, x))
    return found


def test_browser_draws_the_behaviour_tables_above_the_matrix(tmp_path: Path) -> None:
    directory = matrix_dir(tmp_path, identical=2, behaviour=True)
    report = matrixhtml.write(matrix.load(directory), directory / "report.html")
    image = screenshot(report, tmp_path)
    values = where(image, matrixhtml.VALUE_COLOUR)
    assert values, "no behaviour value cell in the screenshot"
    # Above the matrix (a long matrix would hide them): the only FAIL is in the matrix table.
    fails = where(image, matrixhtml.COLOURS["fail"])
    assert fails and max(values) < max(fails)  # max: the legend's fail swatch is above both
    # A key both kernels recorded: two value cells side by side, one per kernel column.
    both = [y for y, xs in values.items() if len(runs(xs)) == 2]
    # The key only 6.1 recorded (freeze_rdonly_fd): one value cell, in the left kernel column.
    one = [y for y, xs in values.items() if len(runs(xs)) == 1]
    assert both and one, f"value rows: {len(both)} with two cells, {len(one)} with one"
    left, right = runs(values[both[0]])
    assert right[0] > left[1]
    assert all(runs(values[y])[0][0] == left[0] for y in one), "the lone value is not in the first kernel's column"


def test_decoder_reads_what_it_is_given() -> None:
    from pngread import encode_rgb
    rows = [bytes(v for x in range(7) for v in (x * 10 % 256, y * 20 % 256, (x * y) % 256)) for y in range(5)]
    image = decode(encode_rgb(7, 5, rows))
    assert image.pixel(3, 4) == (30, 80, 12) and image.rows == rows

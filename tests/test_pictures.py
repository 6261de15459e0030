"""harness/results/pictures.py: PNG frames, comparison sheets, index.html."""

from __future__ import annotations

import re
from operator import itemgetter
from pathlib import Path

import cv2
import numpy as np

from harness.results.pictures import (
    GAP,
    MAX_SHEET_WIDTH,
    comparison_sheet,
    error_heat_map,
    worst_first,
    write_index_html,
    write_png,
)


def random_rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_write_png_keeps_rgb_order(tmp_path: Path) -> None:
    frame = random_rgb(8, 12)
    path = tmp_path / "deep" / "frame.png"
    write_png(path, frame)
    np.testing.assert_array_equal(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), frame)


def test_sheet_has_four_panels_under_a_title(tmp_path: Path) -> None:
    first, truth = random_rgb(32, 64, 1), random_rgb(32, 64, 2)
    path = tmp_path / "sheets" / "a_b.png"
    comparison_sheet(path, "a/b", 31.5, first, truth, truth)
    sheet = cv2.imread(str(path))
    assert sheet.shape[1] == 4 * 64 + 3 * GAP and sheet.shape[0] > 32


def test_large_frames_are_scaled_down(tmp_path: Path) -> None:
    frame = np.zeros((720, 1280, 3), np.uint8)
    path = tmp_path / "big.png"
    comparison_sheet(path, "big", float("inf"), frame, frame, frame)
    width = cv2.imread(str(path)).shape[1]
    assert MAX_SHEET_WIDTH - 4 <= width <= MAX_SHEET_WIDTH


def test_heat_map_is_flat_without_error_and_bright_with_it() -> None:
    a = random_rgb(4, 4)
    flat = error_heat_map(a, a)
    assert (flat == flat[0, 0]).all()
    worst = error_heat_map(np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8))
    assert int(worst[0, 0].sum()) > int(flat[0, 0].sum())


def test_index_html_references_the_sheets(tmp_path: Path) -> None:
    sheet = tmp_path / "sheets" / "x_1.png"
    comparison_sheet(sheet, "x/1", 20.0, *(random_rgb(16, 16, k) for k in range(3)))
    entries = [{"name": "x/1 <b>&", "sheet": str(sheet), "psnr": 20.0, "ssim": 0.91234},
               {"name": "y/2", "sheet": sheet, "psnr": 18.25, "ssim": None}]
    index = write_index_html(tmp_path, entries)
    page = index.read_text()
    assert index == tmp_path / "index.html"
    assert page.count('src="sheets/x_1.png"') == 2
    assert "x/1 &lt;b&gt;&amp;" in page and "<b>&" not in page
    assert "PSNR 20.00 dB, SSIM 0.9123" in page and "PSNR 18.25 dB</figcaption>" in page


def linked_files(page: Path) -> list[Path]:
    """Every file an <img src> of ``page`` points at, resolved as a browser would: relative to the page."""
    import re
    from urllib.parse import unquote

    return [page.parent / unquote(src) for src in re.findall(r'<img src="([^"]+)"', page.read_text())]


def test_index_links_resolve_from_the_page_wherever_the_run_started(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "runs" / "out"
    comparison_sheet(out / "sheets" / "a_1.png", "a/1", 20.0, *(random_rgb(8, 8, k) for k in range(3)))
    comparison_sheet(out / "sheets" / "b 2.png", "b 2", 21.0, *(random_rgb(8, 8, k) for k in range(3)))
    monkeypatch.chdir(tmp_path)  # the run's working folder is not the output folder
    entries = [{"name": "a/1", "sheet": "sheets/a_1.png", "psnr": 20.0, "ssim": None},  # relative to the output
               {"name": "b 2", "sheet": str(out / "sheets" / "b 2.png"), "psnr": 21.0, "ssim": None}]  # absolute
    index = write_index_html(Path("runs/out"), entries)
    links = linked_files(tmp_path / index)
    assert len(links) == 2 and all(p.is_file() for p in links), links
    copied = tmp_path / "elsewhere"
    import shutil

    shutil.copytree(out, copied)
    assert all(p.is_file() for p in linked_files(copied / "index.html"))


def test_index_lists_the_sheets_worst_first_as_the_report_does(tmp_path: Path) -> None:
    sheet = tmp_path / "sheets" / "s.png"
    comparison_sheet(sheet, "s", 20.0, *(random_rgb(8, 8, k) for k in range(3)))
    entries = [{"name": name, "sheet": str(sheet), "psnr": psnr, "ssim": None}  # in name order, not PSNR order
               for name, psnr in (("a/1", 24.0), ("b/2", 17.5), ("c/3", 21.0), ("d/4", float("inf")))]
    page = write_index_html(tmp_path, entries).read_text()
    shown = re.findall(r"<figcaption>([^ ]+) &mdash;", page)
    assert shown == ["b/2", "c/3", "a/1", "d/4"]  # lowest PSNR first
    assert shown == [e["name"] for e in worst_first(entries, itemgetter("psnr"))]  # report.html's order

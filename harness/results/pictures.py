"""Pictures of a quality run: interpolated frames as PNG, comparison sheets, and an index.html over the sheets.

Frames are RGB uint8 (H x W x 3) everywhere in the harness; OpenCV wants BGR, converted here.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Callable, Iterable
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

import cv2
import numpy as np

MAX_SHEET_WIDTH = 2560
GAP = 8  # pixels between panels
ERROR_GAIN = 4  # the heat map shows |error| x 4: an error of 64 levels (of 255) is already the hottest colour
FONT = cv2.FONT_HERSHEY_SIMPLEX
Sheet = TypeVar("Sheet")


def write_png(path: Path, frame: np.ndarray) -> None:
    """Write an RGB uint8 frame as PNG, creating the folder."""
    ok, png = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"OpenCV could not encode {path} as PNG")
    from harness.results.document import write_atomic

    write_atomic(path, png.tobytes())


def error_heat_map(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Mean absolute error over RGB, times ``ERROR_GAIN``, in the inferno colour map (RGB)."""
    err = np.abs(pred.astype(np.int16) - truth.astype(np.int16)).mean(axis=2) * ERROR_GAIN
    bgr = cv2.applyColorMap(np.clip(err, 0, 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def comparison_sheet(path: Path, name: str, psnr_db: float, first: np.ndarray, pred: np.ndarray,
                     truth: np.ndarray) -> None:
    """One PNG: first input | prediction | truth | error heat map, under a title with the name and PSNR."""
    panels = [first, pred, truth, error_heat_map(pred, truth)]
    labels = ["first input", "prediction", "truth", f"|error| x{ERROR_GAIN}"]
    h, w = first.shape[:2]
    scale = min(1.0, (MAX_SHEET_WIDTH - 3 * GAP) / (4 * w))
    if scale < 1.0:
        size = (max(1, int(w * scale)), max(1, int(h * scale)))
        panels = [cv2.resize(p, size, interpolation=cv2.INTER_AREA) for p in panels]
    columns = [_labelled(p, label) for p, label in zip(panels, labels, strict=True)]
    gap = np.full((columns[0].shape[0], GAP, 3), 255, np.uint8)
    row = np.hstack([part for col in columns for part in (col, gap)][:-1])
    psnr_text = "inf" if math.isinf(psnr_db) else f"{psnr_db:.2f}"
    write_png(path, np.vstack([_strip(f"{name}   PSNR {psnr_text} dB", row.shape[1], 0.8), row]))


def _strip(text: str, width: int, font_scale: float) -> np.ndarray:
    """A white band ``width`` wide with ``text`` in black, left-aligned; its height depends on the scale only."""
    (_, text_h), baseline = cv2.getTextSize("Ag|", FONT, font_scale, 2)
    band = np.full((text_h + baseline + 12, width, 3), 255, np.uint8)
    cv2.putText(band, text, (6, text_h + 6), FONT, font_scale, (0, 0, 0), 2, cv2.LINE_AA)
    return band


def _labelled(panel: np.ndarray, label: str) -> np.ndarray:
    return np.vstack([_strip(label, panel.shape[1], 0.6), panel])


def worst_first(sheets: Iterable[Sheet], psnr: Callable[[Sheet], float] = attrgetter("psnr")) -> list[Sheet]:
    """The order report.html and index.html show sheets in: the lowest PSNR (the worst frame) first; equal PSNRs
    keep their order. ``psnr`` reads a sheet's PSNR (default: its ``psnr`` attribute)."""
    return sorted(sheets, key=psnr)


def write_index_html(out_dir: Path, entries: list[dict]) -> Path:
    """``out_dir/index.html`` showing each entry's sheet with its name, PSNR and (when given) SSIM, worst first.

    An entry is ``{"name": str, "sheet": path of the PNG, "psnr": float, "ssim": float | None}``; a relative
    sheet path is taken as relative to ``out_dir``. The page links each sheet by its path relative to the page,
    so it keeps working when the folder is copied elsewhere."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sheets = worst_first(entries, itemgetter("psnr"))
    figures = "\n".join(_figure(out_dir, e) for e in sheets) or "<p>No sheets: every frame passed.</p>"
    page = (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<title>RIFE quality: comparison sheets</title>\n"
        "<style>body{font-family:sans-serif;margin:1em}figure{margin:0 0 2em}img{max-width:100%}"
        "figcaption{font-weight:bold;margin-bottom:.3em}</style>\n</head>\n<body>\n"
        f"<h1>Comparison sheets ({len(entries)})</h1>\n"
        "<p>Worst first (lowest PSNR). Each sheet: first input | prediction | truth | absolute error "
        "(brighter is worse).</p>\n"
        f"{figures}\n</body>\n</html>\n"
    )
    index = out_dir / "index.html"
    from harness.results.document import write_atomic

    write_atomic(index, page.encode("utf-8"))
    return index


def relative_link(out_dir: Path, path: str | Path) -> str:
    """``path`` (absolute, or relative to ``out_dir``) as a URL relative to a page in ``out_dir``."""
    target = Path(out_dir, path).resolve()
    return quote(Path(os.path.relpath(target, Path(out_dir).resolve())).as_posix())


def _figure(out_dir: Path, entry: dict) -> str:
    src = relative_link(out_dir, entry["sheet"])
    caption = f"{html.escape(str(entry['name']))} &mdash; PSNR {entry['psnr']:.2f} dB"
    if entry.get("ssim") is not None:
        caption += f", SSIM {entry['ssim']:.4f}"
    alt = html.escape(str(entry["name"]), quote=True)
    return f"<figure>\n<figcaption>{caption}</figcaption>\n<img src=\"{src}\" alt=\"{alt}\" loading=\"lazy\">\n</figure>"

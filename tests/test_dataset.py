"""dataset.py: Vimeo-90K layouts, bad-file checks, videos, prefetching, stream shares, the built-in set."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import dataset
from dataset import BIGBUCKBUNNY, DatasetError, Prefetcher, Triplet, open_quality_set, stream_share

H, W = 32, 64
ROLES = {  # layout -> files of (first, last, truth)
    "vimeo_interp_test": ("input/{}/im1.png", "input/{}/im3.png", "target/{}/im2.png"),
    "vimeo_triplet": ("sequences/{}/im1.png", "sequences/{}/im3.png", "sequences/{}/im2.png"),
}


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def make_vimeo(root: Path, layout: str, names: list[str], seed: int = 0) -> dict[str, tuple[np.ndarray, ...]]:
    """A small Vimeo-90K set of random frames; blank lines around the list entries, as real lists have."""
    rng = np.random.default_rng(seed)
    frames = {}
    for name in names:
        frames[name] = tuple(rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(3))
        for pattern, rgb in zip(ROLES[layout], frames[name], strict=True):
            write_rgb(root / pattern.format(name), rgb)
    root.mkdir(parents=True, exist_ok=True)
    (root / "tri_testlist.txt").write_text("\n" + "\n\n".join(names) + "\n\n")
    return frames


def make_video(path: Path, count: int, size: tuple[int, int] = (H, W)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (size[1], size[0]))
    assert writer.isOpened()
    for i in range(count):
        writer.write(np.full((*size, 3), (20 * i, 255 - 20 * i, 100), np.uint8))
    writer.release()


def decode_all(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            return frames
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


# --- Vimeo-90K folders -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["vimeo_interp_test", "vimeo_triplet"])
def test_vimeo_layouts_read_back_in_rgb(tmp_path: Path, layout: str) -> None:
    names = ["00001/0266", "00001/0268", "00002/0001"]
    frames = make_vimeo(tmp_path / layout, layout, names)
    tset = open_quality_set(tmp_path / layout)
    assert (tset.layout, tset.names, tset.size, tset.bad, len(tset)) == (layout, names, (H, W), [], 3)
    assert tset.root == str(tmp_path / layout)
    for i, name in enumerate(names):
        t = tset.load(i)
        assert t.name == name
        for got, written in zip((t.first, t.last, t.truth), frames[name], strict=True):
            assert got.dtype == np.uint8 and got.shape == (H, W, 3)
            np.testing.assert_array_equal(got, written)


def test_content_hash_follows_the_files_and_the_limit(tmp_path: Path) -> None:
    make_vimeo(tmp_path, "vimeo_triplet", ["a/1", "a/2", "a/3"])
    full = open_quality_set(tmp_path).content_hash
    assert open_quality_set(tmp_path).content_hash == full
    limited = open_quality_set(tmp_path, limit=2)
    assert limited.names == ["a/1", "a/2"] and limited.content_hash != full
    write_rgb(tmp_path / "sequences/a/3/im2.png", np.zeros((H, W, 3), np.uint8))
    assert open_quality_set(tmp_path).content_hash != full


def bad_set(root: Path) -> list[str]:
    """Six triplets: 0 and 5 good; 1 missing a file, 2 garbage, 3 truncated PNG, 4 the wrong size."""
    names = [f"00001/{i:04d}" for i in range(6)]
    make_vimeo(root, "vimeo_interp_test", names)
    (root / f"target/{names[1]}/im2.png").unlink()
    (root / f"input/{names[2]}/im3.png").write_bytes(b"not a png")
    truncated = root / f"input/{names[3]}/im1.png"
    truncated.write_bytes(truncated.read_bytes()[:-20])
    write_rgb(root / f"input/{names[4]}/im1.png", np.zeros((H, W + 2, 3), np.uint8))
    return names


def test_bad_files_give_one_error_naming_the_first(tmp_path: Path) -> None:
    bad_set(tmp_path)
    with pytest.raises(DatasetError) as err:
        open_quality_set(tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path}/target/00001/0001/im2.png is missing")
    assert "4 of the 6 triplets" in message and "--skip-bad" in message


def test_skip_bad_drops_and_lists_them(tmp_path: Path) -> None:
    names = bad_set(tmp_path)
    tset = open_quality_set(tmp_path, skip_bad=True)
    assert tset.names == [names[0], names[5]]
    assert tset.bad == names[1:5]
    assert tset.load(1).name == names[5]
    assert open_quality_set(tmp_path, skip_bad=True, limit=1).names == [names[0]]


@pytest.mark.parametrize("problem, expected", [
    ("garbage", "is not a complete PNG file"),
    ("unreadable", "is not a regular file"),
    ("size", f"is {W + 2}x{H}, not {W}x{H} like the first image"),
])
def test_each_kind_of_bad_file_is_named(tmp_path: Path, problem: str, expected: str) -> None:
    make_vimeo(tmp_path, "vimeo_triplet", ["a/1", "a/2"])
    target = tmp_path / "sequences/a/2/im2.png"
    if problem == "garbage":
        target.write_bytes(b"\x89PNG garbage")
    elif problem == "unreadable":
        target.unlink()
        target.mkdir()
    else:
        write_rgb(target, np.zeros((H, W + 2, 3), np.uint8))
    with pytest.raises(DatasetError, match=f"^{target} {expected}; 1 of the 2 triplets"):
        open_quality_set(tmp_path)


def test_all_bad_with_skip_bad_is_still_an_error(tmp_path: Path) -> None:
    make_vimeo(tmp_path, "vimeo_triplet", ["a/1"])
    (tmp_path / "sequences/a/1/im1.png").unlink()
    with pytest.raises(DatasetError, match="1 of the 1 triplets .* are bad: restore them$"):
        open_quality_set(tmp_path, skip_bad=True)


def test_png_size_reads_the_header() -> None:
    ok, png = cv2.imencode(".png", np.zeros((17, 23, 3), np.uint8))
    assert dataset.png_size(png.tobytes()) == (17, 23)
    assert dataset.png_size(png.tobytes()[:-1]) is None


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        open_quality_set(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="is not a Vimeo-90K triplet folder"):
        open_quality_set(tmp_path)
    make_vimeo(tmp_path / "vimeo_triplet", "vimeo_triplet", ["a/1"])
    with pytest.raises(DatasetError, match="subfolders: vimeo_triplet"):
        open_quality_set(tmp_path)
    (tmp_path / "vimeo_triplet/tri_testlist.txt").write_text("\n  \n")
    with pytest.raises(DatasetError, match="lists no triplets"):
        open_quality_set(tmp_path / "vimeo_triplet")


# --- videos ----------------------------------------------------------------------------------------------------

def test_video_triplets_and_limit(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    make_video(path, 7)
    decoded = decode_all(path)
    tset = open_quality_set(path)
    assert (tset.layout, len(tset), tset.size, tset.bad) == ("video", 3, (H, W), [])
    assert tset.names == ["clip/000000", "clip/000002", "clip/000004"]
    t = tset.load(1)
    for got, index in ((t.first, 2), (t.truth, 3), (t.last, 4)):
        np.testing.assert_array_equal(got, decoded[index])
    assert np.abs(t.truth[H // 2, W // 2].astype(int) - (100, 195, 60)).max() <= 8  # written as BGR (60, 195, 100)
    limited = open_quality_set(path, limit=2)
    assert limited.names == tset.names[:2] and limited.content_hash != tset.content_hash
    assert open_quality_set(path, limit=2).content_hash == limited.content_hash


def test_even_frame_count_leaves_the_last_frame_out(tmp_path: Path) -> None:
    path = tmp_path / "eight.avi"
    make_video(path, 8)
    assert len(open_quality_set(path)) == 3


def test_short_and_non_videos_are_refused(tmp_path: Path) -> None:
    short = tmp_path / "short.avi"
    make_video(short, 2)
    with pytest.raises(DatasetError, match="has 2 decodable frame\\(s\\); a triplet needs 3"):
        open_quality_set(short)
    text = tmp_path / "notes.txt"
    text.write_text("not a video\n")
    with pytest.raises(DatasetError, match="neither a folder nor a video"):
        open_quality_set(text)


# --- prefetching and streams -----------------------------------------------------------------------------------

class FakeSet:
    """Frames whose pixels say which triplet they belong to; optionally slow."""

    layout, root, bad, content_hash = "fake", "fake", [], "0"

    def __init__(self, n: int, delay: float = 0.0) -> None:
        self.names = [f"t{i}" for i in range(n)]
        self.size = (4, 6)
        self.delay = delay
        self.loads = 0
        self.lock = threading.Lock()

    def load(self, index: int) -> Triplet:
        with self.lock:
            self.loads += 1
        time.sleep(self.delay)
        f = [np.full((4, 6, 3), (index, 100 + k, 200), np.uint8) for k in range(3)]
        return Triplet(self.names[index], f[0], f[1], f[2])

    def __len__(self) -> int:
        return len(self.names)


def test_prefetcher_batches_in_order_with_a_short_last_batch() -> None:
    tset = FakeSet(10)
    indices = stream_share(10, 1, 2)  # 1, 3, 5, 7, 9
    with Prefetcher(tset, indices, batch_size=2, workers=2, depth=2) as pf:
        batches = list(pf)
    assert [b.names for b in batches] == [["t1", "t3"], ["t5", "t7"], ["t9"]]
    for b in batches:
        for t, channel in ((b.first, 100), (b.last, 101), (b.truth, 102)):
            assert t.dtype == torch.uint8 and t.is_contiguous() and t.shape == (len(b.names), 3, 4, 6)
            assert t[:, 1].unique().tolist() == [channel]
        assert b.first[:, 0, 0, 0].tolist() == [int(n[1:]) for n in b.names]


def test_prefetcher_reads_a_png_set(tmp_path: Path) -> None:
    frames = make_vimeo(tmp_path, "vimeo_triplet", ["a/1", "a/2", "a/3"])
    with Prefetcher(open_quality_set(tmp_path), [0, 1, 2], batch_size=3) as pf:
        (batch,) = list(pf)
    assert batch.names == ["a/1", "a/2", "a/3"]
    np.testing.assert_array_equal(batch.truth[2].permute(1, 2, 0).numpy(), frames["a/3"][2])


def test_prefetcher_passes_load_errors_on() -> None:
    class Broken(FakeSet):
        def load(self, index: int) -> Triplet:
            raise DatasetError("broken file")

    with Prefetcher(Broken(2), [0, 1], batch_size=1) as pf, pytest.raises(DatasetError, match="broken file"):
        list(pf)


def test_close_mid_iteration_returns_promptly() -> None:
    tset = FakeSet(100, delay=0.05)
    pf = Prefetcher(tset, range(100), batch_size=1, workers=2, depth=4)
    first = next(iter(pf))
    assert first.names == ["t0"]
    t0 = time.perf_counter()
    pf.close()
    assert time.perf_counter() - t0 < 0.5
    assert tset.loads <= 1 + 4 + 2  # the consumed batch, the queue ahead, at most one more per worker


def test_stream_share() -> None:
    shares = [stream_share(10, k, 3) for k in range(3)]
    assert shares == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert stream_share(2, 2, 4) == []
    with pytest.raises(ValueError):
        stream_share(10, 3, 3)


# --- the built-in set ------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def bigbuckbunny_mp4(video_dir: Path) -> Path:
    return video_dir / BIGBUCKBUNNY.filename


def test_builtin_build_from_a_short_real_clip(tmp_path: Path, bigbuckbunny_mp4: Path) -> None:
    root = tmp_path / "builtin"
    built = dataset.build_builtin(root, (BIGBUCKBUNNY,), max_frames=7, videos_dir=bigbuckbunny_mp4.parent)
    assert built == [(root / "bigbuckbunny", True), (root / "crops448x256", True)]
    decoded = decode_all(bigbuckbunny_mp4)[:7]
    names = ["bigbuckbunny/000000", "bigbuckbunny/000002", "bigbuckbunny/000004"]
    crop = (slice(232, 488), slice(416, 864))
    for folder, size, view in ((root / "bigbuckbunny", (720, 1280), ...), (root / "crops448x256", (256, 448), crop)):
        assert (folder / "tri_testlist.txt").read_text() == "".join(f"{n}\n" for n in names)
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["recipe"]["sources"][0]["sha256"] == BIGBUCKBUNNY.asset.sha256
        assert manifest["opencv"] == cv2.__version__ and manifest["recipe"]["max_frames"] == 7
        for entry in manifest["triplets"]:
            i = entry["frames"][0]
            expected = [hashlib.sha256(np.ascontiguousarray(decoded[i + k][view])).hexdigest() for k in range(3)]
            assert entry["frames"] == [i, i + 1, i + 2] and entry["pixels_sha256"] == expected
        tset = open_quality_set(folder)
        assert (tset.layout, tset.names, tset.size) == ("vimeo_triplet", names, size)
        np.testing.assert_array_equal(tset.load(2).truth, decoded[5][view])
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}
    again = dataset.build_builtin(root, (BIGBUCKBUNNY,), max_frames=7, videos_dir=bigbuckbunny_mp4.parent)
    assert [b for _, b in again] == [False, False]
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()} == before
    assert dataset.ensure_builtin(root, (BIGBUCKBUNNY,), max_frames=5, videos_dir=bigbuckbunny_mp4.parent) == root
    assert len(open_quality_set(root / "bigbuckbunny")) == 2  # another recipe: rebuilt in place
    assert sorted(p.name for p in root.iterdir()) == ["bigbuckbunny", "crops448x256"]  # no staging left behind


def test_builtin_refuses_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "bigbuckbunny").mkdir()
    with pytest.raises(DatasetError, match="is not a built-in set"):
        dataset.build_builtin(tmp_path, (BIGBUCKBUNNY,), max_frames=7)


def test_builtin_locations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RIFE_BUILTIN_DIR", raising=False)
    assert dataset.builtin_root() == dataset.home() / "builtin_data"
    monkeypatch.setenv("RIFE_BUILTIN_DIR", str(tmp_path))
    assert dataset.builtin_root() == tmp_path
    assert dataset.default_quality_set() == tmp_path / "bigbuckbunny"


def test_cli_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_vimeo(tmp_path, "vimeo_triplet", ["a/1", "a/2"])
    assert dataset.main(["check", str(tmp_path), "--num-inputs", "1"]) == 0
    assert "vimeo_triplet, 1 triplets 64x32" in capsys.readouterr().out
    assert dataset.main(["check", str(tmp_path / "nowhere")]) == 1
    assert capsys.readouterr().err.startswith("dataset: ")

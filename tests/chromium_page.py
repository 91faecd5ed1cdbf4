"""Open a local HTML file in headless Chromium and report what a person's browser saw.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
JSON messages separated by NUL bytes on file descriptors 3 and 4), so no library and
no network port are needed. While the page loads, every request, failed load, console
message, log entry and uncaught exception is recorded; then the page is measured at the
given width and a full-page PNG screenshot is taken.

``python tests/chromium_page.py PAGE.html OUT.png [WIDTH [HEIGHT]]`` takes a screenshot
by hand: the whole page, or its first HEIGHT pixels (the README's: 1100 2000).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """The first Chromium on PATH, or None."""
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


@dataclass
class PageVisit:
    """What loading one page did."""

    requests: list[str] = field(default_factory=list)  # every URL requested
    failed: list[str] = field(default_factory=list)  # loads that failed, with the reason
    console: list[str] = field(default_factory=list)  # console errors and warnings
    exceptions: list[str] = field(default_factory=list)  # uncaught script errors
    log: list[str] = field(default_factory=list)  # browser log entries of level error
    scroll_width: int = 0  # the document's width at the viewport's width
    viewport_width: int = 0
    screenshot: bytes = b""
    images: list[dict[str, Any]] = field(default_factory=list)  # each <img>: decoded, size

    def problems(self) -> list[str]:
        """Every console error, failed load, uncaught exception and error log entry."""
        return [*self.console, *self.failed, *self.exceptions, *self.log]


class _Pipe:
    """DevTools protocol messages over Chromium's debugging pipe."""

    def __init__(self, to_browser: int, from_browser: int) -> None:
        self.to_browser, self.from_browser = to_browser, from_browser
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        return self.next_id

    def receive(self) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            chunk = os.read(self.from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self.buffer += chunk
        message, _, self.buffer = self.buffer.partition(b"\0")
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send a command and wait for its answer, keeping the events that arrive meanwhile."""
        wanted = self.send(method, params, session)
        while True:
            message = self.receive()
            if message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_for(self, method: str, timeout: float) -> None:
        """Read events until ``method`` arrives (raise after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while not any(e["method"] == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {timeout:.0f}s")
            message = self.receive()
            if "method" in message:
                self.events.append(message)


_MEASURE = """JSON.stringify({
  scrollWidth: document.documentElement.scrollWidth,
  viewportWidth: window.innerWidth,
  images: Array.from(document.images).map(i => ({
    complete: i.complete, width: i.naturalWidth, height: i.naturalHeight, alt: i.alt})),
})"""


def visit(
    page: Path, width: int = 1200, height: int = 900, timeout: float = 60, full_page: bool = True
) -> PageVisit:
    """Load ``page`` (a local file) at ``width`` CSS pixels and record what happened; the
    screenshot is the whole page, or with ``full_page=False`` the first ``height`` pixels."""
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("no Chromium on PATH")
    to_read, to_browser = os.pipe()  # Chromium reads commands from fd 3
    from_browser, to_write = os.pipe()  # and writes answers and events to fd 4

    def child_fds() -> None:
        # Out of the way first, so neither pipe end is overwritten while moving to 3 and 4.
        read_end, write_end = (
            fcntl.fcntl(to_read, fcntl.F_DUPFD, 10),
            fcntl.fcntl(to_write, fcntl.F_DUPFD, 10),
        )
        os.dup2(read_end, 3)
        os.dup2(write_end, 4)

    # The browser's helper processes (renderer, zygote) may still write to the profile
    # for a moment after the browser goes; its removal must not fail the visit.
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as profile:
        args = [
            browser, "--headless", "--remote-debugging-pipe", "--no-sandbox",
            "--disable-gpu", "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--disable-background-networking",
            f"--user-data-dir={profile}", "--hide-scrollbars", "about:blank",
        ]  # fmt: skip
        proc = subprocess.Popen(
            args,
            preexec_fn=child_fds,  # noqa: PLW1509 - fds 3 and 4 are the protocol's
            pass_fds=(3, 4),  # kept open in the child once child_fds has set them
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: it and its helpers end together
        )
        os.close(to_read)
        os.close(to_write)
        try:
            pipe = _Pipe(to_browser, from_browser)
            return _drive(pipe, page, width, height, timeout, full_page)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            os.close(to_browser)
            os.close(from_browser)


def _drive(
    pipe: _Pipe, page: Path, width: int, height: int, timeout: float, full_page: bool
) -> PageVisit:
    target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        pipe.call(f"{domain}.enable", session=session)
    pipe.call(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
        session=session,
    )
    pipe.events.clear()
    pipe.call("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
    pipe.wait_for("Page.loadEventFired", timeout)
    measured = json.loads(
        pipe.call(
            "Runtime.evaluate", {"expression": _MEASURE, "returnByValue": True}, session=session
        )["result"]["value"]
    )
    shot = pipe.call(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": full_page},
        session=session,
    )
    result = PageVisit(
        scroll_width=measured["scrollWidth"],
        viewport_width=measured["viewportWidth"],
        screenshot=base64.b64decode(shot["data"]),
        images=measured["images"],
    )
    _record(pipe.events, result)
    return result


def _record(events: list[dict[str, Any]], result: PageVisit) -> None:
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Network.requestWillBeSent":
            result.requests.append(params["request"]["url"])
        elif method == "Network.loadingFailed":
            result.failed.append(f"load failed: {params.get('errorText')} ({params.get('type')})")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            result.console.append(f"console {params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            result.exceptions.append(f"exception: {details.get('text')}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            entry = params["entry"]
            result.log.append(f"log error: {entry.get('text')} {entry.get('url', '')}".strip())


if __name__ == "__main__":
    width = int(sys.argv[3]) if len(sys.argv) > 3 else 1200
    height = int(sys.argv[4]) if len(sys.argv) > 4 else None
    seen = visit(Path(sys.argv[1]), width=width, height=height or 900, full_page=not height)
    Path(sys.argv[2]).write_bytes(seen.screenshot)
    print("\n".join(seen.problems()) or f"no problems; {len(seen.requests)} request(s)")

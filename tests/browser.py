"""Helpers for browser tests: run ``python app.py`` on a free local port and drive Debian's chromium.

Usage in a test::

    from tests.browser import chromium_page, running_app

    def test_x(tmp_path):
        with running_app(tmp_path) as url, chromium_page() as page:
            page.goto(url)
            ...

``running_app`` asserts the page is served within ``SERVE_TIMEOUT_S`` (the project's start-up
promise) and always stops the server; ``chromium_page`` launches /usr/bin/chromium with the
flags the CI machine needs (never ``playwright install``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SERVE_TIMEOUT_S = 10.0
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(
    tmp_dir: Path,
    *,
    host: str | None = "127.0.0.1",
    port: int | None = None,
    timeout: float = SERVE_TIMEOUT_S,
    extra_env: dict[str, str | None] | None = None,
    extra_args: list[str] | None = None,
) -> Iterator[str]:
    """Start ``python app.py`` with logs/pretrained roots inside ``tmp_dir``; yield its URL.

    ``host=None`` leaves ``--host`` off to test the default binding; a ``None`` in ``extra_env`` removes that
    variable. The server's output goes to ``tmp_dir/app.log`` and is quoted in the failure message if it does
    not come up in time.
    """
    tmp_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    env = {
        **os.environ,
        "SVCOVER_LOGS": str(tmp_dir / "logs"),
        "SVCOVER_PRETRAINED": str(tmp_dir / "pretrained"),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONUNBUFFERED": "1",
    }
    for name, value in (extra_env or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    (tmp_dir / "logs").mkdir(exist_ok=True)
    (tmp_dir / "pretrained").mkdir(exist_ok=True)
    cmd = [sys.executable, "app.py", "--port", str(port), *(["--host", host] if host else []), *(extra_args or [])]
    log_path = tmp_dir / "app.log"
    with open(log_path, "wb") as log:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_served(proc, url, started, timeout, log_path)
        yield url
    finally:
        stop_process(proc)


def _wait_served(proc: subprocess.Popen, url: str, started: float, timeout: float, log_path: Path) -> None:
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"app.py exited with code {proc.returncode} before serving:\n{_tail(log_path)}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if time.monotonic() - started > timeout:
            raise AssertionError(f"app.py did not serve {url} within {timeout:.0f} s:\n{_tail(log_path)}")
        time.sleep(0.1)


def stop_process(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """Terminate ``proc`` (and wait for it); kill it if it does not stop within ``grace_s``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no output)"


@contextlib.contextmanager
def chromium_page(timeout_ms: int = 30_000) -> Iterator[Any]:
    """A Playwright page in Debian's headless chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(timeout_ms)
            yield page
        finally:
            browser.close()


def choose_option(page: Any, elem_id: str, option: str) -> None:
    """Pick ``option`` in the Gradio dropdown whose elem_id is ``elem_id``."""
    page.locator(f"#{elem_id} input").first.click()
    page.get_by_role("option", name=option, exact=True).click()


def click_tabs(page: Any, *names: str) -> None:
    """Open the tab ``names[0]``, then its sub-tab ``names[1]``, and so on."""
    for name in names:
        page.get_by_role("tab", name=name).click()


@contextlib.contextmanager
def app_page(tmp_dir: Path, *tabs: str, extra_env: dict[str, str | None] | None = None) -> Iterator[tuple[str, Any]]:
    """``running_app`` (60 s to serve: the CI machine is busy) and a chromium page (60 s default timeout) on it,
    with ``tabs`` opened in order; yields (url, page)."""
    with running_app(tmp_dir, timeout=60, extra_env=extra_env) as url, chromium_page(timeout_ms=60_000) as page:
        page.goto(url)
        click_tabs(page, *tabs)
        yield url, page

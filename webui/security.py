"""Web UI safeguards: login rate limiting, the upload folder, server-side paths and checkpoint choices.

Nothing here imports gradio, so ``app.py`` can set the upload folder before gradio is first imported.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

# ----------------------------------------------------------------------------------------------
# Server-side paths
# ----------------------------------------------------------------------------------------------

SERVER_PATHS_ENV = "SVCOVER_ALLOW_SERVER_PATHS"


def server_paths_allowed() -> bool:
    """Whether text boxes may name folders/files on the server (the dataset tab's folder box ...).

    ``app.py`` turns this off when the UI is reachable from other machines (``--listen``/``--share``)
    unless ``--allow-server-paths`` is given: otherwise any visitor could make a dataset of any server
    folder and then read it back through the file route. On this computer alone it stays on.
    """
    return os.environ.get(SERVER_PATHS_ENV, "1") != "0"


SERVER_PATHS_DISABLED = (
    "folder paths on the server are disabled because the UI is reachable from other machines "
    "(restart with --allow-server-paths to allow them); upload the files instead"
)


def refuse_server_paths(text: str | None) -> None:
    """Raise a one-line error when ``text`` names server paths and they are not allowed."""
    from core.errors import SvcoverError

    if (text or "").strip() and not server_paths_allowed():
        raise SvcoverError(SERVER_PATHS_DISABLED)


# ----------------------------------------------------------------------------------------------
# Checkpoint choice (no file-existence oracle)
# ----------------------------------------------------------------------------------------------

_CHECKPOINT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}\.(pt|pth|ckpt|safetensors)")


def ui_checkpoint(value: str | None) -> str:
    """The checkpoint a UI user may pick: ``best``, ``latest`` or a file name in the experiment's folders.

    The box accepts typed values, and it used to take any server path: its error then told whether that
    file existed and showed its first byte. Only bare names are accepted now (the conversion stage looks
    them up in the experiment's ``checkpoints/`` and ``export/``), and the refusal is the same whatever
    is on disk.
    """
    from core.errors import SvcoverError

    value = (value or "best").strip()
    if value in ("best", "latest") or _CHECKPOINT_NAME.fullmatch(value):
        return value
    raise SvcoverError("checkpoint: choose best, latest or a checkpoint of this voice model from the list")


# ----------------------------------------------------------------------------------------------
# Upload folder
# ----------------------------------------------------------------------------------------------

UPLOAD_MAX_AGE_ENV = "SVCOVER_UPLOAD_MAX_AGE_HOURS"
DEFAULT_UPLOAD_MAX_AGE_HOURS = 6.0
CLEAN_EVERY_SECONDS = 900.0


def upload_max_age_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get(UPLOAD_MAX_AGE_ENV) or DEFAULT_UPLOAD_MAX_AGE_HOURS)) * 3600
    except ValueError:
        return DEFAULT_UPLOAD_MAX_AGE_HOURS * 3600


def configure_upload_folder(logs: Path) -> Path | None:
    """Point gradio's upload/cache folder at ``<logs>/.uploads``; returns it, or None if ``GRADIO_TEMP_DIR`` is set.

    Must run before gradio is imported. Gradio otherwise keeps every upload in the system temp folder
    forever (170 MB after one afternoon); here they sit beside the user's data and are cleaned. A folder
    the user chose with ``GRADIO_TEMP_DIR`` is left alone (it may hold other things): not cleaned.
    """
    if os.environ.get("GRADIO_TEMP_DIR"):
        return None
    folder = logs / ".uploads"
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    return folder


def clean_uploads(folder: Path, max_age_seconds: float, now: float | None = None) -> int:
    """Delete uploads (gradio keeps one sub-folder per file) not touched for ``max_age_seconds``.

    Returns how many entries were removed. Errors (a file in use on Windows ...) are skipped: the next
    round tries again.
    """
    now = time.time() if now is None else now
    removed = 0
    if not folder.is_dir():
        return 0
    for entry in folder.iterdir():
        try:
            newest = _newest_mtime(entry)
            if now - newest < max_age_seconds:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed += 1
        except OSError:
            continue
    return removed


def _newest_mtime(entry: Path) -> float:
    newest = entry.lstat().st_mtime
    if entry.is_dir() and not entry.is_symlink():
        for p in entry.rglob("*"):
            newest = max(newest, p.lstat().st_mtime)
    return newest


def start_upload_cleaner(folder: Path, max_age_seconds: float, every_seconds: float = CLEAN_EVERY_SECONDS) -> threading.Thread:
    """Clean now, then every ``every_seconds`` in a daemon thread (uploads of finished jobs age out)."""

    def loop() -> None:
        while True:
            clean_uploads(folder, max_age_seconds)
            time.sleep(every_seconds)

    thread = threading.Thread(target=loop, name="svcover-upload-cleaner", daemon=True)
    thread.start()
    return thread


# ----------------------------------------------------------------------------------------------
# Login rate limiting
# ----------------------------------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LoginRateLimiter:
    """ASGI middleware: exponential backoff per client address on gradio's ``/login`` after failures.

    The first ``free_failures`` wrong passwords from one address are answered normally; after that the
    address must wait ``base_delay * 2**(extra failures)`` seconds (at most ``max_delay``) after its last
    failure, and any attempt sooner is refused with 429 without checking the password. A success clears
    the address's record. Gradio's own login has no limit (30 wrong passwords took 0.6 s).
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], free_failures: int = 5,
                 base_delay: float = 1.0, max_delay: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.app = app
        self.free_failures = free_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.clock = clock
        self.failures: dict[str, tuple[int, float]] = {}  # client address -> (failures, time of the last one)
        self._lock = threading.Lock()

    def wait_seconds(self, client: str) -> float:
        """How long ``client`` must still wait before its next login attempt (0: may try now)."""
        with self._lock:
            count, last = self.failures.get(client, (0, 0.0))
        if count < self.free_failures:
            return 0.0
        delay = min(self.max_delay, self.base_delay * 2 ** (count - self.free_failures))
        return max(0.0, last + delay - self.clock())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope.get("type") != "http" or scope.get("method") != "POST" or not path.rstrip("/").endswith("/login"):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown", 0))[0]
        wait = self.wait_seconds(client)
        if wait > 0:
            await _refuse(send, wait)
            return
        status: dict[str, int] = {}

        async def watch(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        await self.app(scope, receive, watch)
        with self._lock:
            if status.get("code") == 200:
                self.failures.pop(client, None)
            elif status.get("code") in (400, 401, 403):
                count, _ = self.failures.get(client, (0, 0.0))
                self.failures[client] = (count + 1, self.clock())
                if len(self.failures) > 10_000:  # many addresses: forget the oldest rather than grow forever
                    oldest = min(self.failures, key=lambda k: self.failures[k][1])
                    del self.failures[oldest]


async def _refuse(send: Send, wait: float) -> None:
    import json

    seconds = max(1, int(wait + 0.999))
    body = json.dumps({"detail": f"Too many failed logins: try again in {seconds} s."}).encode()
    await send({"type": "http.response.start", "status": 429,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", str(seconds).encode()),
                            (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})

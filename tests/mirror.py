"""A local download mirror for ``SVCOVER_MIRROR`` (``<mirror>/<original host>/<path>``) and what it serves.

``serve_files`` answers the given paths and 404 for everything else; ``vocoder_zip`` is the small random-weight
vocoder of tests/standins.py packed like the release zip; ``mirror_path`` is where a registry entry is asked for.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

from core.pretrained import get


def vocoder_zip(tmp: Path) -> bytes:
    """The small random-weight vocoder packed like the release: one folder holding ``model`` + ``config.json``."""
    from tests.standins import write_small_vocoder

    folder = write_small_vocoder(tmp / "voc")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in folder.iterdir():
            zf.write(f, f"nsf_hifigan_44.1k_hop512_128bin_2024.02/{f.name}")
    return buf.getvalue()


def mirror_path(name: str) -> str:
    """Where a mirror serves the first URL of registry entry ``name``: ``/<host>/<path>``."""
    return "/" + get(name).files[0].urls[0].split("://", 1)[1]


@contextlib.contextmanager
def serve_files(files: dict[str, bytes], bytes_per_second: float | None = None) -> Iterator[str]:
    """A local HTTP server answering ``files`` (path -> body) and 404 for the rest; yields its base URL.
    ``bytes_per_second`` throttles bodies so a progress bar has time to show."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = files.get(self.path.removeprefix("/mirror"))
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            step = 64 << 10
            for i in range(0, len(body), step):
                self.wfile.write(body[i : i + step])
                if bytes_per_second:
                    time.sleep(step / bytes_per_second)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/mirror"
    finally:
        server.shutdown()
        server.server_close()

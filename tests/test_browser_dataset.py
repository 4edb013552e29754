"""The app in a real browser: start-up promise (127.0.0.1, six tabs, < 10 s) and the Dataset tab."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import psutil
import pytest

from tests.browser import app_page, chromium_page, free_port, running_app, stop_process
from tests.conftest import REAL, ROOT

pytestmark = pytest.mark.browser
TAB_LABELS = ["Dataset", "Extract", "Train", "Convert", "Models", "Jobs"]


def _listening_addresses(pid: int) -> set[str]:
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    addrs = set()
    for p in procs:
        for conn in p.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN:
                addrs.add(conn.laddr.ip)
    return addrs


def test_app_binds_localhost_by_default_and_serves_six_tabs(tmp_path: Path) -> None:
    # One retry: on a CI machine shared with other jobs a single cold start can stall on disk/CPU;
    # the app must still serve within 10 s in one of two starts.
    try:
        _check_default_start(tmp_path / "first")
    except AssertionError as first:
        if "within" not in str(first):
            raise
        _check_default_start(tmp_path / "second")


def _check_default_start(tmp_path: Path) -> None:
    port = free_port()
    with running_app(tmp_path, host=None, port=port) as url:
        app_pids = [
            p.pid for p in psutil.process_iter(["cmdline"]) if f"--port {port}" in " ".join(p.info["cmdline"] or [])
        ]
        assert len(app_pids) == 1
        assert _listening_addresses(app_pids[0]) == {"127.0.0.1"}
        with chromium_page() as page:
            page.goto(url)
            for label in TAB_LABELS:
                page.get_by_role("tab", name=label).wait_for()
            found = [t.strip() for t in page.get_by_role("tab").all_inner_texts()]
            assert found == TAB_LABELS


def test_running_app_fails_when_the_app_cannot_serve(tmp_path: Path) -> None:
    """The helper's wait is real: an app that cannot serve (its port is taken) fails it, with its log."""
    import socket

    port = free_port()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))  # bound but never accepting: nothing answers HTTP here
        blocker.listen(1)
        with pytest.raises(AssertionError, match="did not serve|exited"):
            with running_app(tmp_path, port=port, timeout=5.0):
                pass


def test_dataset_tab_upload_run_and_read_summary(tmp_path: Path) -> None:
    song = tmp_path / "in" / "my song é.wav"
    song.parent.mkdir()
    shutil.copy(REAL / "singing" / "vocadito_1.wav", song)
    archive = tmp_path / "in" / "colab dataset.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(REAL / "singing" / "vocadito_12.wav", "dataset/take.wav")
        zf.writestr("dataset/notes.txt", "not audio")
    # The start-up promise is timed by the test above; here a busy machine must not fail the tab test.
    with app_page(tmp_path / "app", "Dataset") as (_, page):
        page.locator("#dataset-files input[type=file]").set_input_files([str(song), str(archive)])
        page.locator("#dataset-exp textarea, #dataset-exp input").first.fill("browser_exp")
        # The upload has finished when both names are listed in the component.
        page.locator("#dataset-files").get_by_text("my song é").first.wait_for()
        page.locator("#dataset-files").get_by_text("colab dataset").first.wait_for()
        page.locator("#dataset-run").click()
        summary = page.locator("#dataset-summary")
        summary.get_by_text(re.compile(r"in the dataset|Nothing usable")).first.wait_for(timeout=90_000)
        text = summary.inner_text()
        page.locator("#dataset-histogram").wait_for()
    assert "Dataset browser_exp" in text
    chunks = int(re.search(r"chunks: (\d+) in the dataset", text).group(1))
    exp_dir = tmp_path / "app" / "logs" / "browser_exp"
    written = sorted((exp_dir / "0_gt_wavs").glob("*.wav"))
    assert chunks == len(written) >= 4  # 33 s + 15 s of singing -> several 4-15 s chunks
    assert "files: 2 found, 2 sliced, 0 unchanged, 0 skipped, 1 non-audio ignored" in text
    assert "very short dataset" in text  # 48 s is far below 5 min
    sources = {c["source"] for c in json.loads((exp_dir / "manifest.json").read_text(encoding="utf-8"))["chunks"]}
    assert sources == {"my song é.wav", "colab dataset.zip/dataset/take.wav"}  # names, not gradio's temp paths


def test_cli_dataset_help_is_fast() -> None:
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "core", "dataset", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0
    for flag in ("--exp", "--threshold-db", "--min-length-ms", "--min-interval-ms", "--max-sil-kept-ms",
                 "--min-chunk-s", "--max-chunk-s"):  # fmt: skip
        assert flag in out.stdout
    assert time.monotonic() - started < 10


def test_stop_process_kills_a_stubborn_child() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"]
    )
    time.sleep(0.5)
    started = time.monotonic()
    stop_process(proc, grace_s=1.0)
    assert proc.poll() is not None and time.monotonic() - started < 5

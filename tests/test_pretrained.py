"""Pretrained registry and downloader against a local HTTP server on 127.0.0.1 (no internet)."""

from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from core import pretrained as pt
from core.errors import MissingPretrainedError
from tests.conftest import ROOT

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB, so a half-way cut is well inside the body
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    calls: list[tuple[str, str | None]] = []
    cut_once: set[str] = set()

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _send_body(self, body: bytes, start: int = 0, cut: bool = False) -> None:
        if start:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        data = body[start:]
        if cut:  # close half-way through: the client sees a short body
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        rng = self.headers.get("Range")
        type(self).calls.append((self.path, rng))
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        path = self.path.split("?")[0]
        if path.endswith("/file.bin"):
            self._send_body(PAYLOAD, start)
        elif path.endswith("/cut.bin"):
            first = path not in type(self).cut_once
            type(self).cut_once.add(path)
            self._send_body(PAYLOAD, start, cut=first)
        elif path.endswith("/corrupt.bin"):
            self._send_body(PAYLOAD[:-1] + b"X", start)
        elif path.endswith("/stall.bin"):
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[:1000])
            self.wfile.flush()
            time.sleep(3)
        elif path.endswith("/vocoder.zip"):
            self._send_body(self.server.zip_bytes, start)  # type: ignore[attr-defined]
        elif path.endswith("/evil.zip"):
            self._send_body(self.server.evil_zip, start)  # type: ignore[attr-defined]
        else:
            self.send_error(404)


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.zip_bytes = _zip_bytes({"release_2024/model.ckpt": b"weights", "release_2024/config.json": b"{}"})
    httpd.evil_zip = _zip_bytes({"../escaped.txt": b"x", "config.json": b"{}"})
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _clear_calls():
    _Handler.calls.clear()
    _Handler.cut_once.clear()


def test_full_download_verified(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "file.bin"
    seen = []
    pt.download_url(f"{server}/file.bin", dest, sha256=PAYLOAD_SHA, size=len(PAYLOAD), progress=lambda f, m: seen.append(f))
    assert dest.read_bytes() == PAYLOAD
    assert not pt.part_path(dest).exists()
    assert seen and seen[-1] == 1.0 and all(0 <= f <= 1 for f in seen)


def test_interrupted_download_resumes_with_range(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "cut.bin"
    with pytest.raises(pt.DownloadError, match="run again to resume"):
        pt.download_url(f"{server}/cut.bin", dest, sha256=PAYLOAD_SHA, retries=0, timeout=5)
    part = pt.part_path(dest)
    assert not dest.exists()
    assert 0 < part.stat().st_size < len(PAYLOAD)
    kept = part.stat().st_size
    pt.download_url(f"{server}/cut.bin", dest, sha256=PAYLOAD_SHA, retries=0, timeout=5)
    assert dest.read_bytes() == PAYLOAD
    assert _Handler.calls[-1] == ("/cut.bin", f"bytes={kept}-")


def test_automatic_retry_resumes_in_one_call(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "cut.bin"
    pt.download_url(f"{server}/cut.bin", dest, sha256=PAYLOAD_SHA, retries=2, timeout=5)
    assert dest.read_bytes() == PAYLOAD
    assert len(_Handler.calls) == 2 and _Handler.calls[1][1] is not None


def test_checksum_mismatch_installs_nothing(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "corrupt.bin"
    with pytest.raises(pt.DownloadError, match="sha256 mismatch") as err:
        pt.download_url(f"{server}/corrupt.bin", dest, sha256=PAYLOAD_SHA)
    assert "nothing was installed" in str(err.value)
    assert not dest.exists() and not pt.part_path(dest).exists()


def test_http_404_is_a_clear_error(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "nothing.bin"
    with pytest.raises(pt.DownloadError, match="HTTP 404"):
        pt.download_url(f"{server}/nothing.bin", dest)
    assert not dest.exists() and not pt.part_path(dest).exists()


def test_stalled_server_times_out(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "stall.bin"
    t0 = time.monotonic()
    with pytest.raises(pt.DownloadError, match="stalled"):
        pt.download_url(f"{server}/stall.bin", dest, sha256=PAYLOAD_SHA, timeout=0.5, retries=0)
    assert time.monotonic() - t0 < 2.5
    assert not dest.exists()


def test_cli_url_download_and_bad_checksum(server: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    good = tmp_path / "good.bin"
    r = subprocess.run([sys.executable, "-m", "core", "download", "--url", f"{server}/file.bin", "--sha256", PAYLOAD_SHA,
                        "--to", str(good)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert good.read_bytes() == PAYLOAD
    bad = tmp_path / "bad.bin"
    r = subprocess.run([sys.executable, "-m", "core", "download", "--url", f"{server}/corrupt.bin", "--sha256", PAYLOAD_SHA,
                        "--to", str(bad)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert r.returncode != 0
    assert "sha256 mismatch" in r.stderr
    assert not bad.exists() and not any(tmp_path.glob(".bad.bin*"))


def test_mirror_endpoint_rewrites_hugging_face_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://huggingface.co/lj1995/VoiceConversionWebUI/resolve/main/rmvpe.pt"
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.delenv("SVCOVER_HF_ENDPOINT", raising=False)
    monkeypatch.delenv("SVCOVER_MIRROR", raising=False)  # the general mirror would take precedence
    assert pt.mirror_url(url) == url
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.example/")
    assert pt.mirror_url(url) == "https://hf-mirror.example/lj1995/VoiceConversionWebUI/resolve/main/rmvpe.pt"
    monkeypatch.setenv("SVCOVER_HF_ENDPOINT", "http://127.0.0.1:9")
    assert pt.mirror_url(url).startswith("http://127.0.0.1:9/lj1995/")
    assert pt.mirror_url("https://github.com/x/y") == "https://github.com/x/y"


def test_session_honours_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    session = pt.make_session()
    assert session.trust_env is True
    settings = session.merge_environment_settings("https://huggingface.co/x", {}, None, None, None)
    assert settings["proxies"].get("https") == "http://proxy.invalid:3128"


def test_registry_entries_are_complete() -> None:
    names = [e.name for e in pt.REGISTRY]
    assert names == ["contentvec", "rmvpe", "nsf_hifigan", "diffusion_svc_base", "uvr_vocals", "uvr_karaoke",
                     "uvr_dereverb", "roformer_vocals", "roformer_vocals_big", "roformer_karaoke", "roformer_dereverb"]
    for entry in pt.REGISTRY:
        assert entry.licence and entry.files and entry.required
        for f in (s for remote in entry.files for s in pt._sources(remote)):
            assert f.urls and all(u.startswith("https://") for u in f.urls)
            assert f.sha256 is None or len(f.sha256) == 64
            assert not Path(f.dest).is_absolute() and ".." not in Path(f.dest).parts
    assert pt.get("content").name == "contentvec" and pt.get("diffusion_svc").name == "diffusion_svc_base"
    assert pt.resolve_names(["uvr", "uvr_vocals", "hubert"]) == ["uvr_vocals", "uvr_karaoke", "uvr_dereverb",
                                                                  "contentvec"]
    from core.separate import (
        DEFAULT_DEREVERB_MODEL,
        DEFAULT_KARAOKE_MODEL,
        DEFAULT_VOCAL_MODEL,
        METADATA_FILES,
        _missing,
    )

    # every file the separation stage asks for is fetched by the name its error message gives (the Models tab's)
    for name in (DEFAULT_VOCAL_MODEL, DEFAULT_KARAOKE_MODEL, DEFAULT_DEREVERB_MODEL, *METADATA_FILES):
        named = _missing(pt.pretrained_root() / "uvr" / name).model
        assert f"uvr/{name}" in {f.dest for f in pt.get(named).files}, (name, named)
    # every catalogue model (checkpoint and yaml, Roformers included) likewise
    from core.separation_models import CATALOGUE

    for entry in CATALOGUE:
        for name in filter(None, (entry.filename, entry.config)):
            named = _missing(pt.pretrained_root() / "uvr" / name).model
            assert f"uvr/{name}" in {f.dest for f in pt.get(named).files}, (name, named)


def test_require_names_file_and_download_command(tmp_pretrained: Path) -> None:
    with pytest.raises(MissingPretrainedError) as err:
        pt.require(pt.RMVPE)
    msg = str(err.value)
    assert str(tmp_pretrained / "rmvpe" / "rmvpe.pt") in msg and "python -m core download rmvpe" in msg
    with pytest.raises(MissingPretrainedError, match="download contentvec"):
        pt.require(pt.CONTENT_ENCODER, pt.CONTENT_ENCODER_ALT)
    alt = tmp_pretrained / pt.CONTENT_ENCODER_ALT
    alt.parent.mkdir(parents=True)
    alt.write_bytes(b"x")
    assert pt.require(pt.CONTENT_ENCODER, pt.CONTENT_ENCODER_ALT) == alt
    with pytest.raises(MissingPretrainedError, match="download custom"):
        pt.require("x/y.pt", download_name="custom")


def test_status_detects_wrong_checksum(tmp_pretrained: Path) -> None:
    entry = pt.get("rmvpe")
    assert pt.status(entry).state == "missing"
    f = tmp_pretrained / pt.RMVPE
    f.parent.mkdir(parents=True)
    f.write_bytes(b"not the real rmvpe")
    assert pt.status(entry, verify=False).usable
    st = pt.status(entry)
    assert st.state == "wrong checksum" and not st.usable
    report = pt.missing_report(verify=True)
    assert "rmvpe" in report and "huggingface.co/lj1995" in report and str(f) in report


def test_install_zip_archive_lands_flat(server: str, tmp_pretrained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = pt.Pretrained(
        name="voc_test", title="t", licence="test", verified=True,
        files=(pt.RemoteFile(dest="voc", urls=(f"{server}/gone.zip", f"{server}/vocoder.zip"), archive="zip",
                             anchor="config.json"),),
        required=("voc/config.json", ("voc/model", "voc/model.ckpt")),
    )
    monkeypatch.setattr(pt, "REGISTRY", (*pt.REGISTRY, entry))
    st = pt.install("voc_test")
    assert st.usable, st.detail
    assert (tmp_pretrained / "voc" / "model.ckpt").read_bytes() == b"weights"
    assert not any((tmp_pretrained / ".downloads").glob("*"))
    assert [c[0] for c in _Handler.calls] == ["/gone.zip", "/vocoder.zip"]  # first mirror 404, second used


def test_zip_slip_is_refused(server: str, tmp_path: Path) -> None:
    archive = pt.download_url(f"{server}/evil.zip", tmp_path / "evil.zip")
    with pytest.raises(pt.DownloadError, match="outside the folder"):
        pt.extract_archive(archive, tmp_path / "out" / "voc", "zip", "config.json")
    assert not (tmp_path / "out" / "escaped.txt").exists()


def test_7z_unpacked_without_any_7z_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import py7zr

    monkeypatch.setattr(pt.shutil, "which", lambda name: None)  # no 7z/7za/7zr on PATH
    src = tmp_path / "src" / "contentvec768l12"
    src.mkdir(parents=True)
    (src / "model_0.pt").write_bytes(b"weights")
    (src / "config.yaml").write_text("model: {}\n")
    archive = tmp_path / "base.7z"
    with py7zr.SevenZipFile(archive, "w") as zf:
        zf.writeall(src, "contentvec768l12")
    out = pt.extract_archive(archive, tmp_path / "diffusion_svc", "7z", "*.pt", "model_0.pt")
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "model_0.pt"]
    assert (out / "model_0.pt").read_bytes() == b"weights"
    assert not list(tmp_path.glob(".tmp-unpack-*"))


def test_anchor_file_is_renamed(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip_bytes({"base/model_100000.pt": b"w", "base/config.yaml": b"x", "base/deep/other.pt": b"o"}))
    out = pt.extract_archive(archive, tmp_path / "d", "zip", "*.pt", "model_0.pt")
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "deep", "model_0.pt"]
    assert (out / "model_0.pt").read_bytes() == b"w"


def test_offline_download_lists_missing_files(tmp_pretrained: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SVCOVER_PRETRAINED": str(tmp_pretrained),
           "SVCOVER_HF_ENDPOINT": "http://127.0.0.1:9"}  # port 9 (discard): connection refused, like offline
    env.pop("SVCOVER_MIRROR", None)
    r = subprocess.run([sys.executable, "-m", "core", "download", "rmvpe", "--retries", "0", "--timeout", "2"],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert r.returncode == 1
    assert "connection failed" in r.stdout
    assert str(tmp_pretrained / "rmvpe" / "rmvpe.pt") in r.stdout
    assert "huggingface.co/lj1995/VoiceConversionWebUI/resolve/main/rmvpe.pt" in r.stdout
    assert not any(tmp_pretrained.rglob("rmvpe.pt"))


def test_stale_part_file_is_restarted_once(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "file.bin"
    pt.part_path(dest).write_bytes(b"bytes of an older version of the file")
    pt.download_url(f"{server}/file.bin", dest, sha256=PAYLOAD_SHA, retries=0)
    assert dest.read_bytes() == PAYLOAD
    assert _Handler.calls[0][1] is not None and _Handler.calls[-1][1] is None  # resumed, then restarted from 0


def test_models_tab_download_handler(server: str, tmp_pretrained: Path, tmp_logs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Download button submits a job; its result reaches the page. The job's worker runs in this process here
    (the registry is patched in this process only); tests/test_jobs.py runs workers as their own processes."""
    from core.jobs.model import JobState
    from core.jobs.runner import LocalProcessRunner
    from core.jobs.worker import run_job
    from webui import models_tab

    entry = pt.Pretrained(name="tiny", title="t", licence="test", verified=True,
                          files=(pt.RemoteFile(dest="tiny/file.bin", urls=(f"{server}/file.bin",), sha256=PAYLOAD_SHA),),
                          required=("tiny/file.bin",))
    broken = pt.Pretrained(name="broken", title="b", licence="test", verified=True,
                           files=(pt.RemoteFile(dest="broken/x.bin", urls=(f"{server}/corrupt.bin",), sha256=PAYLOAD_SHA),),
                           required=("broken/x.bin",))
    monkeypatch.setattr(pt, "REGISTRY", (entry, broken))
    monkeypatch.setattr(LocalProcessRunner, "_launch", lambda self, folder: run_job(self.store, folder.name))
    status = models_tab.download(["tiny", "broken"])
    assert "Queued" in status and "download of tiny, broken" in status
    shown, status, rows, text = models_tab.render_download("")
    assert "Done" in status and shown.endswith(f":{JobState.DONE}")
    assert (tmp_pretrained / "tiny" / "file.bin").read_bytes() == PAYLOAD
    assert {r[0]: r[1] for r in rows} == {"tiny": "ok", "broken": "missing"}
    assert "sha256 mismatch" in text and "Still missing" in text and str(tmp_pretrained / "broken" / "x.bin") in text


def test_archive_without_anchor_lands_whole_and_replaces_files(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip_bytes({"a.txt": b"new", "sub/b.txt": b"b"}))
    out = pt.extract_archive(archive, tmp_path / "dest", "zip")
    assert (out / "a.txt").read_bytes() == b"new" and (out / "sub" / "b.txt").read_bytes() == b"b"
    (out / "a.txt").write_bytes(b"old")
    (out / "keep.txt").write_bytes(b"k")
    pt.extract_archive(archive, out, "zip")  # into an existing folder: files replaced, others kept
    assert (out / "a.txt").read_bytes() == b"new" and (out / "keep.txt").read_bytes() == b"k"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-unpack-")] == []

"""Registry downloads through ``SVCOVER_MIRROR`` against a local HTTP server on 127.0.0.1.

The production registry entries keep their real URLs, sizes and hashes; each test swaps in the
values of its small test file through one seam (:func:`patched_registry`, a monkeypatched
``REGISTRY``), and the server answers under ``/mirror/<original host>/<original path>``, so every
test also proves the mirror URL contract. The CLI runs in-process through ``core.cli.main`` (what
``python -m core`` calls), so its one-line error handling is what is tested.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import torch

from core import pretrained as pt
from core.cli import main as cli_main

HF = "https://huggingface.co"
RMVPE_URL = f"{HF}/lj1995/VoiceConversionWebUI/resolve/main/rmvpe.pt"
BASE_PT_URL = f"{HF}/OOPPEENN/pretrained_model/resolve/main/contentvec768l12_full_512x20_model_0.pt"
BASE_7Z_URL = f"{HF}/ChiTu/Diffusion-SVC/resolve/main/v0.1/contentvec768l12.7z"
KARAOKE_URL = "https://github.com/TRvlvr/model_repo/releases/download/all_public_uvr_models/UVR_MDXNET_KARA_2.onnx"


def torch_bytes(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


CHECKPOINT = torch_bytes({"weights": torch.arange(50_000, dtype=torch.float32)})  # ~200 kB torch zip file
CHECKPOINT_SHA = hashlib.sha256(CHECKPOINT).hexdigest()
HTML = b"<!DOCTYPE html><html><body>Please log in to download this file</body></html>\n"


def mirrored(url: str) -> str:
    """The path the server sees for ``url`` under SVCOVER_MIRROR=<server>/mirror."""
    parts = urlsplit(url)
    return f"/mirror/{parts.netloc}{parts.path}"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection; a body without Content-Length ends at close

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        server = self.server
        server.requests.append(self.path)  # type: ignore[attr-defined]
        route = server.routes.get(self.path)  # type: ignore[attr-defined]
        if route is None:
            self.send_error(404)
            return
        kind, *args = route
        if kind == "body":  # (bytes, content type): Range supported
            body, ctype = args
            rng = self.headers.get("Range")
            start = int(rng.split("=")[1].split("-")[0]) if rng else 0
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            self.wfile.write(body[start:])
        elif kind == "no-length":  # the body ends when the connection closes (may be cut short)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            self.wfile.write(args[0])
        elif kind == "redirect":
            self.send_response(302)
            self.send_header("Location", args[0])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif kind == "stall":  # headers, a few bytes, then silence
            self.send_response(200)
            self.send_header("Content-Length", str(len(args[0])))
            self.end_headers()
            self.wfile.write(args[0][:100])
            self.wfile.flush()
            time.sleep(args[1])


@pytest.fixture
def server(tmp_pretrained: Path, monkeypatch: pytest.MonkeyPatch):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.routes = {}  # type: ignore[attr-defined]
    httpd.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setenv("SVCOVER_MIRROR", f"{base}/mirror")
    httpd.base = base  # type: ignore[attr-defined]
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def patched_registry(monkeypatch: pytest.MonkeyPatch, name: str, **changes) -> pt.Pretrained:
    """The test seam: replace fields of the first file of registry entry ``name`` (sizes, hashes)."""
    entries = list(pt.REGISTRY)
    i = next(k for k, e in enumerate(entries) if e.name == name)
    first = dataclasses.replace(entries[i].files[0], **changes)
    entries[i] = dataclasses.replace(entries[i], files=(first, *entries[i].files[1:]))
    monkeypatch.setattr(pt, "REGISTRY", tuple(entries))
    return entries[i]


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = cli_main(["download", "--retries", "0", "--timeout", "5", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _error_lines(stderr: str) -> list[str]:
    """The CLI's error lines (stderr also carries the progress bar)."""
    return [line for line in stderr.replace("\r", "\n").splitlines() if line.startswith("error")]


def leftovers(root: Path) -> list[str]:
    """Every file or folder under ``root`` except the checksum cache."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name != ".sha256-cache.json")


# ------------------------------------------------------------------------------------------ mirror contract


def test_mirror_url_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVCOVER_MIRROR", "http://127.0.0.1:8080/cache/")
    assert pt.mirror_url(RMVPE_URL) == "http://127.0.0.1:8080/cache/huggingface.co/lj1995/VoiceConversionWebUI/resolve/main/rmvpe.pt"
    assert pt.mirror_url("https://github.com/a/b/releases/download/t/x.zip?dl=1") == (
        "http://127.0.0.1:8080/cache/github.com/a/b/releases/download/t/x.zip?dl=1"
    )
    monkeypatch.setenv("HF_ENDPOINT", "https://elsewhere.invalid")  # the mirror wins over the HF endpoint
    assert pt.mirror_url(RMVPE_URL).startswith("http://127.0.0.1:8080/cache/huggingface.co/")
    monkeypatch.setenv("SVCOVER_MIRROR", "file:///srv/mirror")
    with pytest.raises(pt.DownloadError, match="SVCOVER_MIRROR"):
        pt.mirror_url(RMVPE_URL)


# ------------------------------------------------------------------------------------------ checksums and sizes


def test_right_hash_installs_through_the_mirror(server, tmp_pretrained: Path, monkeypatch, capsys) -> None:
    patched_registry(monkeypatch, "rmvpe", sha256=CHECKPOINT_SHA, size=len(CHECKPOINT))
    server.routes[mirrored(RMVPE_URL)] = ("body", CHECKPOINT, "application/octet-stream")
    code, out, err = run_cli(capsys, "rmvpe")
    assert code == 0, out + err
    assert (tmp_pretrained / pt.RMVPE).read_bytes() == CHECKPOINT
    assert server.requests == [mirrored(RMVPE_URL)]
    assert "rmvpe: ok" in out and leftovers(tmp_pretrained) == ["rmvpe", "rmvpe/rmvpe.pt"]


def test_wrong_hash_is_refused_and_leaves_nothing(server, tmp_pretrained: Path, monkeypatch, capsys) -> None:
    patched_registry(monkeypatch, "rmvpe", sha256=CHECKPOINT_SHA, size=len(CHECKPOINT))
    tampered = CHECKPOINT[:-1] + bytes([CHECKPOINT[-1] ^ 1])
    server.routes[mirrored(RMVPE_URL)] = ("body", tampered, "application/octet-stream")
    code, out, err = run_cli(capsys, "rmvpe")
    assert code == 1
    assert "sha256 mismatch" in out and f"expected {CHECKPOINT_SHA}" in out
    assert server.base + mirrored(RMVPE_URL) in out  # the message names the URL that was tried
    assert leftovers(tmp_pretrained) in ([], ["rmvpe"])  # no file, no .part


def test_wrong_size_is_refused_and_leaves_nothing(server, tmp_pretrained: Path, monkeypatch, capsys) -> None:
    patched_registry(monkeypatch, "rmvpe", sha256=None, size=len(CHECKPOINT) + 10)
    server.routes[mirrored(RMVPE_URL)] = ("body", CHECKPOINT, "application/octet-stream")
    code, out, _ = run_cli(capsys, "rmvpe")
    assert code == 1 and f"got {len(CHECKPOINT)} bytes, expected {len(CHECKPOINT) + 10}" in out
    assert not any(p.is_file() for p in tmp_pretrained.rglob("*") if p.name != ".sha256-cache.json")

    patched_registry(monkeypatch, "rmvpe", sha256=None, size=len(CHECKPOINT) - 10)  # longer than expected
    code, out, _ = run_cli(capsys, "rmvpe")
    assert code == 1 and "more than the expected" in out
    assert not any(p.is_file() for p in tmp_pretrained.rglob("*") if p.name != ".sha256-cache.json")

    monkeypatch.setattr(pt, "MAX_REGISTRY_BYTES", 1000)  # no size published: the registry-wide cap applies
    server.routes[mirrored(BASE_PT_URL)] = ("body", CHECKPOINT, "application/octet-stream")
    code, out, _ = run_cli(capsys, "diffusion_svc_base")
    assert code == 1 and "more than the allowed 1000 bytes" in out
    assert leftovers(tmp_pretrained) == []


def test_truncated_body_without_content_length_is_refused(server, tmp_pretrained: Path, monkeypatch, capsys) -> None:
    # a known size catches it
    patched_registry(monkeypatch, "rmvpe", sha256=None, size=len(CHECKPOINT))
    server.routes[mirrored(RMVPE_URL)] = ("no-length", CHECKPOINT[: len(CHECKPOINT) // 2])
    code, out, _ = run_cli(capsys, "rmvpe")
    assert code == 1 and f"got {len(CHECKPOINT) // 2} bytes, expected {len(CHECKPOINT)}" in out
    # no size and no sha256 published (the Diffusion-SVC base): the file type check catches it
    server.routes[mirrored(BASE_PT_URL)] = ("no-length", CHECKPOINT[: len(CHECKPOINT) // 2])
    code, out, _ = run_cli(capsys, "diffusion_svc_base")
    assert code == 1 and "PyTorch checkpoint is incomplete or damaged" in out
    assert mirrored(BASE_7Z_URL) in server.requests  # the fallback was tried too (and was missing)
    assert not any(p.is_file() for p in tmp_pretrained.rglob("*") if p.name != ".sha256-cache.json")


def test_html_page_instead_of_checkpoint_is_refused(server, tmp_pretrained: Path, capsys) -> None:
    server.routes[mirrored(BASE_PT_URL)] = ("body", HTML, "text/html; charset=utf-8")
    code, out, _ = run_cli(capsys, "diffusion_svc_base")
    assert code == 1 and "HTML page" in out
    # the same page labelled as a binary file is caught by its first bytes
    server.routes[mirrored(BASE_PT_URL)] = ("body", HTML, "application/octet-stream")
    code, out, _ = run_cli(capsys, "diffusion_svc_base")
    assert code == 1 and "got an HTML page, not the PyTorch checkpoint" in out
    assert not (tmp_pretrained / pt.DIFFUSION_SVC_BASE).exists()
    assert not any(p.is_file() for p in tmp_pretrained.rglob("*") if p.name != ".sha256-cache.json")
    # a page saved there by hand (or by an older downloader) is reported, not counted as installed
    assert leftovers(tmp_pretrained) == []  # not even an empty folder
    (tmp_pretrained / pt.DIFFUSION_SVC_BASE).parent.mkdir(parents=True)
    (tmp_pretrained / pt.DIFFUSION_SVC_BASE).write_bytes(HTML)
    st = pt.status(pt.get("diffusion_svc_base"))
    assert st.state == "damaged" and not st.usable and "got an HTML page, not the PyTorch checkpoint" in st.detail
    # ... and downloading again replaces it
    server.routes[mirrored(BASE_PT_URL)] = ("body", CHECKPOINT, "application/octet-stream")
    code, out, err = run_cli(capsys, "diffusion_svc_base")
    assert code == 0, out + err
    assert (tmp_pretrained / pt.DIFFUSION_SVC_BASE).read_bytes() == CHECKPOINT


def test_uvr_model_checked_by_audio_separator_md5_key(server, tmp_pretrained: Path, monkeypatch, capsys) -> None:
    onnx_like = b"\x08\x07" + bytes(range(256)) * 200  # ONNX files start with the ir_version field
    key = hashlib.md5(onnx_like).hexdigest()  # file shorter than 10,000 KiB: the key covers all of it
    assert pt.md5_tail(_write(tmp_pretrained.parent / "probe.onnx", onnx_like)) == key
    server.routes[mirrored(KARAOKE_URL)] = ("body", onnx_like, "application/octet-stream")
    patched_registry(monkeypatch, "uvr_karaoke", md5_tail="0" * 32)
    code, out, _ = run_cli(capsys, "uvr_karaoke")
    assert code == 1 and "audio-separator's table lists 00000000000000000000000000000000" in out
    assert not (tmp_pretrained / "uvr" / "UVR_MDXNET_KARA_2.onnx").exists()
    patched_registry(monkeypatch, "uvr_karaoke", md5_tail=key)
    code, out, _ = run_cli(capsys, "uvr_karaoke")
    assert code == 0 and "MD5 key" in out
    assert pt.status(pt.get("uvr_karaoke")).state == "ok"


@pytest.mark.parametrize(
    ("kind", "data", "problem"),
    [
        ("torch", CHECKPOINT, None),
        ("torch", CHECKPOINT[:-100], "incomplete or damaged"),
        ("torch", b"\x80\x02\x8a\x0alegacy pickle", None),
        ("torch", b"GIF89a....", "not a PyTorch checkpoint"),
        ("onnx", b"\x08\x07\x12\x07pytorch", None),
        ("onnx", b"  <html><body>404</body></html>", "HTML page"),
        ("json", b'{"a": 1}', None),
        ("json", b'{"a": 1', "not valid JSON"),
        ("yaml", b"model:\n  n_layers: 20\n", None),
        ("yaml", b"just a string", "not a mapping"),
        ("zip", CHECKPOINT, None),
        ("7z", b"7z\xbc\xaf\x27\x1c\x00\x04", "incomplete or damaged"),
        ("torch", b"", "empty file"),
    ],
)
def test_file_type_checks(tmp_path: Path, kind: str, data: bytes, problem: str | None) -> None:
    found = pt.file_type_problem(_write(tmp_path / "f", data), kind)
    assert found is None if problem is None else problem in found


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_production_entries_carry_the_published_values() -> None:
    rmvpe, content = pt.get("rmvpe").files[0], pt.get("contentvec").files[0]
    assert (rmvpe.size, rmvpe.sha256) == (181_184_272, "6d62215f4306e3ca278246188607209f09af3dc77ed4232efdd069798c4ec193")
    assert (content.size, content.sha256) == (189_507_909, "f54b40fd2802423a5643779c4861af1e9ee9c1564dc9d32f54f20b5ffba7db96")
    keys = {f.dest: f.md5_tail for n in ("uvr_vocals", "uvr_karaoke", "uvr_dereverb") for f in pt.get(n).files}
    assert keys["uvr/UVR-MDX-NET-Voc_FT.onnx"] == "77d07b2667ddf05b9e3175941b4454a0"
    assert keys["uvr/UVR_MDXNET_KARA_2.onnx"] == "1d64a6d2c30f709b8c9b4ce1366d96ee"
    assert keys["uvr/Reverb_HQ_By_FoxJoy.onnx"] == "cd5b2989ad863f116c855db1dfe24e39"
    base = pt.get("diffusion_svc_base")
    assert base.files[0].urls == (BASE_PT_URL,) and base.files[0].fallback.urls == (BASE_7Z_URL,)
    assert base.required == (pt.DIFFUSION_SVC_BASE,)  # config.yaml is optional
    for entry in pt.REGISTRY:
        for f in entry.files:
            assert f.checked_kind() in pt.FILE_KINDS, f"{f.dest}: every registry file has a type to check"
    assert pt.RemoteFile(dest="uvr/x.ckpt", urls=()).checked_kind() == "torch"  # new entries are typed by name
    assert pt.RemoteFile(dest="uvr/x.yaml", urls=()).checked_kind() == "yaml"


# ------------------------------------------------------------------------------------------ Diffusion-SVC base


def _tiny_base_state() -> dict:
    from core.model import SvcDecoder
    from core.model.config import TINY

    torch.manual_seed(3)
    model = SvcDecoder(TINY)
    torch.nn.init.normal_(model.decoder.denoise_fn.output_projection.weight, std=0.01)
    return {"global_step": 0, "model": model.state_dict()}


def test_7z_fallback_unpacked_in_python(server, tmp_pretrained: Path, monkeypatch, capsys, tmp_path: Path) -> None:
    import py7zr
    import yaml

    monkeypatch.setattr(pt.shutil, "which", lambda name: None)  # no 7z program anywhere
    folder = tmp_path / "src" / "contentvec768l12"
    folder.mkdir(parents=True)
    (folder / "model_0.pt").write_bytes(torch_bytes(_tiny_base_state()))
    (folder / "config.yaml").write_text(yaml.safe_dump({
        "data": {"encoder_out_channels": 768},
        "model": {"type": "Diffusion", "n_layers": 4, "n_chans": 64, "n_hidden": 256, "use_pitch_aug": True,
                  "n_spk": 1, "k_step_max": 300}}))  # fmt: skip
    archive = tmp_path / "base.7z"
    with py7zr.SevenZipFile(archive, "w") as zf:
        zf.writeall(folder, "contentvec768l12")
    server.routes[mirrored(BASE_7Z_URL)] = ("body", archive.read_bytes(), "application/x-7z-compressed")
    code, out, err = run_cli(capsys, "diffusion_svc_base")  # the plain .pt is missing (404): the 7z is used
    assert code == 0, out + err
    assert server.requests == [mirrored(BASE_PT_URL), mirrored(BASE_7Z_URL)]
    assert (tmp_pretrained / pt.DIFFUSION_SVC_BASE).read_bytes() == (folder / "model_0.pt").read_bytes()
    assert leftovers(tmp_pretrained) == ["diffusion_svc", "diffusion_svc/config.yaml", "diffusion_svc/model_0.pt"]
    from core.model import SvcDecoder

    assert SvcDecoder.from_checkpoint(tmp_pretrained / pt.DIFFUSION_SVC_BASE).config.k_step_max == 300


def test_damaged_7z_leaves_no_half_unpacked_folder(tmp_path: Path) -> None:
    import py7zr

    src = tmp_path / "m"
    src.mkdir()
    (src / "model_0.pt").write_bytes(CHECKPOINT)
    good = tmp_path / "good.7z"
    with py7zr.SevenZipFile(good, "w") as zf:
        zf.writeall(src, "m")
    bad = tmp_path / "bad.7z"
    bad.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(pt.DownloadError, match="not a valid 7z archive"):
        pt.extract_archive(bad, tmp_path / "out" / "diffusion_svc", "7z", "*.pt", "model_0.pt")
    assert not (tmp_path / "out" / "diffusion_svc").exists() and not list((tmp_path / "out").iterdir())
    with pytest.raises(pt.DownloadError, match="does not contain"):
        pt.extract_archive(good, tmp_path / "out" / "diffusion_svc", "7z", "config.yaml")
    assert not list((tmp_path / "out").iterdir())


def test_bare_model_0_downloaded_then_used_as_train_base(server, tmp_pretrained: Path, tmp_logs: Path, capsys) -> None:
    from core.experiment import Experiment
    from core.model import SvcDecoder
    from core.train import TrainConfig, train
    from tests.standin_features import build_standin_experiment

    state = _tiny_base_state()
    server.routes[mirrored(BASE_PT_URL)] = ("body", torch_bytes(state), "application/octet-stream")
    code, out, err = run_cli(capsys, "diffusion_svc_base")
    assert code == 0, out + err
    assert server.requests == [mirrored(BASE_PT_URL)]  # the plain .pt is the first choice
    assert leftovers(tmp_pretrained) == ["diffusion_svc", "diffusion_svc/model_0.pt"]  # bare: no config.yaml

    from tests.conftest import REAL

    exp = build_standin_experiment(Experiment.open("bare"), n_files=1, max_seconds=1.0, source=REAL / "speech_ljspeech")
    cfg = TrainConfig(model="tiny", device="cpu", batch_size=2, crop_frames=32, threads=1, warmup_steps=1, log_every=1,
                      steps=1, save_every=1, lr=1e-7, base="pretrained")  # fmt: skip
    train(exp, cfg)
    tuned = SvcDecoder.from_checkpoint(exp.checkpoints / "step_1.pt")
    w0 = state["model"]["decoder.denoise_fn.output_projection.weight"]
    assert torch.allclose(tuned.decoder.denoise_fn.output_projection.weight, w0, atol=1e-4)  # started from the base
    assert float(w0.abs().mean()) > 1e-3


def test_published_base_layout_is_read_from_shapes_alone(tmp_path: Path) -> None:
    """The real base's key/shape schema (no weights needed) maps to 512 x 20 without a config.yaml."""
    import json

    from core.model.decoder import config_for_state_dict
    from tests.conftest import REFERENCE

    schema = json.loads((REFERENCE / "diffusion_svc" / "schema.json").read_text())["keys"]
    state = {k: torch.empty(v["shape"], device="meta") for k, v in schema.items()}
    cfg = config_for_state_dict(state, tmp_path / "model_0.pt")
    assert (cfg.units_dim, cfg.n_hidden, cfg.n_chans, cfg.n_layers, cfg.n_mels) == (768, 256, 512, 20, 128)
    assert cfg.use_pitch_aug and cfg.k_step_max is None  # full depth when no config.yaml says otherwise


# ------------------------------------------------------------------------------------------ hostile servers


def test_redirect_to_file_url_is_refused_in_one_line(server, tmp_pretrained: Path, capsys, tmp_path: Path) -> None:
    server.routes[mirrored(RMVPE_URL)] = ("redirect", "file:///etc/passwd")
    code, out, err = run_cli(capsys, "rmvpe")
    assert code == 1 and "refused a redirect to 'file:///etc/passwd'" in out and "Traceback" not in out + err
    # a redirect chain is followed (each hop checked) and a relative Location works
    server.routes["/hop1"] = ("redirect", "/hop2")
    server.routes["/hop2"] = ("redirect", f"{server.base}/real.bin")
    server.routes["/real.bin"] = ("body", CHECKPOINT, "application/octet-stream")
    code, out, err = run_cli(capsys, "--url", f"{server.base}/hop1", "--to", str(tmp_path / "x.pt"), "--sha256", CHECKPOINT_SHA)
    assert code == 0, out + err
    assert (tmp_path / "x.pt").read_bytes() == CHECKPOINT
    server.routes["/evil"] = ("redirect", "file:///etc/passwd")
    code, out, err = run_cli(capsys, "--url", f"{server.base}/evil", "--to", str(tmp_path / "y.pt"))
    assert code == 1 and "Traceback" not in err and _error_lines(err) == [
        f"error: {server.base}/evil: refused a redirect to 'file:///etc/passwd': only http and https downloads are allowed"
    ]
    assert not (tmp_path / "y.pt").exists() and not list(tmp_path.glob(".y.pt*"))


def test_stall_and_connection_failure_are_told_apart(server, tmp_pretrained: Path, monkeypatch, capsys) -> None:
    patched_registry(monkeypatch, "rmvpe", sha256=CHECKPOINT_SHA, size=len(CHECKPOINT))
    server.routes[mirrored(RMVPE_URL)] = ("stall", CHECKPOINT, 3)
    t0 = time.monotonic()
    code = cli_main(["download", "rmvpe", "--retries", "0", "--timeout", "0.5"])
    out = capsys.readouterr().out
    assert code == 1 and "stalled (no data for 0.5 s" in out and "connection failed" not in out
    assert time.monotonic() - t0 < 2.5
    monkeypatch.setenv("SVCOVER_MIRROR", "http://127.0.0.1:9/mirror")  # port 9: nothing listens
    code = cli_main(["download", "rmvpe", "--retries", "0", "--timeout", "2"])
    out = capsys.readouterr().out
    assert code == 1 and "connection failed" in out and "stalled" not in out


def test_destination_and_checksum_checked_before_any_byte(server, tmp_path: Path, capsys) -> None:
    server.routes["/file.pt"] = ("body", CHECKPOINT, "application/octet-stream")
    folder = tmp_path / "existing"
    folder.mkdir()
    code, _, err = run_cli(capsys, "--url", f"{server.base}/file.pt", "--to", str(folder))
    assert code == 1 and len(_error_lines(err)) == 1 and f"{folder}: is a folder" in err
    code, _, err = run_cli(capsys, "--url", f"{server.base}/file.pt", "--to", str(tmp_path / "a.pt"), "--sha256", "zzzz")
    assert code == 1 and "'zzzz' is not a sha256" in err
    (tmp_path / "plain").write_text("x")
    code, _, err = run_cli(capsys, "--url", f"{server.base}/file.pt", "--to", str(tmp_path / "plain" / "a.pt"))
    assert code == 1 and "is a file, not a folder" in err
    code, _, err = run_cli(capsys, "--url", "file:///etc/passwd", "--to", str(tmp_path / "b.pt"))
    assert code == 1 and "not an http(s) URL" in err
    assert server.requests == []  # nothing was fetched for any of them
    assert not (tmp_path / "a.pt").exists() and not (tmp_path / "b.pt").exists() and not list(folder.iterdir())
    assert not list(tmp_path.glob(".*.part"))


def test_download_all_goes_through_the_mirror(server, tmp_pretrained: Path, monkeypatch, capsys) -> None:
    small = pt.Pretrained(name="small", title="t", licence="test", verified=True, required=("s/a.pt",),
                          files=(pt.RemoteFile(dest="s/a.pt", urls=("https://example.org/files/a.pt",), kind="torch"),))
    rmvpe = dataclasses.replace(pt.get("rmvpe"), files=(dataclasses.replace(pt.get("rmvpe").files[0],
                                                                            sha256=CHECKPOINT_SHA, size=len(CHECKPOINT)),))
    monkeypatch.setattr(pt, "REGISTRY", (rmvpe, small))
    server.routes[mirrored(RMVPE_URL)] = ("body", CHECKPOINT, "application/octet-stream")
    server.routes["/mirror/example.org/files/a.pt"] = ("body", CHECKPOINT, "application/octet-stream")
    code, out, err = run_cli(capsys, "--all")
    assert code == 0, out + err
    assert sorted(server.requests) == sorted([mirrored(RMVPE_URL), "/mirror/example.org/files/a.pt"])
    assert (tmp_pretrained / "s" / "a.pt").read_bytes() == CHECKPOINT == (tmp_pretrained / pt.RMVPE).read_bytes()


def test_failure_message_lists_every_url_tried(server, tmp_pretrained: Path, capsys) -> None:
    """The vocoder has two release URLs: the message names both as tried, in the order they were tried."""
    code, out, _ = run_cli(capsys, "nsf_hifigan")
    assert code == 1
    urls = pt.get("nsf_hifigan").files[0].urls
    tried = [server.base + mirrored(u) for u in urls]
    assert server.requests == [mirrored(u) for u in urls]
    first, second = out.index(f"{tried[0]}: HTTP 404"), out.index(f"{tried[1]}: HTTP 404")
    assert first < second


def test_redirect_from_https_to_http_is_refused() -> None:
    """No local https server here: a stand-in session answers the first request with a downgrade redirect."""

    class Redirect:
        is_redirect = True
        headers = {"Location": "http://example.org/plain/file.pt"}

        def close(self) -> None:
            pass

    class Session:
        calls: list[str] = []

        def get(self, url: str, **kwargs) -> Redirect:
            self.calls.append(url)
            return Redirect()

    session = Session()
    with pytest.raises(pt.DownloadError, match="refused a redirect from https to plain http"):
        pt._open_following_redirects(session, "https://example.org/file.pt", {}, 1.0)
    assert session.calls == ["https://example.org/file.pt"]  # the http target was never requested


def test_content_encoder_falls_back_to_the_trimmed_contentvec(server, tmp_pretrained: Path, capsys) -> None:
    """Both pinned hubert_base.pt copies gone: the ContentVec file is saved under its own accepted name."""
    alt_url = f"{HF}/ChiTu/Diffusion-SVC/resolve/main/checkpoint_best_legacy_500.pt"
    server.routes[mirrored(alt_url)] = ("body", CHECKPOINT, "application/octet-stream")
    code, out, err = run_cli(capsys, "contentvec")
    assert code == 0, out + err
    assert [p.split("/")[2] for p in server.requests] == ["huggingface.co"] * 3
    assert [p.split("/")[3] for p in server.requests] == ["lj1995", "OOPPEENN", "ChiTu"]  # pinned copies first
    assert leftovers(tmp_pretrained) == ["content", "content/checkpoint_best_legacy_500.pt"]
    assert pt.require(pt.CONTENT_ENCODER, pt.CONTENT_ENCODER_ALT) == tmp_pretrained / pt.CONTENT_ENCODER_ALT

"""Web UI security: localhost by default, loud warning when exposed, file access limited to logs/ and pretrained/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

import app
from tests.browser import free_port, running_app
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("security")
    logs, pre = base / "logs", base / "pretrained"
    (logs / "exp1").mkdir(parents=True)
    pre.mkdir()
    (logs / "exp1" / "note.txt").write_text("inside logs")
    (pre / "readme.txt").write_text("inside pretrained")
    (pre / ".sha256-cache.json").write_text("{}")
    secret = base / "secret.txt"
    secret.write_text("top secret")
    (logs / "exp1" / "link.txt").symlink_to(secret)
    marker = base / "PWNED"
    port = free_port()
    with running_app(base, host=None, port=port, timeout=90) as url:  # the default binding, as users start it
        yield {"url": url.rstrip("/"), "port": port, "logs": logs, "pre": pre, "secret": secret, "marker": marker,
               "base": base}  # fmt: skip


def _get_file(url: str, path: str) -> requests.Response:
    return requests.get(f"{url}/gradio_api/file={path}", timeout=10)


def test_binds_localhost_only(served) -> None:
    import psutil

    port = f"--port {served['port']}"
    (app_pid,) = [p.pid for p in psutil.process_iter(["cmdline"]) if port in " ".join(p.info["cmdline"] or [])]
    ips = {c.laddr.ip for c in psutil.Process(app_pid).net_connections(kind="inet") if c.status == "LISTEN"}
    assert ips == {"127.0.0.1"}


def test_files_under_logs_and_pretrained_are_served(served) -> None:
    r = _get_file(served["url"], served["logs"] / "exp1" / "note.txt")
    assert r.status_code == 200 and r.text == "inside logs"
    r = _get_file(served["url"], served["pre"] / "readme.txt")
    assert r.status_code == 200 and r.text == "inside pretrained"


@pytest.mark.parametrize(
    "which", ["etc_passwd", "secret", "traversal", "encoded_traversal", "symlink", "repo_file", "checksum_cache"]
)
def test_files_outside_are_refused(served, which: str) -> None:
    logs = served["logs"]
    path = {
        "etc_passwd": "/etc/passwd",
        "secret": str(served["secret"]),
        "traversal": f"{logs}/exp1/../../secret.txt",
        "encoded_traversal": f"{logs}/exp1/%2e%2e/%2e%2e/secret.txt",
        "symlink": f"{logs}/exp1/link.txt",
        "repo_file": str(ROOT / "app.py"),
        "checksum_cache": str(served["pre"] / ".sha256-cache.json"),
    }[which]
    r = _get_file(served["url"], path)
    assert r.status_code in (403, 404)
    assert "top secret" not in r.text and "root:" not in r.text and "def main" not in r.text


@pytest.mark.parametrize("inside_logs", [False, True])
def test_api_cannot_make_the_server_read_a_path(served, inside_logs: bool) -> None:
    """The import endpoint called with a raw server path (no upload) must not read that file.

    gradio_client would upload a local file itself, so this speaks the HTTP API directly, as an
    attacker would.
    """
    target = (served["logs"] / "exp1" / "model.pth") if inside_logs else (served["base"] / "model.pth")
    target.write_bytes(b"not really a model")
    url = served["url"]
    payload = {"data": [{"path": str(target), "meta": {"_type": "gradio.FileData"}}, "stolen"]}
    r = requests.post(f"{url}/gradio_api/call/voice_import", json=payload, timeout=10)
    assert r.status_code == 200
    stream = requests.get(f"{url}/gradio_api/call/voice_import/{r.json()['event_id']}", timeout=60).text
    assert "event: error" in stream and "not uploaded by a user" in stream
    assert not (served["logs"] / "stolen").exists()


def test_gradio_client_reads_status(served) -> None:
    from gradio_client import Client

    client = Client(served["url"], verbose=False)
    table = client.predict(api_name="/pretrained_status")
    rows = table["data"] if isinstance(table, dict) else table
    assert [r[0] for r in rows][:5] == ["contentvec", "rmvpe", "nsf_hifigan", "diffusion_svc_base", "uvr_vocals"]
    assert {r[1] for r in rows} == {"missing"}
    assert json.dumps(table).count(str(served["secret"])) == 0


def test_security_warning_rules() -> None:
    assert app.security_warning("127.0.0.1", False, None) is None
    assert app.security_warning("0.0.0.0", False, ("u", "p")) is None
    loud = app.security_warning("0.0.0.0", False, None)
    assert loud and "WITHOUT a password" in loud and "--auth" in loud
    assert "gradio.live" in (app.security_warning("127.0.0.1", True, None) or "")


def test_bad_auth_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    assert app.main(["--auth", "nopassword"]) == 2
    assert "user:password" in capsys.readouterr().err


def test_listen_without_auth_prints_warning(tmp_path: Path) -> None:
    """Exercises the real entry point; launch is replaced so nothing binds the network."""
    code = (
        "import sys, gradio as gr; sys.argv=['app.py','--listen','--port','1'];"
        "gr.Blocks.launch=lambda self, **kw: print('LAUNCH', kw['server_name'], kw['auth'], sorted(kw['allowed_paths']));"
        "import app; sys.exit(app.main())"
    )
    env = {**os.environ, "SVCOVER_LOGS": str(tmp_path / "logs"), "SVCOVER_PRETRAINED": str(tmp_path / "pre")}
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "WITHOUT a password" in r.stderr
    assert "LAUNCH 0.0.0.0 None" in r.stdout
    assert str(tmp_path / "logs") in r.stdout and str(tmp_path / "pre") in r.stdout

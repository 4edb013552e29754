"""Web UI hardening: login rate limiting, upload folder cleaning, no checkpoint-path oracle, server paths
with --listen, no absolute paths in files under logs/ (the file route serves them)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile as sf

from tests.browser import running_app
from tests.conftest import ROOT
from webui import security

SR = 44100


# ------------------------------------------------------------------------------------ login rate limiting


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _login_app(clock: _Clock):
    """A stand-in for gradio's /login (200 for the right password, 400 otherwise) behind the limiter."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def login(request):
        form = await request.form()
        ok = form.get("password") == "right"
        return JSONResponse({"success": ok}, status_code=200 if ok else 400)

    return Starlette(routes=[Route("/login", login, methods=["POST"]), Route("/gradio_api/login/", login, methods=["POST"])],
                     middleware=[Middleware(security.LoginRateLimiter, clock=clock)])  # fmt: skip


def test_thirty_wrong_passwords_are_refused_with_backoff() -> None:
    from starlette.testclient import TestClient

    clock = _Clock()
    client = TestClient(_login_app(clock), client=("10.0.0.7", 5000))
    codes = [client.post("/login", data={"username": "u", "password": f"guess{i}"}).status_code for i in range(30)]
    assert codes[:5] == [400] * 5 and set(codes[5:]) == {429}, codes  # five free failures, then refused
    refused = client.post("/login", data={"username": "u", "password": "right"})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1  # not even checked
    # Refused attempts do not count; the wait doubles per counted failure: 1 s after the 5th, 2 s after the 6th
    clock.now += 1.5
    assert client.post("/gradio_api/login/", data={"username": "u", "password": "wrong"}).status_code == 400
    assert client.post("/login", data={"username": "u", "password": "right"}).status_code == 429
    clock.now += 2.5
    assert client.post("/login", data={"username": "u", "password": "right"}).status_code == 200
    assert client.post("/login", data={"username": "u", "password": "bad"}).status_code == 400  # record cleared
    other = TestClient(_login_app(clock), client=("10.0.0.8", 5000))
    assert other.post("/login", data={"username": "u", "password": "right"}).status_code == 200


def test_backoff_is_capped() -> None:
    clock = _Clock()
    limiter = security.LoginRateLimiter(None, free_failures=2, base_delay=1.0, max_delay=60.0, clock=clock)  # type: ignore[arg-type]
    limiter.failures["a"] = (40, clock.now)
    assert limiter.wait_seconds("a") == 60.0
    assert limiter.wait_seconds("b") == 0.0


def test_live_app_rate_limits_logins_and_cleans_old_uploads(tmp_path: Path) -> None:
    """The real app.py with --auth: 30 wrong passwords in a row are mostly refused; stale uploads are removed."""
    logs = tmp_path / "logs"
    old_upload = logs / ".uploads" / "0123abcd" / "song.wav"
    old_upload.parent.mkdir(parents=True)
    old_upload.write_bytes(b"RIFF old upload")
    day_ago = time.time() - 86400
    for p in (old_upload, old_upload.parent):
        os.utime(p, (day_ago, day_ago))
    fresh = logs / ".uploads" / "4567ef01"
    fresh.mkdir()
    (fresh / "take.wav").write_bytes(b"RIFF fresh upload")
    # the app's default upload folder (logs/.uploads, cleaned at start), not one the environment chose
    with running_app(tmp_path, host=None, timeout=120, extra_args=["--auth", "alice:correct-horse"],
                     extra_env={"GRADIO_TEMP_DIR": None}) as url:  # fmt: skip
        codes = [requests.post(f"{url}login", data={"username": "alice", "password": f"guess{i}"}, timeout=10).status_code
                 for i in range(30)]  # fmt: skip
        assert codes.count(400) <= 6 and codes.count(429) >= 24, codes
        assert not old_upload.parent.exists() and (fresh / "take.wav").is_file()


# ------------------------------------------------------------------------------------ upload folder


def test_clean_uploads_removes_only_old_entries(tmp_path: Path) -> None:
    old, new, mixed = tmp_path / "a" / "x.wav", tmp_path / "b" / "y.wav", tmp_path / "c"
    for p in (old, new):
        p.parent.mkdir()
        p.write_bytes(b"x")
    mixed.mkdir()
    (mixed / "old.wav").write_bytes(b"x")
    (mixed / "new.wav").write_bytes(b"x")  # a folder with anything recent stays whole
    t = time.time() - 10 * 3600
    for p in (old, old.parent, mixed / "old.wav", mixed):
        os.utime(p, (t, t))
    assert security.clean_uploads(tmp_path, 6 * 3600) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "c"]


def test_listen_sets_upload_folder_server_paths_and_login_limiter(tmp_path: Path) -> None:
    """--listen without --allow-server-paths turns server paths off (on this computer alone they stay on)."""
    code = (
        "import os, sys, gradio as gr; sys.argv=['app.py','--listen','--auth','a:b','--port','1'];"
        "gr.Blocks.launch=lambda self, **kw: print('LAUNCH', os.environ.get('GRADIO_TEMP_DIR'),"
        " os.environ.get('SVCOVER_ALLOW_SERVER_PATHS'), [m.cls.__name__ for m in kw['app_kwargs']['middleware']]);"
        "import app; sys.exit(app.main())"
    )
    env = {**os.environ, "SVCOVER_LOGS": str(tmp_path / "logs"), "SVCOVER_PRETRAINED": str(tmp_path / "pre")}
    env.pop("GRADIO_TEMP_DIR", None)
    env.pop(security.SERVER_PATHS_ENV, None)
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"LAUNCH {tmp_path / 'logs' / '.uploads'} 0 ['LoginRateLimiter']" in r.stdout


# ------------------------------------------------------------------------------------ server paths


def _song(path: Path, seconds: float = 8.0) -> Path:
    t = np.arange(int(seconds * SR)) / SR
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SR, subtype="PCM_16")
    return path


def test_dataset_folder_box_refused_when_server_paths_are_off(tmp_logs: Path, tmp_path: Path, monkeypatch) -> None:
    import gradio as gr

    from core.jobs.runner import LocalProcessRunner
    from core.jobs.worker import run_job
    from webui import dataset_tab

    folder = tmp_path / "server_folder"
    folder.mkdir()
    _song(folder / "private.wav")
    form = (None, str(folder), "voice", -42, 400, 500, 5000, 4.0, 15.0, 0.0, "peak")
    monkeypatch.setenv(security.SERVER_PATHS_ENV, "0")
    with pytest.raises(gr.Error, match="disabled because the UI is reachable") as err:
        dataset_tab._submit(*form)
    assert str(folder) not in str(err.value)
    assert not (tmp_logs / "voice").exists()
    # On this computer alone (or --allow-server-paths) the same form builds the dataset: the Build button's
    # job, run here in this process instead of a worker process.
    monkeypatch.setenv(security.SERVER_PATHS_ENV, "1")
    monkeypatch.setattr(LocalProcessRunner, "_launch", lambda self, job_dir: run_job(self.store, Path(job_dir).name))
    dataset_tab._submit(*form)
    assert list((tmp_logs / "voice" / "0_gt_wavs").glob("*.wav"))


# ------------------------------------------------------------------------------------ checkpoint box


def test_checkpoint_box_is_not_a_file_oracle(tmp_logs: Path, tmp_path: Path) -> None:
    """Typing server paths into the checkpoint box gives one and the same answer whatever is on disk."""
    import gradio as gr

    from webui import convert_tab

    (tmp_logs / "voice").mkdir()
    vocal = _song(tmp_path / "v.wav", 1.0)
    existing = tmp_path / "secret.txt"
    existing.write_text("Xsecret first byte")
    answers = set()
    for value in (str(existing), str(tmp_path / "missing.pt"), "../../secret.txt", str(ROOT / "app.py")):
        with pytest.raises(gr.Error) as err:
            convert_tab._submit(vocal, "voice", value, 0, False, "dpm-solver++", 10, 0, 0.33, 0, "wav")
        answers.add(str(err.value))
    assert len(answers) == 1, answers
    (answer,) = answers
    assert "not found" not in answer and "'X'" not in answer and "choose best, latest" in answer


def test_checkpoint_names_resolve_inside_the_experiment(tmp_logs: Path) -> None:
    from core.convert import resolve_checkpoint
    from core.experiment import Experiment

    exp = Experiment.open("voice")
    exp.checkpoints.mkdir(parents=True)
    (exp.checkpoints / "step_5.pt").write_bytes(b"x")
    assert resolve_checkpoint(exp, "step_5.pt") == exp.checkpoints / "step_5.pt"
    assert security.ui_checkpoint("step_5.pt") == "step_5.pt" and security.ui_checkpoint("") == "best"


# ------------------------------------------------------------------------------------ no absolute paths served


def test_files_under_logs_hold_no_absolute_paths(tmp_logs: Path, tmp_path: Path) -> None:
    from core.cli import main as cli_main

    takes = tmp_path / "private" / "takes"
    takes.mkdir(parents=True)
    _song(takes / "a.wav")
    _song(takes / "b.wav", 9.0)
    assert cli_main(["dataset", str(takes), str(takes / "a.wav"), "--exp", "voice"]) == 0
    texts = [p.read_text(encoding="utf-8") for p in (tmp_logs / "voice").rglob("*.json")]
    assert texts and not any(str(tmp_path) in t for t in texts)
    assert any("takes/b.wav" in t for t in texts)


def test_job_records_are_not_served_but_outputs_are(tmp_path: Path) -> None:
    """A job's request names its inputs by absolute path: the file route must refuse the job folder."""
    logs = tmp_path / "logs"
    record = logs / ".jobs" / "cover-voice-1" / "request.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"input": "/home/someone/private/song.wav"}', encoding="utf-8")
    output = logs / "voice" / "outputs" / "take.wav"
    output.parent.mkdir(parents=True)
    output.write_bytes(b"RIFF a result")
    with running_app(tmp_path, timeout=120) as url:
        served = requests.get(f"{url}gradio_api/file={output}", timeout=10)
        refused = requests.get(f"{url}gradio_api/file={record}", timeout=10)
    assert served.status_code == 200 and served.content == b"RIFF a result"
    assert refused.status_code in (403, 404) and b"private" not in refused.content


def test_upload_folder_of_the_users_choice_is_left_alone(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "mine"))
    assert security.configure_upload_folder(tmp_path / "logs") is None  # so it is never cleaned
    assert os.environ["GRADIO_TEMP_DIR"] == str(tmp_path / "mine") and not (tmp_path / "logs").exists()
    monkeypatch.delenv("GRADIO_TEMP_DIR")
    assert security.configure_upload_folder(tmp_path / "logs") == tmp_path / "logs" / ".uploads"
    assert os.environ["GRADIO_TEMP_DIR"] == str(tmp_path / "logs" / ".uploads")

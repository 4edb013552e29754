"""The one-click cover in a real browser: drop a song, pick the voice model and key, press one button, reload the
page while the cover job runs, find it again, then its result in the outputs history.

Tiny models throughout: the small voice model of tests/standins.py and a tiny MDX-layout ONNX separation
model (tests/tiny_uvr.py) installed under the default vocal model's file name, so the real separation,
conversion and remix code paths all run, offline.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SR = 44100


@pytest.mark.browser
def test_song_to_cover_in_one_click(tmp_path: Path, voice_roots: tuple[Path, Path]) -> None:
    from core.separate import DEFAULT_VOCAL_MODEL
    from tests.browser import app_page, choose_option, click_tabs
    from tests.conftest import REAL
    from tests.tiny_uvr import install_tiny_uvr

    logs, shared_pretrained = voice_roots
    pretrained = tmp_path / "pretrained"
    pretrained.mkdir()
    for entry in shared_pretrained.iterdir():  # the voice model's encoder and vocoder, untouched
        (pretrained / entry.name).symlink_to(entry)
    install_tiny_uvr(pretrained / "uvr", name=DEFAULT_VOCAL_MODEL)

    song, sr = sf.read(REAL / "mixed" / "spleeter_audio_example_Slow_Motion_Dream.mp3", dtype="float32")
    clip = tmp_path / "my song.wav"
    seconds = 8  # long enough (with 40 sampler steps) for the job to be still running after the reload
    sf.write(clip, song[: seconds * sr], sr)
    outputs = logs / "voice" / "outputs"
    before = set(outputs.glob("*_cover_*")) if outputs.is_dir() else set()

    env = {"SVCOVER_LOGS": str(logs), "SVCOVER_PRETRAINED": str(pretrained), "OMP_NUM_THREADS": "1"}
    with app_page(tmp_path / "app", "Convert", "Song → cover", extra_env=env) as (url, page):
        page.locator("#cover-song input[type=file]").set_input_files(str(clip))
        choose_option(page, "cover-exp", "voice")
        page.get_by_text("Separation and mix").click()
        page.locator("#cover-steps input[type=number]").fill("40")
        page.locator("#cover-steps input[type=number]").press("Enter")
        # the slider takes the typed value asynchronously: wait until it shows it, or Run may read the old 10
        page.wait_for_function("document.querySelector('#cover-steps input[type=range]').value === '40'")
        page.locator("#cover-run").click()
        job = page.locator("#cover-job")
        job.get_by_text("Running").wait_for(timeout=120_000)

        page.reload()  # the browser forgets everything; the job keeps running in its own process
        click_tabs(page, "Convert", "Song → cover")
        job.get_by_text("cover of my song.wav with voice").wait_for(timeout=30_000)
        after_reload = job.inner_text()
        summary = page.locator("#cover-summary")
        summary.get_by_text(re.compile(r"mix \d+\.\d s")).first.wait_for(timeout=300_000)  # final line, not progress
        text = summary.inner_text()
        final_state = job.inner_text()
        page.locator("#cover-final audio").first.wait_for(state="attached")
        history = page.locator("#cover-history")
        history.locator("li.svc-output").first.wait_for()
        first_entry = history.locator("li.svc-output").first.get_attribute("data-name")
        link = history.locator("li.svc-output a[download]").first.get_attribute("href")
        served = page.request.get(url.rstrip("/") + link)
        served_status, served_body = served.status, served.body()

    assert "Running" in after_reload and "%" in after_reload, after_reload  # reattached to the live job
    assert "Done" in final_state
    assert "separate" in text and "convert" in text and "mix" in text
    assert re.search(r"Mix: -?\d+\.\d LUFS, true peak -\d+\.\d dBTP", text), text  # the measured mix figures
    assert f"Separation: {DEFAULT_VOCAL_MODEL}" in text  # the picker's "Auto" on a machine without CUDA
    new = sorted(set(outputs.glob("my song_voice_key0_cover_*.mp3")) - before)
    assert len(new) == 1, f"expected one new cover in {outputs}: {sorted(outputs.glob('*'))}"
    assert first_entry == new[0].name  # the newest result heads the outputs history
    assert served_status == 200 and served_body == new[0].read_bytes()
    from core.audio import load_audio

    cover = load_audio(new[0], SR)
    assert abs(cover.size - seconds * SR) < 0.1 * SR  # mp3 framing adds at most a few ms
    assert np.isfinite(cover).all() and 1e-3 < np.abs(cover).max() <= 1.0

    # Fine-grained progress: separation, then the conversion's sampler steps, then the mix, in that order.
    events_file = sorted((logs / ".jobs").glob("*-cover-*/events.jsonl"))[-1]  # job ids start with date and time
    messages = [e["message"] for e in map(json.loads, events_file.read_text().splitlines()) if e["kind"] == "progress"]
    first = {k: next(i for i, m in enumerate(messages) if m.startswith(k)) for k in ("separating", "converting", "mix")}
    assert first["separating"] < first["converting"] < first["mix"], messages
    assert any(re.search(r"converting the vocal: .*step \d+/40", m) for m in messages), messages

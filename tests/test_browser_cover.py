"""The one-click cover in a real browser: drop a song, pick the voice model and key, press one button.

Tiny models throughout: the small voice model of tests/standins.py and a tiny MDX-layout ONNX separation
model (tests/tiny_uvr.py) installed under the default vocal model's file name, so the real separation,
conversion and remix code paths all run, offline.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SR = 44100


@pytest.mark.browser
def test_song_to_cover_in_one_click(tmp_path: Path, voice_roots: tuple[Path, Path]) -> None:
    from core.separate import DEFAULT_VOCAL_MODEL
    from tests.browser import choose_option, chromium_page, running_app
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
    sf.write(clip, song[: 3 * sr], sr)
    outputs = logs / "voice" / "outputs"
    before = set(outputs.glob("*_cover_*")) if outputs.is_dir() else set()

    env = {"SVCOVER_LOGS": str(logs), "SVCOVER_PRETRAINED": str(pretrained), "OMP_NUM_THREADS": "1"}
    with running_app(tmp_path / "app", timeout=60, extra_env=env) as url, chromium_page(timeout_ms=60_000) as page:
        page.goto(url)
        page.get_by_role("tab", name="Convert").click()
        page.get_by_role("tab", name="Song → cover").click()
        page.locator("#cover-song input[type=file]").set_input_files(str(clip))
        choose_option(page, "cover-exp", "voice")
        page.locator("#cover-run").click()
        summary = page.locator("#cover-summary")
        summary.get_by_text(re.compile(r"mix \d+\.\d s")).first.wait_for(timeout=240_000)  # final line, not progress
        text = summary.inner_text()
        page.locator("#cover-final audio").first.wait_for(state="attached")

    assert "separate" in text and "convert" in text and "mix" in text
    assert re.search(r"Mix: -?\d+\.\d LUFS, true peak -\d+\.\d dBTP", text), text  # the measured mix figures
    assert f"Separation: {DEFAULT_VOCAL_MODEL}" in text  # the picker's "Auto" on a machine without CUDA
    new = sorted(set(outputs.glob("my song_voice_key0_cover_*.mp3")) - before)
    assert len(new) == 1, f"expected one new cover in {outputs}: {sorted(outputs.glob('*'))}"
    from core.audio import load_audio

    cover = load_audio(new[0], SR)
    assert abs(cover.size - 3 * SR) < 0.1 * SR  # mp3 framing adds at most a few ms
    assert np.isfinite(cover).all() and 1e-3 < np.abs(cover).max() <= 1.0

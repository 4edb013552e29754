"""The Convert tab in a real browser: drop a vocal, pick the voice model, auto key, convert, hear and plot."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

SR = 44100


@pytest.mark.browser
def test_convert_tab_converts_with_auto_key_and_plots_f0(tmp_path: Path, voice_roots: tuple[Path, Path]) -> None:
    from tests.browser import app_page, choose_option
    from tests.conftest import REAL

    logs, pretrained = voice_roots
    wav, sr = sf.read(REAL / "singing" / "vocadito_10.wav", dtype="float32")
    vocal = tmp_path / "take one.wav"
    sf.write(vocal, wav[: 2 * sr], sr)
    before = set((logs / "voice" / "outputs").glob("*")) if (logs / "voice" / "outputs").is_dir() else set()
    env = {"SVCOVER_LOGS": str(logs), "SVCOVER_PRETRAINED": str(pretrained), "OMP_NUM_THREADS": "1"}
    with app_page(tmp_path / "app", "Convert", "Vocal", extra_env=env) as (_, page):
        page.locator("#convert-input input[type=file]").set_input_files(str(vocal))
        choose_option(page, "convert-exp", "voice")
        page.locator("#convert-auto-key input").check()
        page.locator("#convert-run").click()
        summary = page.locator("#convert-summary")
        summary.get_by_text("take one_voice_key").first.wait_for(timeout=180_000)
        text = summary.inner_text()
        page.locator("#convert-result audio").first.wait_for(state="attached")
        page.locator("#convert-f0-plot").first.wait_for(state="visible")
    assert "suggested" in text and "sampling" in text
    new = sorted(set((logs / "voice" / "outputs").glob("take one_voice_key*.wav")) - before)
    assert len(new) == 1
    out, out_sr = sf.read(new[0], dtype="float32")
    assert out_sr == SR and abs(out.size - 2 * SR) < 512

"""First-run panel in a real browser: on an empty pretrained/ it says what each stage lacks and which UI action
fetches it; its button downloads through a local mirror (``SVCOVER_MIRROR``), shows progress, then the self-test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser import chromium_page, running_app
from tests.test_first_run import mirror_path, serve_files, vocoder_zip

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("SVCOVER_SCREENSHOTS")  # set to a folder to keep screenshots for review


def _shot(page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(Path(SHOTS or tmp_path) / f"first_run_{name}.png"), full_page=True)


def test_first_run_panel_downloads_then_self_tests(tmp_path: Path) -> None:
    body = vocoder_zip(tmp_path)
    # Throttled so that the download takes a few seconds and its progress can be seen.
    with serve_files({mirror_path("nsf_hifigan"): body}, bytes_per_second=len(body) / 3) as mirror, \
            running_app(tmp_path / "app", timeout=60, extra_env={"SVCOVER_MIRROR": mirror}) as url, \
            chromium_page(timeout_ms=60_000) as page:  # fmt: skip
        page.goto(url)
        needs = page.locator("#first-run-needs")
        expect(needs).to_contain_text("First run: what each stage still needs", timeout=60_000)
        text = needs.inner_text()
        for stage, name in (("Extract", "contentvec"), ("Train", "diffusion_svc_base"), ("Convert", "nsf_hifigan"),
                            ("Cover", "uvr_vocals")):  # fmt: skip
            assert stage in text and f"missing: {name}" in text, text
        assert "Download everything needed" in text and "Models tab" in text and "python -m core" not in text
        _shot(page, tmp_path, "1_empty")

        page.locator("#first-run-download").click()
        expect(page.locator("#first-run-result")).to_contain_text("downloading", timeout=60_000)  # live progress
        _shot(page, tmp_path, "2_progress")
        result = page.locator("#first-run-result")
        expect(result).to_contain_text("FAILED: nsf_hifigan", timeout=180_000)
        expect(result).to_contain_text("log-mel distance")
        expect(result).to_contain_text("download failed")
        assert "python -m core" not in result.inner_text()
        expect(needs).not_to_contain_text("missing: nsf_hifigan")  # on disk now (it failed its self-test)
        expect(needs).to_contain_text("missing: contentvec")
        _shot(page, tmp_path, "3_done")

        page.reload()  # the panel is filled on load from what is on disk, not from the previous page's state
        needs = page.locator("#first-run-needs")
        expect(needs).to_contain_text("missing: contentvec", timeout=60_000)
        expect(needs).not_to_contain_text("missing: nsf_hifigan")
        expect(page.locator("#first-run-download")).to_be_visible()
    assert (tmp_path / "app" / "pretrained" / "nsf_hifigan" / "config.json").is_file()

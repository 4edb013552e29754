"""First-run panel in a real browser: on an empty pretrained/ it says what each stage lacks and which UI action
fetches it; its button starts a download job through a local mirror (``SVCOVER_MIRROR``); a page reload in the
middle of the download reattaches to the job, whose progress continues until its result and self-test appear."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser import chromium_page, running_app
from tests.mirror import mirror_path, serve_files, vocoder_zip

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("SVCOVER_SCREENSHOTS")  # set to a folder to keep screenshots for review


def _shot(page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(Path(SHOTS or tmp_path) / f"first_run_{name}.png"), full_page=True)


def test_first_run_download_is_a_job_that_survives_a_reload(tmp_path: Path) -> None:
    body = vocoder_zip(tmp_path)
    # Throttled so that the vocoder takes ~15 s: long enough to reload the page in the middle of its download.
    with serve_files({mirror_path("nsf_hifigan"): body}, bytes_per_second=len(body) / 15) as mirror, \
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
        job = page.locator("#first-run-job")
        expect(job).to_contain_text("Running", timeout=60_000)
        expect(job).to_contain_text("nsf_hifigan:", timeout=60_000)  # the throttled file is downloading
        expect(page.locator("#first-run-download")).to_be_hidden()  # no second download while one runs
        before = job.inner_text()
        _shot(page, tmp_path, "2_progress")

        page.reload()  # mid-download: the page must find the running job again
        job = page.locator("#first-run-job")
        expect(job).to_contain_text("Running", timeout=30_000)
        expect(job).to_contain_text("download of contentvec, rmvpe, diffusion_svc_base, nsf_hifigan, uvr_vocals")
        assert "nsf_hifigan" in job.inner_text(), (before, job.inner_text())  # still the vocoder: reload was mid-way
        expect(page.locator("#first-run-download")).to_be_hidden()
        expect(page.locator("#first-run-needs")).to_contain_text("It keeps going if you reload the page")
        percent = _percent(job.inner_text())
        expect(job).not_to_contain_text(re.compile(rf"(?<!\d){percent}%"), timeout=30_000)  # the progress keeps moving after the reload
        _shot(page, tmp_path, "3_after_reload")

        result = page.locator("#first-run-result")
        expect(result).to_contain_text("FAILED: nsf_hifigan", timeout=180_000)
        expect(result).to_contain_text("log-mel distance")
        expect(result).to_contain_text("contentvec: failed: contentvec: every source failed")
        expect(job).to_contain_text("Done")
        assert "python -m core" not in result.inner_text()
        needs = page.locator("#first-run-needs")
        expect(needs).not_to_contain_text("missing: nsf_hifigan")  # on disk now (it failed its self-test)
        expect(needs).to_contain_text("missing: contentvec")
        expect(page.locator("#first-run-download")).to_be_visible()  # the rest can be tried again
        _shot(page, tmp_path, "4_done")

        page.reload()  # the panel is filled on load from what is on disk, and keeps the last result
        needs = page.locator("#first-run-needs")
        expect(needs).to_contain_text("missing: contentvec", timeout=60_000)
        expect(needs).not_to_contain_text("missing: nsf_hifigan")
        expect(page.locator("#first-run-download")).to_be_visible()
        expect(page.locator("#first-run-result")).to_contain_text("FAILED: nsf_hifigan", timeout=30_000)
    assert (tmp_path / "app" / "pretrained" / "nsf_hifigan" / "config.json").is_file()
    jobs = list((tmp_path / "app" / "logs" / ".jobs").glob("*download*"))
    assert len(jobs) == 1, jobs  # one job, watched from two page loads


def _percent(status: str) -> int:
    """The job's progress in percent as the status line shows it (``… **37%** · …``)."""
    found = re.search(r"(\d+)%", status)
    assert found, status
    return int(found.group(1))

"""Jobs in a real browser: the Train tab's loss curve really draws its lines, and a failed training shows why.

The experiment is the small voice model trained by the real Train stage (tests/standins.py), so the curve shows
what a run really writes to metrics.jsonl. The failing training is a real job (worker process) on an experiment
without a dataset.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

DRAWN_LINES_JS = """() => [...document.querySelectorAll('#train-curve g[class*=mark-line] path')]
    .map(p => (p.getAttribute('d') || '').split(/[ML]/).filter(s => s.trim()).length)"""


def test_loss_curve_draws_and_a_failed_training_shows_its_reason(tmp_path: Path, voice_roots: tuple[Path, Path]) -> None:
    from tests.browser import choose_option, chromium_page, running_app

    shared_logs, pretrained = voice_roots
    logs = tmp_path / "logs"
    shutil.copytree(shared_logs / "voice", logs / "voice", ignore=shutil.ignore_patterns("features", "1_16k_wavs"))
    rows = [json.loads(line) for line in (logs / "voice" / "metrics.jsonl").read_text().splitlines() if line.strip()]
    n_train, n_val = len(rows), sum(r.get("val_loss") is not None for r in rows)
    assert n_train >= 4 and n_val >= 2

    env = {"SVCOVER_LOGS": str(logs), "SVCOVER_PRETRAINED": str(pretrained), "OMP_NUM_THREADS": "1"}
    with running_app(tmp_path / "app", timeout=60, extra_env=env) as url, chromium_page(timeout_ms=60_000) as page:
        page.set_viewport_size({"width": 1024, "height": 1200})
        page.goto(url)
        page.get_by_role("tab", name="Train").click()
        # The page loads with an empty curve; the most recently trained experiment is preselected and its curve
        # arrives afterwards: the case that used to draw axes but no lines.
        drawn = f"(({DRAWN_LINES_JS})().filter(n => n > 1).length == 2)"
        page.wait_for_function(drawn, timeout=60_000)
        points = sorted(page.evaluate(DRAWN_LINES_JS))
        legend = page.locator("#train-curve").inner_text()
        assert page.locator("#train-exp input").input_value() == "voice"
        status = page.locator("#train-status").inner_text()

        # A training that fails in its job: an experiment without a dataset and no recordings given (FCPE needs no
        # download, so the check of the pretrained files before starting passes).
        page.get_by_text("More", exact=True).click()
        choose_option(page, "train-f0", "fcpe")
        page.locator("#train-exp input").fill("no_data_yet")
        page.locator("#train-exp input").press("Enter")
        page.locator("#train-start").click()
        page.locator("#train-status").get_by_text("Failed").wait_for(timeout=120_000)
        failed = page.locator("#train-status").inner_text()

    assert points == sorted([n_val, n_train]), points  # one drawn point per metrics row, in both series
    assert "train" in legend and "validation" in legend and "Infinity" not in legend
    assert "Step 300" in status.replace("*", "")
    assert re.search(r"Failed\W+training of no_data_yet: .*no dataset yet: build it in the Dataset tab", failed), failed
    assert "Not running" not in failed

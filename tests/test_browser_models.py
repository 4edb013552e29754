"""Models tab in a real browser: pretrained status, doctor panel, importing a foreign checkpoint safely."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser import app_page
from tests.standins import TouchPayload

pytestmark = pytest.mark.browser


def test_models_tab_status_doctor_and_import(tmp_path: Path) -> None:
    import torch

    good = tmp_path / "in" / "friend.pth"
    good.parent.mkdir()
    torch.save({"weight": {"enc.w": torch.ones(2, 2)}, "sr": "40k"}, good)

    evil = tmp_path / "in" / "evil.pth"
    torch.save({"weight": {"w": torch.ones(1)}, "x": TouchPayload(tmp_path / "PWNED")}, evil)

    with app_page(tmp_path / "app", "Models") as (url, page):
        status = page.locator("#models-status")
        expect(status).to_contain_text("diffusion_svc_base")  # dataframe cells also exist hidden: read the text
        assert status.inner_text().count("\nmissing\n") >= 5

        page.locator("#models-doctor").click()
        expect(page.locator("#models-doctor-msg")).to_contain_text("problem(s)", timeout=90_000)
        expect(page.locator("#models-doctor-table")).to_contain_text("ffmpeg")

        page.locator("#models-import-file input[type=file]").set_input_files(str(good))
        page.locator("#models-import-file").get_by_text("friend.pth").first.wait_for()
        page.locator("#models-import-name textarea, #models-import-name input").first.fill("friend")
        page.locator("#models-import").click()
        page.locator("#models-import-msg").get_by_text("Imported as").first.wait_for(timeout=90_000)

        # A fresh page instead of the upload's Clear button: under load the cleared input could be replaced
        # while the next file was being set, and the upload never registered.
        page.goto(url)
        page.get_by_role("tab", name="Models").click()
        page.locator("#models-import-file input[type=file]").set_input_files(str(evil))
        page.locator("#models-import-file").get_by_text("evil.pth").first.wait_for()
        page.locator("#models-import-name textarea, #models-import-name input").first.fill("evil")
        page.locator("#models-import").click()
        expect(page.locator("#models-import-msg")).to_contain_text("refused to load", timeout=90_000)

    logs = tmp_path / "app" / "logs"
    assert (logs / "friend" / "export" / "model.safetensors").is_file()
    assert not (logs / "evil").exists() and not (tmp_path / "PWNED").exists()

"""Models tab in a real browser: pretrained status, doctor panel, importing a foreign checkpoint safely."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser import chromium_page, running_app

pytestmark = pytest.mark.browser


def test_models_tab_status_doctor_and_import(tmp_path: Path) -> None:
    import torch

    good = tmp_path / "in" / "friend.pth"
    good.parent.mkdir()
    torch.save({"weight": {"enc.w": torch.ones(2, 2)}, "sr": "40k"}, good)

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'PWNED'}",))

    evil = tmp_path / "in" / "evil.pth"
    torch.save({"weight": {"w": torch.ones(1)}, "x": Payload()}, evil)

    with running_app(tmp_path / "app", timeout=60) as url, chromium_page(timeout_ms=60_000) as page:
        page.goto(url)
        page.get_by_role("tab", name="Models").click()
        status = page.locator("#models-status")
        status.get_by_text("diffusion_svc_base").first.wait_for()
        assert status.get_by_text("missing", exact=True).count() >= 5

        page.locator("#models-doctor").click()
        page.locator("#models-doctor-msg").get_by_text("problem(s)").first.wait_for(timeout=90_000)
        assert page.locator("#models-doctor-table").get_by_text("ffmpeg").count() >= 1

        page.locator("#models-import-file input[type=file]").set_input_files(str(good))
        page.locator("#models-import-file").get_by_text("friend.pth").first.wait_for()
        page.locator("#models-import-name textarea, #models-import-name input").first.fill("friend")
        page.locator("#models-import").click()
        page.locator("#models-import-msg").get_by_text("Imported as").first.wait_for(timeout=90_000)

        page.locator("#models-import-file button[aria-label='Clear']").first.click()
        page.locator("#models-import-file input[type=file]").set_input_files(str(evil))
        page.locator("#models-import-file").get_by_text("evil.pth").first.wait_for()
        page.locator("#models-import-name textarea, #models-import-name input").first.fill("evil")
        page.locator("#models-import").click()
        page.get_by_text("refused to load").first.wait_for(timeout=90_000)

    logs = tmp_path / "app" / "logs"
    assert (logs / "friend" / "export" / "model.safetensors").is_file()
    assert not (logs / "evil").exists() and not (tmp_path / "PWNED").exists()

"""Guided first run: a panel above the tabs saying what each stage still needs, and one button that downloads
everything required (live progress), then self-tests what it downloaded.

The panel is filled when the page loads (not when the app is built), so it reflects the pretrained folder as it
is now; it hides itself once every stage has its models. Downloads go through ``core.pretrained.install``, the
check through ``core.selftest.run_self_test``; torch is imported only when the button is pressed.
"""

from __future__ import annotations

import gradio as gr

from webui.common import gradio_progress, selftest_markdown, user_errors

# What each stage needs from pretrained/, in pipeline order: (stage, [registry names], note when nothing is needed).
STAGE_NEEDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Dataset", ()),
    ("Extract", ("contentvec", "rmvpe")),  # content encoder + F0 model (FCPE ships with the app as the alternative)
    ("Train", ("diffusion_svc_base",)),
    ("Convert", ("nsf_hifigan",)),
    ("Cover", ("uvr_vocals",)),
)
NEEDS_TEXT = {
    "contentvec": "content encoder",
    "rmvpe": "F0 model",
    "diffusion_svc_base": "decoder base",
    "nsf_hifigan": "vocoder",
    "uvr_vocals": "vocal separation model",
}


def required_names() -> list[str]:
    """Every registry name some stage needs, in pipeline order."""
    return [name for _, names in STAGE_NEEDS for name in names]


def missing_names() -> list[str]:
    """The required models that are not usable on disk (presence only: checksums are checked on download)."""
    from core.pretrained import REGISTRY, all_status

    usable = {e.name for e, st in zip(REGISTRY, all_status(verify=False), strict=True) if st.usable}
    return [n for n in required_names() if n not in usable]


def _size_text(names: list[str]) -> str:
    from core.pretrained import get

    sizes = [f.size for n in names for f in get(n).files]
    known = sum(s for s in sizes if s)
    if not known:
        return ""
    return f" (at least {known / 1e6:,.0f} MB)" if None in sizes else f" ({known / 1e6:,.0f} MB)"


def panel_markdown(missing: list[str]) -> str:
    """The stage table: ready, or which model is missing and what to press."""
    lines = ["### First run: what each stage still needs", "", "| stage | needs | status |", "|---|---|---|"]
    for stage, names in STAGE_NEEDS:
        needs = " + ".join(f"{NEEDS_TEXT[n]} (`{n}`)" for n in names) or "nothing"
        gaps = [n for n in names if n in missing]
        status = "ready" if not gaps else "missing: " + ", ".join(f"`{n}`" for n in gaps)
        lines.append(f"| {stage} | {needs} | {status} |")
    if missing:
        lines += ["", f"Press **Download everything needed** to fetch {len(missing)} model(s){_size_text(missing)}, "
                  "checked with sha256 where published and then self-tested; or tick single models in the "
                  "**Models** tab → **Download selected**. Dataset works already; Extract can use the built-in "
                  "FCPE pitch model instead of `rmvpe`."]  # fmt: skip
    else:
        lines += ["", "Every stage has its models. The Models tab can self-test them again at any time."]
    return "\n".join(lines)


def on_load() -> tuple[dict, str, dict]:
    """Page load: show the panel (and its button) only while something is missing."""
    missing = missing_names()
    return gr.update(visible=bool(missing)), panel_markdown(missing), gr.update(visible=bool(missing))


@user_errors
def download_everything(progress: gr.Progress = gr.Progress()) -> tuple[str, str]:
    """Install every missing required model (one failure does not stop the others), then self-test them."""
    from core.errors import SvcoverError
    from core.pretrained import install, missing_report
    from core.progress import scaled
    from core.selftest import TESTED_MODELS, run_self_test

    cb = gradio_progress(progress)
    todo = missing_names()
    if not todo:
        return panel_markdown([]), "Nothing to download: every stage has its models."
    lines, installed = [], []
    download_share = 0.8  # of the bar; the self-test gets the rest
    for i, name in enumerate(todo):
        sub = scaled(cb, download_share * i / len(todo), download_share * (i + 1) / len(todo))
        sub(0.0, f"downloading {name}")
        try:
            st = install(name, sub)
            installed.append(name)
            lines.append(f"- **{name}**: {st.state} ({st.detail})")
        except Exception as e:  # shown per model; the others still download
            text = e.for_ui() if isinstance(e, SvcoverError) else f"{type(e).__name__}: {e}"
            lines.append(f"- **{name}**: download failed: {text}")
    text = "#### Downloads\n" + "\n".join(lines)
    still = missing_names()
    if still:
        text += ("\n\nStill missing (offline? get them by hand):\n```\n" + missing_report(for_ui=True) + "\n```")
    tested = [n for n in installed if n in TESTED_MODELS]
    if tested:
        results = run_self_test(tested, scaled(cb, download_share, 1.0))
        text += "\n\n" + selftest_markdown(results)
    return panel_markdown(still), text


def build(demo: gr.Blocks) -> None:
    """The panel (call inside ``demo``'s context, above the tabs); it is filled when the page loads."""
    with gr.Group(visible=False, elem_id="first-run") as panel:
        table = gr.Markdown(elem_id="first-run-needs")
        button = gr.Button("Download everything needed", variant="primary", elem_id="first-run-download",
                           visible=False)  # fmt: skip
        result = gr.Markdown(elem_id="first-run-result")
    button.click(download_everything, outputs=[table, result], api_name="first_run_download")
    demo.load(on_load, outputs=[panel, table, button])

"""Helpers shared by the tabs: progress adapter and turning core errors into one-line UI messages."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from core.errors import SvcoverError
from core.experiment import list_experiments
from webui.outputs_view import page_warning, suggested_key

if TYPE_CHECKING:
    from core.selftest import ModelCheck

log = logging.getLogger(__name__)


def gradio_progress(progress: gr.Progress) -> Callable[[float, str], None]:
    """Adapt ``gr.Progress`` to core's ``progress(fraction, message)`` callback."""

    def callback(fraction: float, message: str = "") -> None:
        progress(fraction, desc=message or None)

    return callback


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Show core's one-line errors as a Gradio error box instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SvcoverError as e:  # the UI wording: "Models tab → Download ...", not a CLI command
            raise gr.Error(e.for_ui(), print_exception=False) from None
        except OSError as e:  # disk full, permission denied ... outside core's own wrapping: still one line
            from core.fsutil import os_error_cause

            raise gr.Error(f"{e.filename or 'a file'}: {os_error_cause(e)}", print_exception=False) from None
        except Exception as e:  # a bug: keep the traceback in the console, one line in the page
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(f"unexpected error: {type(e).__name__}: {e}", print_exception=False) from None

    return wrapper


def selftest_markdown(results: list[ModelCheck]) -> str:
    """Self-test results (core.selftest.ModelCheck list) as a Markdown list: a failing model is named first."""
    from core.selftest import FAIL, PASS

    marks = {PASS: "pass", FAIL: "**FAIL**"}
    tested = [r for r in results if r.status in marks]
    if not tested:
        return "#### Self-test\nNo installed model to test."
    failed = [r.model for r in tested if r.status == FAIL]
    head = (f"#### Self-test: {len(failed)} of {len(tested)} model(s) FAILED: {', '.join(failed)}\n"
            "A failing model is the wrong file or a damaged download: download it again in the Models tab "
            "(tick it, Download selected) or replace the file by hand."
            if failed else f"#### Self-test: all {len(tested)} model(s) passed")  # fmt: skip
    return head + "\n" + "\n".join(f"- {marks[r.status]} **{r.model}**: {r.detail}" for r in tested)


def experiment_choices() -> list[str]:
    return list_experiments()


def trained_at(name: str) -> float:
    """When ``name`` was last trained (its newest checkpoint file), 0 if never."""
    from core.experiment import Experiment

    try:
        folder = Experiment.open(name).checkpoints
        return max((p.stat().st_mtime for p in folder.glob("*.pt") if not p.name.startswith(".")), default=0.0)
    except (OSError, SvcoverError):
        return 0.0


def recently_trained() -> str | None:
    """The experiment trained most recently (None if none has a checkpoint)."""
    times = {name: trained_at(name) for name in list_experiments()}
    best = max(times, key=times.__getitem__, default=None)
    return best if best is not None and times[best] > 0 else None


def experiment_dropdown(current: str | None = None, preselect: bool = True) -> Any:
    """Fresh choices for an experiment dropdown; keeps ``current`` if it still exists, else the most recently
    trained experiment (never just the first name in the list). On page load ``current`` is the dropdown's own
    value: the dropdowns are built with ``value=None`` (so Gradio does not pick the first name on its own), and a
    name the user chose before this load event ran (it can wait behind other events) is kept."""
    choices = list_experiments()
    value = current if current in choices else (recently_trained() if preselect else None)
    if value is None:
        # Nothing to preselect: leave the value alone. A load event carries the value it saw when the page
        # loaded; sending that back would clear a name the user picked while the event waited in the queue.
        return gr.update(choices=choices)
    return gr.update(choices=choices, value=value)


def fresh_experiment_choices() -> Any:
    """Fresh choices only (when a list is opened): the value, chosen or typed, is left alone — sending it back
    could overwrite what the user types meanwhile."""
    return gr.update(choices=list_experiments())


def experiment_picker(tab: str, label: str = "Experiment", *, allow_custom_value: bool = True,
                      preselect_on_refresh: bool = False) -> Any:  # fmt: skip
    """The experiment dropdown (``<tab>-exp``) with its ↻ button (``<tab>-refresh``), from inside a tab's ``build()``.

    Built without a value; the page load preselects the most recently trained experiment. Opening the list and ↻
    fetch fresh names; with ``preselect_on_refresh`` ↻ also picks the most recently trained one when the chosen
    name is gone (the voice-model pickers), otherwise it leaves the value alone."""
    with gr.Row():
        exp = gr.Dropdown(choices=experiment_choices(), value=None, label=label, elem_id=f"{tab}-exp",
                          allow_custom_value=allow_custom_value, scale=4)  # fmt: skip
        refresh = gr.Button("↻", scale=0, min_width=40, elem_id=f"{tab}-refresh")
    if preselect_on_refresh:
        refresh.click(experiment_dropdown, inputs=exp, outputs=exp)
    else:
        refresh.click(fresh_experiment_choices, outputs=exp)
    exp.focus(fresh_experiment_choices, outputs=exp)
    on_page_load(experiment_dropdown, inputs=exp, outputs=exp)
    return exp


def run_and_stop_buttons(tab: str, label: str) -> tuple[Any, Any]:
    """The primary button that submits the tab's job (``<tab>-run``) and its Stop button (``<tab>-stop``)."""
    with gr.Row():
        run = gr.Button(label, variant="primary", elem_id=f"{tab}-run")
        stop = gr.Button("Stop", variant="stop", elem_id=f"{tab}-stop", scale=0, min_width=80)
    return run, stop


def job_result_widgets(tab: str, audio_label: str, audio_id: str) -> tuple[Any, ...]:
    """What a job tab with an audio result shows: job status, summary, warnings, the "Use suggested key" button,
    the result player (``audio_id``) and its download, in this order."""
    return (
        gr.Markdown(elem_id=f"{tab}-job"),
        gr.Markdown(elem_id=f"{tab}-summary"),
        gr.Markdown(elem_id=f"{tab}-warnings"),
        gr.Button("Use suggested key", visible=False, size="sm", elem_id=f"{tab}-use-key"),
        gr.Audio(label=audio_label, type="filepath", interactive=False, elem_id=audio_id),
        gr.File(label="Download", interactive=False),
    )


def finished_job_result(job: Any, key_range: tuple[int, int]) -> tuple[int | None, str, Any, str | None]:
    """What a finished job with an audio result shows: (the key its warnings offer, clamped to ``key_range``; the
    warnings in the page's words; the "Use suggested key" button; its output file, None when it is gone)."""
    offer = suggested_key(job.warnings, key_range)
    warnings = "\n\n".join(f"⚠️ {page_warning(w, key_range)}" for w in job.warnings)
    use_key = gr.update(visible=offer is not None, value=f"Use suggested key {offer:+d}" if offer is not None else "")
    output = job.outputs[0] if job.outputs and Path(job.outputs[0]).is_file() else None
    return offer, warnings, use_key, output


def on_page_load(fn: Callable[..., Any], inputs: Any = None, outputs: Any = None) -> None:
    """Run ``fn`` whenever the page is (re)loaded, from inside a tab's ``build()``."""
    from gradio.context import Context

    root = Context.root_block
    if root is None:  # built outside a Blocks (tests of a single tab): nothing to attach to
        return
    # Not behind the app's one-at-a-time queue: these are cheap reads, and waiting behind a long event would let
    # them overwrite what the user did meanwhile.
    root.load(fn, inputs=inputs, outputs=outputs, show_progress="hidden", concurrency_limit=None)


def offered_name(raw: str) -> str:
    """The experiment name offered for what the user typed (``my voice`` -> ``my_voice``, ``CON`` -> ``CON_1``);
    empty when nothing usable was typed. The cleaning rule itself lives in :func:`core.experiment.suggest_name`."""
    from core.experiment import suggest_name

    typed = str(raw or "").strip()
    return suggest_name(typed) if re.search(r"[A-Za-z0-9]", typed) else ""


def clean_name_field(raw: str) -> Any:
    """On leaving a name field: put the offered name in it (and say so) when the typed one is not usable."""
    typed = (raw or "").strip()
    offered = offered_name(typed)
    if not typed or offered == typed:
        return gr.skip()
    if offered:
        gr.Info(f"'{typed}' is not usable as an experiment name (letters, digits, _ and - only; no Windows device "
                f"names): using '{offered}'.")  # fmt: skip
    return gr.update(value=offered)


def checked_name(raw: str | None) -> str:
    """``raw`` as an experiment name, or a one-line error offering the cleaned form."""
    from core.experiment import validate_name

    typed = (raw or "").strip()
    offered = offered_name(typed)
    if typed and offered != typed:
        raise SvcoverError(f"'{typed}' is not usable as an experiment name: use '{offered}'")
    return validate_name(typed)

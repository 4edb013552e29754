"""Helpers shared by the tabs: progress adapter and turning core errors into one-line UI messages."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gradio as gr

from core.errors import SvcoverError
from core.experiment import list_experiments

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


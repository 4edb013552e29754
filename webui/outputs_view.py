"""The outputs history of an experiment (converted vocals and covers, newest first) and stage warnings in UI words."""

from __future__ import annotations

import html
import re
import time
import urllib.parse
from pathlib import Path

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3")
HISTORY_LIMIT = 30
_RANGE_HINT = re.compile(r"; a key shift of ([+-]?\d+) semitones would centre it$")


def history_files(exp: str | None) -> list[Path]:
    """Converted vocals and covers of ``exp`` (``logs/<exp>/outputs``, not the cover work files), newest first."""
    from core.errors import SvcoverError
    from core.experiment import Experiment, visible_files

    if not exp:
        return []
    try:
        folder = Experiment.open(exp).outputs
    except SvcoverError:
        return []
    files = [p for p in visible_files(folder) if p.suffix.lower() in AUDIO_SUFFIXES]
    return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)[:HISTORY_LIMIT]


def _file_url(path: Path) -> str:
    # Gradio's file route; the logs folder is in the app's allowed_paths.
    return "/gradio_api/file=" + urllib.parse.quote(str(path.resolve()).replace("\\", "/"), safe="/:")


def history_html(exp: str | None) -> str:
    """A list with a player and a download link per result (the newest first)."""
    files = history_files(exp)
    if not exp:
        return "<p><em>Choose a voice model to see its results.</em></p>"
    if not files:
        return f"<p><em>No results of <b>{html.escape(exp)}</b> yet.</em></p>"
    rows = []
    for p in files:
        url = _file_url(p)
        kind = "cover" if "_cover_" in p.name else "vocal"
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(p.stat().st_mtime))
        rows.append(
            f'<li class="svc-output" data-name="{html.escape(p.name)}"><b>{html.escape(p.name)}</b> '
            f"<small>({kind}, {when}, {p.stat().st_size / 1e6:.1f} MB)</small><br>"
            f'<audio controls preload="none" src="{url}"></audio> '
            f'<a href="{url}" download="{html.escape(p.name)}">download</a></li>'
        )
    return f"<ol class='svc-outputs' style='padding-left:1.2em'>{''.join(rows)}</ol>"


def clamp_key(key: float, low: float, high: float) -> int:
    return int(max(low, min(high, round(key))))


def page_warning(warning: str, slider: tuple[float, float]) -> str:
    """A stage warning in the page's words: the key range hint names the slider (clamped), not a CLI flag."""
    m = _RANGE_HINT.search(warning)
    if not m:
        return warning
    ideal = int(m.group(1))
    usable = clamp_key(ideal, *slider)
    text = warning[: m.start()]
    if usable == ideal:
        return f"{text}. Suggested key: **{usable:+d}** (press *Use suggested key*)."
    return (f"{text}. Suggested key: **{usable:+d}**, the slider's limit (the melody would need {ideal:+d}: this "
            "voice model suits another song or singer better).")  # fmt: skip


def suggested_key(warnings: list[str], slider: tuple[float, float], fallback: float | None = None) -> int | None:
    """The key the page offers in one click: from the range warning, else the stage's suggestion; clamped."""
    for w in warnings:
        m = _RANGE_HINT.search(w)
        if m:
            return clamp_key(int(m.group(1)), *slider)
    return None if fallback is None else clamp_key(fallback, *slider)

"""The Convert tab: two modes, a single vocal or a whole song (→ cover)."""

from __future__ import annotations

import gradio as gr


def build() -> None:
    from webui import convert_tab, cover_tab

    with gr.Tab("Song → cover", id="cover"):
        cover_tab.build()
    with gr.Tab("Vocal", id="vocal"):
        convert_tab.build()

"""Build the Blocks app with every tab."""

from __future__ import annotations

import importlib

import gradio as gr

from core import __version__

# (tab label, module with build())
TABS: list[tuple[str, str]] = [
    ("Dataset", "webui.dataset_tab"),
    ("Extract", "webui.extract_tab"),
    ("Train", "webui.train_tab"),
    ("Convert", "webui.convert_page"),
    ("Models", "webui.models_tab"),
    ("Jobs", "webui.jobs_view"),
]


def build_app() -> gr.Blocks:
    with gr.Blocks(title="svcover") as demo:
        gr.Markdown(f"# svcover {__version__}\nSinging voice conversion studio — Dataset → Extract → Train → Convert")
        from webui import first_run

        first_run.build(demo)  # hidden unless a stage still lacks a pretrained model
        for label, module_name in TABS:
            with gr.Tab(label, id=label.lower()):
                importlib.import_module(module_name).build()
    return demo

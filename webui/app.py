"""Build the Blocks app with every tab."""

from __future__ import annotations

import importlib

import gradio as gr

from core import __version__

# (tab label, module with build(), message shown while the stage is not built yet)
TABS: list[tuple[str, str, str]] = [
    ("Dataset", "webui.dataset_tab", "Slicing your recordings into a dataset."),
    ("Extract", "webui.extract_tab", "Feature extraction (ContentVec, F0, loudness, mel) is coming next."),
    ("Train", "webui.train_tab", "Training the diffusion decoder is on the roadmap."),
    ("Convert", "webui.convert_page", "Conversion and the song → cover flow are on the roadmap."),
    ("Models", "webui.models_tab", "The pretrained-model manager is on the roadmap."),
]


def build_app() -> gr.Blocks:
    with gr.Blocks(title="svcover") as demo:
        gr.Markdown(f"# svcover {__version__}\nSinging voice conversion studio — Dataset → Extract → Train → Convert")
        from webui import first_run

        first_run.build(demo)  # hidden unless a stage still lacks a pretrained model
        for label, module_name, todo in TABS:
            with gr.Tab(label, id=label.lower()):
                try:
                    module = importlib.import_module(module_name)
                except ModuleNotFoundError as e:
                    if e.name != module_name:
                        raise
                    gr.Markdown(f"**{label} is not built yet.** {todo}")
                    continue
                module.build()
    return demo

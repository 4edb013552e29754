"""The Gradio web UI: one module per tab, only widgets, events and calls into ``core``."""

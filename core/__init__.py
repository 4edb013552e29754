"""svcover core library: every stage of the singing-voice-conversion studio.

Nothing here imports Gradio; the web UI and the CLI are thin callers of these functions.
Heavy libraries (torch, librosa, ...) are imported lazily inside the modules that need them
so that ``python app.py`` serves its first page fast.
"""

__version__ = "0.1.0"

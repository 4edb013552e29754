"""svcover core library: every stage of the singing-voice-conversion studio.

Nothing here imports Gradio; the web UI and the CLI are thin callers of these functions.
Heavy libraries (torch, librosa, ...) are imported lazily inside the modules that need them
so that ``python app.py`` serves its first page fast.
"""

import os as _os

__version__ = "0.1.0"

# OpenMP threads that spin while waiting make torch on a busy CPU several times slower (measured: a 3x3
# conv 31 ms instead of 4 ms with two threads beside other jobs). Must be set before torch loads; an
# explicit user setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

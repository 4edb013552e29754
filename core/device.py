"""Pick the compute device: CUDA when present, else MPS, else CPU; ``--device`` overrides."""

from __future__ import annotations

from core.errors import SvcoverError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def pick_device(requested: str = "auto") -> str:
    """Resolve ``auto``/``cpu``/``cuda[:N]``/``mps`` to a usable torch device string."""
    import torch

    requested = (requested or "auto").lower()
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SvcoverError(f"--device {requested}: no CUDA GPU is available to torch {torch.__version__}")
        return requested
    if requested == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise SvcoverError("--device mps: Apple MPS is not available")
        return requested
    if requested == "cpu":
        return "cpu"
    raise SvcoverError(f"unknown device {requested!r}: use one of {', '.join(DEVICE_CHOICES)}")

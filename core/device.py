"""Pick the compute device: CUDA when present, else MPS, else CPU; ``--device`` overrides."""

from __future__ import annotations

from enum import StrEnum

from core.errors import SvcoverError


class Device(StrEnum):
    """The device choices the CLI and the UI offer (members equal these strings); ``cuda:N`` is accepted too."""

    AUTO = "auto"  # CUDA when present, else MPS, else CPU
    CPU = "cpu"
    CUDA = "cuda"
    MPS = "mps"


# Plain strings, not members: argparse names invalid choices by their repr ('cpu', not <Device.CPU: 'cpu'>).
DEVICE_CHOICES: tuple[str, ...] = tuple(d.value for d in Device)


def pick_device(requested: str = Device.AUTO) -> str:
    """Resolve ``auto``/``cpu``/``cuda[:N]``/``mps`` to a usable torch device string."""
    import torch

    requested = (requested or Device.AUTO).lower()
    if requested == Device.AUTO:
        if torch.cuda.is_available():
            return Device.CUDA.value
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return Device.MPS.value
        return Device.CPU.value
    if requested.startswith(Device.CUDA):
        if not torch.cuda.is_available():
            raise SvcoverError(f"--device {requested}: no CUDA GPU is available to torch {torch.__version__}")
        return requested
    if requested == Device.MPS:
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise SvcoverError("--device mps: Apple MPS is not available")
        return requested
    if requested == Device.CPU:
        return Device.CPU.value
    raise SvcoverError(f"unknown device {requested!r}: use one of {', '.join(DEVICE_CHOICES)}")

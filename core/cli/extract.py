"""``python -m core extract``: computes the features of an experiment (core.features.extract).

Parses the flags into an :class:`ExtractConfig` (defaults from the dataclass, choices from their one
home), runs the stage with one tqdm bar per feature group and prints the run's summary.
"""

from __future__ import annotations

import argparse
from typing import Any

from tqdm import tqdm

from core.device import DEVICE_CHOICES
from core.features.encoders import ENCODERS
from core.features.extract import ExtractConfig, run_extract
from core.features.f0 import F0_METHODS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = ExtractConfig()
    parser.add_argument("--exp", required=True, metavar="NAME", help="experiment name (folder under logs/)")
    parser.add_argument("--f0", default=defaults.f0_method, choices=F0_METHODS,
                        help="F0 estimator (default: %(default)s; fcpe is faster, harvest/parselmouth need no weights)")
    parser.add_argument("--device", default=defaults.device, choices=DEVICE_CHOICES,
                        help="where models run (default: %(default)s = CUDA GPU if present, else CPU)")
    parser.add_argument("--encoder", default=defaults.encoder, choices=tuple(ENCODERS),
                        help="content encoder: ContentVec layer 12, 768-d (default, Diffusion-SVC bases) "
                             "or layer 9 + final projection, 256-d")  # fmt: skip


class StageBars:
    """Per-stage tqdm bars (the stage's ``stage_progress``): a new bar whenever the stage changes."""

    def __init__(self) -> None:
        self.stage: str | None = None
        self.bar: Any = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=total, desc=f"{stage:<8}", unit="chunk")
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def config_from_args(args: argparse.Namespace) -> ExtractConfig:
    return ExtractConfig(f0_method=args.f0, encoder=args.encoder, device=args.device)


def run_cli(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    bars = StageBars()
    try:
        rep = run_extract(args.exp, config, stage_progress=bars)
    finally:
        bars.close()
    print(rep.summary().replace("**", "").replace("\n\n", "\n"))
    return 0

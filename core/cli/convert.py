"""``python -m core convert``: flags into a :class:`~core.convert.ConvertConfig`, then :func:`~core.convert.convert_files`.

The voice-conversion flags (checkpoint, sampler, steps, retrieval blend, F0 method, seed, device) are the same for
``convert`` and ``cover``: :func:`add_conversion_options` adds them to either parser and :func:`convert_config`
reads them back. Defaults come from ``ConvertConfig()``, choice lists from their one home. core.convert imports no
heavy library at module level (models load inside its functions), so ``--help`` stays light.
"""

from __future__ import annotations

import argparse
from typing import Any

from core.convert import FORMATS, ConvertConfig, convert_files
from core.device import DEVICE_CHOICES
from core.features.f0 import F0_METHODS
from core.model.samplers import SAMPLERS
from core.progress import tqdm_progress

DEFAULTS = ConvertConfig()


def parse_key(text: str) -> float | None:
    """``--key``: semitones, or ``auto`` (None: suggest from the training set's range)."""
    if text.strip().lower() == "auto":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--key must be a number of semitones or 'auto', not {text!r}") from None


def add_conversion_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The flags of :class:`ConvertConfig` that ``convert`` and ``cover`` share (read back by :func:`convert_config`)."""
    parser.add_argument("--ckpt", default=DEFAULTS.ckpt,
                        help="best (lowest validation loss), latest, or a checkpoint path")  # fmt: skip
    parser.add_argument("--sampler", choices=SAMPLERS, default=DEFAULTS.sampler,
                        help=f"diffusion sampler (default {DEFAULTS.sampler})")
    parser.add_argument("--steps", type=int, default=DEFAULTS.steps,
                        help=f"sampler steps (default {DEFAULTS.steps}; PNDM-100 is the slow high-quality reference)")
    parser.add_argument("--index-rate", type=float, default=DEFAULTS.index_rate,
                        help="retrieval blend 0..1 (0 = off; needs 'python -m core index')")
    parser.add_argument("--protect", type=float, default=DEFAULTS.protect,
                        help=f"keep breaths/consonants: share of the source's own features in unvoiced frames 0..1 "
                             f"(default {DEFAULTS.protect}; 0 = off; acts with --index-rate)")  # fmt: skip
    parser.add_argument("--f0", dest="f0_method", choices=F0_METHODS, default=DEFAULTS.f0_method,
                        help="F0 method (default: the one the model was trained with)")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed, help="random seed (same seed, same output)")
    # no choices: "cuda:N" picks one GPU of several
    parser.add_argument("--device", default=DEFAULTS.device, help=f"{', '.join(DEVICE_CHOICES)} or cuda:N")


def convert_config(args: argparse.Namespace, **only_convert: Any) -> ConvertConfig:
    """The ConvertConfig of ``--key`` and the :func:`add_conversion_options` flags; ``only_convert``: the fields
    only ``convert`` has flags for (the cover keeps their defaults)."""
    return ConvertConfig(key=args.key, ckpt=args.ckpt, sampler=args.sampler, steps=args.steps,
                         index_rate=args.index_rate, protect=args.protect, f0_method=args.f0_method, seed=args.seed,
                         device=args.device, **only_convert)  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exp", required=True, help="experiment (voice model) name under logs/")
    parser.add_argument("--input", required=True, help="vocal file or folder of vocals (anything ffmpeg decodes)")
    parser.add_argument("--output", default=None, help="output file (one input) or folder (default logs/<exp>/outputs)")
    parser.add_argument("--key", type=parse_key, default=DEFAULTS.key,
                        help="key shift in semitones, or 'auto' to move the input into the model's range")
    add_conversion_options(parser)
    parser.add_argument("--format", choices=FORMATS, default=DEFAULTS.format, help="output format for folder outputs")
    parser.add_argument("--loudness-match", type=float, default=DEFAULTS.loudness_match,
                        help="follow the input's loudness envelope 0..1")
    parser.add_argument("--piece-seconds", type=float, default=DEFAULTS.piece_seconds,
                        help="piece length for long inputs (default: from free memory)")


def run_cli(args: argparse.Namespace) -> int:
    config = convert_config(args, format=args.format, loudness_match=args.loudness_match,
                            piece_seconds=args.piece_seconds)  # fmt: skip
    with tqdm_progress("convert") as bar:
        results = convert_files(args.exp, args.input, args.output, config, progress=bar)
    for r in results:
        rtf = r.seconds_taken / max(r.seconds_audio, 1e-9)
        extra = f" (suggested key {r.suggested_key:+.0f})" if r.suggested_key is not None else ""
        print(f"{r.input} -> {r.output}  key {r.key:+g}{extra}  {r.seconds_audio:.1f} s audio in {r.seconds_taken:.1f} s (RTF {rtf:.2f})")
        for w in r.warnings:
            print(f"warning: {r.input.name}: {w}")
    return 0

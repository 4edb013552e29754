"""``python -m core <stage>``: the command line, a thin caller of the stage functions.

Each stage's CLI module (``core/cli/<stage>.py``, or for stages not yet moved the stage module itself)
defines ``add_arguments(parser)`` and ``run_cli(args) -> int``. Only the module of the chosen stage is
imported, so ``--help`` is fast and does not load torch (tests/test_architecture.py).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from core import __version__
from core.errors import SvcoverError, os_error_cause

# stage -> (module defining add_arguments/run_cli, one-line help)
STAGES: dict[str, tuple[str, str]] = {
    "dataset": ("core.cli.dataset", "slice audio files/folders/zips into a training dataset"),
    "extract": ("core.cli.extract", "compute content, F0, loudness and mel features"),
    "index": ("core.cli.index", "build the retrieval index of training content features"),
    "train": ("core.cli.train", "train the diffusion decoder"),
    "convert": ("core.cli.convert", "convert a vocal with a trained voice model"),
    "cover": ("core.cli.cover", "song in, cover out: separate, convert, remix"),
    "download": ("core.cli.pretrained", "download pretrained weights or any file, verified"),
    "doctor": ("core.cli.doctor", "check the environment: torch, GPU, ffmpeg, pretrained files"),
    "voice": ("core.cli.voice", "export or import a shareable voice model (safetensors + model card)"),
}


def build_parser(stage: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="svcover: singing voice conversion studio")
    parser.add_argument("--version", action="version", version=f"svcover {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="stage", metavar="STAGE")
    for name, (module, help_text) in STAGES.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == stage:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    stage = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(stage if stage in STAGES else None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s: %(message)s")
    if not args.stage:
        parser.print_help()
        return 2
    module = importlib.import_module(STAGES[args.stage][0])
    try:
        return int(module.run_cli(args) or 0)
    except SvcoverError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a read or write the stage did not wrap: still one line naming the path and the cause
        where = e.filename or "a file"
        print(f"error: {where}: {os_error_cause(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; finished work is kept", file=sys.stderr)
        return 130

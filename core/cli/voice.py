"""``python -m core voice export|import``: the command line of shareable voice models (core.voicemodel).

    python -m core voice export --exp NAME [--checkpoint best|latest|FILE] [--out FILE.zip]
    python -m core voice import FILE [--name NAME]

Only parses arguments and prints results: the work is done by :mod:`core.voicemodel`, which the Models
tab calls too.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from core.errors import SvcoverError
from core.voicemodel import card_summary, export_experiment, import_voice_model, install_voice_model, pack_zip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="voice_action", metavar="ACTION", required=True)
    export = actions.add_parser("export", help="write logs/<exp>/export/ (fp16 safetensors + model card)",
                                description="export a trained experiment as a shareable voice model")  # fmt: skip
    export.add_argument("--exp", required=True, help="experiment name under logs/")
    export.add_argument("--checkpoint", default="best",
                        help="best (default), latest, a file name in checkpoints/ or a checkpoint path")  # fmt: skip
    export.add_argument("--out", default=None, help="also pack the export into this .zip file for sharing")
    imp = actions.add_parser("import", help="store a voice model file as logs/<name>/export/",
                             description="import a voice model: svcover folder/.zip/.safetensors, or a foreign "
                             ".pt/.pth/.ckpt (read by the safe loader, no code runs)")  # fmt: skip
    imp.add_argument("file", help="voice model folder or file")
    imp.add_argument("--name", default=None, help="experiment name to store it as (default: from the file name)")


def name_from_file(path: Path) -> str:
    """An experiment name made from a file name: other characters become '_', at most 64 characters."""
    stem = path.name.removesuffix(path.suffix) if path.is_file() else path.name
    return re.sub(r"[^A-Za-z0-9_-]", "_", stem)[:64] or "voice"


def run_cli(args: argparse.Namespace) -> int:
    if args.voice_action == "export":
        folder = export_experiment(args.exp, checkpoint=args.checkpoint)
        card = import_voice_model(folder).card
        print(f"exported {folder} ({card_summary(card)})")
        if args.out:
            out = Path(args.out)
            if out.suffix.lower() != ".zip":
                raise SvcoverError(f"{out}: --out must name a .zip file")
            print(f"packed {pack_zip(folder, out)}")
        return 0
    source = Path(args.file)
    name = args.name or name_from_file(source)
    folder = install_voice_model(source, name)
    print(f"imported {source} as {name} -> {folder} ({card_summary(import_voice_model(folder).card)})")
    return 0

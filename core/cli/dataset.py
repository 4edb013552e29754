"""``python -m core dataset``: slices audio files, folders and zips into logs/<exp>/ (core.dataset).

Parses the flags into a :class:`DatasetConfig` and prints the run's report (text or JSON). Every flag's
default is the matching dataclass field's default.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from core.dataset import NORMALIZE_MODES, DatasetConfig, NoUsableAudioError, build_dataset
from core.progress import tqdm_progress
from core.slicer import SliceSettings

# (SliceSettings field, type, help): the flag is the field name with dashes, its default the field's default.
SLICING_FLAGS: tuple[tuple[str, type, str], ...] = (
    ("threshold_db", float, "RMS below this (dBFS) is silence"),
    ("min_length_ms", int, "no slice shorter than this"),
    ("min_interval_ms", int, "shortest pause to cut at"),
    ("max_sil_kept_ms", int, "silence kept at a cut; longer pauses are shortened"),
    ("min_chunk_s", float, "shortest chunk; shorter bits are joined or dropped"),
    ("max_chunk_s", float, "longest chunk; longer stretches are split"),
    ("overlap_s", float, "overlap between the parts of a split stretch"),
)
# The same for the DatasetConfig fields the command line sets (the others keep their defaults).
LEVEL_FLAGS: tuple[tuple[str, type, str], ...] = (
    ("highpass_hz", float, "zero-phase high-pass cutoff, 0 = off"),
    ("normalize", str, "per-chunk level: loudness (RMS target, peak-limited), peak, none"),
    ("target_rms_db", float, "loudness target in dBFS RMS"),
    ("peak_limit", float, "highest sample value after normalising"),
)
CHOICES: dict[str, tuple[str, ...]] = {"normalize": NORMALIZE_MODES}


def _add_field_flags(parser: argparse.ArgumentParser, title: str, defaults: object,
                     flags: tuple[tuple[str, type, str], ...]) -> None:  # fmt: skip
    group = parser.add_argument_group(title)
    for name, kind, help_text in flags:
        group.add_argument(f"--{name.replace('_', '-')}", type=kind, choices=CHOICES.get(name),
                           default=getattr(defaults, name), help=f"{help_text} (default %(default)s)")  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="audio files, folders (searched recursively) or .zip archives"
    )
    parser.add_argument("--exp", required=True, help="experiment name (letters, digits, _ or -): writes logs/<exp>/")
    _add_field_flags(parser, "silence slicing", SliceSettings(), SLICING_FLAGS)
    _add_field_flags(parser, "filtering and level", DatasetConfig(), LEVEL_FLAGS)
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of text")


def config_from_args(args: argparse.Namespace) -> DatasetConfig:
    slicing = SliceSettings(**{name: getattr(args, name) for name, _, _ in SLICING_FLAGS})
    return DatasetConfig(slicing=slicing, **{name: getattr(args, name) for name, _, _ in LEVEL_FLAGS})


def run_cli(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    try:
        with tqdm_progress("dataset") as progress:
            result = build_dataset(args.exp, [Path(p) for p in args.inputs], config, progress)
    except NoUsableAudioError as e:
        for skipped in e.report.skipped:
            print(f"skipped: {skipped}", file=sys.stderr)
        raise
    if args.json:
        data = dataclasses.asdict(result)
        data["new_chunk_files"] = [str(p) for p in result.new_chunk_files]
        print(json.dumps(data, indent=2, default=str, ensure_ascii=False))
    else:
        print("\n".join(result.summary_lines()))
    return 0

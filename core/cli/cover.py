"""``python -m core cover``: flags into the cover's configs, then :func:`~core.cover.make_cover`.

The voice-conversion flags are the ``convert`` stage's own (:func:`core.cli.convert.add_conversion_options`); the
separation and remix flags fill :class:`~core.separate.SeparationSettings` and :class:`~core.mix.MixSettings`,
with their defaults read from those dataclasses. The stage modules load their heavy libraries inside functions,
so ``--help`` stays light.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli.convert import add_conversion_options, convert_config
from core.convert import make_convert_fn, open_voice_model
from core.cover import BACKING_DESCRIPTIONS, BACKING_MODES, CoverSettings, low_memory_segment, make_cover
from core.errors import SvcoverError
from core.fsutil import refuse_output_as_input
from core.mix import MixSettings, check_output_path
from core.progress import tqdm_progress
from core.separate import LOW_MEMORY_SEGMENT_FRAMES, SeparationSettings
from core.separation_models import default_model

SEPARATION = SeparationSettings()
MIX = MixSettings()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("input (a song, or user stems)")
    src.add_argument("--input", type=Path, help="mixed song to cover (any format ffmpeg reads)")
    src.add_argument("--vocals", type=Path, help="your own vocal stem instead of --input")
    src.add_argument("--instrumental", type=Path, help="your own instrumental stem (with --vocals)")
    parser.add_argument("--exp", required=True, help="experiment (voice model) name under logs/")
    parser.add_argument("--output", type=Path, required=True, help="cover file to write (.wav, .flac or .mp3)")
    parser.add_argument("--key", type=float, default=MIX.key,
                        help=f"key shift in semitones for the vocal, the instrumental and kept backing vocals (default {MIX.key:g})")
    add_conversion_options(parser.add_argument_group("voice conversion (as in 'python -m core convert')"))
    sep = parser.add_argument_group("separation (models in pretrained/uvr/; docs/cover.md compares them)")
    auto = (f"'auto' = {default_model('vocals', cuda=True)} with a CUDA GPU, "
            f"{default_model('vocals', cuda=False)} on CPU")  # fmt: skip
    sep.add_argument("--separator", default=SEPARATION.model,
                     help=f"vocal separation model file or preset:<audio-separator ensemble preset> ({auto})")
    sep.add_argument("--backing", choices=BACKING_MODES, default=None,
                     help="; ".join(f"{k}: {v}" for k, v in BACKING_DESCRIPTIONS.items()) + " (default: no split)")
    sep.add_argument("--karaoke-model", default=SEPARATION.karaoke_model,
                     help="lead/backing model (default auto: Roformer on CUDA, MDX on CPU)")
    sep.add_argument("--dereverb", action="store_true", help="remove reverb/echo from the lead vocal before conversion")
    sep.add_argument("--dereverb-model", default=SEPARATION.dereverb_model,
                     help="de-reverb model (default auto: Roformer on CUDA, MDX on CPU)")
    sep.add_argument("--chunk-seconds", type=float, default=SEPARATION.chunk_seconds,
                     help=f"separation window in seconds (bounds memory; default {SEPARATION.chunk_seconds:g})")
    sep.add_argument("--segment-frames", type=int, default=SEPARATION.segment_frames,
                     help="Roformer segment in STFT frames (default: the model's own, 801 = 8 s; less = less GPU memory)")
    sep.add_argument("--low-memory", action="store_true",
                     help=f"Roformer segments of {LOW_MEMORY_SEGMENT_FRAMES} frames: for GPUs under 6 GB (slightly lower quality)")
    mix = parser.add_argument_group("remix")
    mix.add_argument("--vocal-gain", type=float, default=MIX.vocal_gain_db,
                     help=f"converted vocal gain in dB (default {MIX.vocal_gain_db:g})")
    mix.add_argument("--instrumental-gain", type=float, default=MIX.instrumental_gain_db,
                     help=f"instrumental gain in dB (default {MIX.instrumental_gain_db:g})")
    mix.add_argument("--backing-gain", type=float, default=MIX.backing_gain_db,
                     help=f"backing vocal gain in dB (default {MIX.backing_gain_db:g})")
    mix.add_argument("--no-loudness-match", action="store_true",
                     help="do not match the converted vocal's loudness to the original vocal")  # fmt: skip


def settings_from_args(args: argparse.Namespace) -> CoverSettings:
    """The separation, backing-vocal and remix settings the flags describe."""
    separation = SeparationSettings(model=args.separator, karaoke_model=args.karaoke_model, dereverb=args.dereverb,
                                    dereverb_model=args.dereverb_model, chunk_seconds=args.chunk_seconds,
                                    segment_frames=low_memory_segment(args.low_memory, args.segment_frames))  # fmt: skip
    mix = MixSettings(key=args.key, vocal_gain_db=args.vocal_gain, instrumental_gain_db=args.instrumental_gain,
                      backing_gain_db=args.backing_gain, match_loudness=not args.no_loudness_match)  # fmt: skip
    return CoverSettings.build(separation, mix, args.backing)


def run_cli(args: argparse.Namespace) -> int:
    if args.input is None and (args.vocals is None or args.instrumental is None):
        raise SvcoverError("give --input SONG, or both --vocals FILE and --instrumental FILE")
    if args.input is not None and (args.vocals is not None or args.instrumental is not None):
        raise SvcoverError("give --input SONG or --vocals/--instrumental, not both")
    settings = settings_from_args(args)
    check_output_path(args.output)
    refuse_output_as_input(args.output, [args.input, args.vocals, args.instrumental])
    # the key shifts the voice in the conversion and the music in the remix (settings.mix.key)
    convert_fn = make_convert_fn(open_voice_model(args.exp).name, convert_config(args))
    with tqdm_progress("cover") as progress:
        result = make_cover(args.output, convert_fn, song=args.input, vocals=args.vocals,
                            instrumental=args.instrumental, settings=settings, progress=progress)  # fmt: skip
    times = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    print(f"wrote {result.output} ({times})")
    if result.figures is not None:
        print(f"mix: {result.loudness_line()}")
    return 0

"""Benchmark of the cover pipeline: separation + conversion + remix of the 133 s real song on CPU.

Separation runs audio-separator's real MDX code path with the tiny stand-in ONNX model of
tests/tiny_uvr.py (a real UVR model's network costs more: see docs/cover.md). The conversion is the
real Convert stage (core.convert.make_convert_fn: features, DPM-Solver++ 20 steps, vocoder) with the
tiny voice model of tests/standins.py (small stand-in content encoder and vocoder, FCPE, the ``tiny``
decoder trained briefly on LJSpeech), or with ``--voice stand-in`` a Rubber Band pitch shift. Wall time
and CPU time (this process) are reported per stage: on a shared machine the CPU time is steadier.

    python benchmarks/cover.py [--song FILE] [--key 2] [--voice tiny|stand-in] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import _common as common  # noqa: E402  (importable once the repository root is on sys.path)

DEFAULT_SONG = common.SHARED / "data" / "real" / "mixed" / "Karissa_Hobbs_-_Lets_Go_Fishin.hq.ogg"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--song", type=Path, default=DEFAULT_SONG)
    parser.add_argument("--key", type=float, default=2.0)
    parser.add_argument("--voice", choices=("tiny", "stand-in"), default="tiny",
                        help="tiny: the real Convert stage with a tiny trained voice model; stand-in: a pitch shift")
    parser.add_argument("--out", type=Path, default=None, help="append a markdown row to this file")
    args = parser.parse_args()

    from core.audio import probe_audio, save_audio
    from core.cover import CoverSettings, make_cover
    from core.mix import MixSettings, load_stereo, pitch_shift
    from core.separate import SeparationSettings
    from tests.tiny_uvr import TINY_MODEL, install_tiny_uvr

    duration = probe_audio(args.song)["duration"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["SVCOVER_PRETRAINED"] = str(tmp / "pretrained")
        os.environ["SVCOVER_LOGS"] = str(tmp / "logs")
        install_tiny_uvr(tmp / "pretrained" / "uvr")

        def stand_in_convert(vocals: Path) -> Path:  # STAND-IN for the voice model
            out = tmp / "converted.wav"
            save_audio(out, pitch_shift(load_stereo(vocals), args.key, preserve_formants=True), 44100)
            return out

        if args.voice == "tiny":
            from core.convert import make_convert_fn
            from core.experiment import Experiment
            from tests.standins import build_small_pretrained, build_voice_model

            t0 = time.perf_counter()
            build_small_pretrained(tmp / "pretrained")
            build_voice_model(Experiment.open("voice"))
            print(f"tiny voice model trained in {time.perf_counter() - t0:.1f} s (not part of the timings)")
            from core.convert import ConvertConfig

            stand_in_convert = make_convert_fn("voice", ConvertConfig(key=args.key, device="cpu"))  # noqa: F811

        settings = CoverSettings.build(SeparationSettings(model=TINY_MODEL), MixSettings(key=args.key))
        result = make_cover(tmp / "cover.wav", stand_in_convert, song=args.song, settings=settings)
        peak_mb = common.peak_rss_mb()
        t1 = time.perf_counter()
        cached = make_cover(tmp / "cover2.wav", stand_in_convert, song=args.song, settings=settings)
        rerun = time.perf_counter() - t1
        assert cached.stems.cached

    s, c = result.seconds, result.cpu_seconds
    row = (
        f"| {datetime.date.today()} | {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} | "
        f"{args.song.name} ({duration:.0f} s) | "
        + " | ".join(f"{s[k]:.1f} / {c[k]:.1f}" for k in ("separate", "convert", "mix"))
        + f" | {sum(s.values()):.1f} / {sum(c.values()):.1f} | {rerun:.1f} | {peak_mb:.0f} |"
    )
    header = (
        f"| date | machine | song | separate wall/CPU s | convert ({args.voice}) wall/CPU s | mix wall/CPU s "
        "| total wall/CPU s | re-run, stems cached, wall s | peak RSS MB |\n|---|---|---|---|---|---|---|---|---|"
    )
    print(header)
    print(row)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(row + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of the dataset stage: processing time per minute of input, and peak memory on 1 hour.

    python benchmarks/dataset.py [--shared ../shared] [--out benchmarks/results_dataset.md] [--skip-hour]

Cases (each in a fresh subprocess, so peak RSS belongs to that case alone):
- song: the 133 s real song (ogg, stereo 44.1 kHz) -> dataset
- ljspeech: the 32 LJSpeech clips (wav, mono 22.05 kHz, 222 s) -> dataset
- hour-load: load_audio of a generated 1-hour 48 kHz wav at 44.1 kHz (the import memory bound)
- hour-dataset: the whole dataset stage on that 1-hour file (a 10 s tone every 10 minutes)
- hour-song: the whole dataset stage on 1 hour of real music (the song looped, flac): voiced
  throughout, so ~250 chunks are filtered, normalised and written (needs ~1 GB of temp disk)

Reported: wall seconds, CPU seconds (this process + any children; decoding is PyAV in-process since
2026-12, so there are none), wall seconds per minute of input, and peak RSS (ru_maxrss). The 1-hour
inputs are generated with the ffmpeg program of the imageio-ffmpeg wheel (no system ffmpeg).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import SHARED, print_report  # noqa: E402  (importable once the repository root is on sys.path)

CASE_CODE = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
kind, inputs = sys.argv[2], [Path(p) for p in sys.argv[3:]]
wall0, cpu0 = time.perf_counter(), time.process_time()
if kind == "load":
    from core.audio import load_audio
    n = len(load_audio(inputs[0], 44100))
    extra = {"samples": n}
else:
    from core.dataset import build_dataset
    r = build_dataset("bench", inputs)
    extra = {"chunks": r.chunks, "chunk_seconds": round(r.total_s, 1), "skipped": len(r.skipped)}
wall = time.perf_counter() - wall0
self_cpu = time.process_time() - cpu0
child = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall": wall, "cpu": self_cpu + child.ru_utime + child.ru_stime,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **extra}))
"""


def _duration(paths: list[Path]) -> float:
    from core.audio import probe_audio

    return sum(probe_audio(p)["duration"] or 0.0 for p in paths)


def _ffmpeg(*args: str) -> None:
    sys.path.insert(0, str(ROOT))
    from core.ffmpeg_tool import wheel_ffmpeg

    subprocess.run([str(wheel_ffmpeg()), "-nostdin", "-v", "error", "-y", *args], check=True)


def run_case(kind: str, inputs: list[Path], logs: Path) -> dict:
    env = {**os.environ, "SVCOVER_LOGS": str(logs)}
    cmd = [sys.executable, "-c", CASE_CODE, str(ROOT), kind, *map(str, inputs)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"benchmark case failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_hour(path: Path) -> Path:
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=220:sample_rate=48000:duration=3600",
            "-af", "volume='if(lt(mod(t,600),10),0.5,0)':eval=frame", "-ac", "1", "-c:a", "pcm_s16le", str(path))  # fmt: skip
    return path


def make_song_hour(song: Path, path: Path) -> Path:
    _ffmpeg("-stream_loop", "-1", "-i", str(song), "-t", "3600", "-c:a", "flac", str(path))
    return path


def _table_row(r: dict) -> str:
    result = f"{r['chunks']} chunks, {r['chunk_seconds']} s" if "chunks" in r else f"{r['samples']} samples"
    if r.get("skipped"):
        result += f", {r['skipped']} files skipped"
    return (
        f"| {r['name']} | {r['minutes']:.2f} | {r['wall']:.1f} | {r['per_min']:.2f} | {r['cpu_per_min']:.2f} "
        f"| {r['rss_mb']:.0f} | {result} |"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    ap.add_argument("--out", type=Path, default=None, help="also write the results table to this markdown file")
    ap.add_argument("--skip-hour", action="store_true", help="skip the 1-hour cases (they need ~350 MB of temp disk)")
    args = ap.parse_args()
    real = args.shared / "data" / "real"
    song = [real / "mixed" / "Karissa_Hobbs_-_Lets_Go_Fishin.hq.ogg"]
    lj = sorted((real / "speech_ljspeech").glob("*.wav"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="svcover-bench-") as tmp:
        tmp_path = Path(tmp)
        cases = [
            ("song (133 s ogg, stereo 44.1 kHz)", "dataset", song),
            ("LJSpeech (32 wav clips, 22.05 kHz)", "dataset", lj),
        ]
        if not args.skip_hour:
            hour = make_hour(tmp_path / "hour.wav")
            song_hour = make_song_hour(song[0], tmp_path / "song_hour.flac")
            cases += [
                ("1-hour wav, load_audio only", "load", [hour]),
                ("1-hour wav (mostly silence), whole dataset stage", "dataset", [hour]),
                ("1-hour flac (song looped, stereo), whole dataset stage", "dataset", [song_hour]),
            ]
        for i, (name, kind, inputs) in enumerate(cases):
            minutes = _duration(inputs) / 60
            res = run_case(kind, inputs, tmp_path / f"logs{i}")
            res.update(name=name, minutes=minutes, per_min=res["wall"] / minutes, cpu_per_min=res["cpu"] / minutes)
            rows.append(res)
            print(json.dumps(res), flush=True)
    lines = [
        f"## Dataset stage benchmark ({time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()})",
        "",
        "| input | minutes | wall s | wall s / input min | CPU s / input min | peak RSS MB | result |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    print_report(lines + [_table_row(r) for r in rows], args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

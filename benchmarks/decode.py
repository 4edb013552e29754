"""Decode speed and peak memory: PyAV in-process (core.audio.load_audio) vs the old ffmpeg-pipe path.

    python benchmarks/decode.py [--shared ../shared] [--out benchmarks/results_decode.md] [--rounds 2]

The old path (svcover until 2026-12) ran an ``ffmpeg`` process per file and read float32 PCM from
its stdout in blocks; it is re-created here from the repository's history (same command, same block
loop, same soxr resampling and preallocation) and run with the ffmpeg program of the imageio-ffmpeg
wheel, because this machine has no system ffmpeg. Both paths decode the same files to 44.1 kHz mono.

Each (input, path) runs in a fresh subprocess, alternating old/new, so peak RSS belongs to that run
alone; CPU seconds include child processes (the ffmpeg program of the old path).
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
sys.path.insert(0, str(ROOT))

from benchmarks._common import SHARED, print_report  # noqa: E402  (importable once the repository root is on sys.path)

CASE_CODE = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
kind, path, ffmpeg = sys.argv[2], sys.argv[3], sys.argv[4]
import numpy as np, soxr
from core.audio import load_audio, probe_audio
wall0, cpu0 = time.perf_counter(), time.process_time()
if kind == "pyav":
    n = len(load_audio(path, 44100))
else:  # the old ffmpeg-pipe loop (core/audio.py before PyAV), minus ffprobe: the header comes from PyAV
    import subprocess
    info = probe_audio(path)
    sr, src_sr, channels = 44100, info["sample_rate"], info["channels"]
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-i", path, "-map", "0:a:0", "-vn", "-f", "f32le",
           "-acodec", "pcm_f32le", "pipe:1"]
    out = np.empty(int((info["duration"] or 0) * sr) + sr, dtype=np.float32)
    n = 0
    rs = soxr.ResampleStream(src_sr, sr, 1, dtype="float32", quality="HQ") if src_sr != sr else None
    def append(block):
        global out, n
        if n + block.size > out.size:
            out = np.resize(out, max(out.size * 3 // 2, n + block.size))
        out[n:n + block.size] = block
        n += block.size
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    leftover = b""
    while True:
        raw = proc.stdout.read((1 << 16) * channels * 4)
        if not raw:
            break
        raw = leftover + raw
        usable = len(raw) - len(raw) % (channels * 4)
        leftover = raw[usable:]
        frames = np.frombuffer(raw[:usable], dtype=np.float32).reshape(-1, channels)
        mono = frames.mean(axis=1, dtype=np.float32) if channels > 1 else frames[:, 0].copy()
        append(rs.resample_chunk(mono) if rs else mono)
    if rs:
        append(rs.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    proc.stderr.read(); proc.wait()
wall = time.perf_counter() - wall0
child = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = time.process_time() - cpu0 + child.ru_utime + child.ru_stime
hwm = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1]) / 1024
print(json.dumps({"wall": wall, "cpu": cpu, "rss_mb": hwm, "samples": n}))
"""


def run(kind: str, path: Path, ffmpeg: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CASE_CODE, str(ROOT), kind, str(path), ffmpeg],
                         capture_output=True, text=True)  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"{kind} {path.name} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    from core.audio import probe_audio
    from core.ffmpeg_tool import wheel_ffmpeg

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=SHARED)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=2, help="alternating old/new runs per input (best kept)")
    args = ap.parse_args()
    ffmpeg = str(wheel_ffmpeg())
    song = args.shared / "data" / "real" / "mixed" / "Karissa_Hobbs_-_Lets_Go_Fishin.hq.ogg"
    rows = []
    with tempfile.TemporaryDirectory(prefix="svcover-decode-") as tmp:
        hour_wav, ten_flac, ten_mp3 = Path(tmp) / "hour.wav", Path(tmp) / "ten.flac", Path(tmp) / "ten.mp3"
        gen = [ffmpeg, "-nostdin", "-v", "error", "-y"]
        subprocess.run([*gen, "-f", "lavfi", "-i", "sine=frequency=220:sample_rate=48000:duration=3600",
                        "-c:a", "pcm_s16le", str(hour_wav)], check=True)  # fmt: skip
        subprocess.run([*gen, "-stream_loop", "-1", "-i", str(song), "-t", "600", "-c:a", "flac", str(ten_flac)],
                       check=True)  # fmt: skip
        subprocess.run([*gen, "-stream_loop", "-1", "-i", str(song), "-t", "600", "-c:a", "libmp3lame",
                        "-b:a", "192k", str(ten_mp3)], check=True)  # fmt: skip
        cases = [("1-hour wav, mono 48 kHz 16-bit", hour_wav), ("10-min flac, stereo 44.1 kHz", ten_flac),
                 ("10-min mp3, stereo 44.1 kHz 192k", ten_mp3)]  # fmt: skip
        for name, path in cases:
            minutes = probe_audio(path)["duration"] / 60
            best: dict[str, dict] = {}
            for _ in range(args.rounds):
                for kind in ("ffmpeg-pipe", "pyav"):
                    r = run(kind, path, ffmpeg)
                    if kind not in best or r["cpu"] < best[kind]["cpu"]:
                        best[kind] = r
            old, new = best["ffmpeg-pipe"], best["pyav"]
            rows.append((name, minutes, old, new))
            print(json.dumps({"case": name, "old": old, "new": new}), flush=True)
    load = os.getloadavg()[0]
    lines = [
        f"## Decode: PyAV vs the old ffmpeg pipe ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.machine()}, {os.cpu_count()} cores, load average {load:.1f}, Python {platform.python_version()})",
        "",
        "| input (to 44.1 kHz mono) | old CPU s/min | new CPU s/min | new/old CPU | old wall s | new wall s "
        "| old peak MB | new peak MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, minutes, old, new in rows:
        lines.append(
            f"| {name} | {old['cpu'] / minutes:.3f} | {new['cpu'] / minutes:.3f} | {new['cpu'] / old['cpu']:.2f} "
            f"| {old['wall']:.1f} | {new['wall']:.1f} | {old['rss_mb']:.0f} | {new['rss_mb']:.0f} |"
        )
    print_report(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

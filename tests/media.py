"""Test fixtures made with the ffmpeg program of the imageio-ffmpeg wheel (no system ffmpeg here or in CI).

svcover decodes with PyAV; these helpers only *make* test files (encoders, generated tones and video),
so the code under test and the tool that made its input are two different FFmpeg builds. ``HWM`` measures the
peak memory of a child process that loads such a file.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from core.ffmpeg_tool import wheel_ffmpeg


def run_ffmpeg(*args: str) -> None:
    """``ffmpeg -nostdin -v error -y ARGS`` with the wheel's binary; raises on failure."""
    subprocess.run([str(wheel_ffmpeg()), "-nostdin", "-v", "error", "-y", *args], check=True)


def make_hour_file(path: Path, seconds: int = 3600) -> Path:
    """A 1-hour 48 kHz mono wav: a 10 s tone every 10 minutes, silence in between (fast to make)."""
    run_ffmpeg(
        "-f", "lavfi", "-i", f"sine=frequency=220:sample_rate=48000:duration={seconds}",
        "-af", "volume='if(lt(mod(t,600),10),0.5,0)':eval=frame", "-ac", "1", "-c:a", "pcm_s16le", str(path),
    )  # fmt: skip
    return path


# Code that reads the peak RSS (kB) of the current process image, for the child processes that load the hour file:
# ru_maxrss would include the forking pytest parent's peak.
HWM = "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).split()[1])"

"""Test fixtures made with the ffmpeg program of the imageio-ffmpeg wheel (no system ffmpeg here or in CI).

svcover decodes with PyAV; these helpers only *make* test files (encoders, generated tones and video),
so the code under test and the tool that made its input are two different FFmpeg builds.
"""

from __future__ import annotations

import subprocess

from core.ffmpeg_tool import wheel_ffmpeg


def run_ffmpeg(*args: str) -> None:
    """``ffmpeg -nostdin -v error -y ARGS`` with the wheel's binary; raises on failure."""
    subprocess.run([str(wheel_ffmpeg()), "-nostdin", "-v", "error", "-y", *args], check=True)

"""Audio I/O: decode anything ffmpeg decodes to float32 mono at a target rate; save wav/flac/mp3.

Decoding streams raw float32 PCM out of ffmpeg in blocks, mixes each block down to mono and
resamples it with a streaming soxr resampler, so peak memory is the output array plus one block,
whatever the length, rate or channel count of the input.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

from core.errors import AudioDecodeError, SvcoverError
from core.fsutil import atomic_path

SAVE_FORMATS = ("wav", "flac", "mp3")
_BLOCK_FRAMES = 1 << 16  # input frames per block read from ffmpeg


def ffmpeg_binary() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise SvcoverError("ffmpeg is not installed or not on PATH (install it: apt install ffmpeg / winget install ffmpeg)")
    return exe


def probe_audio(path: str | Path) -> dict:
    """Sample rate, channel count and duration (s, may be None) of the first audio stream.

    Raises :class:`AudioDecodeError` naming the file for empty, missing or non-audio files.
    """
    import ffmpeg

    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{path}: file is empty")
    try:
        info = ffmpeg.probe(str(path))
    except ffmpeg.Error as e:
        raise AudioDecodeError(f"{path}: not a readable audio file ({_last_line(e.stderr)})") from None
    streams = [s for s in info.get("streams", []) if s.get("codec_type") == "audio"]
    if not streams:
        raise AudioDecodeError(f"{path}: no audio stream in this file")
    stream = streams[0]
    duration = stream.get("duration") or info.get("format", {}).get("duration")
    try:
        sr = int(stream["sample_rate"])
        channels = int(stream["channels"])
    except (KeyError, ValueError):
        raise AudioDecodeError(f"{path}: audio stream has no sample rate / channel count") from None
    if sr <= 0 or channels <= 0:
        raise AudioDecodeError(f"{path}: audio stream reports {sr} Hz, {channels} channels")
    return {
        "sample_rate": sr,
        "channels": channels,
        "duration": float(duration) if duration else None,
        "codec": stream.get("codec_name"),
    }


def load_audio(path: str | Path, sr: int, allow_damaged: bool = False, info: dict | None = None) -> np.ndarray:
    """Decode ``path`` to a float32 mono array at ``sr`` Hz (channels averaged, soxr resampling).

    Raises :class:`AudioDecodeError` for missing, empty, non-audio, corrupt and truncated files.
    With ``allow_damaged=True`` whatever ffmpeg could decode of a damaged/truncated file is returned.
    ``info``: the result of :func:`probe_audio` for this file, if the caller already has it.
    """
    import soxr

    path = Path(path)
    info = info or probe_audio(path)
    if not allow_damaged:
        _check_riff_complete(path)
    src_sr, channels = info["sample_rate"], info["channels"]
    cmd = [
        ffmpeg_binary(), "-nostdin", "-v", "error", "-i", str(path),
        "-map", "0:a:0", "-vn", "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1",
    ]  # fmt: skip
    # Preallocate from the probed duration so a long file is not held twice while concatenating.
    expected = int((info["duration"] or 0) * sr) + sr
    out = np.empty(max(expected, sr), dtype=np.float32)
    n_out = 0
    resampler = soxr.ResampleStream(src_sr, sr, 1, dtype="float32", quality="HQ") if src_sr != sr else None

    def append(block: np.ndarray) -> None:
        nonlocal out, n_out
        if block.size == 0:
            return
        if n_out + block.size > out.size:
            out = np.resize(out, max(out.size * 3 // 2, n_out + block.size))
        out[n_out : n_out + block.size] = block
        n_out += block.size

    bytes_per_block = _BLOCK_FRAMES * channels * 4
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        leftover = b""
        while True:
            raw = proc.stdout.read(bytes_per_block)
            if not raw:
                break
            raw = leftover + raw
            usable = len(raw) - len(raw) % (channels * 4)
            leftover = raw[usable:]
            frames = np.frombuffer(raw[:usable], dtype=np.float32).reshape(-1, channels)
            mono = frames.mean(axis=1, dtype=np.float32) if channels > 1 else frames[:, 0].copy()
            append(resampler.resample_chunk(mono) if resampler else mono)
        if resampler is not None:
            append(resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
        stderr = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if code != 0 and (n_out == 0 or not allow_damaged):
        raise AudioDecodeError(f"{path}: cannot decode audio ({_last_line(stderr)})")
    if n_out == 0:
        raise AudioDecodeError(f"{path}: contains no audio samples")
    if not allow_damaged:
        # With "-v error" ffmpeg prints only errors: damaged frames or data cut off mid-packet.
        if stderr.strip():
            raise AudioDecodeError(f"{path}: damaged or truncated audio data ({_last_line(stderr)})")
        declared = info["duration"]
        decoded = n_out / sr
        if declared and info.get("codec") in _EXACT_LENGTH_CODECS and decoded < declared - max(0.5, 0.05 * declared):
            raise AudioDecodeError(f"{path}: truncated file (decoded {decoded:.1f} s of {declared:.1f} s)")
    # Shrink in place: a copy here would double the peak memory of a long file.
    out.resize(n_out, refcheck=False)
    wav = out
    # Some decoders emit NaN/inf on damaged frames; never pass them downstream.
    if not np.isfinite(wav).all():
        np.nan_to_num(wav, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return wav


def save_audio(path: str | Path, wav: np.ndarray, sr: int) -> Path:
    """Write ``wav`` (mono [N] or [N, channels] float) atomically; the format comes from the extension.

    wav is 16-bit PCM, flac 16-bit, mp3 320 kb/s (through ffmpeg). Values are clipped to [-1, 1].
    """
    import soundfile as sf

    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in SAVE_FORMATS:
        raise SvcoverError(f"{path}: unsupported output format '{fmt}' (use one of {', '.join(SAVE_FORMATS)})")
    data = np.asarray(wav, dtype=np.float32)
    if not np.isfinite(data).all():
        data = np.nan_to_num(data)
    data = np.clip(data, -1.0, 1.0)  # the one copy: the caller's array is left as it was
    with atomic_path(path) as tmp:
        if fmt == "mp3":
            _encode_mp3(tmp, data, sr)
        else:
            sf.write(str(tmp), data, sr, subtype="PCM_16", format=fmt.upper())
    return path


def _encode_mp3(path: Path, data: np.ndarray, sr: int) -> None:
    channels = 1 if data.ndim == 1 else data.shape[1]
    cmd = [
        ffmpeg_binary(), "-nostdin", "-v", "error", "-y", "-f", "f32le", "-ar", str(sr), "-ac", str(channels),
        "-i", "pipe:0", "-codec:a", "libmp3lame", "-b:a", "320k", "-f", "mp3", str(path),
    ]  # fmt: skip
    proc = subprocess.run(cmd, input=np.ascontiguousarray(data).tobytes(), capture_output=True)
    if proc.returncode != 0:
        raise SvcoverError(f"{path}: mp3 encoding failed ({_last_line(proc.stderr)})")


# Codecs whose container states the exact length, so a much shorter decode means a cut-off file.
# (mp3 only through its Xing/LAME header, which every common encoder writes; the 5 % margin covers
# the rare VBR file without one, whose length ffmpeg estimates.)
_EXACT_LENGTH_CODECS = {"flac", "alac", "wavpack", "mp3", "tta", "ape"} | {
    f"pcm_{k}" for k in "u8 s8 s16le s16be s24le s24be s32le s32be f32le f32be f64le alaw mulaw".split()
}


def _check_riff_complete(path: Path) -> None:
    """Raise if a RIFF/WAVE file's ``data`` chunk claims more bytes than the file holds.

    ffmpeg estimates a wav's length from the file size, so a wav cut at a sample boundary decodes
    without any error; only the header still knows how long it was meant to be.
    """
    import struct

    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        size = path.stat().st_size
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_len = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                # 0 and 0xFFFFFFFF mark streamed wavs whose writer never knew the length.
                if chunk_len not in (0, 0xFFFFFFFF) and pos + 8 + chunk_len > size + 1:
                    have, want = size - pos - 8, chunk_len
                    raise AudioDecodeError(f"{path}: truncated file (wav data is {have} of {want} bytes)")
                return
            pos += 8 + chunk_len + (chunk_len & 1)


def _last_line(stderr: bytes | str | None) -> str:
    if not stderr:
        return "unknown error"
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "unknown error"

"""Audio I/O: decode anything FFmpeg decodes to float32 at a target rate; save wav/flac/mp3.

Decoding goes through PyAV, whose wheels carry FFmpeg's libraries, so no ffmpeg program is needed.
Every stage decodes through :func:`decode_audio` (or its wrappers :func:`load_audio`,
:func:`core.mix.load_stereo`, :func:`core.separate.decode_stereo`), so every stage treats bad input
the same way:

* the file is opened by Python and handed to FFmpeg as a stream, so a file name is never parsed as
  an option (``-take1.wav``) or a protocol (``concat:a.wav``, ``file:x.wav``);
* the length is bounded (:func:`max_audio_seconds`): checked against the container's header before
  any buffer is allocated, and again while decoding, because headers can lie;
* damaged or truncated data is refused (or salvaged on request), NaN/inf samples become 0.

Frames are mixed to the output channel count and resampled block by block with a streaming soxr
resampler, so peak memory is the output array plus one block whatever the input's length and rate.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from core.errors import AudioDecodeError, SvcoverError
from core.fsutil import atomic_path

SAVE_FORMATS = ("wav", "flac", "mp3")
MAX_AUDIO_MINUTES_ENV = "SVCOVER_MAX_AUDIO_MINUTES"
DEFAULT_MAX_AUDIO_MINUTES = 180.0  # 3 hours: any song or recording session, far below what fills RAM
MP3_BITRATE = 320_000
_IO_BUFFER = 1 << 18  # bytes PyAV reads from the Python file object per call
_BLOCK_FRAMES = 1 << 16  # input frames converted, mixed and resampled at a time

Sink = Callable[[np.ndarray], None]


def max_audio_seconds() -> float:
    """The longest input any stage decodes, in seconds: ``$SVCOVER_MAX_AUDIO_MINUTES`` or 3 hours."""
    raw = os.environ.get(MAX_AUDIO_MINUTES_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_AUDIO_MINUTES * 60.0
    try:
        minutes = float(raw)
    except ValueError:
        minutes = -1.0
    if not 0 < minutes < 1e6:
        raise SvcoverError(f"{MAX_AUDIO_MINUTES_ENV}={raw!r}: give a positive number of minutes")
    return minutes * 60.0


def _fmt_length(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _too_long(path: Path, limit: float, declared: float | None, decoding: bool) -> AudioDecodeError:
    if decoding:  # the header said less (or nothing): it lied or was missing
        said = f"its header said {_fmt_length(declared)}" if declared else "its header gave no length"
        what = f"holds more than {_fmt_length(limit)} of audio ({said})"
    else:
        what = f"is {_fmt_length(declared or 0.0)} long"
    return AudioDecodeError(
        f"{path}: {what}, over the {_fmt_length(limit)} limit for one file "
        f"(split it, or raise {MAX_AUDIO_MINUTES_ENV})"
    )


def check_length(path: str | Path, info: dict, max_seconds: float | None = None) -> None:
    """Refuse a file whose header announces more than the limit (see :func:`max_audio_seconds`)."""
    limit = max_audio_seconds() if max_seconds is None else max_seconds
    if info.get("duration") and info["duration"] > limit:
        raise _too_long(Path(path), limit, info["duration"], decoding=False)


def _av() -> Any:
    """PyAV, with FFmpeg's error messages routed to Python so decode errors can be captured."""
    try:
        import av
        import av.logging
    except ImportError as e:  # pragma: no cover - a broken install; requirements.txt pins av
        raise SvcoverError(f"PyAV is not installed ({e}); run: pip install -r requirements.txt") from None
    if av.logging.get_level() is None:
        av.logging.set_level(av.logging.ERROR)
    return av


@contextlib.contextmanager
def _open_audio(path: Path) -> Iterator[tuple[Any, Any, list]]:
    """(container, first audio stream, FFmpeg's error lines so far) of ``path``, opened from a Python file object.

    FFmpeg's error log lines of this thread are captured (not printed) until the block ends.
    """
    av = _av()
    if not path.is_file():
        raise AudioDecodeError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{path}: file is empty")
    with open(path, "rb") as f, av.logging.Capture() as ffmpeg_errors:
        kind = non_audio_kind(f.read(SNIFF_BYTES))
        if kind:
            raise AudioDecodeError(f"{path}: no audio stream in this file (it is {kind})")
        f.seek(0)
        try:
            # A file object, never the name: FFmpeg would read "-x.wav" or "concat:a.wav" as a URL.
            container = av.open(f, mode="r", metadata_errors="ignore", buffer_size=_IO_BUFFER)
        except (av.error.FFmpegError, ValueError, OSError, UnicodeDecodeError) as e:
            raise AudioDecodeError(f"{path}: not a readable audio file ({_ffmpeg_reason(e)})") from None
        try:
            streams = container.streams.audio
            if not streams:
                raise AudioDecodeError(f"{path}: no audio stream in this file")
            yield container, streams[0], ffmpeg_errors
        finally:
            container.close()


SNIFF_BYTES = 512  # how much of a file's start :func:`non_audio_kind` looks at

# File signatures that are certainly not audio (checked before FFmpeg sees the file).
_NON_AUDIO_MAGIC = (
    (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"), (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a zip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7z archive"), (b"Rar!", "a RAR archive"), (b"\x1f\x8b", "a gzip archive"),
    (b"\x7fELF", "a program"), (b"MZ", "a Windows program"), (b"{\\rtf", "an RTF document"),
)  # fmt: skip


def non_audio_kind(head: bytes) -> str | None:
    """What the first bytes of a file show it to be when that is certainly not audio, else None.

    A cheap first filter (no decoder is started): images, documents, archives, programs and plain
    text. Every audio container starts with binary header bytes, so text is never audio.
    """
    for magic, kind in _NON_AUDIO_MAGIC:
        if head.startswith(magic):
            return kind
    if head and b"\x00" not in head:
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError as e:  # a multi-byte character cut at the end of the sample is still text
            text = head[: e.start].decode("utf-8") if e.start >= len(head) - 3 and e.start > 0 else ""
        if text and all(c.isprintable() or c in "\t\r\n\f" for c in text):
            return "a text file"
    return None


def probe_audio(path: str | Path) -> dict:
    """Sample rate, channel count, duration (s, may be None) and codec of the first audio stream.

    Reads only the container's headers. Raises :class:`AudioDecodeError` naming the file for
    empty, missing or non-audio files.
    """
    path = Path(path)
    with _open_audio(path) as (container, stream, _errors):
        return _stream_info(path, container, stream)


def _stream_info(path: Path, container: Any, stream: Any) -> dict:
    ctx = stream.codec_context
    sr, channels = int(ctx.sample_rate or 0), int(ctx.channels or 0)
    if sr <= 0 or channels <= 0:
        raise AudioDecodeError(f"{path}: audio stream reports {sr} Hz, {channels} channels")
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000  # AV_TIME_BASE
    return {
        "sample_rate": sr,
        "channels": channels,
        "duration": duration if duration and duration > 0 else None,
        "codec": ctx.codec.canonical_name,
    }


def decode_audio(
    path: str | Path,
    sr: int,
    channels: int,
    sink: Sink,
    *,
    allow_damaged: bool = False,
    info: dict | None = None,
    max_seconds: float | None = None,
) -> dict:
    """Decode ``path`` block by block into ``sink`` as float32 [n, channels] arrays at ``sr`` Hz.

    ``channels`` 1: channels averaged; 2: mono copied to both sides at full level, more channels
    downmixed with FFmpeg's standard matrix. NaN/inf samples become 0.

    Raises :class:`AudioDecodeError` (one line naming the file) for missing, empty, non-audio,
    corrupt, truncated and too long files (``max_seconds``, default :func:`max_audio_seconds`). With
    ``allow_damaged=True`` whatever could be decoded of a damaged or truncated file is kept.
    Returns the probe info (see :func:`probe_audio`) with ``frames``: the number of output frames.
    """
    if channels not in (1, 2):
        raise ValueError("channels must be 1 or 2")
    av = _av()
    path = Path(path)
    limit = max_audio_seconds() if max_seconds is None else max_seconds
    with _open_audio(path) as (container, stream, ffmpeg_errors):
        info = {**(info or _stream_info(path, container, stream))}
        declared = info["duration"]
        check_length(path, info, limit)  # before a single sample is decoded
        if not allow_damaged:
            _check_riff_complete(path)
        src_sr = info["sample_rate"]
        max_in_frames = int(limit * src_sr) + src_sr  # enforced while decoding: the header may lie
        resampler = soxr.ResampleStream(src_sr, sr, channels, dtype="float32", quality="HQ") if src_sr != sr else None
        downmix = av.AudioResampler(format="flt", layout="stereo", rate=src_sr) if channels == 2 else None
        n_in = n_out = 0
        damage: str | None = None
        # Frames are small (a few hundred samples for some codecs): they are gathered in their own
        # sample format and converted, mixed and resampled ~64k frames at a time.
        pending: list[np.ndarray] = []
        pending_frames = 0
        pending_kind: tuple[str, int] | None = None

        def flush() -> None:
            nonlocal n_in, n_out, pending_frames
            if not pending:
                return
            block = _to_float(np.concatenate(pending) if len(pending) > 1 else pending[0], pending_kind[0])
            pending.clear()
            pending_frames = 0
            block = _mix(block, channels)
            n_in += len(block)
            if n_in > max_in_frames:
                raise _too_long(path, limit, declared, decoding=True)
            if not np.isfinite(block).all():
                # Some files (float wavs) and damaged frames hold NaN/inf; never pass them downstream.
                np.nan_to_num(block, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
            out = resampler.resample_chunk(block) if resampler is not None else block
            if out.size:
                sink(out)
                n_out += len(out)

        def take(frame: Any) -> None:
            nonlocal pending_frames, pending_kind
            if channels == 2 and frame.layout.nb_channels > 2:  # FFmpeg's downmix matrix, as `-ac 2` did
                frames = downmix.resample(frame)
            else:
                frames = [frame]
            for f in frames:
                samples, base = _frame_samples(f)
                kind = (base, samples.shape[1])
                if kind != pending_kind:
                    flush()
                    pending_kind = kind
                pending.append(samples)
                pending_frames += len(samples)
                if pending_frames >= _BLOCK_FRAMES:
                    flush()

        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as e:
                    damage = _ffmpeg_reason(e)
                    if not allow_damaged:
                        break
                    continue  # salvage: skip the bad packet, keep decoding
                for frame in frames:
                    take(frame)
        except av.error.FFmpegError as e:  # the demuxer hit damaged or missing data
            damage = damage or _ffmpeg_reason(e)
        flush()
        if resampler is not None:
            tail = resampler.resample_chunk(np.zeros((0, channels), dtype=np.float32), last=True)
            if tail.size:
                sink(tail)
                n_out += len(tail)
        if damage is None and ffmpeg_errors:
            damage = _last_line(ffmpeg_errors[-1][2])
    if n_out == 0:
        if damage:
            raise AudioDecodeError(f"{path}: cannot decode audio ({damage})")
        raise AudioDecodeError(f"{path}: contains no audio samples")
    if not allow_damaged:
        if damage:
            raise AudioDecodeError(f"{path}: damaged or truncated audio data ({damage})")
        decoded = n_in / src_sr
        if declared and info.get("codec") in _EXACT_LENGTH_CODECS and decoded < declared - max(0.5, 0.05 * declared):
            raise AudioDecodeError(f"{path}: truncated file (decoded {decoded:.1f} s of {declared:.1f} s)")
    info["frames"] = n_out
    return info


def _mix(data: np.ndarray, channels: int) -> np.ndarray:
    """float32 [n, c] to [n, channels]: averaged to mono, or mono copied to both sides at full level."""
    if channels == 1:
        if data.shape[1] == 1:
            return data
        mono = data[:, 0].copy()  # a column loop: numpy's mean over a short last axis is ~10x slower
        for k in range(1, data.shape[1]):
            mono += data[:, k]
        mono *= np.float32(1.0 / data.shape[1])
        return mono[:, None]
    return np.repeat(data, 2, axis=1) if data.shape[1] == 1 else data


_SAMPLE_DTYPES = {"u8": np.uint8, "s16": np.int16, "s32": np.int32, "s64": np.int64, "flt": np.float32,
                  "dbl": np.float64}  # fmt: skip
# Integer sample formats -> scale to [-1, 1); unsigned 8-bit is offset by 128 first.
_INT_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


def _frame_samples(frame: Any) -> tuple[np.ndarray, str]:
    """One frame's samples as [n, channels] in its own sample format (no conversion yet), and that format."""
    fmt = frame.format
    base = fmt.name.rstrip("p")
    dtype = _SAMPLE_DTYPES.get(base)
    if dtype is None:
        raise AudioDecodeError(f"unsupported sample format {fmt.name}")
    n, n_ch = frame.samples, frame.layout.nb_channels
    if fmt.is_planar:  # one buffer per channel (padded past n)
        planes = [np.frombuffer(plane, dtype=dtype, count=n) for plane in frame.planes[:n_ch]]
        return (planes[0][:, None] if n_ch == 1 else np.stack(planes, axis=1)), base
    return np.frombuffer(frame.planes[0], dtype=dtype, count=n * n_ch).reshape(n, n_ch), base


def _to_float(data: np.ndarray, base: str) -> np.ndarray:
    if base in ("flt", "dbl"):
        return np.array(data, dtype=np.float32)  # a copy: the frame's buffer is not ours to change
    out = data.astype(np.float32)
    if base == "u8":
        out -= 128.0
    out *= np.float32(1.0 / _INT_SCALE[base])
    return out


def load_audio(
    path: str | Path,
    sr: int,
    allow_damaged: bool = False,
    info: dict | None = None,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Decode ``path`` to a float32 mono array at ``sr`` Hz (channels averaged, soxr resampling).

    Raises :class:`AudioDecodeError` for missing, empty, non-audio, corrupt, truncated and too long
    files (see :func:`decode_audio`). ``info``: the result of :func:`probe_audio`, if the caller has it.
    """
    path = Path(path)
    info = info or probe_audio(path)
    limit = max_audio_seconds() if max_seconds is None else max_seconds
    check_length(path, info, limit)  # before the buffer is sized from the header
    buffer = _Buffer(info, sr, 1, limit)
    decode_audio(path, sr, 1, buffer.append, allow_damaged=allow_damaged, info=info, max_seconds=limit)
    return buffer.result()[:, 0] if buffer.n else np.zeros(0, dtype=np.float32)


class _Buffer:
    """Growing float32 [N, channels] array preallocated from the (bounded) header length.

    Preallocating means a long file is not held twice while blocks are joined; the header's
    length was already checked against the limit, so a lying header cannot make it huge.
    """

    def __init__(self, info: dict, sr: int, channels: int, limit: float):
        seconds = min(info.get("duration") or 0.0, limit)
        self.data = np.empty((int(seconds * sr) + sr, channels), dtype=np.float32)
        self.n = 0

    def append(self, block: np.ndarray) -> None:
        if self.n + len(block) > len(self.data):  # longer than the header said
            grown = np.empty((max(len(self.data) * 3 // 2, self.n + len(block)), self.data.shape[1]), np.float32)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        self.data[self.n : self.n + len(block)] = block
        self.n += len(block)

    def result(self) -> np.ndarray:
        # Shrink in place: a copy here would double the peak memory of a long file.
        self.data.resize((self.n, self.data.shape[1]), refcheck=False)
        return self.data


def load_channels(
    path: str | Path, sr: int, channels: int, allow_damaged: bool = False, max_seconds: float | None = None
) -> np.ndarray:
    """Decode ``path`` to float32 [N, channels] (1 or 2) at ``sr``; see :func:`decode_audio`."""
    path = Path(path)
    info = probe_audio(path)
    limit = max_audio_seconds() if max_seconds is None else max_seconds
    check_length(path, info, limit)  # before the buffer is sized from the header
    buffer = _Buffer(info, sr, channels, limit)
    decode_audio(path, sr, channels, buffer.append, allow_damaged=allow_damaged, info=info, max_seconds=limit)
    return buffer.result()


def save_audio(path: str | Path, wav: np.ndarray, sr: int) -> Path:
    """Write ``wav`` (mono [N] or [N, channels] float) atomically; the format comes from the extension.

    wav is 16-bit PCM, flac 16-bit, mp3 320 kb/s (libmp3lame inside PyAV). Values are clipped to [-1, 1].
    """
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


def _encode_mp3(path: Path, data: np.ndarray, sr: int, block: int = 1 << 16) -> None:
    av = _av()
    channels = 1 if data.ndim == 1 else data.shape[1]
    if channels not in (1, 2):
        raise SvcoverError(f"{path}: mp3 holds mono or stereo, not {channels} channels")
    layout = "mono" if channels == 1 else "stereo"
    planar = data.reshape(len(data), channels).T  # fltp frames are [channels, n]
    try:
        with open(path, "wb") as f, av.open(f, mode="w", format="mp3") as out:
            stream = out.add_stream("libmp3lame", rate=sr, layout=layout)
            stream.bit_rate = MP3_BITRATE
            for start in range(0, planar.shape[1], block):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(planar[:, start : start + block]), format="fltp", layout=layout
                )
                frame.sample_rate = sr
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
    except (av.error.FFmpegError, ValueError) as e:
        raise SvcoverError(f"{path}: mp3 encoding failed ({_ffmpeg_reason(e)})") from None


# Codecs whose container states the exact length, so a much shorter decode means a cut-off file.
# (mp3 only through its Xing/LAME header, which every common encoder writes; the 5 % margin covers
# the rare VBR file without one, whose length FFmpeg estimates.)
_EXACT_LENGTH_CODECS = {"flac", "alac", "wavpack", "mp3", "tta", "ape"} | {
    f"pcm_{k}" for k in "u8 s8 s16le s16be s24le s24be s32le s32be f32le f32be f64le alaw mulaw".split()
}


def _check_riff_complete(path: Path) -> None:
    """Raise if a RIFF/WAVE file's ``data`` chunk claims more bytes than the file holds.

    FFmpeg estimates a wav's length from the file size, so a wav cut at a sample boundary decodes
    without any error; only the header still knows how long it was meant to be.
    """
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


def _ffmpeg_reason(e: BaseException) -> str:
    """FFmpeg's own words for an error, without PyAV's repetition of the file name."""
    log = getattr(e, "log", None)  # (level, context, message) of the last FFmpeg error log line
    if log and len(log) == 3 and log[2]:
        return _last_line(f"[{log[1]}] {log[2]}" if log[1] else log[2])
    text = getattr(e, "strerror", None) or str(e)
    return _last_line(str(text))


def _last_line(stderr: bytes | str | None) -> str:
    if not stderr:
        return "unknown error"
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "unknown error"

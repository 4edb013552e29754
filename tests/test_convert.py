"""The Convert stage end to end: a voice model trained on real speech converts real and synthetic vocals.

The voice model (tests/standins.py) is built once per session through the real stages: LJSpeech chunks,
Extract with FCPE (real weights) and a stand-in content projection, a small decoder trained by core.train.
Conversion runs the real loaders: ContentVec (a thin stand-in HuBERT checkpoint), FCPE, NSF-HiFiGAN (a
shape-reduced stand-in), the real samplers, chunking and file I/O.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from core.chunking import plan_pieces
from core.config import AUDIO
from core.convert import ConvertConfig, ConvertError, Models, convert_files, convert_waveform, output_name
from tests.conftest import REAL, ROOT, SHARED

SR = 44100
HOP = 512
FAST = {"device": "cpu", "sampler": "dpm-solver++", "steps": 4}  # few steps: these tests check plumbing, not quality


@dataclass(frozen=True)
class Voice:
    logs: Path
    pretrained: Path
    name: str = "voice"


@contextlib.contextmanager
def _env(voice: Voice):
    before = {k: os.environ.get(k) for k in ("SVCOVER_LOGS", "SVCOVER_PRETRAINED")}
    os.environ["SVCOVER_LOGS"], os.environ["SVCOVER_PRETRAINED"] = str(voice.logs), str(voice.pretrained)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="session")
def voice(tmp_path_factory) -> Voice:
    """A voice model trained on 12 LJSpeech chunks (~50 s), plus the small pretrained files conversion needs."""
    from tests.standins import shared_voice_roots

    logs, pretrained = shared_voice_roots(tmp_path_factory)
    return Voice(logs=logs, pretrained=pretrained)


@pytest.fixture
def env(voice: Voice, monkeypatch: pytest.MonkeyPatch) -> Voice:
    monkeypatch.setenv("SVCOVER_LOGS", str(voice.logs))
    monkeypatch.setenv("SVCOVER_PRETRAINED", str(voice.pretrained))
    return voice


@pytest.fixture(scope="module")
def models(voice: Voice) -> Models:
    from core.experiment import Experiment

    with _env(voice):
        loaded = Models.load(Experiment.open(voice.name), ConvertConfig(**FAST), "cpu")
        loaded.content_fn(), loaded.f0_fn()  # loaded lazily: load them while the env points at the stand-ins
    return loaded


def real_vocal(seconds: float) -> np.ndarray:
    """Solo singing (vocadito_10, a cappella) at 44.1 kHz."""
    wav, sr = sf.read(REAL / "singing" / "vocadito_10.wav", dtype="float32")
    assert sr == SR
    return wav[: int(seconds * SR)]


def speech_with_pauses(seconds: float) -> np.ndarray:
    """Consecutive LJSpeech sentences (real pauses between them) at 44.1 kHz."""
    import soxr

    parts = []
    for path in sorted((REAL / "speech_ljspeech").glob("*.wav"))[12:]:
        wav, sr = sf.read(path, dtype="float32")
        parts.append(soxr.resample(wav, sr, SR))
        if sum(p.size for p in parts) > seconds * SR:
            break
    return np.concatenate(parts)[: int(seconds * SR)].astype(np.float32)


def tone(hz: float, seconds: float) -> np.ndarray:
    """A sung-like harmonic tone with 5.5 Hz vibrato (+-30 cents) around ``hz``."""
    t = np.arange(int(seconds * SR)) / SR
    f = hz * 2.0 ** (0.3 / 12 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(f) / SR
    wav = sum(np.sin(k * phase) / k for k in range(1, 8))
    env = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.05)
    return (0.25 * wav * env).astype(np.float32)


def stats(voice: Voice) -> dict:
    import json

    return json.loads((voice.logs / voice.name / "stats.json").read_text())


def cli(args: list[str], voice: Voice, pretrained: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "SVCOVER_LOGS": str(voice.logs), "SVCOVER_PRETRAINED": str(pretrained or voice.pretrained),
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "core", "convert", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip


# ------------------------------------------------------------------------------------------ CLI end to end
def test_cli_converts_a_file_to_the_predictable_name(voice: Voice, tmp_path: Path) -> None:
    vocal = tmp_path / "my vocal.wav"
    sf.write(vocal, real_vocal(4.0), SR, subtype="PCM_16")
    out_dir = tmp_path / "out"
    res = cli(["--exp", "voice", "--input", str(vocal), "--output", str(out_dir), "--key", "3", "--steps", "4",
               "--device", "cpu"], voice)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    target = out_dir / "my vocal_voice_key3.wav"
    assert sorted(p.name for p in out_dir.iterdir()) == [target.name]
    assert str(target) in res.stdout and "RTF" in res.stdout
    out, sr = sf.read(target, dtype="float32")
    assert sr == SR and abs(out.size - sf.info(vocal).frames) < HOP  # within one hop (here: exact)
    assert np.isfinite(out).all() and 0.01 < np.abs(out).max() < 1.0


def test_cli_converts_a_folder(voice: Voice, tmp_path: Path) -> None:
    folder = tmp_path / "vocals"
    folder.mkdir()
    sf.write(folder / "a.wav", real_vocal(2.0), SR, subtype="PCM_16")
    sf.write(folder / "b.flac", tone(220.0, 1.5), SR, subtype="PCM_16")
    (folder / ".hidden.wav").write_bytes(b"not audio")  # dot-files are skipped
    (folder / "notes.txt").write_text("not audio")
    out_dir = tmp_path / "out"
    res = cli(["--exp", "voice", "--input", str(folder), "--output", str(out_dir), "--format", "flac", "--key", "-2",
               "--steps", "3", "--device", "cpu"], voice)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert sorted(p.name for p in out_dir.iterdir()) == ["a_voice_key-2.flac", "b_voice_key-2.flac"]
    for name, n in (("a", 2.0 * SR), ("b", 1.5 * SR)):
        out, _ = sf.read(out_dir / f"{name}_voice_key-2.flac", dtype="float32")
        assert abs(out.size - int(n)) < HOP and np.isfinite(out).all() and np.abs(out).max() < 1.0


def test_missing_vocoder_names_the_file_and_the_download_command(voice: Voice, tmp_path: Path) -> None:
    partial = tmp_path / "pretrained"
    shutil.copytree(voice.pretrained / "content", partial / "content")
    vocal = tmp_path / "v.wav"
    sf.write(vocal, real_vocal(1.0), SR)
    res = cli(["--exp", "voice", "--input", str(vocal), "--output", str(tmp_path / "out"), "--device", "cpu"], voice,
              pretrained=partial)  # fmt: skip
    assert res.returncode == 1
    err = [line for line in res.stderr.splitlines() if line.startswith("error:")]  # (the rest: a progress bar)
    assert len(err) == 1, res.stderr
    assert str(partial / "nsf_hifigan" / "model") in err[0] and "python -m core download nsf_hifigan" in err[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_help_documents_every_flag() -> None:
    res = subprocess.run([sys.executable, "-m", "core", "convert", "--help"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)  # fmt: skip
    assert res.returncode == 0
    for flag in ("--exp", "--input", "--output", "--ckpt", "--key", "--sampler", "--steps", "--index-rate", "--protect", "--f0",
                 "--format", "--loudness-match", "--seed", "--piece-seconds", "--device"):  # fmt: skip
        assert flag in res.stdout


# ------------------------------------------------------------------------------------------ key
def test_auto_key_moves_an_octave_high_input_down_and_warns_when_not_shifted(voice: Voice, models: Models) -> None:
    p50 = stats(voice)["f0_hz_p50"]
    wav = tone(2.0 * p50, 3.0)  # sung an octave above the training set's median
    _, auto = convert_waveform(wav, models, ConvertConfig(**FAST, key=None))
    assert auto.suggested_key is not None and abs(auto.suggested_key + 12) <= 1, auto.suggested_key
    assert auto.key == auto.suggested_key
    assert not any("outside" in w for w in auto.warnings), auto.warnings
    # the F0 handed to the decoder/vocoder is the source's, moved by the key
    voiced = auto.source_f0 > 0
    np.testing.assert_allclose(auto.converted_f0[voiced], auto.source_f0[voiced] * 2 ** (auto.key / 12), rtol=1e-5)

    _, unshifted = convert_waveform(wav, models, ConvertConfig(**FAST, key=0))
    warning = next(w for w in unshifted.warnings if "outside the voice model's range" in w)
    assert f"key shift of {auto.suggested_key:+.0f} semitones would centre it" in warning


def test_auto_key_on_synthetic_singing_with_known_f0(voice: Voice, models: Models) -> None:
    wav, sr = sf.read(SHARED / "data" / "synthetic" / "singer_b_seed2.wav", dtype="float32")
    known = np.load(SHARED / "data" / "synthetic" / "singer_b_seed2_f0.npy")
    n = 4 * sr
    known = known[: n // HOP + 1]
    expected = round(12 * np.log2(stats(voice)["f0_hz_p50"] / np.median(known[known > 0])))
    _, result = convert_waveform(wav[:n], models, ConvertConfig(**FAST, key=None))
    assert abs(result.suggested_key - expected) <= 1, (result.suggested_key, expected)


# ------------------------------------------------------------------------------------------ bad input
def test_silent_input_gives_silence_and_says_so(env: Voice, models: Models, tmp_path: Path) -> None:
    vocal = tmp_path / "silence.wav"
    sf.write(vocal, np.zeros(2 * SR, dtype=np.float32), SR)
    [result] = convert_files("voice", vocal, tmp_path / "out", ConvertConfig(**FAST), models=models)
    out, _ = sf.read(result.output, dtype="float32")
    assert out.size == 2 * SR and not out.any()
    assert any("silent" in w for w in result.warnings)
    # a single input may be given an output file name: its extension sets the format (mp3 through ffmpeg)
    [mp3] = convert_files("voice", vocal, tmp_path / "named.mp3", ConvertConfig(**FAST), models=models)
    from core.audio import load_audio

    assert mp3.output == tmp_path / "named.mp3" and abs(load_audio(mp3.output, SR).size - 2 * SR) < 2 * HOP


def test_long_input_is_cut_into_pieces_joined_without_clicks(models: Models) -> None:
    wav = speech_with_pauses(11.0)
    config = ConvertConfig(**FAST, piece_seconds=3.0)
    pieces = plan_pieces(wav, SR, 3.0, context_seconds=1.0, hop=HOP)
    assert len(pieces) >= 4
    out, result = convert_waveform(wav, models, config)
    assert result.pieces == len(pieces)
    assert out.shape == wav.shape and np.isfinite(out).all() and np.abs(out).max() < 1.0
    jumps = np.abs(np.diff(out))
    for p in pieces[1:]:
        seam = jumps[p.start - 2 * HOP : p.start + 2 * HOP]
        around = np.concatenate([jumps[p.start - SR : p.start - 2 * HOP], jumps[p.start + 2 * HOP : p.start + SR]])
        assert seam.max() <= around.max(), f"click at the seam at {p.start / SR:.2f} s"


def test_checkpoint_of_another_encoder_is_a_clear_error(env: Voice, tmp_path: Path) -> None:
    import dataclasses

    from core.model import CHECKPOINT_FORMAT, SvcDecoder
    from core.model.config import DecoderConfig

    cfg = DecoderConfig(units_dim=256, n_chans=16, n_layers=1)  # HuBERT-Soft-sized units...
    path = tmp_path / "other_encoder.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "version": 1, "model": SvcDecoder(cfg).state_dict(),
                "config": dataclasses.asdict(cfg), "stats": stats(env)}, path)  # ...but stats naming contentvec768l12
    vocal = tmp_path / "v.wav"
    sf.write(vocal, real_vocal(1.0), SR)
    with pytest.raises(ConvertError) as err:
        convert_files("voice", vocal, tmp_path / "out", ConvertConfig(**FAST, ckpt=str(path)))
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "256" in msg and "768" in msg and "another encoder" in msg


def test_unwritable_output_fails_before_any_work(env: Voice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_loading(*a, **k):
        raise AssertionError("models were loaded although the output cannot be written")

    monkeypatch.setattr(Models, "load", no_loading)
    vocal = tmp_path / "v.wav"
    sf.write(vocal, real_vocal(1.0), SR)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(ConvertError, match="cannot create the output folder"):
        convert_files("voice", vocal, blocker / "out", ConvertConfig(**FAST))


def test_bad_settings_and_missing_inputs_are_clear_errors(env: Voice, tmp_path: Path) -> None:
    with pytest.raises(ConvertError, match="input file not found"):
        convert_files("voice", tmp_path / "nope.wav", None, ConvertConfig(**FAST))
    with pytest.raises(ConvertError, match="no such experiment"):
        convert_files("nobody", tmp_path, None, ConvertConfig(**FAST))
    with pytest.raises(ConvertError, match="--index-rate"):
        ConvertConfig(index_rate=1.5).validate()
    with pytest.raises(ConvertError, match="unknown sampler"):
        ConvertConfig(sampler="euler").validate()


# ------------------------------------------------------------------------------------------ determinism, index
def test_same_seed_same_output_other_seed_other_output(models: Models) -> None:
    wav = real_vocal(2.0)
    a, _ = convert_waveform(wav, models, ConvertConfig(**FAST, seed=7))
    b, _ = convert_waveform(wav, models, ConvertConfig(**FAST, seed=7))
    c, _ = convert_waveform(wav, models, ConvertConfig(**FAST, seed=8))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


def test_retrieval_blend_changes_the_output(env: Voice, models: Models) -> None:
    from core.experiment import Experiment
    from core.index import build_index

    build_index("voice")
    config = ConvertConfig(**FAST, index_rate=0.75)
    with_index = Models.load(Experiment.open("voice"), config, "cpu")
    assert with_index.index is not None
    wav = real_vocal(2.0)
    plain, _ = convert_waveform(wav, models, ConvertConfig(**FAST))
    blended, _ = convert_waveform(wav, with_index, config)
    assert np.isfinite(blended).all() and np.abs(blended - plain).max() > 1e-3


def test_protect_unblends_exactly_the_unvoiced_frames() -> None:
    from core.convert import protect_unvoiced

    rng = np.random.default_rng(0)
    source, blended = rng.standard_normal((2, 6, 4)).astype(np.float32)
    f0 = np.array([0.0, 220.0, 221.0, 0.0, 0.0, 230.0])
    out = protect_unvoiced(source, blended, f0, 0.5)
    unvoiced = f0 == 0
    np.testing.assert_allclose(out[unvoiced], 0.5 * blended[unvoiced] + 0.5 * source[unvoiced], rtol=1e-6)
    np.testing.assert_array_equal(out[~unvoiced], blended[~unvoiced])
    np.testing.assert_array_equal(protect_unvoiced(source, blended, f0, 0.0), blended)
    np.testing.assert_allclose(protect_unvoiced(source, blended, f0, 1.0)[unvoiced], source[unvoiced])
    with pytest.raises(ConvertError, match="--protect"):
        ConvertConfig(protect=1.5).validate()


def test_protect_in_the_conversion_changes_only_unvoiced_frames(env: Voice, models: Models, monkeypatch) -> None:
    """The content features the decoder gets: with an index at rate 0.75, protect 0.5 moves exactly the frames the
    F0 stage called unvoiced halfway back to the source's own features; voiced frames keep the full blend."""
    from core.experiment import Experiment
    from core.index import build_index

    build_index("voice")
    seen: list[np.ndarray] = []

    def run(m: Models, config: ConvertConfig) -> tuple[np.ndarray, np.ndarray]:
        decoder = m.voice.decoder
        original = decoder.condition
        seen.clear()

        def spy(units, f0, volume):
            seen.append(units[0].detach().cpu().numpy().copy())
            return original(units, f0, volume)

        monkeypatch.setattr(decoder, "condition", spy)
        try:
            _, result = convert_waveform(real_vocal(2.0), m, config)
        finally:
            monkeypatch.setattr(decoder, "condition", original)
        assert len(seen) == 1  # one piece
        return seen[0], result.source_f0

    with_index = Models.load(Experiment.open("voice"), ConvertConfig(**FAST, index_rate=0.75), "cpu")
    source, f0 = run(with_index, ConvertConfig(**FAST, index_rate=0.0))
    blended, _ = run(with_index, ConvertConfig(**FAST, index_rate=0.75, protect=0.0))
    protected, _ = run(with_index, ConvertConfig(**FAST, index_rate=0.75, protect=0.5))
    unvoiced = np.ones(len(source), dtype=bool)  # frames past the input (bucket padding) have no F0
    unvoiced[: len(f0)] = f0[: len(source)] <= 0
    assert 10 <= unvoiced[: len(f0)].sum() <= len(f0) - 50  # the clip has both (a breath and an "s" in 2 s)
    changed = np.abs(protected - blended).max(axis=1) > 1e-6
    np.testing.assert_array_equal(changed, unvoiced & (np.abs(blended - source).max(axis=1) > 1e-6))
    np.testing.assert_allclose(protected[unvoiced], 0.5 * blended[unvoiced] + 0.5 * source[unvoiced], atol=1e-5)
    np.testing.assert_array_equal(protected[~unvoiced], blended[~unvoiced])


def test_loudness_match_follows_the_input_envelope(models: Models) -> None:
    from core.features.loudness import frame_volume

    wav = real_vocal(3.0)
    wav[: SR] *= 0.1  # a quiet first second
    plain, _ = convert_waveform(wav, models, ConvertConfig(**FAST))
    matched, _ = convert_waveform(wav, models, ConvertConfig(**FAST, loudness_match=1.0))

    def quiet_to_loud(x: np.ndarray) -> float:
        v = frame_volume(x)
        n = len(v)
        return float(v[5 : n // 3 - 5].mean() / v[n // 3 + 5 :].mean())

    assert abs(np.log(quiet_to_loud(matched) / quiet_to_loud(wav))) < abs(np.log(quiet_to_loud(plain) / quiet_to_loud(wav)))


def test_output_name() -> None:
    assert output_name(Path("x/take 1.mp3"), "alice", 0.0, "wav") == "take 1_alice_key0.wav"
    assert output_name(Path("a.wav"), "bob", -12.0, "mp3") == "a_bob_key-12.mp3"
    assert output_name(Path("a.wav"), "bob", 1.5, "flac") == "a_bob_key1.5.flac"
    assert AUDIO.hop_length == HOP


def test_crossfade_keeps_the_level_of_correlated_and_of_unrelated_pieces() -> None:
    """Neighbouring pieces render the same input, so their overlaps are correlated: no level bump at the seam;
    for unrelated material (different noise per piece) the fade is equal-power: no dip either."""
    from core.chunking import process_in_pieces

    rng = np.random.default_rng(0)
    wav = rng.standard_normal(20 * SR).astype(np.float32) * 0.1
    pieces = plan_pieces(wav, SR, 5.0, context_seconds=1.0, hop=HOP)
    assert len(pieces) >= 4

    def rms_around_seams(out: np.ndarray) -> np.ndarray:
        return np.array([np.sqrt(np.mean(out[p.start - 512 : p.start + 512] ** 2)) for p in pieces[1:]])

    same = process_in_pieces(wav, pieces, lambda seg, i: seg, fade=4 * HOP)  # fully correlated neighbours
    np.testing.assert_allclose(same, wav, atol=1e-5)
    partly = process_in_pieces(wav, pieces, lambda seg, i: seg + 0.05 * rng.standard_normal(seg.size), fade=4 * HOP)
    level = np.sqrt(0.1**2 + 0.05**2)
    assert np.all(np.abs(rms_around_seams(partly) / level - 1) < 0.12)
    unrelated = process_in_pieces(wav, pieces, lambda seg, i: 0.1 * rng.standard_normal(seg.size), fade=4 * HOP)
    assert np.all(np.abs(rms_around_seams(unrelated) / 0.1 - 1) < 0.12)


# ------------------------------------------------------------------------------------------ quality evidence
def test_default_sampler_is_within_5_percent_of_pndm100_on_held_out_chunks(env: Voice) -> None:
    """Mel L1 vs ground truth on the chunks the Train stage held out (DDPM-1000: benchmarks/results_convert.md)."""
    from core.convert import DEFAULT_SAMPLER, DEFAULT_STEPS
    from core.experiment import Experiment
    from tests.standins import sampler_mel_errors

    default = (DEFAULT_SAMPLER, DEFAULT_STEPS)
    settings = [("pndm", 100), ("ddim", 20), ("dpm-solver++", 20), ("unipc", 10), default]
    errors = sampler_mel_errors(Experiment.open("voice"), list(dict.fromkeys(settings)), seeds=1, max_frames=300)
    assert all(np.isfinite(v) and v > 0 for v in errors.values()), errors
    assert errors[default] <= 1.05 * errors[("pndm", 100)], errors


def test_make_convert_fn_for_the_cover_stage(env: Voice, tmp_path: Path) -> None:
    from core.convert import make_convert_fn

    vocal = tmp_path / "vocals.wav"
    sf.write(vocal, real_vocal(1.5), SR)
    results: list = []
    steps_seen: list[str] = []
    convert = make_convert_fn("voice", ConvertConfig(key=-3.0, ckpt="best", steps=3), results)
    out = convert(vocal, progress=lambda fraction, message="": steps_seen.append(message))
    assert out == env.logs / "voice" / "outputs" / "cover_work" / "vocals_voice_key-3.wav"
    assert [r.output for r in results] == [out] and results[0].key == -3.0
    assert any("step" in m for m in steps_seen), steps_seen  # the sampler's steps reach the cover's progress
    wav, _ = sf.read(out, dtype="float32")
    assert abs(wav.size - int(1.5 * SR)) < HOP and np.isfinite(wav).all()

"""core.cover: the separate -> convert -> remix pipeline and `python -m core cover`.

The voice conversion stage does not exist yet, so every test plugs in a STAND-IN ``convert_fn``
(a pitch shift or an identity copy). Separation runs audio-separator's real MDX path offline with
the tiny ONNX model of tests/tiny_uvr.py installed in a temporary pretrained/uvr/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import core.cli.cover as cover_cli
from core.cli import main
from core.convert import ConvertConfig
from core.cover import CoverSettings, make_cover
from core.errors import SvcoverError
from core.experiment import Experiment, visible_files
from core.mix import MixSettings, load_stereo
from core.separate import LOW_MEMORY_SEGMENT_FRAMES, SeparationSettings
from tests.conftest import REAL
from tests.tiny_uvr import TINY_MODEL, install_tiny_uvr

SR = 44100
SPLEETER_SONG = REAL / "mixed" / "spleeter_audio_example_Slow_Motion_Dream.mp3"


class StandInConvert:
    """STAND-IN for the voice conversion stage: pitch-shifts (or copies) the vocal and records calls."""

    def __init__(self, out_dir: Path, semitones: float = 0.0):
        self.out_dir, self.semitones, self.calls = out_dir, semitones, []

    def __call__(self, vocals: Path) -> Path:
        from core.audio import save_audio
        from core.mix import pitch_shift

        self.calls.append(Path(vocals))
        out = self.out_dir / f"converted_{len(self.calls)}.wav"
        save_audio(out, pitch_shift(load_stereo(vocals), self.semitones, preserve_formants=True), SR)
        return out


def tiny_settings(**mix) -> CoverSettings:
    return CoverSettings.build(SeparationSettings(model=TINY_MODEL, chunk_seconds=6.0, overlap_seconds=1.0),
                               MixSettings(**mix))  # fmt: skip


def test_real_song_cover_then_rerun_skips_separation(offline_tiny_uvr, tmp_path):
    convert = StandInConvert(tmp_path, semitones=2.0)
    out = tmp_path / "covers" / "cover.mp3"
    progress: list[float] = []
    result = make_cover(out, convert, song=SPLEETER_SONG, settings=tiny_settings(key=2.0),
                        progress=lambda f, m: progress.append(f))  # fmt: skip
    assert result.output == out and out.is_file()
    song = load_stereo(SPLEETER_SONG)
    mixed = load_stereo(out)
    assert mixed.shape[1] == 2 and abs(len(mixed) - len(song)) < 3000  # mp3 frame padding
    assert np.abs(mixed).max() <= 1.0
    assert convert.calls == [result.stems.vocals] and not result.stems.cached
    assert set(result.seconds) == {"separate", "convert", "mix"}
    assert progress[-1] == 1.0 and progress == sorted(progress)
    # stems live in the shared cache under logs/.stems, which is not an experiment
    assert ".stems" in result.stems.vocals.parts
    # second run: separation comes from the cache, conversion and mix run again
    again = make_cover(tmp_path / "covers" / "cover2.wav", convert, song=SPLEETER_SONG, settings=tiny_settings(key=2.0))
    assert again.stems.cached and len(convert.calls) == 2
    assert again.seconds["separate"] < result.seconds["separate"]


def test_changing_only_the_voice_key_or_mix_never_separates_again(offline_tiny_uvr, tmp_path, monkeypatch):
    """Stems are cached per (song content, model, separation settings): a new key, mix or voice reuses them."""
    import core.separate

    loads: list[str] = []

    class CountingSession(core.separate._Session):
        def __init__(self, model, *args, **kwargs):
            loads.append(model)
            super().__init__(model, *args, **kwargs)

    monkeypatch.setattr(core.separate, "_Session", CountingSession)
    t = np.arange(2 * SR) / SR
    song = np.stack([0.2 * np.sin(2 * np.pi * 200 * t), 0.2 * np.sin(2 * np.pi * 3000 * t)], 1)
    sf.write(tmp_path / "song.wav", song.astype(np.float32), SR)
    first = make_cover(tmp_path / "a.wav", StandInConvert(tmp_path / "v1"), song=tmp_path / "song.wav",
                       settings=tiny_settings(key=0.0))  # fmt: skip
    assert loads == [TINY_MODEL] and not first.stems.cached
    # another voice (conversion), another key and another mix: the separator is not loaded again
    second = make_cover(tmp_path / "b.wav", StandInConvert(tmp_path / "v2", semitones=3.0), song=tmp_path / "song.wav",
                        settings=tiny_settings(key=3.0, vocal_gain_db=-4.0, instrumental_gain_db=2.0))  # fmt: skip
    assert loads == [TINY_MODEL] and second.stems.cached and second.stems.vocals == first.stems.vocals
    # the same content under another file name is the same song
    shutil.copy(tmp_path / "song.wav", tmp_path / "renamed.wav")
    third = make_cover(tmp_path / "c.wav", StandInConvert(tmp_path / "v3"), song=tmp_path / "renamed.wav",
                       settings=tiny_settings(key=-2.0))  # fmt: skip
    assert loads == [TINY_MODEL] and third.stems.cached
    # (a changed separation setting does separate again: tests/test_separate.py, test_separate_roformer.py)


def test_user_stems_identity_convert_rebuilds_the_song(offline_tiny_uvr, tmp_path):
    t = np.arange(3 * SR) / SR
    inst = np.stack([0.2 * np.sin(2 * np.pi * 220 * t)] * 2, 1).astype(np.float32)
    voc = (0.2 * np.sin(2 * np.pi * 880 * t)).astype(np.float32)
    sf.write(tmp_path / "inst.wav", inst, SR)
    sf.write(tmp_path / "voc.wav", voc, SR)
    convert = StandInConvert(tmp_path)  # identity stand-in
    out = tmp_path / "cover.wav"
    result = make_cover(out, convert, vocals=tmp_path / "voc.wav", instrumental=tmp_path / "inst.wav")
    mixed, _ = sf.read(out, dtype="float32")
    expected = inst + voc[:, None]
    assert mixed.shape == expected.shape
    assert np.abs(mixed - expected).max() < 2e-3  # identity conversion, 0 dB gains, no limiting needed
    assert result.vocal_match_db == pytest.approx(0.0, abs=0.05)
    assert convert.calls == [tmp_path / "voc.wav"]


def test_cover_result_reports_lufs_and_true_peak(offline_tiny_uvr, tmp_path):
    """A hot instrumental (a tone a quarter of the sample rate, 45° off the samples: 3 dB of inter-sample overs)
    and a quiet converted lead: the result, its JSON sidecar and the written file agree on loudness and true peak."""
    import json

    from scipy.signal import resample

    from core.mix import integrated_lufs

    t = np.arange(4 * SR) / SR
    hot = 0.5 * np.sin(2 * np.pi * 110 * t) + 0.45 * np.sin(2 * np.pi * (SR / 4) * t + np.pi / 4)
    inst = np.stack([hot, hot], 1).astype(np.float32)
    voc = (0.3 * np.sin(2 * np.pi * 440 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)).astype(np.float32)
    sf.write(tmp_path / "inst.wav", inst, SR, subtype="FLOAT")
    sf.write(tmp_path / "voc.wav", voc, SR, subtype="FLOAT")
    out = tmp_path / "cover.wav"
    result = make_cover(out, StandInConvert(tmp_path, semitones=3.0), vocals=tmp_path / "voc.wav",
                        instrumental=tmp_path / "inst.wav")  # fmt: skip
    f = result.figures
    assert f is not None and f.true_peak_db <= -1.0
    assert f.vocal_lufs == pytest.approx(f.reference_vocal_lufs, abs=0.5)
    mixed, _ = sf.read(out, dtype="float64")
    true_peak = 20 * np.log10(np.abs(resample(mixed, 8 * len(mixed), axis=0)).max())
    assert true_peak <= -1.0 + 0.02  # independent 8x interpolation of the written 16-bit file
    assert integrated_lufs(mixed) == pytest.approx(f.lufs, abs=0.05)
    sidecar = json.loads(result.sidecar.read_text())
    assert result.sidecar == tmp_path / "cover.wav.json"
    assert sidecar["mix"]["lufs"] == pytest.approx(f.lufs, abs=0.01)
    assert sidecar["mix"]["true_peak_db"] == pytest.approx(f.true_peak_db, abs=0.01)
    assert "LUFS" in result.loudness_line() and "dBTP" in result.loudness_line()


def test_song_without_vocals_warns_and_still_mixes(offline_tiny_uvr, tmp_path):
    t = np.arange(4 * SR) / SR
    inst = np.stack([0.3 * np.sin(2 * np.pi * 200 * t)] * 2, 1).astype(np.float32)  # below the model's cutoff
    sf.write(tmp_path / "instrumental_only.wav", inst, SR)
    convert = StandInConvert(tmp_path)
    out = tmp_path / "cover.wav"
    result = make_cover(out, convert, song=tmp_path / "instrumental_only.wav", settings=tiny_settings())
    assert convert.calls == [] and result.converted_vocals is None
    assert any("no vocals" in w for w in result.warnings)
    mixed, _ = sf.read(out, dtype="float32")
    assert np.abs(mixed[SR:-SR] - inst[SR:-SR]).max() < 1e-2


def test_backing_modes(offline_tiny_uvr, tmp_path):
    install_tiny_uvr(offline_tiny_uvr / "uvr", cutoff_hz=2000.0, name="tiny-karaoke.onnx")
    t = np.arange(4 * SR) / SR
    mix = 0.2 * (np.sin(2 * np.pi * 200 * t) + np.sin(2 * np.pi * 1500 * t) + np.sin(2 * np.pi * 3000 * t))
    sf.write(tmp_path / "song.wav", np.stack([mix, mix], 1).astype(np.float32), SR)
    separation = SeparationSettings(model=TINY_MODEL, karaoke_model="tiny-karaoke.onnx")
    outputs = {}
    for mode in ("convert", "keep", "drop"):
        convert = StandInConvert(tmp_path / mode)
        outputs[mode] = tmp_path / f"{mode}.wav"
        result = make_cover(outputs[mode], convert, song=tmp_path / "song.wav",
                            settings=CoverSettings.build(separation, MixSettings(), backing=mode))  # fmt: skip
        assert len(convert.calls) == (2 if mode == "convert" else 1), mode
        assert result.stems.backing is not None and result.stems.backing.name == "backing.wav"

    def level_1500(path: Path) -> float:
        x = sf.read(path, dtype="float32")[0][SR // 2 : -SR // 2, 0]
        spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) * 4 / len(x)
        return float(spec[int(1500 * len(x) / SR)])

    assert level_1500(outputs["keep"]) > 0.15 and level_1500(outputs["convert"]) > 0.15
    assert level_1500(outputs["drop"]) < 0.01  # the 1.5 kHz "backing vocal" is gone


def test_failed_conversion_leaves_no_cover(offline_tiny_uvr, tmp_path):
    def broken(_vocals: Path) -> Path:
        raise SvcoverError("voice model crashed")

    t = np.arange(3 * SR) / SR
    song = np.stack([0.2 * np.sin(2 * np.pi * 200 * t), 0.2 * np.sin(2 * np.pi * 3000 * t)], 1)
    sf.write(tmp_path / "song.wav", song.astype(np.float32), SR)
    out_dir = tmp_path / "out"
    with pytest.raises(SvcoverError, match="voice model crashed"):
        make_cover(out_dir / "cover.wav", broken, song=tmp_path / "song.wav", settings=tiny_settings())
    assert visible_files(out_dir) == []


def test_bad_inputs_are_refused(offline_tiny_uvr, tmp_path):
    convert = StandInConvert(tmp_path)
    with pytest.raises(SvcoverError, match="either a song"):
        make_cover(tmp_path / "c.wav", convert)
    with pytest.raises(SvcoverError, match="both a vocal file and an instrumental"):
        make_cover(tmp_path / "c.wav", convert, vocals=tmp_path / "v.wav")
    with pytest.raises(SvcoverError, match="no-such-song.wav: file not found"):
        make_cover(tmp_path / "c.wav", convert, song=tmp_path / "no-such-song.wav", settings=tiny_settings())
    assert convert.calls == []


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_help_lists_every_flag(capsys):
    with pytest.raises(SystemExit):
        main(["cover", "--help"])
    text = capsys.readouterr().out
    for flag in ("--exp", "--input", "--vocals", "--instrumental", "--output", "--key", "--separator",
                 "--backing", "--dereverb", "--vocal-gain", "--instrumental-gain", "--backing-gain", "--protect"):  # fmt: skip
        assert flag in text


def test_cli_missing_voice_model(offline_tiny_uvr, tmp_path, capsys):
    code = main(["cover", "--exp", "nobody", "--input", str(SPLEETER_SONG), "--output", str(tmp_path / "c.wav")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "voice model 'nobody' not found" in err[0]


def test_cli_output_folder_not_writable(offline_tiny_uvr, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["cover", "--exp", "x", "--input", str(SPLEETER_SONG), "--output", str(blocker / "c.wav")])
    err = capsys.readouterr().err
    assert code == 1 and "output folder is not writable" in err


def test_cli_missing_separation_model(offline_tiny_uvr, tmp_path, capsys, monkeypatch):
    Experiment.open("singer").root.mkdir(parents=True)
    monkeypatch.setattr(cover_cli, "make_convert_fn", lambda exp, config: StandInConvert(tmp_path))
    shutil.rmtree(offline_tiny_uvr / "uvr")
    code = main(["cover", "--exp", "singer", "--input", str(SPLEETER_SONG), "--output", str(tmp_path / "c.wav")])
    err = capsys.readouterr().err
    assert code == 1 and "missing separation file" in err and "UVR-MDX-NET-Voc_FT.onnx" in err
    assert "python -m core download uvr" in err and not (tmp_path / "c.wav").exists()


def test_cli_user_stems_with_stand_in_conversion(offline_tiny_uvr, tmp_path, capsys, monkeypatch):
    Experiment.open("singer").root.mkdir(parents=True)
    convert = StandInConvert(tmp_path, semitones=0.0)
    configs = []
    monkeypatch.setattr(cover_cli, "make_convert_fn", lambda exp, config: configs.append((exp, config)) or convert)
    t = np.arange(2 * SR) / SR
    sf.write(tmp_path / "inst.wav", np.stack([0.1 * np.sin(2 * np.pi * 220 * t)] * 2, 1), SR)
    sf.write(tmp_path / "voc.wav", 0.1 * np.sin(2 * np.pi * 660 * t), SR)
    out = tmp_path / "cover.flac"
    code = main(["cover", "--exp", "singer", "--vocals", str(tmp_path / "voc.wav"), "--instrumental",
                 str(tmp_path / "inst.wav"), "--output", str(out), "--key", "3", "--vocal-gain", "-3"])  # fmt: skip
    assert code == 0 and out.is_file() and f"wrote {out}" in capsys.readouterr().out
    assert len(convert.calls) == 1 and sf.info(out).channels == 2
    # the key shifts the voice in the conversion too; the conversion flags keep ConvertConfig's defaults
    assert configs == [("singer", ConvertConfig(key=3.0))]


def test_cli_with_an_untrained_voice_model_says_so(offline_tiny_uvr, tmp_path, capsys):
    Experiment.open("singer").root.mkdir(parents=True)  # the experiment exists but was never trained
    out = tmp_path / "c.wav"
    code = main(["cover", "--exp", "singer", "--input", str(SPLEETER_SONG), "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "no trained voice model" in err and "python -m core train --exp singer" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_cli_separation_flags_map_to_settings():
    import argparse

    from core.separate import AUTO

    parser = argparse.ArgumentParser()
    cover_cli.add_arguments(parser)
    base = ["--exp", "x", "--input", "s.wav", "--output", "c.wav"]
    settings = cover_cli.settings_from_args(parser.parse_args(base))
    assert settings.separation.model == AUTO and settings.separation.segment_frames is None
    assert settings.backing is None and not settings.separation.split_backing
    low = cover_cli.settings_from_args(parser.parse_args([*base, "--low-memory", "--backing", "keep",
                                                      "--separator", "preset:vocal_rvc"]))  # fmt: skip
    assert low.separation.segment_frames == LOW_MEMORY_SEGMENT_FRAMES and low.backing == "keep"
    assert low.separation.split_backing and low.separation.model == "preset:vocal_rvc"
    assert cover_cli.settings_from_args(parser.parse_args([*base, "--segment-frames", "400"])).separation.segment_frames == 400
    with pytest.raises(SvcoverError, match="segment of 4 frames"):
        cover_cli.settings_from_args(parser.parse_args([*base, "--segment-frames", "4"]))


def test_cover_tab_and_cli_build_the_same_configs(tmp_logs, tmp_path):
    """The Make cover button and `python -m core cover` with the same choices give the cover stage the same configs."""
    import argparse

    from core.cli.convert import convert_config
    from webui.cover_tab import cover_request

    parser = argparse.ArgumentParser()
    cover_cli.add_arguments(parser)
    args = parser.parse_args(["--exp", "singer", "--input", "s.wav", "--output", str(tmp_path / "c.mp3"), "--key", "3", "--backing",
                              "keep", "--dereverb", "--vocal-gain", "-2", "--instrumental-gain", "1.5",
                              "--backing-gain", "0.5", "--steps", "12", "--low-memory"])  # fmt: skip
    with pytest.raises(SvcoverError, match="voice model 'singer' not found") as from_cli:
        cover_cli.run_cli(args)
    form = dict(song="s.wav", vocals=None, instrumental=None, exp="singer", ckpt="best", key=3, backing="keep",
                dereverb=True, vocal_gain=-2, inst_gain=1.5, backing_gain=0.5, steps=12, fmt="mp3", low_memory=True)
    with pytest.raises(SvcoverError) as from_tab:
        cover_request(**form)
    assert str(from_tab.value) == str(from_cli.value)  # one check, one message
    Experiment.open("singer").root.mkdir(parents=True)
    request = cover_request(**form)
    assert request.settings == cover_cli.settings_from_args(args)
    assert request.settings.separation.segment_frames == LOW_MEMORY_SEGMENT_FRAMES and request.settings.mix.key == 3
    assert request.convert == convert_config(args)

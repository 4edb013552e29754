"""The Extract stage: cache keys, skip/resume, F0-only recompute, stats, bad chunks, CLI, feature contract.

Most tests inject small counting fakes for the two models (ContentVec, F0) through
``run_extract(..., extractors=...)``; loudness and mel are the real functions. The integration tests
at the end run the real modules (FCPE weights ship in the torchfcpe wheel; the content encoder uses
a stand-in checkpoint built once per session from the schema).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from core.cli import build_parser
from core.cli.extract import config_from_args as extract_config_from_args
from core.config import save_json
from core.errors import MissingPretrainedError, NothingToDoError, SvcoverError
from core.experiment import Experiment
from core.features.extract import ExtractConfig, run_extract
from core.features.loudness import frame_volume, loudness_db
from core.features.store import list_feature_chunks, load_features, load_stats
from tests.conftest import REAL, ROOT, SHARED
from tests.standin_features import Fakes

SR = 44100
SYNTH = SHARED / "data" / "synthetic"


# ------------------------------------------------------------------------------------------ helpers
def write_chunk(exp: Experiment, name: str, wav44: np.ndarray, subtype: str = "PCM_16", with_16k: bool = True) -> None:
    exp.gt_wavs.mkdir(parents=True, exist_ok=True)
    exp.wavs16k.mkdir(parents=True, exist_ok=True)
    sf.write(exp.gt_wavs / f"{name}.wav", wav44, SR, subtype=subtype)
    if with_16k:
        finite = np.nan_to_num(wav44.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        sf.write(exp.wavs16k / f"{name}.wav", soxr.resample(finite, SR, 16000), 16000, subtype=subtype)


def speech(seconds: float = 3.0, index: int = 1) -> np.ndarray:
    wav, sr = sf.read(REAL / "speech_ljspeech" / f"LJ001-{index:04d}.wav", dtype="float32")
    return soxr.resample(wav, sr, SR)[: int(seconds * SR)]


def singing(seconds: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    wav, sr = sf.read(SYNTH / "singer_a_seed1.wav", dtype="float32")
    assert sr == SR
    f0 = np.load(SYNTH / "singer_a_seed1_f0.npy")
    n = int(seconds * SR)
    return wav[:n], f0[: n // 512 + 1]


@pytest.fixture
def small_exp(tmp_logs: Path) -> Experiment:
    """Three chunks: two speech, one synthetic singing; config.json already holds a dataset section."""
    exp = Experiment.open("demo")
    write_chunk(exp, "ljs_a", speech(2.5, 1))
    write_chunk(exp, "ljs_b", speech(3.0, 2))
    write_chunk(exp, "sing", singing(4.0)[0])
    save_json(exp.config, {"dataset": {"sample_rate": SR, "note": "written by the dataset stage"}})
    return exp


def feature_files(exp: Experiment) -> dict[str, float]:
    return {str(p.relative_to(exp.features)): p.stat().st_mtime_ns for p in exp.features.rglob("*") if p.is_file()}


# ------------------------------------------------------------------------------------------ unit tests
def test_features_follow_the_contract(small_exp: Experiment) -> None:
    fakes = Fakes()
    rep = run_extract("demo", ExtractConfig(f0_method="rmvpe"), extractors=fakes.extractors())
    assert rep.n_chunks == 3 and rep.computed == {"content": 3, "f0": 3, "loudness": 3, "mel": 3}
    assert fakes.loads == {"content": 1, "f0": 1}  # each model loaded once per run
    assert list_feature_chunks("demo") == ["ljs_a", "ljs_b", "sing"]

    for name in ("ljs_a", "sing"):
        wav, sr = sf.read(small_exp.gt_wavs / f"{name}.wav", dtype="float32")
        t = wav.size // 512 + 1
        feats = load_features(small_exp, name)
        assert set(feats) == {"units", "f0", "f0_continuous", "volume", "loudness_db", "mel"}
        assert feats["units"].shape == (t, 768) and feats["units"].dtype == np.float32
        assert feats["mel"].shape == (128, t)
        for key in ("f0", "f0_continuous", "volume", "loudness_db"):
            assert feats[key].shape == (t,) and feats[key].dtype == np.float32
        np.testing.assert_allclose(feats["volume"], frame_volume(wav), rtol=1e-6)
        np.testing.assert_allclose(feats["loudness_db"], loudness_db(wav), atol=1e-4)
        assert (feats["f0_continuous"] > 0).all() and np.array_equal(feats["f0"] > 0, feats["f0"] > 0)

    cfg = json.loads(small_exp.config.read_text())
    assert cfg["dataset"]["note"] == "written by the dataset stage"  # merged, not overwritten
    assert cfg["extract"]["encoder"] == "contentvec768l12" and cfg["extract"]["f0_method"] == "rmvpe"
    assert cfg["extract"]["units_dim"] == 768
    # no temporary files left behind
    assert not [p for p in small_exp.features.rglob(".*")]


def test_encoder_256_gives_256_dim_units(small_exp: Experiment) -> None:
    run_extract("demo", ExtractConfig(encoder="contentvec256l9"), extractors=Fakes(dim=256).extractors())
    assert load_features("demo", "ljs_b")["units"].shape[1] == 256
    assert load_stats("demo")["units_dim"] == 256


def test_rerun_skips_done_chunks(small_exp: Experiment) -> None:
    run_extract("demo", ExtractConfig(), extractors=Fakes().extractors())
    before = feature_files(small_exp)
    fakes = Fakes()
    rep = run_extract("demo", ExtractConfig(), extractors=fakes.extractors())
    assert rep.computed == {"content": 0, "f0": 0, "loudness": 0, "mel": 0}
    assert rep.skipped == {"content": 3, "f0": 3, "loudness": 3, "mel": 3}
    assert fakes.loads == {"content": 0, "f0": 0} and fakes.calls == {"content": 0, "f0": 0}
    assert feature_files(small_exp) == before


def test_changing_f0_method_recomputes_only_f0(small_exp: Experiment) -> None:
    run_extract("demo", ExtractConfig(f0_method="rmvpe"), extractors=Fakes().extractors())
    before = feature_files(small_exp)
    old_f0 = load_features("demo", "sing")["f0"]
    fakes = Fakes(f0_scale=2.0)
    rep = run_extract("demo", ExtractConfig(f0_method="fcpe"), extractors=fakes.extractors())
    assert rep.computed == {"content": 0, "f0": 3, "loudness": 0, "mel": 0}
    assert fakes.calls == {"content": 0, "f0": 3} and fakes.loads["content"] == 0
    after = feature_files(small_exp)
    unchanged = {k: v for k, v in before.items() if not Path(k).name.startswith("f0.")}
    assert all(after.get(k) == v for k, v in unchanged.items())
    assert sum(Path(k).name.startswith("f0.") for k in after) == 3  # the old F0 files were replaced
    new_f0 = load_features("demo", "sing")["f0"]
    np.testing.assert_allclose(new_f0, old_f0 * 2.0, rtol=1e-6)
    assert load_stats("demo")["f0_method"] == "fcpe"
    assert list_feature_chunks("demo") == ["ljs_a", "ljs_b", "sing"]


def test_changed_chunk_is_recomputed_and_removed_chunk_pruned(small_exp: Experiment) -> None:
    run_extract("demo", ExtractConfig(), extractors=Fakes().extractors())
    write_chunk(small_exp, "ljs_a", speech(2.0, 3))  # new audio under the same name
    (small_exp.gt_wavs / "ljs_b.wav").unlink()
    (small_exp.wavs16k / "ljs_b.wav").unlink()
    fakes = Fakes()
    rep = run_extract("demo", ExtractConfig(), extractors=fakes.extractors())
    assert rep.computed == {"content": 1, "f0": 1, "loudness": 1, "mel": 1}
    assert rep.n_chunks == 2
    assert not (small_exp.features / "ljs_b").exists()
    assert load_features("demo", "ljs_a")["mel"].shape[1] == int(2.0 * SR) // 512 + 1
    assert list_feature_chunks("demo") == ["ljs_a", "sing"]


def test_killed_run_resumes(small_exp: Experiment) -> None:
    for i in range(3):
        write_chunk(small_exp, f"more_{i}", speech(1.5, 4 + i))
    fakes = Fakes(fail_content_at=3)
    with pytest.raises(KeyboardInterrupt):
        run_extract("demo", ExtractConfig(), extractors=fakes.extractors())
    done = sorted(p.parent.name for p in small_exp.features.rglob("content.*.npz"))
    assert len(done) == 2
    assert not list(small_exp.features.rglob(".tmp-*"))
    assert list_feature_chunks("demo") == []  # nothing is complete yet: F0 etc. never ran
    # A hard kill during a write leaves only a dot-named temp file, which never counts as done.
    pending = sorted(set(c.stem for c in small_exp.gt_wavs.glob("*.wav")) - set(done))
    (small_exp.features / pending[0]).mkdir(parents=True, exist_ok=True)
    (small_exp.features / pending[0] / ".tmp-content.half.npz").write_bytes(b"PK\x03\x04 truncated")

    fakes = Fakes()
    rep = run_extract("demo", ExtractConfig(), extractors=fakes.extractors())
    assert rep.computed["content"] == 4 and rep.skipped["content"] == 2
    assert load_features("demo", pending[0])["units"].shape[1] == 768
    assert fakes.calls["content"] == 4 and rep.computed["f0"] == 6
    assert len(list_feature_chunks("demo")) == 6


def test_stats_match_known_singing_range(tmp_logs: Path) -> None:
    exp = Experiment.open("singer")
    wav, f0 = singing(8.0)
    write_chunk(exp, "sing", wav)
    fakes = Fakes(oracle_f0={wav.size: f0})
    run_extract("singer", ExtractConfig(), extractors=fakes.extractors())
    stats = load_stats("singer")
    voiced = f0[f0 > 0]
    for q, key in ((5, "f0_hz_p5"), (50, "f0_hz_p50"), (95, "f0_hz_p95")):
        assert stats[key] == pytest.approx(np.percentile(voiced, q), rel=1e-3)
    hist = stats["f0_semitone_hist"]
    assert hist["unit"] == "midi" and len(hist["bins"]) == len(hist["counts"])
    assert sum(hist["counts"]) == voiced.size == stats["f0_voiced_frames"]
    peak_note = hist["bins"][int(np.argmax(hist["counts"]))]
    assert abs(peak_note - np.median(69 + 12 * np.log2(voiced / 440))) <= 3
    feats = load_features("singer", "sing")
    assert stats["n_frames"] == feats["mel"].shape[1] and stats["n_chunks"] == 1
    np.testing.assert_allclose(stats["mel_min"], feats["mel"].min(axis=1), rtol=1e-5)
    np.testing.assert_allclose(stats["mel_max"], feats["mel"].max(axis=1), rtol=1e-5)
    assert stats["loudness_db_mean"] == pytest.approx(float(feats["loudness_db"].mean()), abs=1e-3)
    assert stats["loudness_db_std"] == pytest.approx(float(feats["loudness_db"].std()), abs=1e-3)
    assert stats["volume_mean"] == pytest.approx(float(feats["volume"].mean()), rel=1e-4)
    assert stats["encoder"] == "contentvec768l12" and stats["units_dim"] == 768


def test_silent_nan_and_short_chunks(tmp_logs: Path) -> None:
    exp = Experiment.open("bad")
    write_chunk(exp, "ok", speech(2.0))
    write_chunk(exp, "silent", np.zeros(SR * 2, dtype=np.float32))
    broken = speech(2.0, 2)
    broken[1000:3000] = np.nan
    broken[50000] = np.inf
    write_chunk(exp, "nan", broken, subtype="FLOAT")
    write_chunk(exp, "tiny", speech(0.01, 3))  # 441 samples: below the encoder's 400-sample field at 16 kHz
    write_chunk(exp, "tiny_no16k", speech(0.05, 4), with_16k=False)
    fakes = Fakes()
    rep = run_extract("bad", ExtractConfig(), extractors=fakes.extractors())

    assert rep.n_chunks == 5 and list_feature_chunks("bad") == sorted(["ok", "silent", "nan", "tiny", "tiny_no16k"])
    assert rep.sanitized == ["nan"]
    assert rep.padded == ["tiny", "tiny_no16k"]
    assert "silent" in rep.silent
    assert min(fakes.inputs) >= 400
    for name in ("ok", "silent", "nan", "tiny", "tiny_no16k"):
        n = sf.info(str(exp.gt_wavs / f"{name}.wav")).frames
        feats = load_features("bad", name)
        for key, value in feats.items():
            assert np.isfinite(value).all(), (name, key)
            assert value.shape[-1 if key == "mel" else 0] == n // 512 + 1, (name, key)
    silent = load_features("bad", "silent")
    assert not silent["f0"].any() and not silent["f0_continuous"].any()
    assert (silent["loudness_db"] == -100.0).all()
    stats = load_stats("bad")
    assert all(np.isfinite(stats[k]) for k in ("loudness_db_mean", "loudness_db_std", "volume_mean"))


def test_all_silent_dataset_gives_null_range(tmp_logs: Path) -> None:
    exp = Experiment.open("quiet")
    write_chunk(exp, "a", np.zeros(SR, dtype=np.float32))
    rep = run_extract("quiet", ExtractConfig(), extractors=Fakes().extractors())
    stats = load_stats("quiet")
    assert rep.silent == ["a"]
    assert stats["f0_hz_p50"] is None and sum(stats["f0_semitone_hist"]["counts"]) == 0


def test_missing_inputs_are_user_errors(tmp_logs: Path, tmp_pretrained: Path) -> None:
    with pytest.raises(SvcoverError, match="experiment not found"):
        run_extract("nope", ExtractConfig(), extractors=Fakes().extractors())
    Experiment.open("empty").root.mkdir()
    with pytest.raises(NothingToDoError, match="0_gt_wavs"):
        run_extract("empty", ExtractConfig(), extractors=Fakes().extractors())
    with pytest.raises(SvcoverError, match="extract"):
        load_features("empty", "x")
    with pytest.raises(SvcoverError, match="stats.json"):
        load_stats("empty")
    assert list_feature_chunks("empty") == []
    with pytest.raises(SvcoverError, match="unknown F0 method"):
        run_extract("empty", ExtractConfig(f0_method="crepe"), extractors=Fakes().extractors())


def test_missing_pretrained_file_is_named_before_any_work(small_exp: Experiment, tmp_pretrained: Path) -> None:
    with pytest.raises(MissingPretrainedError) as info:
        run_extract("demo", ExtractConfig(f0_method="rmvpe", device="cpu"))
    msg = str(info.value)
    assert "content/hubert_base.pt" in msg and "python -m core download" in msg
    assert "\n" not in msg
    assert not small_exp.features.exists()


def test_missing_rmvpe_is_named_when_only_f0_is_needed(small_exp: Experiment, tmp_pretrained: Path) -> None:
    run_extract("demo", ExtractConfig(f0_method="fcpe"), extractors=Fakes().extractors())
    with pytest.raises(MissingPretrainedError, match=r"rmvpe/rmvpe\.pt.*python -m core download rmvpe"):
        run_extract("demo", ExtractConfig(f0_method="rmvpe", device="cpu"))


def test_progress_reports_reach_one(small_exp: Experiment) -> None:
    seen: list[tuple[float, str]] = []
    stages: list[tuple[str, int, int]] = []
    run_extract("demo", ExtractConfig(), progress=lambda f, m: seen.append((f, m)),
                extractors=Fakes().extractors(), stage_progress=lambda s, d, t: stages.append((s, d, t)))  # fmt: skip
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert [s for s, d, t in stages if d == t] == ["content", "f0", "loudness", "mel"]


# ------------------------------------------------------------------------------------------ CLI
def _cli(args: list[str], logs: Path, pretrained: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SVCOVER_LOGS": str(logs), "SVCOVER_PRETRAINED": str(pretrained)}
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def test_cli_help_and_errors(small_exp: Experiment, tmp_logs: Path, tmp_pretrained: Path) -> None:
    out = _cli(["extract", "--help"], tmp_logs, tmp_pretrained)
    assert out.returncode == 0
    for flag in ("--exp", "--f0", "--device", "--encoder", "rmvpe", "fcpe", "harvest", "parselmouth",
                 "contentvec256l9"):  # fmt: skip
        assert flag in out.stdout

    out = _cli(["extract", "--exp", "demo"], tmp_logs, tmp_pretrained)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith("error: missing pretrained file")
    assert "content/hubert_base.pt" in out.stderr and "python -m core download" in out.stderr

    out = _cli(["extract", "--exp", "ghost"], tmp_logs, tmp_pretrained)
    assert out.returncode == 1 and "experiment not found" in out.stderr
    out = _cli(["extract", "--exp", "../etc"], tmp_logs, tmp_pretrained)
    assert out.returncode == 1 and "invalid experiment name" in out.stderr
    out = _cli(["extract", "--exp", "demo", "--f0", "crepe"], tmp_logs, tmp_pretrained)
    assert out.returncode == 2  # argparse rejects unknown choices


def test_cli_flags_fill_the_config_and_default_to_its_defaults() -> None:
    parser = build_parser("extract")
    assert extract_config_from_args(parser.parse_args(["extract", "--exp", "x"])) == ExtractConfig()
    args = parser.parse_args(["extract", "--exp", "x", "--f0", "fcpe", "--encoder", "contentvec256l9", "--device", "cpu"])
    assert extract_config_from_args(args) == ExtractConfig(f0_method="fcpe", encoder="contentvec256l9", device="cpu")


# ------------------------------------------------------------------------------------------ real modules
@pytest.fixture(scope="session")
def small_pretrained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pretrained_small")
    from tests.standins import write_small_content_encoder

    write_small_content_encoder(root / "content" / "hubert_base.pt")
    return root


def test_real_extractors_end_to_end(small_exp: Experiment, small_pretrained: Path, monkeypatch) -> None:
    monkeypatch.setenv("SVCOVER_PRETRAINED", str(small_pretrained))
    rep = run_extract("demo", ExtractConfig(f0_method="fcpe", device="cpu"))
    assert rep.computed == {"content": 3, "f0": 3, "loudness": 3, "mel": 3} and rep.device == "cpu"
    feats = load_features("demo", "sing")
    wav, known_f0 = singing(4.0)
    t = wav.size // 512 + 1
    assert feats["units"].shape == (t, 768) and np.isfinite(feats["units"]).all()
    assert feats["units"].std() > 0  # a real forward pass, not zeros

    from core.features.mel import log_mel

    np.testing.assert_allclose(feats["mel"], log_mel(wav), atol=1e-4)
    # FCPE on synthetic singing with known F0: voiced frames agree within a semitone almost everywhere.
    both = (feats["f0"] > 0) & (known_f0 > 0)
    assert both.sum() > 0.6 * (known_f0 > 0).sum()
    cents = 1200 * np.abs(np.log2(feats["f0"][both] / known_f0[both]))
    assert np.median(cents) < 50 and np.mean(cents < 100) > 0.9
    stats = load_stats("demo")
    assert stats["f0_method"] == "fcpe" and stats["n_chunks"] == 3

    # Switching to another F0 method touches only F0, through the real modules too.
    rep = run_extract("demo", ExtractConfig(f0_method="parselmouth", device="cpu"))
    assert rep.computed == {"content": 0, "f0": 3, "loudness": 0, "mel": 0}
    assert load_stats("demo")["f0_method"] == "parselmouth"


def test_cli_runs_the_stage(small_exp: Experiment, tmp_logs: Path, small_pretrained: Path) -> None:
    out = _cli(["extract", "--exp", "demo", "--f0", "parselmouth", "--device", "cpu"], tmp_logs, small_pretrained)
    assert out.returncode == 0, out.stderr
    assert "3 chunks" in out.stdout and "stats" in out.stdout
    assert list_feature_chunks("demo") == ["ljs_a", "ljs_b", "sing"]
    assert (small_exp.root / "stats.json").is_file()


# ------------------------------------------------------------------------------------------ web UI
@pytest.mark.browser
def test_extract_tab_runs_and_plots(tmp_path: Path, small_pretrained: Path) -> None:
    from tests.browser import choose_option, chromium_page, running_app

    exp = Experiment.open("browser_exp", logs=tmp_path / "app" / "logs")
    write_chunk(exp, "speech", speech(2.0))
    write_chunk(exp, "sing", singing(3.0)[0])
    env = {"SVCOVER_PRETRAINED": str(small_pretrained)}
    with running_app(tmp_path / "app", timeout=60, extra_env=env) as url, chromium_page(timeout_ms=60_000) as page:
        page.goto(url)
        page.get_by_role("tab", name="Extract").click()
        choose_option(page, "extract-exp", "browser_exp")
        page.locator("#extract-summary").get_by_text("No features yet").wait_for()
        choose_option(page, "extract-f0", "parselmouth")
        choose_option(page, "extract-device", "cpu")
        page.locator("#extract-run").click()
        summary = page.locator("#extract-summary")
        summary.get_by_text("computed:").wait_for(timeout=120_000)
        text = summary.inner_text()
        page.locator("#extract-range img").first.wait_for()
        page.locator("#extract-f0-plot img").first.wait_for()
        chunk_value = page.locator("#extract-chunk input").first.input_value()
    assert "2 chunks" in text and "parselmouth" in text and "Range" in text
    assert chunk_value in ("sing", "speech")
    stats = json.loads((exp.root / "stats.json").read_text())
    assert stats["f0_method"] == "parselmouth" and stats["n_chunks"] == 2


def test_cli_killed_hard_then_resumed(tmp_logs: Path, small_pretrained: Path, monkeypatch) -> None:
    """SIGKILL the CLI in the middle of the content stage; the next run computes only what is missing."""
    import signal
    import time

    exp = Experiment.open("killme")
    for i in range(5):
        write_chunk(exp, f"c{i}", speech(2.0, 1 + i))
    env = {**os.environ, "SVCOVER_LOGS": str(tmp_logs), "SVCOVER_PRETRAINED": str(small_pretrained)}
    proc = subprocess.Popen([sys.executable, "-m", "core", "extract", "--exp", "killme", "--f0", "parselmouth",
                             "--device", "cpu"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not list(exp.features.rglob("content.*.npz")) and time.monotonic() < deadline:
            assert proc.poll() is None, "the CLI ended before writing any feature"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    done = {p.parent.name for p in exp.features.rglob("content.*.npz")}
    assert 1 <= len(done) and not (exp.root / "stats.json").exists()
    monkeypatch.setenv("SVCOVER_PRETRAINED", str(small_pretrained))
    rep = run_extract("killme", ExtractConfig(f0_method="parselmouth", device="cpu"))
    assert rep.skipped["content"] == len(done) and rep.computed["content"] == 5 - len(done)
    assert list_feature_chunks("killme") == [f"c{i}" for i in range(5)]
    for i in range(5):
        assert np.isfinite(load_features("killme", f"c{i}")["units"]).all()


def test_choice_enums_and_plain_names_give_the_same_cache_keys() -> None:
    """The UI and the defaults pass StrEnum members, old configs and the CLI plain names: one cache either way."""
    from core.device import Device
    from core.features.encoders import ENCODERS, ContentEncoder
    from core.features.extract import group_digests
    from core.features.f0 import F0Method

    for encoder in ContentEncoder:
        members = ExtractConfig(F0Method.FCPE, encoder, Device.CPU).validate()
        names = ExtractConfig("fcpe", encoder.value, "cpu").validate()
        assert group_digests(members) == group_digests(names) and members.units_dim == ENCODERS[encoder].dim
    assert group_digests(ExtractConfig(F0Method.HARVEST)) != group_digests(ExtractConfig(F0Method.FCPE))

"""The F0 stage's voicing decision: its logic on hand-made frame measures, and its accuracy with FCPE's real
weights on synthetic singing with added breaths, consonant bursts and room noise (known F0) and on
hand-labelled stretches of a real a cappella clip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from benchmarks.voicing import LABELS, SYNTHETIC_CLIPS, estimate, label_truth, scores, synthetic_clip
from core.features.f0 import estimate_f0, pitch_candidates
from core.features.f0.voicing import (
    VoicingSettings,
    bridge_gaps,
    decide,
    drop_short,
    frame_level_db,
    hysteresis,
    local_reference_db,
    periodicity,
)
from tests.conftest import REAL

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _mask(text: str) -> np.ndarray:
    return np.array([c == "1" for c in text])


def test_hysteresis_keeps_only_candidate_runs_with_a_seed() -> None:
    candidate = _mask("0111100111110011")
    seed = _mask("0001000000100000")
    assert "".join("1" if v else "0" for v in hysteresis(candidate, seed)) == "0111100111110000"


def test_gaps_are_bridged_and_short_runs_dropped() -> None:
    voiced = _mask("1110111001100000111111")
    assert "".join("1" if v else "0" for v in bridge_gaps(voiced, 1)) == "1111111001100000111111"
    assert "".join("1" if v else "0" for v in bridge_gaps(voiced, 2)) == "1111111111100000111111"
    # a gap at the edges is not "inside" a note
    assert not bridge_gaps(_mask("0111"), 3)[0]
    assert "".join("1" if v else "0" for v in drop_short(voiced, 3)) == "1110111000000000111111"


def test_decide_combines_confidence_level_and_periodicity() -> None:
    s = VoicingSettings(min_voiced_frames=3, max_gap_frames=1)
    n = 40
    conf = np.full(n, 0.9)
    level = np.full(n, -20.0)
    ref = np.full(n, -20.0)
    per = np.full(n, 0.8)  # periodic, but not so clearly that confidence stops mattering
    conf[0:6] = 0.2  # below the weak confidence threshold
    per[12:16] = 0.1  # a noisy stretch (breath): not voiced however confident
    level[20:25] = -60.0  # 40 dB below the local reference: a quiet tail, not voiced
    conf[30:32] = 0.0  # a 2-frame dropout inside a note: too long to bridge with max_gap 1
    conf[36] = 0.0  # a 1-frame dropout: bridged
    voiced = decide(conf, level, ref, per, s)
    expected = np.ones(n, dtype=bool)
    for a, b in ((0, 6), (12, 16), (20, 25), (30, 32)):
        expected[a:b] = False
    np.testing.assert_array_equal(voiced, expected)
    # the run 0-5 joins the note once its confidence passes the weak threshold (hysteresis) ...
    conf[0:6] = 0.4
    assert decide(conf, level, ref, per, s)[0:6].all()
    # ... but weak frames with no seed anywhere in their run stay unvoiced
    assert not decide(np.full(n, 0.4), level, ref, per, s).any()
    # a loud, clearly periodic frame needs little confidence (FCPE above 1 kHz)
    assert decide(np.full(n, 0.2), np.full(n, -20.0), ref, np.full(n, 0.97), s).all()
    assert not decide(np.full(n, 0.05), np.full(n, -20.0), ref, np.full(n, 0.97), s).any()
    # frames below the absolute floor never count
    assert not decide(conf, np.full(n, -80.0), np.full(n, -80.0), per, s).any()
    # too short a voiced run is dropped
    short = np.zeros(n)
    short[10:12] = 0.9
    assert not decide(short, level, ref, per, s).any()
    with pytest.raises(ValueError):
        VoicingSettings(weak_confidence=0.9, strong_confidence=0.5)


def test_frame_measures_on_a_tone_and_noise() -> None:
    sr = 16000
    t = np.arange(sr) / sr
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 660 * t)
    noise = 0.3 * np.random.default_rng(0).standard_normal(sr)
    n = sr // 160 + 1
    assert np.median(periodicity(tone, np.full(n, 220.0))) > 0.98
    assert np.median(periodicity(noise, np.full(n, 220.0))) < 0.3
    assert not periodicity(tone, np.zeros(n)).any()  # no pitch candidate, no periodicity
    quiet = np.concatenate([tone, 0.01 * tone])
    level = frame_level_db(quiet, quiet.size // 160 + 1)
    assert level[50] - level[150] == pytest.approx(40.0, abs=0.5)
    ref = local_reference_db(level, 0.5)
    assert ref[190] == pytest.approx(level[150], abs=0.5)  # more than 0.5 s after the loud part
    assert ref[110] == pytest.approx(level[50], abs=0.5)


def test_synthetic_singing_with_breaths_bursts_and_room_noise(tmp_path) -> None:
    """The issue's targets on a short synthetic clip: RPA >= 0.99, recall >= 0.95, false alarm <= 0.10, and
    fewer false alarms than the plain threshold."""
    seed, extra = SYNTHETIC_CLIPS[1]
    wav, truth = synthetic_clip(tmp_path, seed, extra, seconds=5.0)
    candidates = pitch_candidates(wav, "fcpe")
    after = scores(*estimate(wav, "auto", candidates=candidates), truth)
    before = scores(*estimate(wav, "threshold", candidates=candidates), truth)
    assert after.unvoiced_frames > 50 and after.voiced_frames > 200
    assert after.rpa >= 0.99, after
    assert after.recall >= 0.95, after
    assert after.false_alarm <= 0.10, after
    assert after.false_alarm < before.false_alarm, (before, after)


def test_hand_labelled_real_singing() -> None:
    """vocadito_14: the plain threshold calls a quarter of the labelled unvoiced frames voiced."""
    clip = json.loads(LABELS.read_text())["clips"]["vocadito_14.wav"]
    wav, sr = sf.read(REAL / "singing" / "vocadito_14.wav", dtype="float32")
    truth, scored = label_truth(clip, wav.size // 512 + 1)
    candidates = pitch_candidates(wav, "fcpe")
    after = scores(*estimate(wav, "auto", candidates=candidates), truth, scored)
    before = scores(*estimate(wav, "threshold", candidates=candidates), truth, scored)
    assert after.recall >= 0.95, after
    assert after.false_alarm <= 0.10, after
    assert before.false_alarm > 0.15, before  # the problem the decision solves is really there


def test_estimate_f0_voicing_modes() -> None:
    wav, sr = sf.read(REAL / "singing" / "vocadito_12.wav", dtype="float32")
    wav = wav[: 3 * sr]
    auto = estimate_f0(wav, "fcpe")
    plain = estimate_f0(wav, "fcpe", voicing="threshold")
    explicit = estimate_f0(wav, "fcpe", threshold=0.006)
    np.testing.assert_array_equal(plain, explicit)  # an explicit threshold selects the old decision
    assert (auto > 0).sum() < (plain > 0).sum()
    voiced_both = (auto > 0) & (plain > 0)
    cents = 1200 * np.abs(np.log2(auto[voiced_both] / plain[voiced_both]))
    assert (cents < 1).mean() >= 0.9  # voicing changes, pitch does not (except resampling next to new edges)
    with pytest.raises(ValueError, match="voicing"):
        estimate_f0(wav, "fcpe", voicing="loud")


def test_extract_uses_the_voicing_decision() -> None:
    from core.features.extract import F0_PARAMS, ExtractConfig, default_extractors

    assert F0_PARAMS["voicing"] == "auto"  # part of the f0 cache key, so old caches are recomputed
    wav, sr = sf.read(REAL / "singing" / "vocadito_12.wav", dtype="float32")
    wav = wav[: 3 * sr]
    f0_fn = default_extractors(ExtractConfig(f0_method="fcpe"), "cpu").f0()
    np.testing.assert_array_equal(f0_fn(wav), estimate_f0(wav, "fcpe"))

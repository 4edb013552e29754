"""The Train stage on real audio: LJSpeech chunks with stand-in content/F0 features (tests/standin_features.py).

The tiny config (64 channels x 4 layers) trains on one CPU thread: learning, checkpoint rotation,
best.pt, export, SIGKILL during training and during a save, the stop file, DDP with 2 gloo processes,
fine-tuning from a Diffusion-SVC-format base, and bad inputs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml

from core.checkpoint_store import step_checkpoints
from core.errors import NothingToDoError, SvcoverError
from core.experiment import Experiment
from core.train import (
    PAUSE_IN_SAVE_ENV,
    TrainConfig,
    TrainingDivergedError,
    checkpoint_table,
    read_metrics,
    request_stop,
    train,
)
from tests.conftest import ROOT

TINY_FLAGS = ["--config", "tiny", "--device", "cpu", "--batch-size", "4", "--crop-frames", "48", "--threads", "1",
              "--log-every", "1"]  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="session")
def template(tmp_path_factory) -> Path:
    """12 LJSpeech clips (<= 5 s) with extracted stand-in features, built once per session."""
    from tests.standin_features import build_standin_experiment

    logs = tmp_path_factory.mktemp("train_template")
    build_standin_experiment(Experiment.open("ljs", logs=logs), n_files=12, max_seconds=5.0)
    return logs / "ljs"


@pytest.fixture
def exp(template: Path, tmp_logs: Path) -> Experiment:
    shutil.copytree(template, tmp_logs / "ljs")
    return Experiment.open("ljs")


def tiny(**kw) -> TrainConfig:
    base = {"model": "tiny", "device": "cpu", "batch_size": 4, "crop_frames": 48, "threads": 1, "warmup_steps": 5,
            "log_every": 5}  # fmt: skip
    return TrainConfig(**{**base, **kw})


def cli(args: list[str], logs: Path, env: dict | None = None, **popen) -> subprocess.Popen:
    full_env = {**os.environ, "SVCOVER_LOGS": str(logs), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "core", *args], cwd=ROOT, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)  # fmt: skip


def wait_for(predicate, timeout: float, proc: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended early ({proc.returncode}): {proc.stdout.read()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError("timed out")


# ------------------------------------------------------------------------------------------ learning
def test_validation_loss_drops_and_outputs_are_complete(exp: Experiment) -> None:
    from core.model import SvcDecoder
    from core.model.config import TINY
    from core.train import load_clips, validation_loss

    result = train(exp, tiny(steps=240, save_every=60, lr=5e-3, batch_size=8, crop_frames=64))
    assert result.step == 240 and result.checkpoint == exp.checkpoints / "step_240.pt"

    rows = read_metrics(exp)
    assert [r["step"] for r in rows] == sorted({r["step"] for r in rows})  # one row per logged step, in order
    assert all({"step", "loss", "lr", "seconds"} <= r.keys() for r in rows)
    vals = [r["val_loss"] for r in rows if "val_loss" in r]
    assert len(vals) == 4  # steps 60, 120, 180, 240

    # untrained baseline on the same held-out chunks (zero-initialised output layer: loss ~ 1)
    val_names = json.loads(json.dumps(torch.load(result.checkpoint, weights_only=True)["val_chunks"]))
    clips = load_clips(exp, val_names)
    torch.manual_seed(0)
    baseline = validation_loss(SvcDecoder(TINY), clips, "cpu", 400)
    assert 0.9 < baseline < 1.1
    assert vals[-1] < 0.87 * baseline, (baseline, vals)
    assert min(vals) == pytest.approx(result.best_val_loss, abs=1e-6)

    # best.pt, the export and the step checkpoint all load as decoders and agree
    best = SvcDecoder.from_checkpoint(exp.checkpoints / "best.pt")
    last = SvcDecoder.from_checkpoint(exp.checkpoints / "step_240.pt")
    exported = SvcDecoder.from_checkpoint(exp.export / "model.safetensors")
    card = json.loads((exp.export / "model_card.json").read_text())
    assert card["steps"] == 240 and card["model_config"]["n_chans"] == 64 and card["stats"]["units_dim"] == 768
    assert card["format"] == "svcover-voice-model" and card["content_encoder"] == "contentvec768l12" and card["weights_sha256"]
    from core.voicemodel import pack_zip

    zipped = SvcDecoder.from_checkpoint(pack_zip(exp.export, exp.root / "voice.zip"))  # the shareable form
    assert torch.equal(zipped.decoder.denoise_fn.output_projection.weight, exported.decoder.denoise_fn.output_projection.weight)
    assert json.loads((exp.checkpoints / "best.json").read_text())["val_loss"] == pytest.approx(min(vals), abs=1e-6)
    x = torch.randn(1, 1, 128, 20)
    cond = last.condition(torch.randn(1, 20, 768), torch.full((1, 20, 1), 200.0), torch.full((1, 20, 1), 0.05))
    t = torch.tensor([300.0])
    with torch.no_grad():
        ref = last.denoise(x, t, cond)
        assert torch.allclose(exported.denoise(x, t, cond), ref, atol=5e-3)  # fp16 weights
        assert not torch.allclose(SvcDecoder(TINY).denoise(x, t, cond), ref, atol=1e-2)  # it did learn something
    assert best.stats["encoder"] == "contentvec768l12"
    assert (exp.tensorboard).is_dir() and any(exp.tensorboard.iterdir())
    table = checkpoint_table(exp)
    assert table[0]["file"] == "best.pt" and table[1] == {**table[1], "file": "step_240.pt", "val_loss": vals[-1]}


def test_rotation_keeps_ten_step_checkpoints_plus_best(exp: Experiment) -> None:
    train(exp, tiny(steps=24, save_every=2, log_every=2))
    steps = [s for s, _ in step_checkpoints(exp)]
    assert steps == list(range(6, 25, 2))  # exactly the 10 newest
    names = sorted(p.name for p in exp.checkpoints.iterdir())
    assert names == sorted([*(f"step_{s}.pt" for s in steps), "best.pt", "best.json"])


# ------------------------------------------------------------------------------------------ resume
def test_sigkill_mid_training_resumes_from_the_newest_checkpoint(exp: Experiment, tmp_logs: Path) -> None:
    args = ["train", "--exp", "ljs", *TINY_FLAGS, "--steps", "100000", "--save-every", "5"]
    proc = cli(args, tmp_logs)
    try:
        wait_for(lambda: len(step_checkpoints(exp)) >= 2, 120, proc)
        time.sleep(0.3)  # let it train a little past the save
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    saved = step_checkpoints(exp)[-1][0]
    logged_before = read_metrics(exp)[-1]["step"]
    assert logged_before >= saved

    done = cli(["train", "--exp", "ljs", *TINY_FLAGS, "--steps", str(saved + 3), "--save-every", "5"], tmp_logs)
    out, _ = done.communicate(timeout=180)
    assert done.returncode == 0, out
    assert f"resuming from {exp.checkpoints / f'step_{saved}.pt'}" in (exp.root / "train.log").read_text()
    steps = [r["step"] for r in read_metrics(exp)]
    assert steps == list(range(1, saved + 4))  # rows after the kill were dropped; no step repeated or missing
    assert step_checkpoints(exp)[-1][0] == saved + 3


def test_sigterm_saves_then_a_kill_during_a_save_never_exposes_a_partial_checkpoint(exp: Experiment, tmp_logs: Path) -> None:
    first = cli(["train", "--exp", "ljs", *TINY_FLAGS, "--steps", "100000", "--save-every", "1000"], tmp_logs)
    wait_for(lambda: exp.metrics.is_file() and len(read_metrics(exp)) >= 3, 120, first)
    first.send_signal(signal.SIGTERM)  # what a service manager / closing the console sends: save and exit
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 0 and "stopped: ljs at step" in out, out
    stopped = step_checkpoints(exp)[-1][0]
    assert [s for s, _ in step_checkpoints(exp)] == [stopped] and read_metrics(exp)[-1]["step"] == stopped

    target = str(stopped + 2)  # the final step is always saved
    proc = cli(["train", "--exp", "ljs", *TINY_FLAGS, "--steps", target, "--save-every", "1000"], tmp_logs,
               env={PAUSE_IN_SAVE_ENV: "60"})  # fmt: skip
    try:
        wait_for(lambda: any(exp.checkpoints.glob(f".tmp-step_{target}*")), 120, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert [s for s, _ in step_checkpoints(exp)] == [stopped]  # the half-saved one is only a hidden temp file
    (exp.checkpoints / f"step_{stopped + 1}.pt").write_bytes(b"PK\x03\x04 truncated garbage")  # corrupt: skipped

    again = cli(["train", "--exp", "ljs", *TINY_FLAGS, "--steps", target, "--save-every", "1000"], tmp_logs)
    out, _ = again.communicate(timeout=180)
    assert again.returncode == 0, out
    log_text = (exp.root / "train.log").read_text()
    assert f"step_{stopped + 1}.pt" in log_text and f"resuming from {exp.checkpoints / f'step_{stopped}.pt'}" in log_text
    assert not list(exp.checkpoints.glob(".tmp-*"))
    assert [r["step"] for r in read_metrics(exp)] == list(range(1, stopped + 3))


def test_stop_file_saves_and_exits(exp: Experiment) -> None:
    result: dict = {}
    worker = threading.Thread(target=lambda: result.setdefault("r", train(exp, tiny(steps=100000, save_every=1000, log_every=1))))
    worker.start()
    wait_for(lambda: exp.metrics.is_file() and read_metrics(exp) and read_metrics(exp)[-1]["step"] >= 3, 120)
    request_stop(exp)
    worker.join(timeout=120)
    r = result["r"]
    assert r.stopped_early and 3 <= r.step < 1000
    assert step_checkpoints(exp)[-1][0] == r.step and not (exp.root / "stop").exists()
    assert r.checkpoint == exp.checkpoints / f"step_{r.step}.pt" and "val_loss" in read_metrics(exp)[-1]


# ------------------------------------------------------------------------------------------ DDP
def test_ddp_two_processes_on_cpu(exp: Experiment, tmp_logs: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "SVCOVER_LOGS": str(tmp_logs), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [str(torchrun), "--nproc_per_node", "2", "--master_port", "29517", "-m", "core", "train", "--exp", "ljs",
           *TINY_FLAGS, "--steps", "6", "--save-every", "3"]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert [s for s, _ in step_checkpoints(exp)] == [3, 6]
    assert [r["step"] for r in read_metrics(exp)] == [1, 2, 3, 4, 5, 6]  # rank 0 writes once per step
    assert "2 process(es)" in (exp.root / "train.log").read_text()
    assert done.stdout.count("done: ljs at step 6") == 1  # the summary comes from rank 0 only
    from core.model import SvcDecoder

    assert SvcDecoder.from_checkpoint(exp.checkpoints / "step_6.pt").config.n_chans == 64


# ------------------------------------------------------------------------------------------ fine-tuning
def test_fine_tune_from_a_diffusion_svc_base(exp: Experiment, tmp_path: Path) -> None:
    from core.model import SvcDecoder
    from core.model.config import TINY

    torch.manual_seed(5)
    base = SvcDecoder(TINY)
    torch.nn.init.normal_(base.decoder.denoise_fn.output_projection.weight, std=0.01)
    folder = tmp_path / "base"
    folder.mkdir()
    torch.save({"global_step": 0, "model": base.state_dict()}, folder / "model_0.pt")
    (folder / "config.yaml").write_text(yaml.safe_dump({"data": {"encoder_out_channels": 768},
                                                        "model": {"type": "Diffusion", "n_layers": 4, "n_chans": 64,
                                                                  "n_hidden": 256, "use_pitch_aug": True, "n_spk": 1}}))  # fmt: skip
    train(exp, tiny(steps=2, save_every=2, lr=1e-6, base=str(folder / "model_0.pt")))
    tuned = SvcDecoder.from_checkpoint(exp.checkpoints / "step_2.pt")
    w0 = base.decoder.denoise_fn.output_projection.weight.detach()
    assert torch.allclose(tuned.decoder.denoise_fn.output_projection.weight, w0, atol=1e-4)
    assert float(w0.abs().mean()) > 1e-3  # i.e. not the zero init of a fresh model


# ------------------------------------------------------------------------------------------ bad input
def test_bad_inputs_are_clear_errors(exp: Experiment, tmp_logs: Path, tmp_path: Path) -> None:
    with pytest.raises(SvcoverError, match="experiment not found"):
        train(Experiment.open("nope"), tiny(steps=1))
    Experiment.open("empty").root.mkdir()
    with pytest.raises(NothingToDoError, match="no extracted features"):
        train(Experiment.open("empty"), tiny(steps=1))
    with pytest.raises(SvcoverError, match="--batch-size"):
        train(exp, tiny(steps=1, batch_size=0))

    from core.train import prepare

    with pytest.raises(NothingToDoError, match="no dataset yet"):
        prepare(Experiment.open("empty"), sources=None)

    # features of a 256-d encoder against a 768-d base
    from core.model import SvcDecoder
    from core.model.config import TINY

    torch.save({"global_step": 0, "model": SvcDecoder(TINY).state_dict()}, tmp_path / "model_0.pt")
    from tests.standin_features import build_standin_experiment

    small = build_standin_experiment(Experiment.open("dims"), n_files=2, max_seconds=1.5, dim=256)
    with pytest.raises(SvcoverError, match="256-d but the model takes 768-d"):
        train(small, tiny(steps=1, base=str(tmp_path / "model_0.pt")))

    # a chunk whose feature files went missing is left out; none left -> clear error
    for chunk in list(small.features.iterdir()):
        for f in chunk.glob("mel.*"):
            f.unlink()
    with pytest.raises(NothingToDoError, match="no extracted features"):
        train(small, tiny(steps=1))


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(exp: Experiment) -> None:
    train(exp, tiny(steps=4, save_every=4))
    good = exp.checkpoints / "step_4.pt"
    before = good.read_bytes()
    with pytest.raises(TrainingDivergedError, match="diverged.*step_4.pt.*lower --lr"):
        train(exp, tiny(steps=40, save_every=40, lr=1e30, warmup_steps=1, grad_clip=1e38))
    assert good.read_bytes() == before and [s for s, _ in step_checkpoints(exp)] == [4]
    from core.model import SvcDecoder

    assert all(torch.isfinite(p).all() for p in SvcDecoder.from_checkpoint(good).parameters())


def test_an_error_inside_the_loop_still_restores_the_signal_handlers(exp: Experiment) -> None:
    """Whatever ends the run (here the caller's progress callback raising), Ctrl+C works as before afterwards."""
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)

    def progress(fraction: float, message: str) -> None:
        if "step 2/" in message:
            raise RuntimeError("the caller gave up")

    with pytest.raises(RuntimeError, match="the caller gave up"):
        train(exp, tiny(steps=10, save_every=5), progress)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert [r["step"] for r in read_metrics(exp)] == [1]  # the loop really ran, and stopped at the error


def test_cli_help_and_error_exit(tmp_logs: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "core", "train", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0
    for flag in ("--exp", "--steps", "--save-every", "--batch-size", "--base", "--config", "--device", "--grad-checkpointing"):
        assert flag in out.stdout
    bad = cli(["train", "--exp", "missing", "--steps", "1"], tmp_logs)
    text, _ = bad.communicate(timeout=120)
    assert bad.returncode == 1 and "experiment not found" in text and "Traceback" not in text


def test_cli_flags_parse_into_the_train_config() -> None:
    from core.cli import build_parser
    from core.cli.train import config_from_args

    parser = build_parser("train")
    assert config_from_args(parser.parse_args(["train", "--exp", "x"])) == TrainConfig()
    args = parser.parse_args(["train", "--exp", "x", "--batch-size", "AUTO", "--config", "tiny", "--precision", "fp16",
                              "--steps", "7", "--grad-checkpointing", "--warmup-steps", "3"])  # fmt: skip
    assert config_from_args(args) == TrainConfig(batch_size="auto", model="tiny", precision="fp16", steps=7,
                                                 grad_checkpointing=True, warmup_steps=3)  # fmt: skip
    with pytest.raises(SvcoverError, match="--batch-size must be an integer or 'auto'"):
        config_from_args(parser.parse_args(["train", "--exp", "x", "--batch-size", "many"]))


# ------------------------------------------------------------------------------------------ the tab
def test_train_tab_runs_a_job_shows_progress_stops_and_keeps_its_target(exp: Experiment, tmp_logs: Path) -> None:
    import dataclasses

    from core.jobs.model import JobState
    from webui import train_tab
    from webui.jobs_view import runner

    request = train_tab.train_request("ljs", 100000, 1000, "4", "none", "tiny", "cpu", False, "", "harvest")
    assert request.config.steps == 100000 and request.config.base is None and request.prepare
    assert train_tab.train_request("ljs", 5, 5, "auto", "pretrained", "default", "auto", True, "a", "rmvpe").config.base == "pretrained"
    fast = dataclasses.replace(request.config, threads=1, crop_frames=48, log_every=1)
    job = runner().submit(dataclasses.replace(request, config=fast))
    try:
        wait_for(lambda: len(read_metrics(exp)) >= 3, 120)
        status, curve, table, console = train_tab.snapshot("ljs")
        assert "Running" in status and "steps/s" in status and "ETA" in status and "/ 100000" in status
        assert len(curve.dropna()) >= 3 and set(curve.dropna()["series"]) == {"train"}
        train_tab._stop("ljs")
        assert runner().wait(job.id, timeout=60).state == JobState.STOPPED
    finally:
        runner().kill(job.id)
    status, curve, table, console = train_tab.snapshot("ljs")
    stopped_at = step_checkpoints(exp)[-1][0]
    assert "Stopped" in status and f"stopped at step {stopped_at} of 100000" in status and f"Step **{stopped_at}**" in status
    assert set(curve.dropna()["series"]) == {"train", "validation"}
    assert [row[0] for row in table] == ["best.pt", f"step_{stopped_at}.pt"]
    assert "resuming" in console or "training from scratch" in console
    # a reload (choosing the experiment again) puts the run's own target back into the form, not the default
    assert train_tab._select("ljs")[-2:] == [100000, 1000]
    from core.train import recorded_target

    assert recorded_target(exp) == (100000, 1000)  # also known to a run started from the command line


def test_empty_loss_curve_is_typed_like_a_filled_one_and_names_both_series() -> None:
    """The plot fixes its scales from the first value it sees (and then only swaps the data): even with no points,
    ``series`` must be a category holding both series (tests/test_browser_jobs.py checks the drawn lines)."""
    import gradio as gr

    from webui import train_tab

    plot = gr.LinePlot(x="step", y="loss", color="series")
    empty = plot.postprocess(train_tab.empty_curve())
    filled = plot.postprocess(train_tab.loss_curve([{"step": 1, "loss": 0.5, "val_loss": 0.6}]))
    assert empty.datatypes == filled.datatypes == {"step": "quantitative", "loss": "quantitative", "series": "nominal"}
    assert {row[2] for row in empty.data} == {row[2] for row in filled.data} == {"train", "validation"}
    assert all(row[0] is None and row[1] is None for row in empty.data)  # no point is drawn for the placeholders


def test_validation_audio_and_mel_images_reach_tensorboard(exp: Experiment, tmp_pretrained: Path, weights_builder) -> None:
    """With a (stand-in) NSF-HiFiGAN in pretrained/, each save logs sampled and ground-truth audio."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tests.conftest import REFERENCE

    nsf = REFERENCE / "nsf_hifigan"
    folder = tmp_pretrained / "nsf_hifigan"
    folder.mkdir()
    state = weights_builder.make_state_dict(weights_builder.load_schema(nsf / "schema.json"), 1)
    torch.save({"generator": state}, folder / "model")
    shutil.copy(nsf / "config.json", folder / "config.json")
    train(exp, tiny(steps=2, save_every=2, val_max_frames=60))
    events = EventAccumulator(str(exp.tensorboard), size_guidance={"audio": 0, "images": 0}).Reload()
    tags = events.Tags()
    assert {"val/audio_sampled", "val/audio_ground_truth"} <= set(tags["audio"])
    assert "val/mel_gt_vs_estimate" in tags["images"] and "val/loss" in tags["scalars"]
    clip = events.Audio("val/audio_sampled")[0]
    assert clip.sample_rate == 44100 and clip.length_frames == 60 * 512


def test_train_tab_builds() -> None:
    import gradio as gr

    from webui import train_tab

    with gr.Blocks() as demo:
        train_tab.build()
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {"train-exp", "train-start", "train-stop", "train-curve", "train-checkpoints", "train-status"} <= ids


def test_memory_estimate_counts_state_and_scales_activations() -> None:
    from core.model import SvcDecoder
    from core.model.config import TINY
    from core.train import estimate_training_memory

    n = sum(p.numel() for p in SvcDecoder(TINY).parameters())
    small = estimate_training_memory(TINY, 4, 64)
    big = estimate_training_memory(TINY, 8, 64)
    ckpt = estimate_training_memory(TINY, 8, 64, grad_checkpointing=True)
    assert small["params"] == n and small["weights"] + small["grads"] + small["adam"] == 16 * n  # fp32 + AdamW
    assert 1.8 < big["activations"] / small["activations"] < 2.2  # activations grow with the batch
    assert ckpt["activations"] < 0.75 * big["activations"]  # checkpointing keeps only layer inputs (28 % at 512 x 20)
    assert estimate_training_memory(TINY, 4, 64, half=False)["activations"] == pytest.approx(2 * small["activations"])


def test_ddp_matches_a_single_process_run_in_expectation(template: Path, tmp_logs: Path) -> None:
    """2 ranks x batch 4 and 1 process x batch 8 see the same global batch: their losses must agree.

    Both start from the same seed; the ranks draw different crops, so only the expectation is the same. A
    gradient summed instead of averaged across ranks (twice the step) or ranks training apart would show up
    as a clearly different validation loss after the same number of steps.
    """
    shutil.copytree(template, tmp_logs / "ddp")
    shutil.copytree(template, tmp_logs / "one")
    common = ["--config", "tiny", "--device", "cpu", "--threads", "1", "--crop-frames", "64", "--steps", "150", "--save-every", "75", "--lr", "5e-3",
              "--warmup-steps", "10", "--log-every", "5"]
    env = {**os.environ, "SVCOVER_LOGS": str(tmp_logs), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    torchrun = Path(sys.executable).with_name("torchrun")
    ddp = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29519", "-m", "core", "train",
                          "--exp", "ddp", "--batch-size", "4", *common], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert ddp.returncode == 0, ddp.stdout[-3000:] + ddp.stderr[-3000:]
    one = subprocess.run([sys.executable, "-m", "core", "train", "--exp", "one", "--batch-size", "8", *common],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-3000:]
    val = {name: [r["val_loss"] for r in read_metrics(Experiment.open(name)) if "val_loss" in r] for name in ("ddp", "one")}
    train_loss = {name: float(torch.tensor([r["loss"] for r in read_metrics(Experiment.open(name))][-10:]).mean())
                  for name in ("ddp", "one")}
    print("val", val, "train (last 10 steps)", train_loss)
    assert len(val["ddp"]) == len(val["one"]) == 2
    drop = 1.0 - val["one"][-1]  # an untrained decoder's validation loss is ~1.0
    assert drop > 0.05, f"the single-process run did not learn ({val['one']})"
    assert abs(val["ddp"][-1] - val["one"][-1]) < 0.3 * drop, val
    assert abs(train_loss["ddp"] - train_loss["one"]) < 0.3 * drop, train_loss

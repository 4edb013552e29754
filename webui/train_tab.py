"""Train tab: one-click training in a background process, a live loss curve, checkpoints, Stop.

Training runs as ``python -m core train --prepare ...`` in its own process (own session / process
group), so the page stays responsive and closing the browser or reloading it does not stop it. The tab
only reads what the run writes: ``metrics.jsonl``, ``checkpoints/`` and the console log; Stop writes
the stop file the loop checks, and the loop saves and exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from typing import Any

import gradio as gr

from core.experiment import PROJECT_ROOT, Experiment
from webui.common import experiment_choices, user_errors
from webui.security import server_paths_allowed

POLL_SECONDS = 2.0
PID_FILE = "train_process.json"  # logs/<exp>/train_process.json: pid + command of the background run
CONSOLE_FILE = "train_console.log"


def build() -> None:
    from core.device import DEVICE_CHOICES

    gr.Markdown(
        "Train the voice model of an experiment. **Train** runs whatever is missing first (dataset from the "
        "recordings below if the experiment has none, then feature extraction), then trains in the background: "
        "you can close this page and come back. Running it again **resumes** from the newest checkpoint. "
        "**Stop** saves a checkpoint and exits."
    )
    with gr.Row():
        with gr.Column(scale=1):
            with gr.Row():
                exp = gr.Dropdown(choices=experiment_choices(), value=None, label="Experiment", elem_id="train-exp",
                                  allow_custom_value=True, scale=4)  # fmt: skip
                refresh = gr.Button("↻", scale=0, min_width=40, elem_id="train-refresh")
            base = gr.Dropdown(
                choices=["pretrained", "none"], value=_default_base(), allow_custom_value=True, label="Base model",
                info="pretrained = Diffusion-SVC base (Models tab → download diffusion_svc_base; fine-tuning, recommended) · "
                "none = from scratch · or a path to a model_*.pt", elem_id="train-base",
            )  # fmt: skip
            with gr.Row():
                steps = gr.Number(value=20000, precision=0, label="Train until step", elem_id="train-steps")
                save_every = gr.Number(value=1000, precision=0, label="Save every", elem_id="train-save-every")
            with gr.Row():
                batch = gr.Dropdown(choices=["auto", "8", "16", "32", "48"], value="32", allow_custom_value=True,
                                    label="Batch size", info="auto probes the GPU", elem_id="train-batch")  # fmt: skip
                config = gr.Radio(["default", "tiny"], value="default", label="Network (from scratch)",
                                  info="default 512x20 = the base's size", elem_id="train-config")  # fmt: skip
            with gr.Accordion("More", open=False):
                device = gr.Dropdown(choices=list(DEVICE_CHOICES), value="auto", label="Device")
                grad_ckpt = gr.Checkbox(value=False, label="Gradient checkpointing (less GPU memory, slower)")
                sources = gr.Textbox(lines=2, label="Recordings for the dataset (only if the experiment has none)",
                                     placeholder="D:\\vocals\\my_voice", elem_id="train-sources",
                                     interactive=server_paths_allowed())  # off with --listen: server paths  # fmt: skip
                f0 = gr.Dropdown(choices=["rmvpe", "fcpe", "harvest", "parselmouth"], value="rmvpe", label="F0 method (extraction)")
            with gr.Row():
                start = gr.Button("Train", variant="primary", elem_id="train-start")
                stop = gr.Button("Stop", variant="stop", elem_id="train-stop")
        with gr.Column(scale=2):
            status = gr.Markdown("*Choose an experiment.*", elem_id="train-status")
            curve = gr.LinePlot(x="step", y="loss", color="series", title="Loss", height=280, elem_id="train-curve")
            table = gr.Dataframe(headers=["file", "step", "val_loss", "mb"], label="Checkpoints (newest first)",
                                 interactive=False, elem_id="train-checkpoints")  # fmt: skip
            console = gr.Textbox(label="Console (last lines)", lines=6, max_lines=12, interactive=False, elem_id="train-console")
            gr.Markdown("TensorBoard: `tensorboard --logdir logs` (then open http://localhost:6006)")

    timer = gr.Timer(POLL_SECONDS)
    refresh.click(lambda: gr.update(choices=experiment_choices()), outputs=exp)
    outputs = [status, curve, table, console]
    start.click(_start, inputs=[exp, steps, save_every, batch, base, config, device, grad_ckpt, sources, f0], outputs=outputs)
    stop.click(_stop, inputs=exp, outputs=outputs)
    exp.change(snapshot, inputs=exp, outputs=outputs)
    timer.tick(snapshot, inputs=exp, outputs=outputs)


def _default_base() -> str:
    """Fine-tune from the Diffusion-SVC base when it is downloaded, else train from scratch."""
    from core import pretrained
    from core.errors import MissingPretrainedError

    try:
        pretrained.require(pretrained.DIFFUSION_SVC_BASE)
    except MissingPretrainedError:
        return "none"
    return "pretrained"


# ------------------------------------------------------------------------------------------ process
def build_command(exp: str, steps: int, save_every: int, batch: str, base: str | None, config: str, device: str,
                  grad_ckpt: bool, sources: list[str], f0: str) -> list[str]:  # fmt: skip
    """The ``python -m core train --prepare ...`` command the Train button runs."""
    cmd = [sys.executable, "-m", "core", "train", "--exp", exp, "--prepare", "--steps", str(int(steps)),
           "--save-every", str(int(save_every)), "--batch-size", str(batch).strip() or "32", "--config", config,
           "--device", device, "--f0", f0]  # fmt: skip
    if base and base.strip().lower() not in ("none", ""):
        cmd += ["--base", base.strip()]
    if grad_ckpt:
        cmd.append("--grad-checkpointing")
    for src in sources:
        cmd += ["--source", src]
    return cmd


def running_process(exp: Experiment) -> dict[str, Any] | None:
    """The background training of ``exp`` if it is still alive (pid file + a live process)."""
    import psutil

    try:
        info = json.loads((exp.root / PID_FILE).read_text(encoding="utf-8"))
        proc = psutil.Process(int(info["pid"]))
    except (OSError, ValueError, KeyError, json.JSONDecodeError, psutil.Error):
        return None
    try:
        alive = proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE and abs(proc.create_time() - info["created"]) < 2
    except psutil.Error:
        return None
    return info if alive else None


def launch(exp: Experiment, cmd: list[str]) -> dict[str, Any]:
    """Start ``cmd`` detached from this server (new session / process group), output to the console log."""
    import psutil

    from core.config import save_json

    exp.root.mkdir(parents=True, exist_ok=True)
    log_file = open(exp.root / CONSOLE_FILE, "ab")  # noqa: SIM115 - the child keeps it open
    kwargs: dict[str, Any] = {"cwd": PROJECT_ROOT, "stdout": log_file, "stderr": subprocess.STDOUT, "stdin": subprocess.DEVNULL}
    if os.name == "nt":
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW
    else:
        kwargs["start_new_session"] = True
    proc = subprocess.Popen(cmd, **kwargs)
    log_file.close()
    # The record lives under logs/, which the file route serves: no absolute paths of this machine in it.
    from core.fsutil import portable_label

    shown = ["python", *(portable_label(a, PROJECT_ROOT) if os.path.isabs(a) else a for a in cmd[1:])]
    info = {"pid": proc.pid, "created": psutil.Process(proc.pid).create_time(), "command": shown, "started": time.time()}
    save_json(exp.root / PID_FILE, info)
    return info


# ------------------------------------------------------------------------------------------ events
@user_errors
def _start(exp_name: str | None, steps: float, save_every: float, batch: str, base: str, config: str, device: str,
           grad_ckpt: bool, sources: str, f0: str) -> list[Any]:  # fmt: skip
    from core.errors import SvcoverError

    if not exp_name:
        raise SvcoverError("choose or type an experiment name first")
    exp = Experiment.open(exp_name)
    if running_process(exp):
        raise SvcoverError(f"{exp.root}: a training of {exp.name} is already running; press Stop first")
    if not steps or steps < 1 or not save_every or save_every < 1:
        raise SvcoverError("'Train until step' and 'Save every' must be positive")
    _require_models(exp, base, f0)
    from webui.security import refuse_server_paths

    refuse_server_paths(sources)
    paths = [line.strip() for line in (sources or "").splitlines() if line.strip()]
    cmd = build_command(exp.name, int(steps), int(save_every), batch, base, config, device, grad_ckpt, paths, f0)
    with contextlib.suppress(FileNotFoundError):
        (exp.root / "stop").unlink()  # a stale request would stop the new run at once
    launch(exp, cmd)
    return snapshot(exp.name)


def _require_models(exp: Experiment, base: str, f0: str) -> None:
    """Check the pretrained files this run will need before starting it, so that a missing one is reported here
    with the Models tab action rather than as a command-line error in the background run's console."""
    from core import pretrained

    if not exp.stats.is_file():  # features not extracted yet: --prepare will run Extract first
        pretrained.require(pretrained.CONTENT_ENCODER, pretrained.CONTENT_ENCODER_ALT, download_name="contentvec")
        if f0 == "rmvpe":
            pretrained.require(pretrained.RMVPE, download_name="rmvpe")
    if (base or "").strip() == "pretrained":
        pretrained.require(pretrained.DIFFUSION_SVC_BASE, download_name="diffusion_svc_base")


@user_errors
def _stop(exp_name: str | None) -> list[Any]:
    from core.errors import SvcoverError
    from core.train import request_stop

    if not exp_name:
        raise SvcoverError("choose an experiment first")
    exp = Experiment.open(exp_name)
    if not running_process(exp):
        raise SvcoverError(f"no training of {exp.name} is running")
    request_stop(exp)
    gr.Info("Stop requested: the run saves a checkpoint and exits after the current step.")
    return snapshot(exp.name)


def snapshot(exp_name: str | None) -> list[Any]:
    """Status text, loss curve, checkpoint table and console tail of ``exp_name`` (polled by the timer)."""
    import pandas as pd

    from core.errors import SvcoverError
    from core.train import checkpoint_table, read_metrics

    empty_curve = pd.DataFrame({"step": [], "loss": [], "series": []})
    if not exp_name:
        return ["*Choose an experiment.*", empty_curve, [], ""]
    try:
        exp = Experiment.open(exp_name)
    except SvcoverError as e:
        return [f"**{e.for_ui()}**", empty_curve, [], ""]
    rows = read_metrics(exp)
    proc = running_process(exp)
    points = [{"step": r["step"], "loss": r["loss"], "series": "train"} for r in rows]
    points += [{"step": r["step"], "loss": r["val_loss"], "series": "validation"} for r in rows if r.get("val_loss") is not None]
    curve = pd.DataFrame(points) if points else empty_curve
    table = [[c["file"], c["step"], None if c["val_loss"] is None else round(c["val_loss"], 4), c["mb"]]
             for c in checkpoint_table(exp)]  # fmt: skip
    return [status_text(exp, rows, proc), curve, table, _console_tail(exp)]


def status_text(exp: Experiment, rows: list[dict], proc: dict | None) -> str:
    target = _target_steps(proc)
    state = "**Training** (background process)" if proc else "Not running"
    if proc and (exp.root / "stop").exists():
        state = "**Stopping** (saving a checkpoint)"
    if not rows:
        return f"{state}. No training steps yet." + (" Preparing the dataset/features…" if proc else "")
    last = rows[-1]
    rate = last.get("steps_per_s") or 0.0
    parts = [f"{state}. Step **{last['step']}**" + (f" / {target}" if target else ""), f"loss {last['loss']:.4f}"]
    vals = [r for r in rows if r.get("val_loss") is not None]
    if vals:
        parts.append(f"val loss {vals[-1]['val_loss']:.4f} (best {min(r['val_loss'] for r in vals):.4f})")
    if rate:
        parts.append(f"{rate:.2f} steps/s")
        if proc and target and target > last["step"]:
            parts.append(f"ETA {_duration((target - last['step']) / rate)}")
    return " · ".join(parts)


def _target_steps(proc: dict | None) -> int | None:
    if not proc:
        return None
    cmd = proc.get("command") or []
    try:
        return int(cmd[cmd.index("--steps") + 1])
    except (ValueError, IndexError):
        return None


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    return f"{h} h {rest // 60:02d} min" if h else f"{rest // 60} min {rest % 60:02d} s"


def _console_tail(exp: Experiment, n: int = 12) -> str:
    path = exp.root / CONSOLE_FILE
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - 8000))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.split("\r")[-1] for line in text.splitlines()]  # tqdm redraws with \r
    return "\n".join(lines[-n:])

"""Train tab: one-click training as a job, a live loss curve, checkpoints, Stop.

Training is a job (core.jobs): a TrainRequest run by its own worker process, so the page stays responsive and
closing the browser, reloading it or restarting the server does not stop it. The tab only reads what the run
writes: the job's state and log, ``metrics.jsonl`` and ``checkpoints/``; Stop asks the job to stop, and the
training loop saves a checkpoint and exits.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from core.device import DEVICE_CHOICES
from core.experiment import Experiment
from core.features.extract import ExtractConfig
from core.features.f0 import F0_METHODS, F0Method
from core.model.config import PRESETS
from core.train import TrainConfig  # light: torch is imported inside its functions
from webui.common import checked_name, experiment_picker, user_errors
from webui.jobs_view import latest_job, log_tail, runner, status_markdown
from webui.security import refuse_server_paths, server_paths_allowed

POLL_SECONDS = 2.0


def build() -> None:
    defaults, extract_defaults = TrainConfig(), ExtractConfig()
    gr.Markdown(
        "Train the voice model of an experiment. **Train** runs whatever is missing first (dataset from the "
        "recordings below if the experiment has none, then feature extraction), then trains in the background: "
        "you can close this page and come back. Running it again **resumes** from the newest checkpoint. "
        "**Stop** saves a checkpoint and exits."
    )
    with gr.Row():
        with gr.Column(scale=1):
            exp = experiment_picker("train")
            base = gr.Dropdown(
                choices=["pretrained", "none"], value=_default_base(), allow_custom_value=True, label="Base model",
                info="pretrained = Diffusion-SVC base (Models tab → download diffusion_svc_base; fine-tuning, recommended) · "
                "none = from scratch · or a path to a model_*.pt", elem_id="train-base",
            )  # fmt: skip
            with gr.Row():
                steps = gr.Number(value=defaults.steps, precision=0, label="Train until step", elem_id="train-steps")
                save_every = gr.Number(value=defaults.save_every, precision=0, label="Save every", elem_id="train-save-every")
            with gr.Row():
                batch = gr.Dropdown(choices=["auto", "8", "16", "32", "48"], value=str(defaults.batch_size), allow_custom_value=True,
                                    label="Batch size", info="auto probes the GPU", elem_id="train-batch")  # fmt: skip
                config = gr.Radio(list(PRESETS), value=defaults.model, label="Network (from scratch)",
                                  info="default 512x20 = the base's size", elem_id="train-config")  # fmt: skip
            with gr.Accordion("More", open=False):
                device = gr.Dropdown(choices=list(DEVICE_CHOICES), value=defaults.device, label="Device")
                grad_ckpt = gr.Checkbox(value=defaults.grad_checkpointing, label="Gradient checkpointing (less GPU memory, slower)")
                sources = gr.Textbox(lines=2, label="Recordings for the dataset (only if the experiment has none)",
                                     placeholder="D:\\vocals\\my_voice", elem_id="train-sources",
                                     interactive=server_paths_allowed())  # off with --listen: server paths  # fmt: skip
                f0 = gr.Dropdown(choices=list(F0_METHODS), value=extract_defaults.f0_method, label="F0 method (extraction)",
                                 elem_id="train-f0")
            with gr.Row():
                start = gr.Button("Train", variant="primary", elem_id="train-start")
                stop = gr.Button("Stop", variant="stop", elem_id="train-stop")
        with gr.Column(scale=2):
            status = gr.Markdown("*Choose an experiment.*", elem_id="train-status")
            curve = gr.LinePlot(value=empty_curve(), x="step", y="loss", color="series", title="Loss", height=330,
                                x_title="step", y_title="loss", x_label_angle=-30, elem_id="train-curve")  # fmt: skip
            table = gr.Dataframe(headers=["file", "step", "val_loss", "mb"], label="Checkpoints (newest first)",
                                 interactive=False, elem_id="train-checkpoints")  # fmt: skip
            console = gr.Textbox(label="Log of the training job (last lines)", lines=6, max_lines=12, interactive=False,
                                 autoscroll=True, elem_id="train-console")  # fmt: skip
            gr.Markdown("TensorBoard: `tensorboard --logdir logs` (then open http://localhost:6006)")

    timer = gr.Timer(POLL_SECONDS)
    outputs = [status, curve, table, console]
    start.click(_start, inputs=[exp, steps, save_every, batch, base, config, device, grad_ckpt, sources, f0], outputs=outputs)
    stop.click(_stop, inputs=exp, outputs=outputs)
    exp.change(_select, inputs=exp, outputs=[*outputs, steps, save_every])
    timer.tick(snapshot, inputs=exp, outputs=outputs, show_progress="hidden")


def _default_base() -> str:
    """Fine-tune from the Diffusion-SVC base when it is downloaded, else train from scratch."""
    from core import pretrained
    from core.errors import MissingPretrainedError

    try:
        pretrained.require(pretrained.DIFFUSION_SVC_BASE)
    except MissingPretrainedError:
        return "none"
    return "pretrained"


# ------------------------------------------------------------------------------------------ events
def train_request(exp_name: str | None, steps: float, save_every: float, batch: str, base: str | None, config: str,
                  device: str, grad_ckpt: bool, sources: str, f0: str) -> Any:  # fmt: skip
    """The Train button's job request: the TrainConfig (plus what to prepare), never a command line."""
    from core.errors import SvcoverError
    from core.jobs.stages import TrainRequest

    if not exp_name:
        raise SvcoverError("choose or type an experiment name first")
    if not steps or steps < 1 or not save_every or save_every < 1:
        raise SvcoverError("'Train until step' and 'Save every' must be positive")
    batch_text = str(batch).strip().lower() or str(TrainConfig.batch_size)
    if batch_text != "auto" and not batch_text.isdigit():
        raise SvcoverError(f"batch size must be a whole number or 'auto' (got {batch!r})")
    base_text = (base or "").strip()
    cfg = TrainConfig(
        model=config, base=None if base_text.lower() in ("", "none") else base_text, steps=int(steps),
        save_every=int(save_every), batch_size="auto" if batch_text == "auto" else int(batch_text), device=device,
        grad_checkpointing=bool(grad_ckpt),
    ).validate()  # fmt: skip
    refuse_server_paths(sources)
    paths = [line.strip().strip('"') for line in (sources or "").splitlines() if line.strip()]
    return TrainRequest(exp=checked_name(exp_name), config=cfg, prepare=True, sources=paths,
                        extract=ExtractConfig(f0_method=f0, device=device).validate())  # fmt: skip


@user_errors
def _start(exp_name: str | None, steps: float, save_every: float, batch: str, base: str, config: str, device: str,
           grad_ckpt: bool, sources: str, f0: str) -> list[Any]:  # fmt: skip
    request = train_request(exp_name, steps, save_every, batch, base, config, device, grad_ckpt, sources, f0)
    _require_models(Experiment.open(request.exp), base, f0)
    runner().submit(request)
    return snapshot(request.exp)


def _require_models(exp: Experiment, base: str, f0: str) -> None:
    """Check the pretrained files this run will need before starting it, so that a missing one is reported here
    with the Models tab action rather than as the failure reason of a job a moment later."""
    from core import pretrained

    if not exp.stats.is_file():  # features not extracted yet: the job runs Extract first
        pretrained.require(pretrained.CONTENT_ENCODER, pretrained.CONTENT_ENCODER_ALT, download_name="contentvec")
        if f0 == F0Method.RMVPE:
            pretrained.require(pretrained.RMVPE, download_name="rmvpe")
    if (base or "").strip() == "pretrained":
        pretrained.require(pretrained.DIFFUSION_SVC_BASE, download_name="diffusion_svc_base")


@user_errors
def _stop(exp_name: str | None) -> list[Any]:
    from core.errors import SvcoverError

    if not exp_name:
        raise SvcoverError("choose an experiment first")
    job = latest_job("train", Experiment.open(exp_name).name)
    if job is None or not job.active:
        raise SvcoverError(f"no training of {exp_name} is running")
    runner().stop(job.id)
    gr.Info("Stop requested: the run saves a checkpoint and exits after the current step.")
    return snapshot(exp_name)


def _select(exp_name: str | None) -> list[Any]:
    """Show ``exp_name`` and put its run's own target into the form (resuming keeps it unless you change it)."""
    steps = save_every = gr.skip()
    if exp_name:
        target = run_target(exp_name)
        if target is not None:
            steps, save_every = target
    return [*snapshot(exp_name), steps, save_every]


def run_target(exp_name: str) -> tuple[int, int] | None:
    """(steps, save_every) of the experiment's latest run: its training job's request, else what the run recorded
    in config.json (a run started from the command line)."""
    from core.errors import SvcoverError
    from core.train import recorded_target

    try:
        exp = Experiment.open(exp_name)
        job = latest_job("train", exp.name)
        if job is not None:
            request = runner().request(job.id)
            return int(request.config.steps), int(request.config.save_every)
        return recorded_target(exp)
    except (SvcoverError, OSError, KeyError, ValueError):
        return None


CURVE_SERIES = ("train", "validation")


def empty_curve() -> Any:
    """The loss curve without points. The plot fixes its colour scale (and so which lines it can draw) from the
    first value it receives and afterwards only swaps the data, so even an empty curve names both series: one
    row per series with no step and no loss, which the plot leaves out (typed numbers, ``series`` a category)."""
    return loss_curve([])


def loss_curve(rows: list[dict]) -> Any:
    import pandas as pd

    points = [{"step": float(r["step"]), "loss": float(r["loss"]), "series": "train"} for r in rows]
    points += [{"step": float(r["step"]), "loss": float(r["val_loss"]), "series": "validation"}
               for r in rows if r.get("val_loss") is not None]  # fmt: skip
    points += [{"step": float("nan"), "loss": float("nan"), "series": name} for name in CURVE_SERIES]
    return pd.DataFrame(points).astype({"step": "float64", "loss": "float64", "series": "str"})


def snapshot(exp_name: str | None) -> list[Any]:
    """Status text, loss curve, checkpoint table and console tail of ``exp_name`` (polled by the timer)."""
    from core.errors import SvcoverError
    from core.train import checkpoint_table, read_metrics

    if not exp_name:
        return ["*Choose an experiment.*", empty_curve(), [], ""]
    try:
        exp = Experiment.open(exp_name)
    except SvcoverError as e:
        return [f"**{e.for_ui()}**", empty_curve(), [], ""]
    rows = read_metrics(exp)
    job = latest_job("train", exp.name)
    table = [[c["file"], c["step"], None if c["val_loss"] is None else round(c["val_loss"], 4), c["mb"]]
             for c in checkpoint_table(exp)]  # fmt: skip
    return [status_text(exp, rows, job), loss_curve(rows), table, log_tail(job.id) if job else ""]


def status_text(exp: Experiment, rows: list[dict], job: Any) -> str:
    target = _target_steps(job)
    head = status_markdown(job, idle="**Not running.**")
    if not rows:
        return head + ("\n\nNo training steps yet." if not job or not job.active else "")
    last = rows[-1]
    rate = last.get("steps_per_s") or 0.0
    parts = [f"Step **{last['step']}**" + (f" / {target}" if target else ""), f"loss {last['loss']:.4f}"]
    vals = [r for r in rows if r.get("val_loss") is not None]
    if vals:
        parts.append(f"val loss {vals[-1]['val_loss']:.4f} (best {min(r['val_loss'] for r in vals):.4f})")
    if rate:
        parts.append(f"{rate:.2f} steps/s")
        if job is not None and job.active and target and target > last["step"]:
            parts.append(f"ETA {_duration((target - last['step']) / rate)}")
    return head + "\n\n" + " · ".join(parts)


def _target_steps(job: Any) -> int | None:
    if job is None:
        return None
    try:
        return int(runner().request(job.id).config.steps)
    except (OSError, KeyError, ValueError, AttributeError):
        return None


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    return f"{h} h {rest // 60:02d} min" if h else f"{rest // 60} min {rest % 60:02d} s"

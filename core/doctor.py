"""Environment doctor: ``python -m core doctor`` and the panel in the Models tab.

Checks Python, torch and its CUDA/MPS support, the GPU and its free memory, onnxruntime's
execution providers, the bundled FFmpeg (PyAV + imageio-ffmpeg), free disk space under ``logs/`` and the
pretrained files. Each check is ok / warn / fail; a fail (no torch, no bundled FFmpeg, unsupported Python,
a required model missing) makes the CLI exit 1. ``--self-test`` also runs every installed model on a known
input (core/selftest.py).
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from core import ffmpeg_tool, pretrained
from core.bootstrap import python_problem  # the launcher's own rule: 64-bit CPython 3.11-3.13
from core.errors import Remedy, SvcoverError
from core.experiment import logs_root

OK, WARN, FAIL = "ok", "warn", "fail"
MIN_FREE_GB_WARN = 10.0
MIN_FREE_GB_FAIL = 1.0


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok" | "warn" | "fail"
    detail: str
    remedy: Remedy | None = None  # the step that fixes it, said per surface (CLI command / UI action)

    @property
    def cli_detail(self) -> str:
        return f"{self.detail}: {self.remedy.cli()}" if self.remedy else self.detail

    @property
    def ui_detail(self) -> str:
        return f"{self.detail}: {self.remedy.ui()}" if self.remedy else self.detail


def check_python() -> Check:
    v = sys.version_info
    text = f"{v.major}.{v.minor}.{v.micro} ({sys.executable})"
    problem = python_problem()
    return Check("Python", FAIL, f"{text}: {problem}") if problem else Check("Python", OK, text)


def _nvidia_smi_gpus() -> list[str]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [ln.strip() for ln in out.stdout.splitlines() if ln.strip().startswith("GPU")] if out.returncode == 0 else []


def check_torch() -> tuple[list[Check], bool]:
    """torch version, CUDA / MPS and the GPU; also returns whether a GPU exists at all."""
    try:
        import torch
    except Exception as e:  # ImportError, or a broken CUDA DLL raising OSError on Windows
        gpus = _nvidia_smi_gpus()
        return [Check("torch", FAIL, f"cannot import torch ({type(e).__name__}: {e}); rerun the launcher")], bool(gpus)
    checks = [Check("torch", OK, torch.__version__)]
    has_gpu = False
    if torch.cuda.is_available():
        has_gpu = True
        idx = torch.cuda.current_device()
        name = torch.cuda.get_device_name(idx)
        try:
            free, total = torch.cuda.mem_get_info(idx)
            mem = f"{free / 2**30:.1f} GB free of {total / 2**30:.1f} GB"
        except RuntimeError:
            mem = "free memory unknown"
        checks.append(Check("CUDA", OK, f"CUDA {torch.version.cuda}, {name}, {mem}"))
        if "free" in mem and free < 3 * 2**30:
            checks.append(Check("GPU memory", WARN, f"only {free / 2**30:.1f} GB free: close other GPU programs or "
                                                    "lower the batch size"))
    else:
        gpus = _nvidia_smi_gpus()
        if gpus:
            has_gpu = True
            checks.append(Check("CUDA", WARN, f"{gpus[0]} found but this torch build has no CUDA "
                                              f"({torch.__version__}); delete .venv and rerun the launcher"))
        else:
            checks.append(Check("CUDA", OK, "no NVIDIA GPU: running on the CPU (slow for training)"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        has_gpu = True
        checks.append(Check("MPS", OK, "Apple GPU (MPS) available"))
    return checks, has_gpu


def check_onnxruntime(has_gpu: bool) -> Check:
    try:
        import onnxruntime
    except Exception as e:
        return Check("onnxruntime", WARN, f"not importable ({type(e).__name__}); vocal separation will not work")
    providers = onnxruntime.get_available_providers()
    text = f"{onnxruntime.__version__}: {', '.join(providers)}"
    gpu_providers = {"CUDAExecutionProvider", "DmlExecutionProvider", "ROCMExecutionProvider", "CoreMLExecutionProvider"}
    if has_gpu and not gpu_providers & set(providers):
        return Check("onnxruntime", WARN, f"{text}: a GPU exists but onnxruntime has no GPU provider; install "
                                          "onnxruntime-gpu for faster vocal separation")
    return Check("onnxruntime", OK, text)


def check_ffmpeg() -> Check:
    """FFmpeg comes from wheels, never from the system: PyAV's libraries decode and encode every
    file, and imageio-ffmpeg's binary is exposed as ``ffmpeg`` for audio-separator and pydub."""
    try:
        import av
    except ImportError as e:
        return Check("ffmpeg", FAIL, f"PyAV is not installed ({e}): no audio can be decoded; "
                                     "run: pip install -r requirements.txt")
    libav = ".".join(str(v) for v in av.library_versions.get("libavcodec", ()))
    try:
        exe = ffmpeg_tool.wheel_ffmpeg()  # a missing imageio-ffmpeg is a one-line SvcoverError
        version = ffmpeg_tool.ffmpeg_version(exe)
    except SvcoverError as e:
        return Check("ffmpeg", FAIL, f"PyAV {av.__version__} decodes audio, but the ffmpeg program audio-separator "
                                     f"needs is missing: {e}")
    return Check("ffmpeg", OK, f"bundled in wheels, nothing installed by hand: decoding/encoding by PyAV "
                               f"{av.__version__} (libavcodec {libav}); '{version}' from imageio-ffmpeg "
                               f"{importlib.metadata.version('imageio-ffmpeg')} ({exe}), exposed to audio-separator as "
                               f"{ffmpeg_tool.default_bin_dir() / ffmpeg_tool.exe_name()}")


def check_disk(path: Path | None = None) -> Check:
    target = path or logs_root()
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free_gb = shutil.disk_usage(probe).free / 2**30
    text = f"{free_gb:.1f} GB free in {target}"
    if free_gb < MIN_FREE_GB_FAIL:
        return Check("disk", FAIL, f"{text}: training and caches need several GB")
    if free_gb < MIN_FREE_GB_WARN:
        return Check("disk", WARN, f"{text}: feature caches and checkpoints may fill it")
    return Check("disk", OK, text)


def check_pretrained(verify: bool = False) -> list[Check]:
    """One check per registry entry. A required model that is missing (or broken) is a problem: on a fresh
    install nothing past the Dataset tab can run, and the report must say so."""
    checks = []
    for entry, st in zip(pretrained.REGISTRY, pretrained.all_status(verify=verify), strict=True):
        if st.usable:
            checks.append(Check(f"pretrained {entry.name}", OK, st.detail))
        elif entry.optional and st.state == "missing":
            checks.append(Check(f"pretrained {entry.name}", OK, f"optional, not installed ({entry.used_by})",
                                Remedy("download", entry.name)))  # fmt: skip
        else:
            checks.append(Check(f"pretrained {entry.name}", FAIL,
                                f"{st.detail} in {pretrained.pretrained_root()} (needed by {entry.used_by})",
                                Remedy("download", entry.name)))  # fmt: skip
    return checks


def run_doctor(verify_checksums: bool = False) -> list[Check]:
    """Every check, in display order."""
    checks = [check_python()]
    torch_checks, has_gpu = check_torch()
    checks += torch_checks
    checks.append(check_onnxruntime(has_gpu))
    checks.append(check_ffmpeg())
    checks.append(check_disk())
    checks += check_pretrained(verify=verify_checksums)
    return checks


def format_report(checks: list[Check]) -> str:
    marks = {OK: "[ ok ]", WARN: "[warn]", FAIL: "[FAIL]"}
    lines = [f"{marks[c.status]} {c.name:<30} {c.cli_detail}" for c in checks]
    fails = sum(c.status == FAIL for c in checks)
    warns = sum(c.status == WARN for c in checks)
    lines.append(f"{fails} problem(s), {warns} warning(s)")
    return "\n".join(lines)

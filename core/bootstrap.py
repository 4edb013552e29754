"""Install plan and installer shared by ``launch.sh`` and ``launch.bat`` (standard library only).

The launchers only find a Python and hand over: ``python -m core.bootstrap [MODE] [ARGS...]``.

Modes: ``run`` (default; arguments starting with ``-`` go to the app), ``test [pytest args]``,
``cli ARGS`` (``python -m core ARGS``), ``plan`` (print the install plan as one JSON line, install
nothing) and ``probe`` (exit 0 when this interpreter can run svcover; the launchers use it to pick one).

The plan comes from the machine: the NVIDIA card and driver reported by ``nvidia-smi`` choose torch's
CUDA build (``cu130``, ``cu126`` or ``cpu``) and the onnxruntime flavour; see docs/install.md for the
rules and their sources. This module must stay importable by a bare interpreter: nothing outside the
standard library, and ``core/__init__`` stays cheap.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import venv as venv_module
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

TORCH_VERSION = "2.13.0"
PYTHON_MIN = (3, 11)  # numpy 2.4, scipy 1.17, onnxruntime 1.31 ... have no cp310 wheels
PYTHON_MAX = (3, 13)  # newest Python every pinned package was checked against
TORCH_INDEX_BASE = "https://download.pytorch.org/whl/"
# Bumped when the install procedure changes, so that existing .venv folders are brought up to date once.
BOOTSTRAP_FORMAT = 2

# NVIDIA's minimum drivers (CUDA toolkit release notes, minor-version compatibility table).
DRIVER_MIN_CU130 = (580, 0)
DRIVER_MIN_CU126 = {"linux": (525, 60, 13), "win32": (527, 41)}
# Compute capabilities that PyTorch 2.12-2.14 builds kernels for (RELEASE.md support matrix):
#   cu126: Maxwell 5.0, Pascal 6.0, Volta 7.0, Turing 7.5, Ampere 8.0/8.6, Hopper 9.0 (no PTX)
#   cu130: Turing 7.5, Ampere 8.0/8.6, Hopper 9.0, Blackwell 10.0/12.0 (+PTX on Linux only)
# A cubin runs on any later minor revision of its major (sm_60 code runs on a 6.1 GTX 1060, sm_86 on 8.9).
CU126_MAJORS = range(5, 10)
CU130_MIN = (7, 5)
CU130_MAX_MAJOR_WINDOWS = 12  # without PTX, a future major has no kernels on Windows
# onnxruntime-gpu on the package index: 1.27 and later are built against CUDA 13, 1.26.0 is the last
# CUDA 12 build. Each must match the CUDA libraries torch brings along (read from the wheels' metadata).
ORT_GPU_CUDA12_VERSION = "1.26.0"

# Distributions replaced by another one that provides the same module: the old one is uninstalled first.
REPLACED_DISTRIBUTIONS = {"pyworld": "pyworld-prebuilt"}

LONG_PATH_LIMIT = 260  # Windows MAX_PATH without the LongPathsEnabled setting
# Longest path below site-packages among the installed packages (measured with torch 2.13.0: a licence file
# in torch's dist-info, 171 characters), plus a small margin for other builds.
LONGEST_INSTALLED_RELPATH = 175

Runner = Callable[[Sequence[str]], int]


class BootstrapError(Exception):
    """A problem the user must fix; the message is printed as one line and the launcher stops."""


# --------------------------------------------------------------------------------------------- Python


def python_problem(version: tuple[int, ...] | None = None, pointer_bits: int | None = None,
                   implementation: str | None = None) -> str | None:
    """Why this interpreter cannot run svcover, or None when it can."""
    version = tuple(version or sys.version_info[:3])
    bits = pointer_bits or struct.calcsize("P") * 8
    impl = implementation or sys.implementation.name
    shown = ".".join(str(v) for v in version[:3])
    if impl != "cpython":
        return f"Python {shown} is {impl}, not CPython: install the 64-bit CPython 3.11-3.13 from python.org"
    if bits != 64:
        return (f"Python {shown} is a {bits}-bit build: torch has no 32-bit wheels. Install the 64-bit "
                "Python 3.13 from python.org (\"Windows installer (64-bit)\"), then run the launcher again")
    if not PYTHON_MIN <= version[:2] <= PYTHON_MAX:
        return (f"Python {shown} is not supported: svcover's pinned packages need Python 3.11, 3.12 or 3.13 "
                "(64-bit) - install one from python.org and run the launcher again")
    return None


# ------------------------------------------------------------------------------------------------ GPU


@dataclass(frozen=True)
class Gpu:
    name: str
    compute_capability: tuple[int, int] | None
    driver: tuple[int, ...]

    @property
    def sm(self) -> str:
        return "unknown" if self.compute_capability is None else "{}.{}".format(*self.compute_capability)


@dataclass
class GpuProbe:
    gpus: list[Gpu] = field(default_factory=list)
    problem: str | None = None  # nvidia-smi exists but failed


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text))


def _parse_gpu_rows(stdout: str, with_compute_cap: bool) -> list[Gpu]:
    gpus = []
    for line in stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if not line.strip() or len(parts) < 2:
            continue
        if with_compute_cap and len(parts) >= 3:
            name, cap, driver = ", ".join(parts[:-2]), parts[-2], parts[-1]
            cc = _version_tuple(cap)
            compute = (cc[0], cc[1]) if len(cc) >= 2 else None
        else:
            name, driver, compute = ", ".join(parts[:-1]), parts[-1], None
        gpus.append(Gpu(name=name, compute_capability=compute, driver=_version_tuple(driver)))
    return gpus


def probe_gpus(timeout: float = 20.0) -> GpuProbe:
    """NVIDIA cards as ``nvidia-smi`` reports them; empty when there is no nvidia-smi."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return GpuProbe()
    queries = (("name,compute_cap,driver_version", True), ("name,driver_version", False))
    first_error = None
    for fields, with_cap in queries:  # drivers older than ~R510 do not know the compute_cap field
        try:
            r = subprocess.run([exe, f"--query-gpu={fields}", "--format=csv,noheader"], capture_output=True,
                               text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as err:
            return GpuProbe(problem=f"nvidia-smi could not run ({err})")
        if r.returncode == 0:
            gpus = _parse_gpu_rows(r.stdout, with_cap)
            if gpus:
                return GpuProbe(gpus=gpus)
        if first_error is None:
            first_error = (r.stdout + r.stderr).strip().splitlines()[:1] or [f"exit code {r.returncode}"]
    return GpuProbe(problem=f"nvidia-smi failed: {first_error[0]}" if first_error else "nvidia-smi failed")


# ----------------------------------------------------------------------------------------------- plan


@dataclass
class InstalledState:
    """What an existing .venv holds, read from its files (no interpreter started)."""

    torch: str | None = None  # e.g. "2.13.0+cpu"
    torch_cuda: str | None = None  # torch.version.cuda of that build, None for a CPU build
    onnxruntime: dict[str, str] = field(default_factory=dict)  # onnxruntime flavour -> version
    dists: dict[str, str] = field(default_factory=dict)  # every distribution (normalised name) -> version


@dataclass
class Plan:
    torch: str
    variant: str  # cu126, cu130 or cpu
    torch_index: str  # URL or "pypi"
    torch_fallback_index: str | None
    onnxruntime: str  # onnxruntime-gpu or onnxruntime
    onnxruntime_version: str
    gpu: str | None
    compute_capability: str | None
    driver: str | None
    platform: str
    python: str
    torch_installed: str | None = None
    torch_reinstall: bool = False
    onnxruntime_swap: bool = False
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(", ", ": "))

    @property
    def torch_spec(self) -> str:
        """The requirement pip gets; the local tag makes pip replace a CPU build with the CUDA one."""
        return f"torch=={self.torch}" if self.variant == "cpu" else f"torch=={self.torch}+{self.variant}"


def _platform_key(platform: str) -> str:
    return "win32" if platform == "win32" else "linux" if platform.startswith("linux") else platform


def _fmt_driver(driver: tuple[int, ...]) -> str:
    return ".".join(str(v) for v in driver) or "unknown"


def choose_variant(gpu: Gpu, platform: str) -> tuple[str, list[str]]:
    """torch CUDA build for this card and driver, with the sentences that explain the choice."""
    key = _platform_key(platform)
    cc, driver, drv = gpu.compute_capability, gpu.driver, _fmt_driver(gpu.driver)
    card = f"{gpu.name} (sm_{gpu.sm}, driver {drv})"
    cu126_min = DRIVER_MIN_CU126.get(key, DRIVER_MIN_CU126["linux"])
    if cc is None:
        if driver >= cu126_min:
            return "cu126", [f"{card}: nvidia-smi does not report the compute capability; trying the cu126 build."]
        return "cpu", [f"{card}: the NVIDIA driver is too old for torch {TORCH_VERSION}'s CUDA builds; "
                       f"update it to {_fmt_driver(cu126_min)} or newer (580 or newer for the cu130 build), "
                       "then run the launcher again. Running on the CPU until then."]
    cu130_card = cc >= CU130_MIN and (key != "win32" or cc[0] <= CU130_MAX_MAJOR_WINDOWS)
    cu126_card = cc[0] in CU126_MAJORS
    if cu130_card and driver >= DRIVER_MIN_CU130:
        return "cu130", [f"{card}: driver 580 or newer and a Turing-or-newer card, so torch's cu130 build "
                         "(CUDA 13.0)."]
    if cu126_card and driver >= cu126_min:
        why = (f"{card}: driver older than 580, so torch's cu126 build (CUDA 12.6); updating the NVIDIA driver "
               "to 580 or newer would allow the newer cu130 build (optional)." if cu130_card else
               f"{card}: torch's cu126 build (CUDA 12.6) is the only one with kernels for this card "
               "(the cu130 build starts at Turing, sm_7.5).")
        return "cu126", [why]
    if cc < (5, 0):
        return "cpu", [f"{card}: this card is older than any CUDA build of torch {TORCH_VERSION} supports "
                       "(the oldest is Maxwell, sm_5.0, in the cu126 build), so svcover runs on the CPU. "
                       "A GTX 16xx / RTX card would use the GPU."]
    if cu130_card and not cu126_card:
        return "cpu", [f"{card}: only torch's cu130 build has kernels for this card and it needs NVIDIA "
                       "driver 580 or newer: update the driver, then run the launcher again. "
                       "Running on the CPU until then."]
    if cu126_card or cu130_card:
        return "cpu", [f"{card}: the NVIDIA driver is too old for torch {TORCH_VERSION}'s CUDA builds "
                       f"(cu126 needs {_fmt_driver(cu126_min)} or newer, cu130 needs 580 or newer): update "
                       "the driver, then run the launcher again. Running on the CPU until then."]
    return "cpu", [f"{card}: no CUDA build of torch {TORCH_VERSION} has kernels for this card on "
                   f"{key}; svcover runs on the CPU."]


def read_requirement_pin(requirements: Path, name: str) -> str | None:
    """The ``==`` version pinned for ``name`` in a requirements file."""
    if not requirements.is_file():
        return None
    pattern = re.compile(rf"^\s*{re.escape(name)}\s*==\s*([^\s;#]+)", re.IGNORECASE)
    for line in requirements.read_text(encoding="utf-8").splitlines():
        m = pattern.match(line)
        if m:
            return m.group(1)
    return None


def decide_plan(probe: GpuProbe, platform: str, env: dict[str, str], root: Path,
                installed: InstalledState | None = None, long_paths_enabled: bool | None = None) -> Plan:
    """The install plan for this machine; pure apart from reading ``requirements.txt``."""
    key = _platform_key(platform)
    reasons: list[str] = []
    gpu = max(probe.gpus, key=lambda g: g.compute_capability or (0, 0)) if probe.gpus else None
    if probe.problem:
        reasons.append(f"{probe.problem}: reinstall or update the NVIDIA driver to use the GPU; "
                       "installing the CPU build for now.")
    if gpu is None:
        variant = "cpu"
        if not probe.problem:
            reasons.append("No NVIDIA GPU found (no nvidia-smi), so torch's CPU build.")
    else:
        variant, why = choose_variant(gpu, platform)
        reasons += why
        if len(probe.gpus) > 1:
            reasons.append(f"{len(probe.gpus)} NVIDIA cards found; planned for the newest, {gpu.name}.")
    if variant == "cpu":
        if key == "linux":
            # The default index's Linux torch is the multi-GB CUDA build: prefer the small CPU one.
            index, fallback = TORCH_INDEX_BASE + "cpu", "pypi"
        else:
            index, fallback = "pypi", None  # Windows and macOS wheels on the default index are CPU builds
    else:
        index, fallback = TORCH_INDEX_BASE + variant, None
    override = env.get("SVCOVER_TORCH_INDEX", "").strip()
    if override:
        index, fallback = override, index
        reasons.append(f"SVCOVER_TORCH_INDEX is set: torch comes from {override} first.")

    ort_pin = read_requirement_pin(root / "requirements.txt", "onnxruntime") or "1.31.1"
    if variant == "cu130":
        ort, ort_version = "onnxruntime-gpu", ort_pin
        reasons.append(f"onnxruntime-gpu {ort_pin} (built for CUDA 13, like torch's cu130 build) runs separation "
                       "on the GPU.")
    elif variant == "cu126":
        ort, ort_version = "onnxruntime-gpu", ORT_GPU_CUDA12_VERSION
        reasons.append(f"onnxruntime-gpu {ORT_GPU_CUDA12_VERSION}, the last build for CUDA 12 (1.27 and later "
                       "need CUDA 13 libraries, which the cu126 torch build does not bring), runs separation "
                       "on the GPU.")
    else:
        ort, ort_version = "onnxruntime", ort_pin
    if ort == "onnxruntime-gpu" and env.get("SVCOVER_NO_GPU_ORT"):
        ort, ort_version = "onnxruntime", ort_pin
        reasons.append("SVCOVER_NO_GPU_ORT is set: separation stays on the CPU build of onnxruntime.")

    plan = Plan(torch=TORCH_VERSION, variant=variant, torch_index=index, torch_fallback_index=fallback,
                onnxruntime=ort, onnxruntime_version=ort_version, gpu=gpu.name if gpu else None,
                compute_capability=gpu.sm if gpu else None, driver=_fmt_driver(gpu.driver) if gpu else None,
                platform=platform, python=".".join(str(v) for v in sys.version_info[:3]), reasons=reasons)
    warning = long_path_warning(root, platform, long_paths_enabled)
    if warning:
        plan.warnings.append(warning)
    if installed is not None:
        plan.torch_installed = installed.torch
        plan.torch_reinstall = torch_needs_reinstall(plan, installed)
        if plan.torch_reinstall:
            reasons.append(f"torch {installed.torch} is installed but this machine needs the {variant} build: "
                           "it is replaced.")
        other = "onnxruntime" if ort == "onnxruntime-gpu" else "onnxruntime-gpu"
        plan.onnxruntime_swap = other in installed.onnxruntime
        if plan.onnxruntime_swap:
            reasons.append(f"{other} is installed: it is swapped for {ort} by a forced reinstall.")
    return plan


def torch_needs_reinstall(plan: Plan, installed: InstalledState) -> bool:
    """An installed torch of the right version but the wrong build (a CPU build on a GPU machine)."""
    if installed.torch is None or installed.torch.split("+")[0] != plan.torch:
        return False  # absent or another version: a normal install replaces it
    return plan.variant != "cpu" and not _cuda_matches(installed.torch_cuda, plan.variant)


def _cuda_matches(torch_cuda: str | None, variant: str) -> bool:
    if variant == "cpu":
        return True  # a CUDA build also runs on the CPU; never download gigabytes to get rid of it
    if not torch_cuda:
        return False
    digits = variant[2:]
    return torch_cuda.replace(".", "").startswith(digits) or torch_cuda.startswith(f"{digits[:2]}.{digits[2:]}")


# ------------------------------------------------------------------------------------------ the venv


def venv_python(venv: Path, platform: str = sys.platform) -> Path:
    return venv / ("Scripts/python.exe" if platform == "win32" else "bin/python")


def site_packages(venv: Path) -> list[Path]:
    return [p for p in [venv / "Lib" / "site-packages", *sorted(venv.glob("lib/python3*/site-packages"))]
            if p.is_dir()]


def read_installed(venv: Path) -> InstalledState:
    """torch build and onnxruntime flavours in ``venv``, from dist-info folders and ``torch/version.py``."""
    state = InstalledState()
    for sp in site_packages(venv):
        for dist in sp.glob("*.dist-info"):
            name, _, version = dist.name[: -len(".dist-info")].partition("-")
            norm = name.lower().replace("_", "-")
            state.dists[norm] = version
            if norm == "torch":
                state.torch = version
            elif norm in ("onnxruntime", "onnxruntime-gpu"):
                state.onnxruntime[norm] = version
        version_py = sp / "torch" / "version.py"
        if version_py.is_file():
            m = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", version_py.read_text(encoding="utf-8"),
                          re.MULTILINE)
            state.torch_cuda = m.group(1) if m else None
    return state


def windows_long_paths_enabled() -> bool | None:
    """HKLM\\...\\FileSystem LongPathsEnabled == 1; None when it cannot be read (not Windows)."""
    try:
        import winreg
    except ImportError:
        return None
    try:
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"SYSTEM\CurrentControlSet\Control\FileSystem") as key:
            value, _ = winreg.QueryValueEx(key, "LongPathsEnabled")
    except OSError:
        return False
    return value == 1


def long_path_warning(root: Path, platform: str, long_paths_enabled: bool | None) -> str | None:
    """A warning when the packages' deepest files would pass Windows' 260-character limit."""
    if platform != "win32" or long_paths_enabled:
        return None
    deepest = len(str(root / ".venv" / "Lib" / "site-packages")) + 1 + LONGEST_INSTALLED_RELPATH
    if deepest < LONG_PATH_LIMIT:
        return None
    room = LONG_PATH_LIMIT - 1 - LONGEST_INSTALLED_RELPATH - len("\\.venv\\Lib\\site-packages\\")
    return (f"warning: the folder path {root} is {len(str(root))} characters long and Windows long paths are off: "
            f"installing torch will likely fail. Move svcover to a shorter path (at most {room} characters, "
            "e.g. C:\\svcover) or turn on long paths (as administrator: reg add "
            "HKLM\\SYSTEM\\CurrentControlSet\\Control\\FileSystem /v LongPathsEnabled /t REG_DWORD /d 1 /f), "
            "then run the launcher again.")


# ------------------------------------------------------------------------------------------- stamps


def requirement_files(mode: str) -> list[str]:
    files = ["requirements.txt", "requirements-nodeps.txt"]
    return files + ["requirements-test.txt"] if mode == "test" else files


def stamp_path(venv: Path, name: str) -> Path:
    return venv / f".svcover-installed-{name}"


def stamp_text(root: Path, name: str) -> str:
    digest = hashlib.sha256((root / name).read_bytes()).hexdigest()
    return f"{digest} torch={TORCH_VERSION} bootstrap={BOOTSTRAP_FORMAT}"


def stale_files(root: Path, venv: Path, files: Sequence[str]) -> list[str]:
    """Requirements files whose stamp does not record exactly their current content."""
    stale = []
    for name in files:
        if not (root / name).is_file():
            continue
        stamp = stamp_path(venv, name)
        try:
            current = stamp.read_text(encoding="utf-8").strip()
        except OSError:
            current = None
        if current != stamp_text(root, name):
            stale.append(name)
    return stale


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".tmp-{path.name}.{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# -------------------------------------------------------------------------------------------- install


def _say(message: str) -> None:
    print(f"[svcover] {message}", flush=True)


def subprocess_runner(cmd: Sequence[str]) -> int:
    return subprocess.call(list(cmd))


class Installer:
    """Runs the plan's pip commands through ``runner`` (a seam: tests record instead of installing)."""

    def __init__(self, root: Path, python: str, plan: Plan, runner: Runner = subprocess_runner) -> None:
        self.root, self.python, self.plan, self.runner = root, python, plan, runner

    def pip(self, *args: str) -> int:
        return self.runner([self.python, "-m", "pip", *args])

    def _install_torch_from(self, index: str) -> int:
        args = ["install", self.plan.torch_spec]
        if index != "pypi":
            args += ["--index-url", index]
        if index.rstrip("/").endswith("/whl/cpu"):
            args = ["install", "--retries", "0", "--timeout", "15", *args[1:]]  # fail fast where it is unreachable
        return self.pip(*args)

    def ensure_torch(self, installed: InstalledState) -> None:
        plan = self.plan
        if installed.torch and installed.torch.split("+")[0] == plan.torch and \
                _cuda_matches(installed.torch_cuda, plan.variant):
            return
        if torch_needs_reinstall(plan, installed):
            _say(f"torch {installed.torch} is the wrong build for this machine: replacing it with the "
                 f"{plan.variant} build")
            self.pip("uninstall", "-y", "torch")  # torch shares no files with another distribution
        _say(f"installing torch {plan.torch} ({plan.variant}) from {plan.torch_index}")
        if self._install_torch_from(plan.torch_index) == 0:
            return
        if plan.torch_fallback_index:
            _say(f"{plan.torch_index} did not work; trying {plan.torch_fallback_index}")
            if self._install_torch_from(plan.torch_fallback_index) == 0:
                return
        tried = " and ".join(filter(None, [plan.torch_index, plan.torch_fallback_index]))
        raise BootstrapError(f"installing {plan.torch_spec} from {tried} failed (see pip's message above); check the "
                             "internet connection and run the launcher again")

    def install_requirements(self, name: str, scratch: Path) -> None:
        path = self.root / name
        nodeps = ["--no-deps"] if name == "requirements-nodeps.txt" else []
        if name == "requirements.txt" and self.plan.onnxruntime == "onnxruntime-gpu":
            # Install the GPU flavour in place of the CPU one rather than both side by side.
            text = path.read_text(encoding="utf-8")
            text = re.sub(r"(?im)^\s*onnxruntime\s*==\s*[^\s;#]+",
                          f"onnxruntime-gpu=={self.plan.onnxruntime_version}", text)
            path = scratch / ".svcover-requirements-plan.txt"
            _write_atomic(path, text)
        if self.pip("install", *nodeps, "-r", str(path)) != 0:
            raise BootstrapError(f"installing {name} failed (see pip's message above)")

    def remove_replaced(self, installed: InstalledState) -> None:
        """Uninstall distributions that a pinned one replaces (same module, so same files)."""
        for old, new in REPLACED_DISTRIBUTIONS.items():
            if old not in installed.dists:
                continue
            _say(f"replacing {old} with {new}")
            self.pip("uninstall", "-y", old)
            pin = read_requirement_pin(self.root / "requirements.txt", new)
            if new in installed.dists and pin:  # the uninstall removed files the two share: write them again
                self.pip("install", "--force-reinstall", "--no-deps", f"{new}=={pin}")

    def ensure_onnxruntime(self, installed: InstalledState) -> None:
        """One onnxruntime flavour; a swap force-reinstalls the wanted one so shared files stay whole."""
        want, version = self.plan.onnxruntime, self.plan.onnxruntime_version
        other = "onnxruntime" if want == "onnxruntime-gpu" else "onnxruntime-gpu"
        if other not in installed.onnxruntime and installed.onnxruntime.get(want) == version:
            return
        if other in installed.onnxruntime:
            _say(f"swapping {other} for {want} {version}")
            self.pip("uninstall", "-y", other)
            # Both distributions own the same onnxruntime/ files: the uninstall removed some of the wanted
            # one's, so it is rewritten in full.
            rc = self.pip("install", "--force-reinstall", "--no-deps", f"{want}=={version}")
        else:
            rc = self.pip("install", "--no-deps", f"{want}=={version}")
        if rc != 0 and want == "onnxruntime-gpu":
            _say(f"{want} {version} could not be installed; separation will use the CPU build")
            pin = read_requirement_pin(self.root / "requirements.txt", "onnxruntime") or version
            self.pip("install", "--force-reinstall", "--no-deps", f"onnxruntime=={pin}")

    def verify_cuda(self) -> bool:
        """After installing on a GPU machine: can torch use the card?"""
        code = "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)"
        return self.runner([self.python, "-c", code]) == 0


def install(root: Path, venv: Path, mode: str, stale: Sequence[str], runner: Runner,
            env: dict[str, str], platform: str = sys.platform,
            long_paths_enabled: Callable[[], bool | None] = windows_long_paths_enabled) -> Plan:
    """Bring ``venv`` up to the plan: torch, the stale requirements files, onnxruntime, then the doctor."""
    python = str(venv_python(venv, platform))
    installed = read_installed(venv)
    plan = decide_plan(probe_gpus(), platform, env, root, installed, long_paths_enabled())
    for line in plan.reasons + plan.warnings:
        _say(line)
    installer = Installer(root, python, plan, runner)
    installer.pip("install", "--upgrade", "--quiet", "pip")  # an old pip is only slower; failure is fine
    installer.ensure_torch(installed)
    installer.remove_replaced(installed)
    for name in stale:
        _say(f"installing {name} (first run or it changed)")
        installer.install_requirements(name, venv)
        _write_atomic(stamp_path(venv, name), stamp_text(root, name) + "\n")
    installer.ensure_onnxruntime(read_installed(venv))
    if plan.variant != "cpu":
        if not installer.verify_cuda():
            after = read_installed(venv)
            if not _cuda_matches(after.torch_cuda, plan.variant):
                _say(f"torch {after.torch} is not the {plan.variant} build: forcing a reinstall")
                args = ["install", "--force-reinstall", "--no-deps", plan.torch_spec]
                if plan.torch_index != "pypi":
                    args += ["--index-url", plan.torch_index]
                installer.pip(*args)
            if not installer.verify_cuda():
                _say(f"warning: torch cannot use {plan.gpu}; svcover will run on the CPU. Check the NVIDIA "
                     "driver (see docs/install.md), then delete the .venv folder and run the launcher again.")
    _write_atomic(venv / ".svcover-plan.json", plan.to_json() + "\n")
    if runner([python, "-m", "core", "doctor"]) != 0:
        _say("doctor reported problems (see above); the app starts anyway")
    return plan


# ----------------------------------------------------------------------------------------------- main

USAGE = ("usage: launch [run] [app options]  |  launch test [pytest args]  |  launch cli STAGE [args]  |  "
         "launch plan")


def split_mode(argv: Sequence[str]) -> tuple[str, list[str]]:
    """``[]`` and ``["--share"]`` are run mode; otherwise the first argument names the mode."""
    if not argv or argv[0].startswith("-"):
        return "run", list(argv)
    return argv[0], list(argv[1:])


def final_command(python: str, mode: str, args: Sequence[str]) -> list[str]:
    if mode == "run":
        return [python, "app.py", "--inbrowser", *args]
    if mode == "test":
        # No path given: pytest runs pyproject's testpaths (tests/); `test tests/test_x.py` runs only that file.
        return [python, "-m", "pytest", *args]
    return [python, "-m", "core", *args]


def exec_command(cmd: Sequence[str]) -> int:
    """Replace this process on POSIX; on Windows wait and return the exit code (the .bat shows errors)."""
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execv(cmd[0], list(cmd))
    return subprocess.call(list(cmd))


def in_venv(venv: Path) -> bool:
    try:
        return Path(sys.prefix).resolve() == venv.resolve()
    except OSError:
        return False


def main(argv: Sequence[str] | None = None, *, root: Path | None = None, runner: Runner | None = None,
         exec_fn: Callable[[Sequence[str]], int] = exec_command, platform: str = sys.platform,
         env: dict[str, str] | None = None, inside_venv: bool | None = None) -> int:
    started = time.perf_counter()
    root = (root or Path.cwd()).resolve()
    env = dict(os.environ) if env is None else env
    mode, args = split_mode(list(sys.argv[1:] if argv is None else argv))
    venv = root / ".venv"
    if mode == "probe":
        problem = python_problem()
        if problem:
            print(f"[svcover] error: {problem}", file=sys.stderr)
        return 1 if problem else 0
    if mode == "plan":
        plan = decide_plan(probe_gpus(), platform, env, root, read_installed(venv), windows_long_paths_enabled())
        print(plan.to_json())
        return 0
    if mode not in ("run", "test", "cli"):
        print(USAGE, file=sys.stderr)
        return 2
    problem = python_problem()
    if problem:
        where = " (the Python inside .venv: delete the .venv folder)" if in_venv(venv) else ""
        print(f"[svcover] error: {problem}{where}", file=sys.stderr)
        return 1
    python = str(venv_python(venv, platform))
    if not (in_venv(venv) if inside_venv is None else inside_venv):
        if not Path(python).exists():
            _say(f"creating .venv with Python {'.'.join(map(str, sys.version_info[:3]))}")
            try:
                venv_module.create(venv, with_pip=True, symlinks=os.name != "nt")  # as `python -m venv` does
            except (OSError, subprocess.CalledProcessError) as err:
                shutil.rmtree(venv, ignore_errors=True)  # a half-made .venv would be taken as ready next time
                print(f"[svcover] error: could not create {venv} ({err}); on Debian/Ubuntu install the "
                      f"python{sys.version_info[0]}.{sys.version_info[1]}-venv package", file=sys.stderr)
                return 1
        return exec_fn([python, "-m", "core.bootstrap", mode, *args])
    runner = runner or subprocess_runner
    stale = stale_files(root, venv, requirement_files(mode))
    if env.get("SVCOVER_REINSTALL"):
        stale = [n for n in requirement_files(mode) if (root / n).is_file()]
    if stale:
        try:
            install(root, venv, mode, stale, runner, env, platform)
        except BootstrapError as err:
            print(f"[svcover] error: {err}", file=sys.stderr)
            warning = long_path_warning(root, platform, windows_long_paths_enabled())
            if warning:
                print(f"[svcover] {warning}", file=sys.stderr)
            return 1
    elif env.get("SVCOVER_BOOTSTRAP_TIMING"):
        _say(f"up to date ({time.perf_counter() - started:.3f} s)")
    return exec_fn(final_command(python, mode, args))


if __name__ == "__main__":
    sys.exit(main())

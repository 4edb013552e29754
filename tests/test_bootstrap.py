"""core.bootstrap: the install plan for simulated machines (a fake ``nvidia-smi`` first on PATH) and the
install steps, run against a fake pip that edits a scratch .venv's metadata instead of installing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import types
from collections.abc import Sequence
from pathlib import Path, PureWindowsPath

import pytest

from core import bootstrap as bs
from tests.conftest import ROOT

BASH = shutil.which("bash") or "/bin/bash"
CPU_TORCH_VERSION_PY = "__version__ = '2.13.0+cpu'\ndebug = False\ncuda: Optional[str] = None\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A scratch checkout: the requirements files only (the bootstrap reads nothing else)."""
    root = tmp_path / "repo"
    root.mkdir()
    for path in sorted(ROOT.glob("requirements*.txt")):
        shutil.copy2(path, root / path.name)
    return root


def fake_nvidia_smi(monkeypatch: pytest.MonkeyPatch, folder: Path, rows: str | None, rc: int = 0,
                    old_driver_rows: str | None = None) -> None:
    """Put a fake ``nvidia-smi`` first on PATH (``rows`` None: no nvidia-smi at all)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "nvidia-smi"
    script.unlink(missing_ok=True)
    if rows is not None:
        (folder / "rows.txt").write_text(rows + "\n")
        (folder / "old_rows.txt").write_text(f"{old_driver_rows}\n")
        body = [f"#!{BASH}"]
        if old_driver_rows is not None:  # a driver that does not know the compute_cap field
            body += ['case "$1" in *compute_cap*) echo \'Field "compute_cap" is not a valid field to query.\'; '
                     'exit 2;; esac', f"cat '{folder / 'old_rows.txt'}'", "exit 0"]
        else:
            body += [f"cat '{folder / 'rows.txt'}'", f"exit {rc}"]
        script.write_text("\n".join(body) + "\n")
        script.chmod(0o755)
    monkeypatch.setenv("PATH", str(folder) + os.pathsep + "/usr/bin" + os.pathsep + "/bin")


def plan_for(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, repo: Path, rows: str | None,
             platform: str = "linux", env: dict[str, str] | None = None, **kw) -> bs.Plan:
    fake_nvidia_smi(monkeypatch, tmp_path / "smi", rows, **kw)
    return bs.decide_plan(bs.probe_gpus(), platform, env or {}, repo, bs.read_installed(repo / ".venv"))


GTX1660S = "NVIDIA GeForce GTX 1660 SUPER, 7.5, {driver}"


@pytest.mark.parametrize("row, variant, ort, ort_version", [
    (GTX1660S.format(driver="560.94"), "cu126", "onnxruntime-gpu", "1.26.0"),
    (GTX1660S.format(driver="581.57"), "cu130", "onnxruntime-gpu", "1.31.1"),
    ("NVIDIA GeForce RTX 4070, 8.9, 581.57", "cu130", "onnxruntime-gpu", "1.31.1"),
    ("NVIDIA GeForce RTX 4070, 8.9, 560.94", "cu126", "onnxruntime-gpu", "1.26.0"),
    ("NVIDIA GeForce GTX 1060 6GB, 6.1, 560.94", "cu126", "onnxruntime-gpu", "1.26.0"),
    ("NVIDIA GeForce GTX 1060 6GB, 6.1, 581.57", "cu126", "onnxruntime-gpu", "1.26.0"),  # Pascal: no cu130 kernels
    ("NVIDIA GeForce GTX 780, 3.5, 470.256.02", "cpu", "onnxruntime", "1.31.1"),  # Kepler
    (GTX1660S.format(driver="470.256.02"), "cpu", "onnxruntime", "1.31.1"),  # driver too old for either
    ("NVIDIA GeForce RTX 5070, 12.0, 566.36", "cpu", "onnxruntime", "1.31.1"),  # Blackwell needs cu130 = 580+
    (None, "cpu", "onnxruntime", "1.31.1"),  # no nvidia-smi
])
def test_plan_per_machine(monkeypatch, tmp_path, repo, row, variant, ort, ort_version) -> None:
    plan = plan_for(monkeypatch, tmp_path, repo, row)
    assert (plan.variant, plan.onnxruntime, plan.onnxruntime_version) == (variant, ort, ort_version)
    assert plan.torch == "2.13.0"
    assert plan.gpu == (row.split(",")[0] if row else None)
    assert plan.torch_index == ("https://download.pytorch.org/whl/" + ("cpu" if variant == "cpu" else variant))
    assert plan.reasons and all(isinstance(r, str) and len(r) > 20 for r in plan.reasons)
    json.loads(plan.to_json())


@pytest.mark.parametrize("row, must_say", [
    ("NVIDIA GeForce GTX 780, 3.5, 470.256.02", "older than any CUDA build"),
    (GTX1660S.format(driver="470.256.02"), "update the driver"),
    ("NVIDIA GeForce RTX 5070, 12.0, 566.36", "driver 580 or newer: update the driver"),
    (GTX1660S.format(driver="560.94"), "580 or newer would allow the newer cu130"),
])
def test_reasons_say_what_to_update(monkeypatch, tmp_path, repo, row, must_say) -> None:
    plan = plan_for(monkeypatch, tmp_path, repo, row)
    assert any(must_say in r for r in plan.reasons), plan.reasons
    assert any(row.split(",")[0] in r for r in plan.reasons)


def test_platform_differences(monkeypatch, tmp_path, repo) -> None:
    # No GPU: on Linux the default index's torch is the CUDA build, so the CPU index first; Windows' is CPU.
    linux = plan_for(monkeypatch, tmp_path, repo, None, platform="linux")
    win = plan_for(monkeypatch, tmp_path, repo, None, platform="win32")
    assert (linux.torch_index, linux.torch_fallback_index) == ("https://download.pytorch.org/whl/cpu", "pypi")
    assert (win.torch_index, win.torch_fallback_index) == ("pypi", None)
    # CUDA 12's minimum driver is 525.60.13 on Linux but 527.41 on Windows.
    row = GTX1660S.format(driver="526.20")
    assert plan_for(monkeypatch, tmp_path, repo, row, platform="linux").variant == "cu126"
    assert plan_for(monkeypatch, tmp_path, repo, row, platform="win32").variant == "cpu"
    # A card newer than the cu130 build's newest kernels runs through PTX on Linux only.
    future = "NVIDIA Future, 13.0, 600.10"
    assert plan_for(monkeypatch, tmp_path, repo, future, platform="linux").variant == "cu130"
    assert plan_for(monkeypatch, tmp_path, repo, future, platform="win32").variant == "cpu"
    # The GPU builds come from PyTorch's index on every platform.
    gpu = plan_for(monkeypatch, tmp_path, repo, GTX1660S.format(driver="581.57"), platform="win32")
    assert (gpu.variant, gpu.torch_index) == ("cu130", "https://download.pytorch.org/whl/cu130")


def test_nvidia_smi_failing_or_without_compute_cap(monkeypatch, tmp_path, repo) -> None:
    broken = plan_for(monkeypatch, tmp_path, repo, "NVIDIA-SMI has failed because it couldn't communicate with "
                      "the NVIDIA driver.", rc=9)
    assert broken.variant == "cpu" and broken.gpu is None
    assert any("couldn't communicate" in r and "driver" in r for r in broken.reasons)
    old = plan_for(monkeypatch, tmp_path, repo, "x", old_driver_rows="GeForce GTX 1660 SUPER, 470.42")
    assert old.variant == "cpu" and old.gpu == "GeForce GTX 1660 SUPER" and old.driver == "470.42"
    assert any("update it to 525.60.13 or newer" in r for r in old.reasons)


def test_several_cards_plan_for_the_newest(monkeypatch, tmp_path, repo) -> None:
    plan = plan_for(monkeypatch, tmp_path, repo, "NVIDIA GeForce GTX 1060 6GB, 6.1, 581.57\n"
                    "NVIDIA GeForce RTX 3060, 8.6, 581.57")
    assert plan.gpu == "NVIDIA GeForce RTX 3060" and plan.variant == "cu130"
    assert any("2 NVIDIA cards" in r for r in plan.reasons)


def test_overrides(monkeypatch, tmp_path, repo) -> None:
    row = GTX1660S.format(driver="560.94")
    plan = plan_for(monkeypatch, tmp_path, repo, row, env={"SVCOVER_TORCH_INDEX": "http://mirror.local/cu126"})
    assert (plan.torch_index, plan.torch_fallback_index) == ("http://mirror.local/cu126",
                                                             "https://download.pytorch.org/whl/cu126")
    plan = plan_for(monkeypatch, tmp_path, repo, row, env={"SVCOVER_NO_GPU_ORT": "1"})
    assert (plan.variant, plan.onnxruntime, plan.onnxruntime_version) == ("cu126", "onnxruntime", "1.31.1")


def fake_site_packages(venv: Path, windows: bool = False) -> Path:
    sp = venv / "Lib" / "site-packages" if windows else venv / "lib" / "python3.11" / "site-packages"
    sp.mkdir(parents=True, exist_ok=True)
    python = venv / ("Scripts/python.exe" if windows else "bin/python")
    python.parent.mkdir(exist_ok=True)
    python.touch()
    return sp


def add_dist(sp: Path, name: str, version: str, torch_cuda: str | None = "absent") -> None:
    (sp / f"{name.replace('-', '_')}-{version}.dist-info").mkdir()
    if name == "torch":
        (sp / "torch").mkdir(exist_ok=True)
        cuda = "None" if torch_cuda is None else repr(torch_cuda)
        (sp / "torch" / "version.py").write_text(f"__version__ = '{version}'\ncuda: Optional[str] = {cuda}\n")


def test_cpu_build_present_with_a_gpu_plans_a_reinstall(monkeypatch, tmp_path, repo) -> None:
    sp = fake_site_packages(repo / ".venv")
    add_dist(sp, "torch", "2.13.0+cpu", torch_cuda=None)
    add_dist(sp, "onnxruntime", "1.31.1")
    plan = plan_for(monkeypatch, tmp_path, repo, GTX1660S.format(driver="560.94"))
    assert plan.torch_installed == "2.13.0+cpu" and plan.torch_reinstall and plan.onnxruntime_swap
    assert any("2.13.0+cpu is installed" in r for r in plan.reasons)
    # The same .venv on a machine without a GPU keeps what it has.
    plan = plan_for(monkeypatch, tmp_path, repo, None)
    assert not plan.torch_reinstall and not plan.onnxruntime_swap


def test_cuda_build_of_the_right_variant_is_kept(monkeypatch, tmp_path, repo) -> None:
    sp = fake_site_packages(repo / ".venv")
    add_dist(sp, "torch", "2.13.0+cu126", torch_cuda="12.6")
    assert not plan_for(monkeypatch, tmp_path, repo, GTX1660S.format(driver="560.94")).torch_reinstall
    assert plan_for(monkeypatch, tmp_path, repo, GTX1660S.format(driver="581.57")).torch_reinstall


class FakePip:
    """Records commands; ``pip install``/``uninstall`` edit the scratch venv's dist-info folders."""

    def __init__(self, venv: Path, cuda_available: bool = True, fail: Sequence[str] = (),
                 torch_build: str | None = None, windows: bool = False) -> None:
        self.sp = fake_site_packages(venv, windows)
        self.calls: list[list[str]] = []
        self.cuda_available, self.fail, self.torch_build = cuda_available, fail, torch_build

    def __call__(self, cmd: Sequence[str]) -> int:
        cmd = list(cmd)
        self.calls.append(cmd)
        text = " ".join(cmd)
        if any(f in text for f in self.fail):
            return 1
        if cmd[1:3] == ["-c", cmd[2]] and "cuda.is_available" in cmd[2]:
            return 0 if self.cuda_available else 3
        if cmd[1:4] == ["-m", "pip", "uninstall"]:
            for name in cmd[5:]:
                for d in self.sp.glob(f"{name.replace('-', '_')}-*.dist-info"):
                    d.rmdir()
        elif cmd[1:4] == ["-m", "pip", "install"]:
            for arg in cmd[4:]:
                if "==" in arg and not arg.startswith("-"):
                    name, version = arg.split("==")
                    for d in self.sp.glob(f"{name.replace('-', '_')}-*.dist-info"):
                        d.rmdir()
                    cuda = None if "+" not in version else f"{version[-3:-1]}.{version[-1]}"
                    if name == "torch" and self.torch_build:  # an index that hands out another build
                        version, cuda = self.torch_build, None
                    add_dist(self.sp, name, version, torch_cuda=cuda)
        return 0

    def pip_calls(self) -> list[str]:
        return [" ".join(c[3:]) for c in self.calls if c[1:3] == ["-m", "pip"]]


def run_main(repo: Path, argv: list[str], pip: FakePip, env: dict[str, str] | None = None,
             platform: str = "linux") -> tuple[int, list[list[str]]]:
    executed: list[list[str]] = []
    rc = bs.main(argv, root=repo, runner=pip, exec_fn=lambda cmd: executed.append(list(cmd)) or 0,
                 platform=platform, env=env or {}, inside_venv=True)
    return rc, executed


def test_first_run_on_a_gtx_1660_replaces_cpu_torch_and_onnxruntime(monkeypatch, tmp_path, repo) -> None:
    fake_nvidia_smi(monkeypatch, tmp_path / "smi", GTX1660S.format(driver="560.94"))
    pip = FakePip(repo / ".venv")
    add_dist(pip.sp, "torch", "2.13.0+cpu", torch_cuda=None)  # an older .venv made by the CPU-only launcher
    add_dist(pip.sp, "onnxruntime", "1.31.1")
    add_dist(pip.sp, "pyworld", "0.3.5")
    for name in bs.requirement_files("run"):  # the stamps that launcher wrote: "<sha256> torch=2.13.0"
        digest = hashlib.sha256((repo / name).read_bytes()).hexdigest()
        bs.stamp_path(repo / ".venv", name).write_text(f"{digest} torch=2.13.0\n")
    rc, executed = run_main(repo, ["--share"], pip)
    assert rc == 0
    calls = pip.pip_calls()
    i_uninstall = calls.index("uninstall -y torch")
    i_torch = calls.index("install torch==2.13.0+cu126 --index-url https://download.pytorch.org/whl/cu126")
    assert i_uninstall < i_torch
    assert "uninstall -y pyworld" in calls
    req = next(c for c in calls if c.startswith("install -r "))
    req_text = Path(req.split(" -r ")[1]).read_text()
    assert "onnxruntime-gpu==1.26.0" in req_text and "\nonnxruntime==" not in req_text
    assert "pyworld-prebuilt==" in req_text
    assert any(c.startswith("install --no-deps -r ") and c.endswith("requirements-nodeps.txt") for c in calls)
    # Swap: the CPU flavour goes, then the GPU flavour is written again in full (they share files).
    i_ort_out = calls.index("uninstall -y onnxruntime")
    assert calls[i_ort_out + 1] == "install --force-reinstall --no-deps onnxruntime-gpu==1.26.0"
    assert [sys_call[1:] for sys_call in pip.calls if "cuda.is_available" in " ".join(sys_call)]
    assert pip.calls[-1][1:] == ["-m", "core", "doctor"]
    assert executed == [[str(repo / ".venv" / "bin" / "python"), "app.py", "--inbrowser", "--share"]]
    state = bs.read_installed(repo / ".venv")
    assert state.torch == "2.13.0+cu126" and state.onnxruntime == {"onnxruntime-gpu": "1.26.0"}
    recorded = json.loads((repo / ".venv" / ".svcover-plan.json").read_text())
    assert recorded["variant"] == "cu126"


def test_index_serving_a_cpu_build_is_forced_and_a_dead_gpu_is_reported(monkeypatch, tmp_path, repo,
                                                                         capsys) -> None:
    fake_nvidia_smi(monkeypatch, tmp_path / "smi", "NVIDIA GeForce RTX 4070, 8.9, 581.57")
    pip = FakePip(repo / ".venv", cuda_available=False, torch_build="2.13.0+cpu")
    rc, _ = run_main(repo, [], pip, env={"SVCOVER_TORCH_INDEX": "http://mirror.local/simple"})
    assert rc == 0
    calls = pip.pip_calls()
    assert calls[1] == "install torch==2.13.0+cu130 --index-url http://mirror.local/simple"
    assert "install --force-reinstall --no-deps torch==2.13.0+cu130 --index-url http://mirror.local/simple" in calls
    out = capsys.readouterr().out
    assert "forcing a reinstall" in out and "torch cannot use NVIDIA GeForce RTX 4070" in out


def test_cpu_machine_falls_back_from_the_cpu_index_fast(monkeypatch, tmp_path, repo) -> None:
    fake_nvidia_smi(monkeypatch, tmp_path / "smi", None)
    pip = FakePip(repo / ".venv", fail=["whl/cpu"])
    rc, executed = run_main(repo, ["test", "-k", "dataset"], pip)
    assert rc == 0
    calls = pip.pip_calls()
    assert ("install --retries 0 --timeout 15 torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
            in calls)
    assert "install torch==2.13.0" in calls  # the default index, after the CPU index failed
    assert any(c.endswith("requirements-test.txt") for c in calls)
    assert not any("onnxruntime-gpu" in c for c in calls) and not any("cuda" in " ".join(c) for c in pip.calls)
    assert executed[0][1:] == ["-m", "pytest", "-k", "dataset"]


def test_unreachable_cuda_index_stops_instead_of_a_silent_cpu_build(monkeypatch, tmp_path, repo, capsys) -> None:
    fake_nvidia_smi(monkeypatch, tmp_path / "smi", GTX1660S.format(driver="560.94"))
    pip = FakePip(repo / ".venv", fail=["whl/cu126"])
    rc, executed = run_main(repo, [], pip)
    assert rc == 1 and executed == []
    err = capsys.readouterr().err
    assert "torch==2.13.0+cu126 from https://download.pytorch.org/whl/cu126 failed" in err
    assert len(err.strip().splitlines()) == 1
    assert not any(c.startswith("install torch==2.13.0 ") or c == "install torch==2.13.0" for c in pip.pip_calls())
    assert not list((repo / ".venv").glob(".svcover-installed-*"))


def test_windows_layout_and_default_index(monkeypatch, tmp_path, repo) -> None:
    fake_nvidia_smi(monkeypatch, tmp_path / "smi", None)
    pip = FakePip(repo / ".venv", windows=True)
    add_dist(pip.sp, "torch", "2.12.0", torch_cuda=None)
    rc, executed = run_main(repo, ["--share"], pip, platform="win32")
    assert rc == 0
    python = str(repo / ".venv" / "Scripts" / "python.exe")
    assert all(c[0] == python for c in pip.calls)
    assert "install torch==2.13.0" in pip.pip_calls()  # Windows' default-index torch is the CPU build
    assert not any("download.pytorch.org" in c for c in pip.pip_calls())
    assert executed == [[python, "app.py", "--inbrowser", "--share"]]
    assert bs.read_installed(repo / ".venv").torch == "2.13.0"


def test_failed_install_is_one_clear_error_and_writes_no_stamp(monkeypatch, tmp_path, repo, capsys) -> None:
    fake_nvidia_smi(monkeypatch, tmp_path / "smi", None)
    pip = FakePip(repo / ".venv", fail=["requirements.txt"])
    rc, executed = run_main(repo, [], pip)
    assert rc == 1 and executed == []
    assert "installing requirements.txt failed" in capsys.readouterr().err
    assert not bs.stamp_path(repo / ".venv", "requirements.txt").exists()


def test_second_run_skips_installation(monkeypatch, tmp_path, repo) -> None:
    fake_nvidia_smi(monkeypatch, tmp_path / "smi", GTX1660S.format(driver="581.57"))
    pip = FakePip(repo / ".venv")
    run_main(repo, [], pip)
    assert (repo / ".venv" / ".svcover-installed-requirements.txt").is_file()
    pip.calls.clear()
    started = time.perf_counter()
    rc, executed = run_main(repo, ["run", "--port", "7999"], pip)
    elapsed = time.perf_counter() - started
    assert rc == 0 and pip.calls == []  # no pip, no doctor, no nvidia-smi needed
    assert executed[0][1:] == ["app.py", "--inbrowser", "--port", "7999"]
    assert elapsed < 0.5, elapsed
    # A changed requirements file is installed again, and only that one.
    with open(repo / "requirements-nodeps.txt", "a") as fh:
        fh.write("extra-package==1.0\n")
    run_main(repo, [], pip)
    installs = [c for c in pip.pip_calls() if " -r " in f" {c}"]
    assert len(installs) == 1 and installs[0].endswith("requirements-nodeps.txt")
    # Test mode needs one more file.
    pip.calls.clear()
    run_main(repo, ["test"], pip)
    assert [c for c in pip.pip_calls() if " -r " in f" {c}"][0].endswith("requirements-test.txt")


def test_stamp_skip_in_a_real_process(tmp_path, repo) -> None:
    """Time ``python -m core.bootstrap`` itself when everything is installed (it execs the app at once)."""
    venv = repo / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    for name in bs.requirement_files("run"):
        bs.stamp_path(venv, name).write_text(bs.stamp_text(repo, name) + "\n")
    (repo / "core").mkdir()
    for name in ("__init__.py", "bootstrap.py"):
        shutil.copy2(ROOT / "core" / name, repo / "core" / name)
    (repo / "app.py").write_text("import sys; print('APP', sys.argv[1:])\n")
    env = {"PATH": "/usr/bin:/bin", "SVCOVER_BOOTSTRAP_TIMING": "1"}
    r = subprocess.run([str(venv / "bin" / "python"), "-m", "core.bootstrap", "--share"], cwd=repo, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "APP ['--inbrowser', '--share']" in r.stdout
    seconds = float(r.stdout.split("up to date (")[1].split(" s)")[0])
    assert seconds < 0.2, r.stdout


def test_test_mode_runs_the_suite_or_the_files_given() -> None:
    assert bs.final_command("py", "test", ["tests/test_launch.py", "-q"]) == ["py", "-m", "pytest",
                                                                             "tests/test_launch.py", "-q"]
    # Without a path pytest falls back to testpaths: the whole suite, as `launch test -k dataset` expects.
    assert 'testpaths = ["tests"]' in (ROOT / "pyproject.toml").read_text()


def test_venv_creation_failure_is_one_line_and_leaves_no_half_venv(monkeypatch, repo, capsys) -> None:
    import venv

    def broken_create(path, **kw):
        Path(path, "bin").mkdir(parents=True)
        raise subprocess.CalledProcessError(1, ["python", "-m", "ensurepip"])

    monkeypatch.setattr(venv, "create", broken_create)
    executed: list = []
    rc = bs.main(["--share"], root=repo, env={}, inside_venv=False, exec_fn=executed.append)
    assert rc == 1 and executed == [] and not (repo / ".venv").exists()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "could not create" in err and "-venv package" in err


def test_base_python_creates_the_venv_and_hands_over(monkeypatch, repo) -> None:
    import venv

    made: list = []
    monkeypatch.setattr(venv, "create", lambda path, **kw: made.append((Path(path), kw)))
    executed: list = []
    rc = bs.main(["test", "-k", "x"], root=repo, env={}, inside_venv=False,
                 exec_fn=lambda cmd: executed.append(list(cmd)) or 5)
    assert rc == 5  # the venv interpreter's exit code is the launcher's
    assert made == [(repo / ".venv", {"with_pip": True, "symlinks": True})]
    assert executed == [[str(repo / ".venv" / "bin" / "python"), "-m", "core.bootstrap", "test", "-k", "x"]]


def test_modes_and_usage(repo) -> None:
    assert bs.split_mode([]) == ("run", [])
    assert bs.split_mode(["--share"]) == ("run", ["--share"])
    assert bs.split_mode(["test", "-k", "dataset"]) == ("test", ["-k", "dataset"])
    assert bs.main(["bogus"], root=repo, env={}) == 2


def test_python_versions_and_32_bit_are_refused(monkeypatch, repo, capsys) -> None:
    assert bs.python_problem((3, 11, 9), 64, "cpython") is None
    assert bs.python_problem((3, 13, 1), 64, "cpython") is None
    assert "not supported" in bs.python_problem((3, 10, 11), 64, "cpython")
    assert "not supported" in bs.python_problem((3, 14, 0), 64, "cpython")
    assert "32-bit" in bs.python_problem((3, 11, 9), 32, "cpython")
    assert "CPython" in bs.python_problem((3, 11, 9), 64, "pypy")
    monkeypatch.setattr(bs.struct, "calcsize", lambda fmt: 4)  # what a 32-bit interpreter reports
    assert bs.main(["probe"], root=repo, env={}) == 1
    assert bs.main(["--share"], root=repo, env={}) == 1
    err = capsys.readouterr().err
    assert "32-bit build" in err and "64-bit" in err
    assert not (repo / ".venv").exists()


def test_long_path_warning_on_windows(tmp_path) -> None:
    short, long_root = Path("C:/svcover"), Path("C:/Users/someone/" + "very long folder name/" * 6 + "svcover")
    assert bs.long_path_warning(long_root, "win32", False) is not None
    assert str(long_root) in bs.long_path_warning(long_root, "win32", False)
    assert "LongPathsEnabled" in bs.long_path_warning(long_root, "win32", None)
    assert bs.long_path_warning(long_root, "win32", True) is None
    assert bs.long_path_warning(short, "win32", False) is None
    assert bs.long_path_warning(long_root, "linux", None) is None
    # The boundary: torch's deepest file (171 characters below site-packages, + margin) must stay < 260.
    assert bs.long_path_warning(PureWindowsPath("C:\\" + "a" * 56), "win32", False) is None  # 59 characters
    assert "at most 59 characters" in bs.long_path_warning(PureWindowsPath("C:\\" + "a" * 57), "win32", False)


@pytest.mark.parametrize("value, expected", [(1, True), (0, False), (None, False)])
def test_long_paths_setting_is_read_from_the_registry(monkeypatch, value, expected) -> None:
    class Key:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def query(key, name):
        assert name == "LongPathsEnabled"
        if value is None:
            raise FileNotFoundError(name)
        return value, 4

    fake = types.SimpleNamespace(HKEY_LOCAL_MACHINE=object(), OpenKey=lambda root, path: Key(), QueryValueEx=query)
    monkeypatch.setitem(sys.modules, "winreg", fake)
    assert bs.windows_long_paths_enabled() is expected


def test_long_path_warning_is_shown_before_installing(monkeypatch, tmp_path, repo, capsys) -> None:
    fake_nvidia_smi(monkeypatch, tmp_path / "smi", None)
    pip = FakePip(repo / ".venv")
    monkeypatch.setattr(bs, "long_path_warning", lambda root, platform, enabled: f"warning: long {platform}")
    bs.install(repo, repo / ".venv", "run", ["requirements.txt"], pip, {}, "win32", lambda: False)
    out = capsys.readouterr().out
    assert out.index("warning: long win32") < out.index("installing requirements.txt")
    plan = bs.decide_plan(bs.probe_gpus(), "win32", {}, repo, None, False)
    assert plan.warnings == ["warning: long win32"]  # launch.bat plan shows it too


def test_requirement_pins_have_no_source_only_packages() -> None:
    text = (ROOT / "requirements.txt").read_text()
    assert bs.read_requirement_pin(ROOT / "requirements.txt", "pyworld-prebuilt") == "0.3.6.post1"
    assert bs.read_requirement_pin(ROOT / "requirements.txt", "pyworld") is None and "\npyworld==" not in text


def test_bootstrap_imports_only_the_standard_library() -> None:
    """It runs before anything is installed, with the bare interpreter that creates .venv."""
    code = ("import sys, core.bootstrap; print(sorted(m for m in sys.modules "
            "if m != '__main__' and m.split('.')[0] not in sys.stdlib_module_names))")
    r = subprocess.run([sys.executable, "-S", "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['core', 'core.bootstrap']"


def test_doctor_applies_the_launcher_python_rule(monkeypatch) -> None:
    from core import doctor

    assert doctor.check_python().status == doctor.OK  # the interpreter running the suite is supported
    monkeypatch.setattr(bs.struct, "calcsize", lambda fmt: 4)
    check = doctor.check_python()
    assert check.status == doctor.FAIL and "32-bit" in check.detail

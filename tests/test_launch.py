"""launch.sh, the Linux shim: finds a Python, hands every argument to core.bootstrap, keeps its exit code.

Run in a scratch copy of the repository. Most tests use a fake interpreter that records its arguments
(nothing is installed); the last ones run the real bootstrap through launch.sh in ``plan`` mode.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT

BASH = shutil.which("bash") or "/bin/bash"
TOOLS = ("dirname",)

FAKE_PYTHON = textwrap.dedent(
    r"""
    #!BASH
    # Fake interpreter: answers the launcher's probe, logs every other call one argument per line.
    if [ "$1 $2 $3" = "-m core.bootstrap probe" ]; then
      [ "${FAKE_PROBE_RC:-0}" = 0 ] || echo "error: Python 3.11.9 is a 32-bit build (fake)" >&2
      exit "${FAKE_PROBE_RC:-0}"
    fi
    echo "CALL $0" >> "$FAKE_LOG"
    for arg in "$@"; do printf 'ARG %s\n' "$arg" >> "$FAKE_LOG"; done
    exit "${FAKE_RC:-0}"
    """
).lstrip()


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "core").mkdir(parents=True)
    for path in [ROOT / "launch.sh", *sorted(ROOT.glob("requirements*.txt"))]:
        shutil.copy2(path, repo / path.name)
    for name in ("__init__.py", "bootstrap.py"):
        shutil.copy2(ROOT / "core" / name, repo / "core" / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        real = shutil.which(tool)
        assert real, f"{tool} is needed by this test"
        (bin_dir / tool).symlink_to(real)
    return tmp_path


def _add_fake_python(where: Path, name: str = "python3.11") -> Path:
    where.mkdir(parents=True, exist_ok=True)
    exe = where / name
    exe.write_text(FAKE_PYTHON.replace("BASH", BASH))
    exe.chmod(0o755)
    return exe


def _run(sandbox: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    """Run launch.sh; return the process and the fake interpreter's calls (program, then arguments)."""
    log = sandbox / "calls.log"
    log.write_text("")
    full_env = {"PATH": str(sandbox / "bin"), "HOME": str(sandbox), "FAKE_LOG": str(log), **env}
    r = subprocess.run([BASH, str(sandbox / "repo" / "launch.sh"), *args], env=full_env, capture_output=True,
                       text=True, timeout=60)
    calls: list[list[str]] = []
    for line in log.read_text().splitlines():
        kind, _, value = line.partition(" ")
        if kind == "CALL":
            calls.append([value])
        elif kind == "ARG":
            calls[-1].append(value)
    return r, calls


def test_missing_python_is_a_clear_error(sandbox: Path) -> None:
    r, calls = _run(sandbox, SVCOVER_PYTHON=str(sandbox / "no" / "python3.11"))
    assert r.returncode == 1
    assert "no 64-bit Python 3.11-3.13 found" in r.stderr
    assert not (sandbox / "repo" / ".venv").exists() and calls == []


def test_refused_python_says_why(sandbox: Path) -> None:
    _add_fake_python(sandbox / "bin", "python3")
    r, calls = _run(sandbox, FAKE_PROBE_RC="1")
    assert r.returncode == 1 and calls == []
    assert "no 64-bit Python 3.11-3.13 found" in r.stderr
    assert "32-bit build" in r.stderr  # the bootstrap's own reason for the Python that is there


@pytest.mark.parametrize("args", [
    [],
    ["--share"],
    ["run", "--port", "7999"],
    ["test", "-k", "dataset and not slow"],
    ["cli", "dataset", "--exp", "my voice", "C:\\Songs\\a!b.wav", "ünï cødé", "*", "$HOME", ""],
    ["plan"],
])
def test_every_argument_reaches_the_bootstrap_verbatim(sandbox: Path, args: list[str]) -> None:
    python = _add_fake_python(sandbox / "bin")
    r, calls = _run(sandbox, *args)
    assert r.returncode == 0, r.stderr
    assert calls == [[str(python), "-m", "core.bootstrap", *args]]


def test_exit_code_of_the_bootstrap_is_kept(sandbox: Path) -> None:
    _add_fake_python(sandbox / "bin")
    r, _ = _run(sandbox, "test", FAKE_RC="7")
    assert r.returncode == 7


def test_existing_venv_is_used_without_looking_for_python(sandbox: Path) -> None:
    venv_python = _add_fake_python(sandbox / "repo" / ".venv" / "bin", "python")
    r, calls = _run(sandbox, "--share")
    assert r.returncode == 0, r.stderr
    assert len(calls) == 1 and Path(calls[0][0]).resolve() == venv_python.resolve()
    assert calls[0][1:] == ["-m", "core.bootstrap", "--share"]


def test_svcover_python_is_preferred(sandbox: Path) -> None:
    _add_fake_python(sandbox / "bin")
    chosen = _add_fake_python(sandbox / "elsewhere", "mypython")
    r, calls = _run(sandbox, "plan", SVCOVER_PYTHON=str(chosen))
    assert r.returncode == 0, r.stderr
    assert calls[0][0] == str(chosen)


def _fake_nvidia_smi(folder: Path, row: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / "nvidia-smi"
    exe.write_text(f"#!{BASH}\necho '{row}'\n")
    exe.chmod(0o755)


@pytest.mark.parametrize("row, variant, gpu", [
    (None, "cpu", None),
    ("NVIDIA GeForce GTX 1660 SUPER, 7.5, 560.94", "cu126", "NVIDIA GeForce GTX 1660 SUPER"),
    ("NVIDIA GeForce RTX 4070, 8.9, 581.57", "cu130", "NVIDIA GeForce RTX 4070"),
])
def test_plan_through_launch_sh_with_the_real_bootstrap(sandbox: Path, row: str | None, variant: str,
                                                        gpu: str | None) -> None:
    """``./launch.sh plan``: one JSON line on stdout, nothing installed, not even a .venv."""
    if row:
        _fake_nvidia_smi(sandbox / "bin", row)
    r, _ = _run(sandbox, "plan", SVCOVER_PYTHON=sys.executable)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout
    plan = json.loads(lines[0])
    assert plan["variant"] == variant and plan["gpu"] == gpu and plan["torch"] == "2.13.0"
    assert plan["onnxruntime"] == ("onnxruntime" if variant == "cpu" else "onnxruntime-gpu")
    assert plan["reasons"] and all(isinstance(s, str) and s for s in plan["reasons"])
    assert not (sandbox / "repo" / ".venv").exists()


def test_launch_bat_hands_over_every_argument_and_pauses_on_failure() -> None:
    """launch.bat cannot run here: check the lines that carry the task's requirements."""
    text = (ROOT / "launch.bat").read_bytes().decode("ascii")
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")  # cmd.exe needs CRLF line ends
    lines = [line.strip() for line in text.splitlines()]
    assert "setlocal EnableExtensions DisableDelayedExpansion" in lines  # "!" in the folder path
    assert "EnableDelayedExpansion" not in text.replace("DisableDelayedExpansion", "")
    assert "%PY% -m core.bootstrap %*" in lines  # every argument, e.g. launch.bat --share
    assert not any(f"%{n}" in text for n in range(2, 10))
    run_at = lines.index("%PY% -m core.bootstrap %*")
    assert lines[run_at + 1] == 'set "RC=%ERRORLEVEL%"' and "pause" in lines[run_at + 2:run_at + 6]
    for version in ("3.13", "3.12", "3.11"):
        assert version in text
    assert "core.bootstrap probe" in text  # 64-bit and version checks are the bootstrap's

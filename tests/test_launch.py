"""launch.sh logic, run in a scratch copy with a fake Python that records every call (no real installs)."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BASH = shutil.which("bash") or "/bin/bash"
TOOLS = ("dirname", "cat", "sha256sum", "cut", "cp", "mkdir", "chmod")

FAKE_PYTHON = textwrap.dedent(
    r"""
    #!BASH
    # Fake interpreter: logs its arguments, emulates the few things launch.sh asks of Python.
    echo "$0 $*" >> "$FAKE_LOG"
    if [ "$1" = "-c" ]; then
      case "$2" in
        *version_info*) exit "${FAKE_VERSION_RC:-0}" ;;
        *hashlib*) sha256sum "$3" | cut -d' ' -f1; exit 0 ;;
        *"import torch"*) exit "${FAKE_TORCH_RC:-1}" ;;
      esac
      exit 0
    fi
    if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
      mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; chmod +x "$3/bin/python"; exit 0
    fi
    if [ "$1" = "-m" ] && [ "$2" = "core" ] && [ "$3" = "doctor" ]; then exit "${FAKE_DOCTOR_RC:-0}"; fi
    exit 0
    """
).lstrip()


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    for path in [ROOT / "launch.sh", *sorted(ROOT.glob("requirements*.txt"))]:
        shutil.copy2(path, repo / path.name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        real = shutil.which(tool)
        assert real, f"{tool} is needed by this test"
        (bin_dir / tool).symlink_to(real)
    return tmp_path


def _add_fake_python(sandbox: Path, name: str = "python3.11") -> Path:
    exe = sandbox / "bin" / name
    exe.write_text(FAKE_PYTHON.replace("BASH", BASH))
    exe.chmod(0o755)
    return exe


def _run(sandbox: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    log = sandbox / "calls.log"
    log.write_text("")
    full_env = {"PATH": str(sandbox / "bin"), "HOME": str(sandbox), "FAKE_LOG": str(log), **env}
    r = subprocess.run([BASH, str(sandbox / "repo" / "launch.sh"), *args], env=full_env, capture_output=True,
                       text=True, timeout=60)
    return r, [line for line in log.read_text().splitlines() if line]


def test_missing_python_is_a_clear_error(sandbox: Path) -> None:
    r, calls = _run(sandbox, SVCOVER_PYTHON=str(sandbox / "no" / "python3.11"))
    assert r.returncode == 1
    assert "no Python 3.10-3.12 found" in r.stderr
    assert not (sandbox / "repo" / ".venv").exists() and calls == []


def test_too_old_python_is_refused(sandbox: Path) -> None:
    _add_fake_python(sandbox, "python3")
    r, _ = _run(sandbox, FAKE_VERSION_RC="1")
    assert r.returncode == 1 and "no Python 3.10-3.12 found" in r.stderr


def test_first_run_installs_second_run_skips(sandbox: Path) -> None:
    _add_fake_python(sandbox)
    r, calls = _run(sandbox)
    assert r.returncode == 0, r.stderr
    text = "\n".join(calls)
    assert "-m venv .venv" in text
    assert "-m pip install -r requirements.txt" in text and "torch==" in text
    assert "sha256sum" not in r.stderr and "No such file" not in r.stderr  # every requirements file was hashed
    if (ROOT / "requirements-nodeps.txt").is_file():
        assert "-m pip install --no-deps -r requirements-nodeps.txt" in text
    assert "-m core doctor" in text
    assert calls[-1].endswith("app.py --inbrowser")
    assert (sandbox / "repo" / ".venv" / ".svcover-installed-requirements.txt").is_file()

    r, calls = _run(sandbox, "run", "--port", "7999")
    assert r.returncode == 0, r.stderr
    assert not any(" -m pip" in c or " -m core doctor" in c or " -m venv" in c for c in calls), calls
    assert calls[-1].endswith("app.py --inbrowser --port 7999")


def test_changed_requirements_reinstall(sandbox: Path) -> None:
    _add_fake_python(sandbox)
    _run(sandbox)
    with open(sandbox / "repo" / "requirements.txt", "a") as fh:
        fh.write("extra-package==1.0\n")
    r, calls = _run(sandbox)
    assert r.returncode == 0
    assert any("-m pip install -r requirements.txt" in c for c in calls)


def test_doctor_failure_does_not_stop_the_app(sandbox: Path) -> None:
    _add_fake_python(sandbox)
    r, calls = _run(sandbox, FAKE_DOCTOR_RC="1")
    assert r.returncode == 0, r.stderr
    assert "doctor reported problems" in r.stdout + r.stderr
    assert calls[-1].endswith("app.py --inbrowser")


def test_test_mode_installs_test_requirements(sandbox: Path) -> None:
    _add_fake_python(sandbox)
    r, calls = _run(sandbox, "test", "-k", "foundation")
    assert r.returncode == 0, r.stderr
    assert any("-m pip install -r requirements-test.txt" in c for c in calls)
    assert calls[-1].endswith("-m pytest tests -k foundation")


def test_unknown_mode_shows_usage(sandbox: Path) -> None:
    _add_fake_python(sandbox)
    r, _ = _run(sandbox, "bogus")
    assert r.returncode == 2 and "usage" in r.stderr

"""Shared fixtures: paths to ../shared, temporary logs/ and pretrained/ folders, schema weight builder, an offline
tiny separation model."""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SVCOVER_SHARED") or ROOT.parent / "shared").resolve()
REAL = SHARED / "data" / "real"
REFERENCE = SHARED / "reference"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _empty_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, env_var: str) -> Path:
    root = tmp_path / name
    root.mkdir()
    monkeypatch.setenv(env_var, str(root))
    return root


@pytest.fixture
def tmp_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty logs root for this test (``SVCOVER_LOGS``)."""
    return _empty_root(tmp_path, monkeypatch, "logs", "SVCOVER_LOGS")


@pytest.fixture
def tmp_pretrained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty pretrained root for this test (``SVCOVER_PRETRAINED``)."""
    return _empty_root(tmp_path, monkeypatch, "pretrained", "SVCOVER_PRETRAINED")


@pytest.fixture
def offline_tiny_uvr(tmp_logs: Path, tmp_pretrained: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The pretrained root with a tiny separation model in ``uvr/`` (audio-separator's real MDX path), an empty
    logs root, and no network: any socket connection fails, so a cover must run offline."""
    from tests.tiny_uvr import install_tiny_uvr

    install_tiny_uvr(tmp_pretrained / "uvr")

    def refuse(*_args, **_kwargs):
        raise OSError("network access during a cover")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    return tmp_pretrained


def load_weights_builder():
    """The shared ``weights_from_schema`` module (deterministic stand-in weights)."""
    spec = importlib.util.spec_from_file_location("weights_from_schema", REFERENCE / "weights_from_schema.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def weights_builder():
    return load_weights_builder()


def make_synthetic_singing(prefix: Path, seed: int = 1, extra_args: list[str] | None = None) -> Path:
    """Run ../shared/data/make_synthetic_singing.py; writes PREFIX.wav, PREFIX_f0.npy, PREFIX.json."""
    import subprocess

    prefix.parent.mkdir(parents=True, exist_ok=True)
    script = SHARED / "data" / "make_synthetic_singing.py"
    cmd = [sys.executable, str(script), "--out", str(prefix), "--seed", str(seed), *(extra_args or [])]
    subprocess.run(cmd, check=True, capture_output=True)
    wav = prefix.with_name(prefix.name + ".wav")
    assert wav.is_file(), f"make_synthetic_singing.py did not write {wav}"
    return wav


@pytest.fixture(scope="session")
def voice_roots(tmp_path_factory) -> tuple[Path, Path]:
    """(logs root, pretrained root) of one small trained voice model per test session (tests/standins.py)."""
    from tests.standins import shared_voice_roots

    return shared_voice_roots(tmp_path_factory)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module: on a busy shared 2-core machine, OpenMP thread teams spin-wait and run
    many times slower than one thread (opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""Outputs: inputs are never outputs, failed writes are one line with nothing half-written, umask, leftovers.

Disk full (ENOSPC) and permission denied (EACCES) are simulated by patching the write (tests run as root, so
chmod cannot deny, and filling the real disk is out of the question). A real kernel refusal is produced with
RLIMIT_FSIZE (writes beyond the limit fail with EFBIG) in a child process, so the C writers (libsndfile,
torch's zip writer) fail exactly as they do on a full disk.
"""

from __future__ import annotations

import errno
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.cli import main as cli_main
from core.errors import OutputIsInputError, WriteError
from core.fsutil import atomic_path, atomic_write_text, remove_stale_temp_files, same_file
from tests.conftest import ROOT

SR = 44100


def _song(path: Path, seconds: float = 8.0, seed: int = 0) -> Path:
    """A short tone with pauses: the dataset stage makes chunks from it."""
    t = np.arange(int(seconds * SR)) / SR
    wav = 0.3 * np.sin(2 * np.pi * (220 + 20 * seed) * t) * (np.sin(2 * np.pi * 0.5 * t) > -0.7)
    sf.write(path, wav.astype(np.float32), SR, subtype="PCM_16")
    return path


def _error_line(capsys) -> str:
    """The CLI's error output: exactly one ``error:`` line (progress bars also write to stderr)."""
    lines = [line for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if line.startswith("error")]
    assert len(lines) == 1, lines
    return lines[0]


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(".tmp-")]


# ------------------------------------------------------------------------------------ inputs are never outputs


def _links(tmp_path: Path) -> dict[str, Path]:
    original = _song(tmp_path / "take.wav")
    (tmp_path / "link.wav").symlink_to(original)
    os.link(original, tmp_path / "hard.wav")
    return {"same": original, "symlink": tmp_path / "link.wav", "hardlink": tmp_path / "hard.wav",
            "dotted": tmp_path / "sub" / ".." / "take.wav"}  # fmt: skip


@pytest.mark.parametrize("kind", ["same", "symlink", "hardlink", "dotted"])
def test_convert_and_cover_refuse_to_write_over_their_input(tmp_logs: Path, tmp_path: Path, capsys, kind: str) -> None:
    (tmp_logs / "voice").mkdir()
    (tmp_path / "sub").mkdir()
    paths = _links(tmp_path)
    before = paths["same"].read_bytes()
    out = paths[kind]
    for argv in (["convert", "--exp", "voice", "--input", str(paths["same"]), "--output", str(out)],
                 ["cover", "--exp", "voice", "--input", str(paths["same"]), "--output", str(out)],
                 ["cover", "--exp", "voice", "--vocals", str(paths["same"]), "--instrumental",
                  str(_song(tmp_path / "inst.wav", seed=3)), "--output", str(out)]):  # fmt: skip
        assert cli_main(argv) == 1, argv
        err = _error_line(capsys)
        assert "is the input file" in err and str(out) in err, err
    assert paths["same"].read_bytes() == before and paths["symlink"].is_symlink()
    assert not _leftovers(tmp_path)


def test_cover_pipeline_refuses_output_equal_to_a_stem(tmp_path: Path) -> None:
    from core.cover import make_cover

    vocals, inst = _song(tmp_path / "v.wav"), _song(tmp_path / "i.wav", seed=2)
    for target in (vocals, inst):
        with pytest.raises(OutputIsInputError, match="is the input file"):
            make_cover(target, lambda p: p, vocals=vocals, instrumental=inst)


@pytest.fixture
def identity_conversion(monkeypatch):
    """The conversion stage with its model step replaced by the identity (no voice model needed here)."""
    import core.convert as convert_stage

    def identity(wav, models, config, progress=None):
        result = convert_stage.ConvertResult.__new__(convert_stage.ConvertResult)
        result.key, result.warnings = 0.0, []
        return wav, result

    monkeypatch.setattr(convert_stage, "convert_waveform", identity)


@pytest.mark.usefixtures("identity_conversion")
def test_convert_folder_of_earlier_outputs_into_itself_keeps_them(tmp_logs: Path, tmp_path: Path) -> None:
    """Outputs named like an input (``<stem>_<exp>_key0.wav``) would replace it: refused per file."""
    from core.convert import ConvertConfig, convert_files

    (tmp_logs / "voice").mkdir()
    _song(tmp_path / "a.wav")
    done = _song(tmp_path / "a_voice_key0.wav")
    before = done.read_bytes()

    with pytest.raises(OutputIsInputError, match="a_voice_key0_voice_key0.wav|a_voice_key0.wav"):
        convert_files("voice", tmp_path, tmp_path, ConvertConfig(), models=object())
    assert done.read_bytes() == before


@pytest.mark.usefixtures("identity_conversion")
def test_convert_disk_full_is_one_line_and_leaves_nothing(tmp_logs: Path, tmp_path: Path, monkeypatch) -> None:
    from core.convert import ConvertConfig, convert_files

    (tmp_logs / "voice").mkdir()
    song = _song(tmp_path / "a.wav", 2.0)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    monkeypatch.setattr(sf, "write", _partial_then(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(WriteError) as err:
        convert_files("voice", song, out_dir / "x.flac", ConvertConfig(), models=object())
    assert str(err.value) == f"{out_dir / 'x.flac'}: cannot write (disk full)"
    assert list(out_dir.iterdir()) == []


def test_export_and_zip_refuse_their_inputs(tmp_logs: Path, tmp_path: Path) -> None:
    import dataclasses

    import torch

    from core.experiment import Experiment
    from core.model import CHECKPOINT_FORMAT, SvcDecoder
    from core.model.config import DecoderConfig
    from core.voicemodel import export_experiment, install_voice_model, pack_zip

    exp = Experiment.open("voice")
    exp.checkpoints.mkdir(parents=True)
    cfg = DecoderConfig(units_dim=768, n_chans=16, n_layers=1)  # a tiny decoder saved as the train stage does
    torch.save({"format": CHECKPOINT_FORMAT, "version": 1, "step": 1, "model": SvcDecoder(cfg).state_dict(),
                "config": dataclasses.asdict(cfg), "stats": {}}, exp.checkpoints / "step_1.pt")  # fmt: skip
    folder = export_experiment("voice")
    weights = folder / "model.safetensors"
    before = weights.read_bytes()
    with pytest.raises(OutputIsInputError):
        pack_zip(folder, weights)
    with pytest.raises(OutputIsInputError):
        export_experiment("voice", checkpoint=weights)
    with pytest.raises(Exception, match="already the installed voice model"):
        install_voice_model(folder, "voice")
    assert weights.read_bytes() == before
    assert pack_zip(folder, tmp_path / "voice.zip").is_file()


def test_dataset_skips_links_into_its_own_folder(tmp_logs: Path, tmp_path: Path) -> None:
    from core.dataset import build_dataset

    inputs = tmp_path / "in"
    inputs.mkdir()
    _song(inputs / "a.wav")
    build_dataset("voice", [inputs])
    chunk = sorted((tmp_logs / "voice" / "0_gt_wavs").glob("*.wav"))[0]
    (inputs / "sneaky.wav").symlink_to(chunk)
    report = build_dataset("voice", [inputs])
    assert any("own dataset folder" in s.reason for s in report.skipped)
    assert report.new_files == 0


def test_index_folder_linked_to_the_features_is_refused(tmp_logs: Path) -> None:
    from core.index import RetrievalIndexError, build_index

    features = tmp_logs / "voice" / "features"
    (features / "chunk").mkdir(parents=True)
    (features / "chunk" / "content.npz").write_bytes(b"features")
    (tmp_logs / "voice" / "index").symlink_to(features, target_is_directory=True)
    with pytest.raises(RetrievalIndexError, match="index folder is the features folder"):
        build_index("voice")
    assert (features / "chunk" / "content.npz").read_bytes() == b"features"


def test_same_file_helper() -> None:
    assert same_file(ROOT / "core" / "cli.py", ROOT / "core" / ".." / "core" / "cli.py")
    assert not same_file(ROOT / "core" / "cli.py", ROOT / "core" / "fsutil.py")
    assert not same_file(ROOT / "does-not-exist.wav", ROOT / "core" / "cli.py")


# ------------------------------------------------------------------------------------ failed writes


def _partial_then(error: BaseException):
    """A soundfile.write that writes half a file, then fails the way the OS refuses the rest."""
    real = sf.write

    def write(file, data, samplerate, *args, **kwargs):
        real(file, data[: len(data) // 2], samplerate, *args, **kwargs)
        raise error

    return write


@pytest.mark.parametrize(
    ("error", "cause"),
    [(OSError(errno.ENOSPC, "No space left on device"), "disk full"),
     (PermissionError(errno.EACCES, "Permission denied"), "permission denied"),
     (OSError(errno.EROFS, "Read-only file system"), "read-only file system")],
)  # fmt: skip
def test_save_audio_failure_is_one_line_and_leaves_nothing(tmp_path: Path, monkeypatch, error, cause) -> None:
    from core.audio import save_audio

    target = tmp_path / "out" / "x.wav"
    target.parent.mkdir()
    target.write_bytes(b"previous version")
    monkeypatch.setattr(sf, "write", _partial_then(error))
    with pytest.raises(WriteError) as err:
        save_audio(target, np.zeros(SR, np.float32), SR)
    assert str(err.value) == f"{target}: cannot write ({cause})"
    assert target.read_bytes() == b"previous version"  # the old file is untouched
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.wav"]


def test_libsndfile_error_without_errno_is_explained_from_the_disk(tmp_path: Path, monkeypatch) -> None:
    """libsndfile reports a full disk as a bare error code; the cause then comes from the folder's free space."""
    import shutil

    from core.audio import save_audio

    monkeypatch.setattr(sf, "write", _partial_then(sf.LibsndfileError(2, "Error writing ")))
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9, 0))
    with pytest.raises(WriteError, match=r"x\.wav: cannot write \(disk full\)$"):
        save_audio(tmp_path / "x.wav", np.zeros(SR, np.float32), SR)
    assert list(tmp_path.iterdir()) == []


def test_permission_denied_creating_the_temp_file(tmp_path: Path, monkeypatch) -> None:
    import core.fsutil as fsutil

    def denied(path, suffix):
        raise PermissionError(errno.EACCES, "Permission denied", str(path.parent))

    monkeypatch.setattr(fsutil, "_create_temp", denied)
    with pytest.raises(WriteError, match=r"config\.json: cannot write \(permission denied\)"):
        atomic_write_text(tmp_path / "config.json", "{}")


def test_checkpoint_save_disk_full_is_one_line(tmp_path: Path, monkeypatch) -> None:
    """torch's zip writer reports a full disk as ``inline_container`` RuntimeError (seen in the field)."""
    import shutil

    import torch

    from core.checkpoints import save_checkpoint

    real = torch.save

    def full_disk_save(obj, f, *args, **kwargs):
        real({"half": 1}, f)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    monkeypatch.setattr(torch, "save", full_disk_save)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9, 4096))
    target = tmp_path / "checkpoints" / "step_100.pt"
    with pytest.raises(WriteError) as err:
        save_checkpoint(target, {"model": {}})
    assert str(err.value) == f"{target}: cannot write (disk full)"
    assert list(target.parent.iterdir()) == []


def test_dataset_disk_full_stops_with_one_line_and_no_partial_chunks(tmp_logs: Path, tmp_path: Path, capsys,
                                                                     monkeypatch) -> None:  # fmt: skip
    song = _song(tmp_path / "song.wav", 20.0)
    calls = {"n": 0}
    real = sf.write

    def fail_third_write(file, data, samplerate, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # after one complete chunk (44.1 kHz + 16 kHz copies)
            real(file, data[: len(data) // 3], samplerate, *args, **kwargs)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(file, data, samplerate, *args, **kwargs)

    monkeypatch.setattr(sf, "write", fail_third_write)
    assert cli_main(["dataset", str(song), "--exp", "voice"]) == 1
    err = _error_line(capsys)
    assert err.endswith("cannot write (disk full)"), err
    assert str(tmp_logs / "voice" / "0_gt_wavs") in err
    exp = tmp_logs / "voice"
    assert not _leftovers(exp)
    assert not list((exp / "0_gt_wavs").glob("*.wav")) and not list((exp / "1_16k_wavs").glob("*.wav"))


def _run_with_file_size_limit(code: str, limit: int, cwd: Path) -> subprocess.CompletedProcess:
    def limit_writes() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          preexec_fn=limit_writes, timeout=120)  # fmt: skip


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_real_kernel_write_refusal_in_c_writers_is_one_line(tmp_path: Path) -> None:
    """libsndfile and torch.save hit a real EFBIG (file-size limit): one line each, nothing left behind."""
    code = (
        "import numpy as np, torch\n"
        "from core.audio import save_audio\n"
        "from core.checkpoints import save_checkpoint\n"
        "from core.errors import WriteError\n"
        "for write in (lambda: save_audio('a.wav', np.zeros(200000, np.float32), 44100),\n"
        "              lambda: save_checkpoint('c/step_1.pt', {'w': torch.zeros(100000)})):\n"
        "    try:\n"
        "        write()\n"
        "        print('no error')\n"
        "    except WriteError as e:\n"
        "        print(e)\n"
    )
    proc = _run_with_file_size_limit(code, 64 * 1024, tmp_path)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and len(lines) == 2, proc.stdout + proc.stderr
    assert lines[0].startswith("a.wav: cannot write (") and lines[1].startswith("c/step_1.pt: cannot write (")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["c"]  # no target, no temp file


# ------------------------------------------------------------------------------------ umask and leftovers


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_files_are_written_with_the_users_umask(tmp_path: Path, umask: int, mode: int) -> None:
    from core.audio import save_audio

    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "config.json", "{}")
        save_audio(tmp_path / "x.wav", np.zeros(100, np.float32), SR)
    finally:
        os.umask(old)
    assert (tmp_path / "config.json").stat().st_mode & 0o777 == mode
    assert (tmp_path / "x.wav").stat().st_mode & 0o777 == mode


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temp_files_are_removed_live_ones_kept(tmp_path: Path) -> None:
    dead = tmp_path / f".tmp-chunk.p{_dead_pid()}.ab12cd34.wav"
    mine = tmp_path / f".tmp-chunk.p{os.getpid()}.ab12cd34.wav"  # another thread's write in progress
    old_style = tmp_path / ".tmp-chunk.k2j3h4.wav"
    fresh_old_style = tmp_path / ".tmp-other.zzz.wav"
    for p in (dead, mine, old_style, fresh_old_style):
        p.write_bytes(b"half")
    hour_ago = time.time() - 7200
    os.utime(old_style, (hour_ago, hour_ago))
    assert remove_stale_temp_files(tmp_path, user_folder=True) == 1  # another program's ".tmp-" names are kept
    assert not dead.exists() and old_style.exists()
    assert remove_stale_temp_files(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, fresh_old_style.name])


def test_stale_scratch_folders_are_removed_recursively(tmp_path: Path) -> None:
    dead_pid = _dead_pid()
    song = tmp_path / "0123abcd" / "model"
    song.mkdir(parents=True)
    killed = song / f".work-p{dead_pid}-xyz"
    live = song / f".work-p{os.getpid()}-abc"
    tricky = song / f".tmp-take.p{dead_pid}.p{os.getpid()}.0badf00d.wav"  # the writer is the last .p<pid>: alive
    for d in (killed, live):
        d.mkdir()
        (d / "input.wav").write_bytes(b"x")
    tricky.write_bytes(b"x")
    assert remove_stale_temp_files(tmp_path) == 0  # not recursive: nothing at the top level
    assert remove_stale_temp_files(tmp_path, recursive=True) == 1
    assert not killed.exists() and live.is_dir() and tricky.exists()


def test_temp_names_carry_the_writer_pid(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "x.json") as tmp:
        assert tmp.name.startswith(f".tmp-x.p{os.getpid()}.") and tmp.suffix == ".json"
        tmp.write_text("{}")


def test_dataset_run_cleans_leftovers_of_a_killed_run(tmp_logs: Path, tmp_path: Path) -> None:
    from core.dataset import build_dataset

    gt = tmp_logs / "voice" / "0_gt_wavs"
    gt.mkdir(parents=True)
    killed = gt / f".tmp-abc_000.p{_dead_pid()}.a1b2c3d4.wav"
    killed.write_bytes(b"RIFF half a chunk")
    build_dataset("voice", [_song(tmp_path / "a.wav")])
    assert not killed.exists() and list(gt.glob("*.wav"))


# ------------------------------------------------------------------------------------ output names


def test_convert_output_with_unknown_extension_is_refused(tmp_logs: Path, tmp_path: Path, capsys) -> None:
    (tmp_logs / "voice").mkdir()
    song = _song(tmp_path / "a.wav")
    out = tmp_path / "o.xyz"
    assert cli_main(["convert", "--exp", "voice", "--input", str(song), "--output", str(out)]) == 1
    assert "unknown output format '.xyz'" in _error_line(capsys)
    assert not out.exists()
    _song(tmp_path / "b.wav")
    assert cli_main(["convert", "--exp", "voice", "--input", str(tmp_path), "--output", str(tmp_path / "x.wav")]) == 1
    assert "need an output folder" in _error_line(capsys) and not (tmp_path / "x.wav").exists()


# ------------------------------------------------------------------------------------ extract and index stages


def _extracted(tmp_logs: Path):
    """A two-chunk experiment (the dataset stage's own output) with the extract stage's counting fakes."""
    from core.dataset import build_dataset
    from core.experiment import Experiment
    from tests.standin_features import Fakes

    exp = Experiment.open("voice")
    build_dataset("voice", [_song(tmp_logs.parent / "a.wav", 9.0), _song(tmp_logs.parent / "b.wav", 8.0, seed=4)])
    return exp, Fakes


def test_extract_disk_full_is_one_line_and_next_run_cleans_up(tmp_logs: Path, monkeypatch) -> None:
    from core.features.extract import ExtractConfig, run_extract
    from core.features.store import list_feature_chunks

    exp, Fakes = _extracted(tmp_logs)
    real = np.savez
    calls = {"n": 0}

    def full_disk(file, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            with open(file, "wb") as f:
                f.write(b"PK\x03\x04 half")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(file, *args, **kwargs)

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(WriteError, match=r"\.npz: cannot write \(disk full\)$") as err:
        run_extract("voice", ExtractConfig(), extractors=Fakes().extractors())
    assert str(exp.features) in str(err.value)
    assert not _leftovers(exp.root)
    monkeypatch.setattr(np, "savez", real)
    killed = exp.features / f".tmp-content.p{_dead_pid()}.00ff00ff.npz"  # a run killed mid-write
    killed.write_bytes(b"PK\x03\x04 half")
    run_extract("voice", ExtractConfig(), extractors=Fakes().extractors())
    assert not killed.exists() and len(list_feature_chunks("voice")) == 2


def test_index_write_failure_is_one_line(tmp_logs: Path, monkeypatch) -> None:
    import shutil

    import faiss

    from core.features.extract import ExtractConfig, run_extract
    from core.index import build_index

    exp, Fakes = _extracted(tmp_logs)
    run_extract("voice", ExtractConfig(), extractors=Fakes().extractors())

    def failing_write(index, path):
        Path(path).write_bytes(b"IxF2 half")
        raise RuntimeError("Error in faiss::FileIOWriter: 'ret == (n)' failed: write error in /x/index.faiss: 0 != 1")

    monkeypatch.setattr(faiss, "write_index", failing_write)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9, 0))
    with pytest.raises(WriteError, match=r"index/units\.index: cannot write \(disk full\)$"):
        build_index("voice")
    assert not _leftovers(exp.root)


def test_cover_disk_full_is_one_line_and_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    from core.cover import make_cover

    vocals, inst = _song(tmp_path / "v.wav", 3.0), _song(tmp_path / "i.wav", 3.0, seed=2)
    out_dir = tmp_path / "covers"
    out_dir.mkdir()
    monkeypatch.setattr(sf, "write", _partial_then(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(WriteError) as err:
        make_cover(out_dir / "cover.wav", lambda p: p, vocals=vocals, instrumental=inst)
    assert str(err.value) == f"{out_dir / 'cover.wav'}: cannot write (disk full)"
    assert list(out_dir.iterdir()) == []

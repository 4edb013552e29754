"""Write docs/configuration.md from the code: every key of every stage's config dataclass with its default,
its command-line flag, its web-UI control and its scope (what changing it affects).

    python docs/gen_configuration.py           # rewrite docs/configuration.md
    python docs/gen_configuration.py --check   # exit 1, naming the stale lines, when the file is out of date

The default and CLI-flag columns come from the code: the dataclass defaults, and each stage's argparse parser
built through ``core.cli``'s stage table (so it keeps working wherever a stage's CLI module lives). The UI and
scope columns are written by hand below. ``tests/test_docs_defaults.py`` runs the check, compares every CLI
flag's default with the dataclass field it fills, and checks the defaults README.md and docs/*.md state.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import enum
import importlib
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "configuration.md"

# Scopes: what changing a key affects (the legend of the "scope" column).
DATASET, FEATURES, VOICING, RUN = "re-slices", "re-extracts", "F0 code", "this run"
TRAINING, NETWORK, INFERENCE = "training run", "retrain", "inference"
SEPARATION, REMIX, FIXED = "re-separates", "remix", "fixed"
SCOPES: dict[str, str] = {
    DATASET: "part of each chunk's name: the files are sliced again, and then re-extracted",
    FEATURES: "part of the feature cache key: that feature group is computed again",
    VOICING: "changes the F0 features but is not in the cache key: bump the F0 group's version to re-extract",
    RUN: "only how this run works (device), not its results",
    TRAINING: "the next training run or resume; the dataset and features are reused",
    NETWORK: "the network's shape or input: a model trained with another value does not fit",
    INFERENCE: "the next conversion only; no retraining",
    SEPARATION: "part of the stems cache key: the song is separated again",
    REMIX: "the remix only: the stems and the converted vocal are reused",
    FIXED: "the audio spec: features, models and the vocoder all depend on it",
}


@dataclass(frozen=True)
class Section:
    """One table: a config dataclass, a heading, a sentence, and per key (UI control, scope, meaning)."""

    cls: str  # class name, found anywhere under core/
    title: str
    intro: str  # "{Class.field}" is replaced by that field's default
    keys: dict[str, tuple[str, str, str]]


NO_UI = "—"
SECTIONS: list[Section] = [
    Section(
        "DatasetConfig",
        "Dataset",
        "The Dataset stage (`python -m core dataset`, Dataset tab); saved under `\"dataset\"` in "
        "`logs/<exp>/config.json`. Every key is part of each chunk's name: changing one re-slices the files.",
        {
            "slicing": (NO_UI, DATASET, "the silence slicer's settings (next table)"),
            "highpass_hz": ("Dataset › High-pass cutoff (Hz, 0 = off)", DATASET, "zero-phase high-pass cutoff (Hz); 0 = off"),
            "highpass_order": (NO_UI, DATASET, "order of the zero-phase Butterworth high-pass"),
            "normalize": ("Dataset › Level normalisation", DATASET, "`loudness`, `peak` or `none`"),
            "target_rms_db": (NO_UI, DATASET, "RMS target of `loudness` mode (dBFS)"),
            "peak_limit": (NO_UI, DATASET, "no sample above this after normalising"),
            "max_gain_db": (NO_UI, DATASET, "`loudness` mode never raises a chunk by more than this"),
        },
    ),
    Section(
        "SliceSettings",
        "Dataset: silence slicing",
        "`DatasetConfig.slicing`: where the recordings are cut (RMS of 40 ms windows every 10 ms).",
        {
            "threshold_db": ("Dataset › Silence threshold (dB RMS)", DATASET, "RMS (dBFS) below which a window is silent"),
            "min_length_ms": ("Dataset › Shortest slice (ms)", DATASET, "no slice shorter than this"),
            "min_interval_ms": ("Dataset › Shortest pause to cut at (ms)", DATASET, "shorter pauses stay inside a chunk"),
            "max_sil_kept_ms": ("Dataset › Silence kept at a cut (ms)", DATASET, "longer pauses are shortened to this"),
            "min_chunk_s": ("Dataset › Shortest chunk (s)", DATASET, "shorter bits are joined or dropped"),
            "max_chunk_s": ("Dataset › Longest chunk (s)", DATASET, "longer stretches are split"),
            "overlap_s": (NO_UI, DATASET, "overlap between the parts of a split stretch"),
        },
    ),
    Section(
        "ExtractConfig",
        "Extract",
        "The Extract stage (`python -m core extract`, Extract tab; `python -m core train --prepare` and the Train "
        "tab extract with it too). Recorded under `\"extract\"` in `logs/<exp>/config.json`.",
        {
            "f0_method": ("Extract › F0 method; Train › More › F0 method (extraction)",
                          FEATURES, "pitch estimator of the F0 features; convert uses the model's own unless `--f0`"),
            "encoder": ("Extract › Content encoder",
                        FEATURES, "content encoder; it fixes the model's input width (another one needs retraining)"),
            "device": ("Extract › Device; Train › More › Device", RUN, "where the networks run"),
        },
    ),
    Section(
        "VoicingSettings",
        "Extract: F0 voicing decision",
        "Thresholds of the `voicing=\"auto\"` decision of RMVPE and FCPE (`DEFAULT_SETTINGS` per method, today "
        "the same for both). Not settable from the CLI or the UI; not in the feature cache key, so a change "
        "needs a bump of the F0 group's version to re-extract.",
        {
            "strong_confidence": (NO_UI, VOICING, "confidence that alone makes a frame voiced"),
            "weak_confidence": (NO_UI, VOICING, "confidence that makes a frame voiced with level and periodicity"),
            "strong_level_db": (NO_UI, VOICING, "level (dB, relative to the local reference) of a loud frame"),
            "weak_level_db": (NO_UI, VOICING, "lowest relative level of a voiced frame"),
            "floor_db": (NO_UI, VOICING, "frames below this absolute level (dBFS) are never voiced"),
            "strong_periodicity": (NO_UI, VOICING, "clearly periodic"),
            "weak_periodicity": (NO_UI, VOICING, "lowest periodicity of a voiced frame"),
            "periodic_confidence": (NO_UI, VOICING, "confidence enough for a loud, clearly periodic frame"),
            "clear_periodicity": (NO_UI, VOICING, "periodicity that counts as clearly periodic"),
            "reference_seconds": (NO_UI, VOICING, "window of the local reference level"),
            "max_gap_frames": (NO_UI, VOICING, "unvoiced gaps this short inside a note are filled"),
            "min_voiced_frames": (NO_UI, VOICING, "shorter voiced runs become unvoiced"),
        },
    ),
    Section(
        "TrainConfig",
        "Train",
        "The Train stage (`python -m core train`, Train tab). A resume (the same command again) continues from the "
        "newest checkpoint: `model` and `base` are then ignored, the others apply to the rest of the run.",
        {
            "model": ("Train › Network (from scratch)",
                      NETWORK, "the architecture preset when there is no base: `default` (the public base's size, see "
                      "[Network](#network-decoder-presets)) or `tiny` (for tests and CPUs)"),
            "base": ("Train › Base model", NETWORK, "a Diffusion-SVC model or checkpoint to fine-tune; `pretrained` = the "
                     "downloaded base (the Train tab offers it once downloaded; its `none` = `None`, from scratch)"),
            "steps": ("Train › Train until step", TRAINING, "stop at this optimizer step"),
            "save_every": ("Train › Save every", TRAINING, "validate and checkpoint every this many steps"),
            "log_every": (NO_UI, TRAINING, "a metrics line every this many steps"),
            "batch_size": ("Train › Batch size", TRAINING, "crops per step per process; `auto` probes the GPU"),
            "grad_accum": (NO_UI, TRAINING, "micro-batches per optimizer step"),
            "crop_frames": (NO_UI, TRAINING, "frames per training crop (86 frames ≈ 1 s)"),
            "lr": (NO_UI, TRAINING, "peak learning rate"),
            "weight_decay": (NO_UI, TRAINING, "AdamW weight decay"),
            "warmup_steps": (NO_UI, TRAINING, "linear learning-rate warm-up"),
            "lr_half_life": (NO_UI, TRAINING, "the learning rate halves every this many steps"),
            "grad_clip": (NO_UI, TRAINING, "gradient-norm clip"),
            "precision": (NO_UI, TRAINING, "`auto` = bf16/fp16 on CUDA, fp32 on CPU"),
            "grad_checkpointing": ("Train › More › Gradient checkpointing", TRAINING, "less GPU memory, ~30% slower"),
            "val_chunks": (NO_UI, TRAINING, "held-out chunks for validation"),
            "val_max_frames": (NO_UI, TRAINING, "frames per validation crop"),
            "max_bad_steps": (NO_UI, TRAINING, "consecutive NaN/inf losses before the run stops"),
            "seed": (NO_UI, TRAINING, "random seed"),
            "device": ("Train › More › Device", TRAINING, "compute device"),
            "threads": (NO_UI, TRAINING, "CPU threads for torch (0 = torch's choice)"),
        },
    ),
    Section(
        "ConvertConfig",
        "Convert",
        "One conversion (`python -m core convert`, Convert › Vocal); the cover's voice conversion uses the same "
        "config (`python -m core cover`, Convert › Song → cover). Nothing here needs retraining.",
        {
            "key": ("Convert › Vocal › Key (semitones); Convert › Vocal › auto key; "
                    "Convert › Song → cover › Key (semitones, applied to vocal and music)",
                    INFERENCE, "semitones; `None` (CLI `auto`) moves the input into the model's range"),
            "sampler": ("Convert › Vocal › Sampler", INFERENCE, "diffusion sampler"),
            "steps": ("Convert › Vocal › Steps; Convert › Song → cover › Sampler steps", INFERENCE, "sampler steps"),
            "index_rate": ("Convert › Vocal › Retrieval index rate", INFERENCE, "retrieval blend 0..1 (needs the index)"),
            "protect": ("Convert › Vocal › Protect breaths/consonants",
                        INFERENCE, "share of the blend undone in unvoiced frames (0 = off)"),
            "f0_method": (NO_UI, INFERENCE, "`None` = the method the model was trained with"),
            "device": (NO_UI, INFERENCE, "compute device"),
            "ckpt": ("Convert › Vocal › Checkpoint; Convert › Song → cover › Checkpoint",
                     INFERENCE, "`best`, `latest`, a file name or a path"),
            "format": ("Convert › Vocal › Output format", INFERENCE, "format of folder outputs"),
            "seed": (NO_UI, INFERENCE, "same seed, same output"),
            "loudness_match": ("Convert › Vocal › Follow the input's loudness",
                               INFERENCE, "how far the output follows the input's RMS envelope"),
            "piece_seconds": (NO_UI, INFERENCE, "piece length of long inputs; `None` = from the free memory"),
        },
    ),
    Section(
        "CoverSettings",
        "Cover",
        "Everything of a cover but the voice (`python -m core cover`, Convert › Song → cover). The cover's file "
        "format comes from the `--output` name (CLI) or the tab's Cover format ({CoverRequest.format}).",
        {
            "separation": (NO_UI, SEPARATION, "the separation settings (next table)"),
            "mix": (NO_UI, REMIX, "the remix settings (table after next)"),
            "backing": ("Convert › Song → cover › Backing vocals", SEPARATION,
                        "`None` (the UI's `no split`) = no lead/backing split, else `convert`, `keep` or `drop`"),
        },
    ),
    Section(
        "SeparationSettings",
        "Cover: separation",
        "`CoverSettings.separation`. `auto` models resolve to a Roformer with a CUDA GPU and MDX-Net on a CPU.",
        {
            "model": ("Convert › Song → cover › Separation model", SEPARATION, "vocal model, `preset:<id>` or `auto`"),
            "split_backing": (NO_UI, SEPARATION, "set together with `CoverSettings.backing`"),
            "karaoke_model": ("Convert › Song → cover › Karaoke model", SEPARATION, "lead/backing model"),
            "dereverb": ("Convert › Song → cover › Remove reverb/echo", SEPARATION, "de-reverb the lead before conversion"),
            "dereverb_model": ("Convert › Song → cover › De-reverb model", SEPARATION, "de-reverb model"),
            "chunk_seconds": (NO_UI, SEPARATION, "separation window (bounds memory)"),
            "overlap_seconds": (NO_UI, SEPARATION, "overlap of the windows"),
            "segment_frames": ("Convert › Song → cover › Lower GPU memory", SEPARATION,
                               "Roformer: STFT frames per segment, `None` = the model's own; the UI box and "
                               "`--low-memory` set `LOW_MEMORY_SEGMENT_FRAMES`"),
            "segment_overlap": (NO_UI, SEPARATION, "Roformer: segments overlapping at each sample"),
        },
    ),
    Section(
        "MixSettings",
        "Cover: remix",
        "`CoverSettings.mix`: how the stems are combined (gains in dB, on top of loudness matching).",
        {
            "key": ("Convert › Song → cover › Key (semitones, applied to vocal and music)", REMIX,
                    "semitones for the instrumental and kept backing vocals"),
            "vocal_gain_db": ("Convert › Song → cover › Vocal gain (dB)", REMIX, ""),
            "instrumental_gain_db": ("Convert › Song → cover › Instrumental gain (dB)", REMIX, ""),
            "backing_gain_db": ("Convert › Song → cover › Backing gain (dB)", REMIX, ""),
            "match_loudness": (NO_UI, REMIX, "the converted lead matches the original lead's loudness"),
            "limiter_threshold_db": (NO_UI, REMIX, "true-peak level (dBTP) the limiter holds the mix to"),
            "ceiling_db": (NO_UI, REMIX, "the cover's true peak (dBTP) never exceeds this"),
        },
    ),
    Section(
        "DecoderConfig",
        "Network (decoder presets)",
        "The diffusion decoder's shape: the defaults are the `default` preset (the public Diffusion-SVC base); "
        "`tiny` (`core.model.config.PRESETS`) is a small one for tests and CPUs. Chosen with `TrainConfig.model` "
        "(training from scratch), otherwise read from the base or checkpoint.",
        {
            "units_dim": (NO_UI, NETWORK, "content feature width (set from the encoder)"),
            "n_hidden": (NO_UI, NETWORK, "conditioning width"),
            "n_chans": (NO_UI, NETWORK, "WaveNet residual channels"),
            "n_layers": (NO_UI, NETWORK, "WaveNet residual layers"),
            "n_spk": (NO_UI, NETWORK, "speaker embedding rows (an embedding only when > 1)"),
            "use_pitch_aug": (NO_UI, NETWORK, "key shift fed as conditioning"),
            "n_mels": (NO_UI, NETWORK, "mel bins (the audio spec's)"),
            "timesteps": (NO_UI, NETWORK, "diffusion steps of the schedule"),
            "k_step_max": (NO_UI, NETWORK, "shallow models train only t < k_step_max"),
            "spec_min": (NO_UI, NETWORK, "lower end of the mel normalisation range"),
            "spec_max": (NO_UI, NETWORK, "upper end of the mel normalisation range"),
        },
    ),
    Section(
        "AudioSpec",
        "Audio spec (`AUDIO`)",
        "`core.config.AUDIO`: the one audio spec every stage reads (the vocoder's and the pretrained bases'). "
        "Changing any of it invalidates features, models and the vocoder.",
        {
            "sample_rate": (NO_UI, FIXED, "Hz of chunks, mels and outputs"),
            "n_fft": (NO_UI, FIXED, "STFT size of the mel"),
            "win_length": (NO_UI, FIXED, "STFT window"),
            "hop_length": (NO_UI, FIXED, "samples per frame (~86 frames/s)"),
            "n_mels": (NO_UI, FIXED, "mel bins"),
            "fmin": (NO_UI, FIXED, "lowest mel frequency (Hz)"),
            "fmax": (NO_UI, FIXED, "highest mel frequency (Hz)"),
            "log_clamp": (NO_UI, FIXED, "floor before the log of the mel"),
            "content_sample_rate": (NO_UI, FIXED, "the content encoder's input rate"),
            "content_hop": (NO_UI, FIXED, "content encoder samples per frame (50 frames/s)"),
        },
    ),
]

# The config classes each stage's flags fill, searched in this order for a field named like the flag's dest.
STAGE_CONFIGS: dict[str, tuple[str, ...]] = {
    "dataset": ("SliceSettings", "DatasetConfig"),
    "extract": ("ExtractConfig",),
    "train": ("TrainConfig", "ExtractConfig"),
    "convert": ("ConvertConfig",),
    "cover": ("ConvertConfig", "SeparationSettings", "MixSettings", "CoverSettings"),
}
# Flags whose dest is not their field's name, or that fill several fields ("!" = the flag is the opposite).
FLAG_TARGETS: dict[tuple[str, str], tuple[str, ...]] = {
    ("extract", "f0"): ("ExtractConfig.f0_method",),
    ("train", "config"): ("TrainConfig.model",),
    ("train", "device"): ("TrainConfig.device", "ExtractConfig.device"),
    ("train", "f0"): ("ExtractConfig.f0_method",),
    ("cover", "key"): ("ConvertConfig.key", "MixSettings.key"),
    ("cover", "separator"): ("SeparationSettings.model",),
    ("cover", "vocal_gain"): ("MixSettings.vocal_gain_db",),
    ("cover", "instrumental_gain"): ("MixSettings.instrumental_gain_db",),
    ("cover", "backing_gain"): ("MixSettings.backing_gain_db",),
    ("cover", "no_loudness_match"): ("!MixSettings.match_loudness",),
}
# Flags of those stages that fill no config key: what to work on, where to write, one-off switches.
NOT_CONFIG: dict[str, set[str]] = {
    "dataset": {"inputs", "exp", "json"},
    "extract": {"exp"},
    "train": {"exp", "prepare", "source"},
    "convert": {"exp", "input", "output"},
    "cover": {"input", "vocals", "instrumental", "exp", "output", "low_memory"},
}


@dataclass(frozen=True)
class Target:
    cls: str
    field: str
    negated: bool = False

    def __str__(self) -> str:
        return f"{self.cls}.{self.field}"


@dataclass(frozen=True)
class Flag:
    stage: str  # "train", "voice export"
    option: str  # "--steps", or the dest of a positional argument
    dest: str
    default: Any
    help: str
    targets: tuple[Target, ...]
    required: bool = False
    choices: tuple[Any, ...] = ()


REQUIRED = object()  # a field without a default


def plain(value: Any) -> Any:
    """Enum members as their values (StrEnum or str+Enum alike)."""
    return value.value if isinstance(value, enum.Enum) else value


def _importable() -> None:
    """Make ``core`` importable when this file runs as a script."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


@cache
def class_homes() -> dict[str, list[str]]:
    """Modules defining each top-level class under core/ (read with ast: classes may move between modules)."""
    homes: dict[str, list[str]] = {}
    for path in sorted((ROOT / "core").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef):
                homes.setdefault(node.name, []).append(".".join(parts))
    return homes


def config_class(name: str) -> type:
    """The class ``name``, from the one module under core/ that defines it."""
    homes = class_homes().get(name, [])
    if len(homes) != 1:
        raise LookupError(f"config class {name} is defined in {len(homes)} modules under core/: {homes}")
    _importable()
    return getattr(importlib.import_module(homes[0]), name)


def field_defaults(name: str) -> dict[str, Any]:
    """Each field of dataclass ``name`` and its default (``REQUIRED`` when it has none)."""
    out = {}
    for f in dataclasses.fields(config_class(name)):
        if f.default is not dataclasses.MISSING:
            out[f.name] = plain(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
        else:
            out[f.name] = REQUIRED
    return out


def _parse_target(text: str) -> Target:
    cls, field = text.lstrip("!").split(".")
    return Target(cls, field, text.startswith("!"))


def _targets(stage: str, dest: str) -> tuple[Target, ...]:
    if (stage, dest) in FLAG_TARGETS:
        return tuple(_parse_target(t) for t in FLAG_TARGETS[(stage, dest)])
    for cls in STAGE_CONFIGS.get(stage, ()):
        if dest in field_defaults(cls):
            return (Target(cls, dest),)
    return ()


def _help_text(action: argparse.Action) -> str:
    text = action.help or ""
    try:
        text = text % {**vars(action), "prog": "python -m core"}
    except (KeyError, TypeError, ValueError):
        pass
    return " ".join(text.split())


def _collect(parser: argparse.ArgumentParser, stage: str, out: list[Flag]) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                _collect(sub, f"{stage} {name}", out)
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            option = max(action.option_strings, key=len) if action.option_strings else action.dest
            out.append(Flag(stage, option, action.dest, plain(action.default), _help_text(action),
                            _targets(stage.split()[0], action.dest), action.required and action.nargs != "*",
                            tuple(plain(c) for c in action.choices or ())))  # fmt: skip


@cache
def cli_flags() -> tuple[Flag, ...]:
    """Every flag of every stage, read from the parsers ``core.cli`` builds (so from wherever they live)."""
    _importable()
    from core.cli import STAGES, build_parser

    flags: list[Flag] = []
    for stage in STAGES:
        top = build_parser(stage)
        sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
        _collect(sub.choices[stage], stage, flags)
    return tuple(flags)


def unclassified_flags() -> list[str]:
    """Flags of a config stage that neither fill a known field nor are listed in NOT_CONFIG."""
    return [
        f"{f.stage} {f.option}"
        for f in cli_flags()
        if f.stage in STAGE_CONFIGS and not f.targets and f.dest not in NOT_CONFIG[f.stage]
    ]


def same_default(flag_default: Any, field_default: Any, negated: bool = False) -> bool:
    """Whether a flag's default gives the field's default (a string default is parsed by the stage)."""
    if negated:
        return isinstance(flag_default, bool) and flag_default == (not field_default)
    if flag_default == field_default and type(flag_default) is type(field_default):
        return True
    if isinstance(flag_default, (int, float)) and isinstance(field_default, (int, float)):
        return not isinstance(flag_default, bool) and not isinstance(field_default, bool) and flag_default == field_default
    return isinstance(flag_default, str) and flag_default == str(field_default)


def flag_mismatches() -> list[str]:
    """Each CLI flag whose default does not give the dataclass default of the field it fills."""
    out = []
    for flag in cli_flags():
        for target in flag.targets:
            defaults = field_defaults(target.cls)
            if target.field not in defaults:
                out.append(f"{flag.stage} {flag.option}: fills {target}, which does not exist")
            elif not same_default(flag.default, defaults[target.field], target.negated):
                out.append(f"{flag.stage} {flag.option}: default {flag.default!r} but {target} = "
                           f"{defaults[target.field]!r}" + (" (the flag negates it)" if target.negated else ""))
    return out


def show(value: Any) -> str:
    """A default as the table shows it."""
    if value is REQUIRED:
        return "(required)"
    if dataclasses.is_dataclass(value):
        return f"`{type(value).__name__}()`"
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    return f"`{value!r}`"


def anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")


def _flags_of(cls: str, field: str) -> str:
    found = [f"`{f.stage} {f.option}`" for f in cli_flags() for t in f.targets if (t.cls, t.field) == (cls, field)]
    return ", ".join(found) or "—"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Every setting of every stage: its default, its command-line flag (`python -m core <stage> <flag>`), its",
        "control in the web UI (tab › control) and its scope: what changing it affects (re-slicing, re-extracting,",
        "retraining, or only the next conversion).",
        "",
        "Generated from the code by `python docs/gen_configuration.py` (the defaults from the config dataclasses,",
        "the flags from the stages' parsers; the UI and scope text are written in that script). Do not edit this",
        "file by hand: `tests/test_docs_defaults.py` fails when it is out of date, when a flag's default differs",
        "from its field's, and when README.md or docs/ state a default the code does not have.",
        "",
        "| table | class |",
        "|---|---|",
        *[f"| [{s.title}](#{anchor(s.title)}) | `{s.cls}` |" for s in SECTIONS],
        "| [Other command-line options](#other-command-line-options) | — |",
        "",
        "Scopes:",
        "",
        *[f"- **{scope}**: {text}" for scope, text in SCOPES.items()],
        "",
    ]
    for section in SECTIONS:
        defaults = field_defaults(section.cls)
        intro = re.sub(r"\{(\w+)\.(\w+)\}", lambda m: show(field_defaults(m[1])[m[2]]), section.intro)
        lines += [f"## {section.title}", "", f"`{section.cls}`. {intro}", "",
                  "| key | default | CLI flag | UI | scope | meaning |", "|---|---|---|---|---|---|"]  # fmt: skip
        for name, value in defaults.items():
            ui, scope, meaning = section.keys.get(name, ("?", "?", "?"))
            lines.append(f"| `{name}` | {show(value)} | {_flags_of(section.cls, name)} | {_cell(ui)} | {scope} | "
                         f"{_cell(meaning)} |")  # fmt: skip
        lines.append("")
    lines += [
        "## Other command-line options",
        "",
        "Flags that fill no config key: what to work on, where to write, and the stages without a config class.",
        "",
        "| stage | flag | default | meaning |",
        "|---|---|---|---|",
    ]
    for flag in cli_flags():
        if not flag.targets:
            default = "(required)" if flag.required else show(flag.default)
            lines.append(f"| {flag.stage} | `{flag.option}` | {default} | {_cell(flag.help)} |")
    return "\n".join(lines) + "\n"


def stale_lines(current: str, expected: str) -> list[str]:
    """``docs/configuration.md:LINE: ...`` for each line that differs from what the code gives."""
    have, want = current.splitlines(), expected.splitlines()
    out = []
    for i in range(max(len(have), len(want))):
        a = have[i] if i < len(have) else "(missing)"
        b = want[i] if i < len(want) else "(nothing)"
        if a != b:
            out.append(f"docs/configuration.md:{i + 1}: is {a!r}, the code gives {b!r}")
    return out


def ui_labels() -> set[str]:
    """The ``label="..."`` texts of the web UI's controls (read from the source: building the UI is slow)."""
    labels = set()
    for path in sorted((ROOT / "webui").glob("*.py")):
        labels |= set(re.findall(r'\blabel="([^"]+)"', path.read_text(encoding="utf-8")))
    return labels


def unknown_ui_controls() -> list[str]:
    """UI column entries ("Tab › ... › label start") whose label no control of the web UI has."""
    labels = ui_labels()
    out = []
    for section in SECTIONS:
        for key, (ui, _scope, _meaning) in section.keys.items():
            for control in ([] if ui == NO_UI else ui.split("; ")):
                label = control.split(" › ")[-1]
                if not any(real.startswith(label) for real in labels):
                    out.append(f"{section.cls}.{key}: no UI control labelled {label!r}...")
    return out


def undocumented_keys() -> list[str]:
    """Fields without UI/scope text in SECTIONS, and SECTIONS entries that are no field (anymore)."""
    out = []
    for section in SECTIONS:
        fields = set(field_defaults(section.cls))
        out += [f"{section.cls}.{k}: no UI/scope text in docs/gen_configuration.py" for k in fields - set(section.keys)]
        out += [f"{section.cls}.{k}: described in docs/gen_configuration.py but not a field" for k in set(section.keys) - fields]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether docs/configuration.md is up to date")
    args = parser.parse_args(argv)
    problems = undocumented_keys() + unknown_ui_controls() + [f"unclassified flag: {f}" for f in unclassified_flags()]
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    expected = render()
    if args.check:
        stale = stale_lines(DOC.read_text(encoding="utf-8") if DOC.is_file() else "", expected)
        print("\n".join(stale[:20]) or "docs/configuration.md is up to date", file=sys.stderr if stale else sys.stdout)
        return 1 if stale else 0
    _importable()
    from core.fsutil import atomic_write_text

    atomic_write_text(DOC, expected)
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

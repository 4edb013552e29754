"""README.md and docs/ agree with the code on every default (issue 11).

1. docs/configuration.md is what ``docs/gen_configuration.py`` makes of the code today (defaults from the config
   dataclasses, flags from the stages' parsers), and every dataclass field has its UI/scope text there;
2. every CLI flag's default gives the default of the dataclass field it fills;
3. a default stated in README.md or docs/*.md for a known flag or key is the code's: "`--protect P`, default
   0.5", "(default: 0.5)", "defaults to `auto`", "`--chunk-seconds` (30 s)", a table with a "default" column,
   a usage line's ``[--steps 10]``, and "10 steps by default". Each disagreement is reported as file:line.

Fast and torch-free: the parsers are built through ``core.cli`` (the architecture test keeps them light).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import ROOT


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_configuration", ROOT / "docs" / "gen_configuration.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


gen = _load_generator()
STAGES = ("dataset", "extract", "index", "train", "convert", "cover", "download", "doctor", "voice")


# ------------------------------------------------------------------------------------------- what the code says
@dataclass(frozen=True)
class Known:
    """A flag or key: its default per stage (flags) or per config class (keys), and its choices."""

    defaults: dict[str, Any]  # stage or class name -> default
    choices: frozenset[Any]


def known_names() -> dict[str, Known]:
    """``--flag`` and ``key`` names with their defaults, read from the parsers and the dataclasses."""
    names: dict[str, Known] = {}
    for flag in gen.cli_flags():
        if flag.option.startswith("--"):
            old = names.get(flag.option, Known({}, frozenset()))
            names[flag.option] = Known({**old.defaults, flag.stage.split()[0]: flag.default},
                                       old.choices | frozenset(flag.choices))  # fmt: skip
    for section in gen.SECTIONS:
        for key, default in gen.field_defaults(section.cls).items():
            old = names.get(key, Known({}, frozenset()))
            names[key] = Known({**old.defaults, section.cls: default}, old.choices)
    return names


# ------------------------------------------------------------------------------------------- stated defaults
@dataclass(frozen=True)
class Claim:
    where: str  # file:line
    name: str  # "--steps" or "steps"
    value: str  # as written
    stage: str | None  # the stage the text is about, when it says


FLAG = r"--[a-z][a-z0-9-]*"
KEY = r"[a-z][a-z0-9_]*"
# `--flag`, `--flag P`, `key`; several joined by , / and / or
NAME = rf"`(?:{FLAG}(?: [A-Z][A-Za-z_]*)?|{KEY})`"
NAMES = rf"(?P<names>{NAME}(?:\s*(?:,|/|and|or)\s*{NAME})*)"
VALUE = r"(?P<value>`[^`]+`|[−+-]?[\w.+-]*\w\+*)"
# a name, up to 30 characters of other text (no backtick, so no other name), then "default X" / "defaults to X"
PHRASE = re.compile(rf"{NAMES}[^`\n]{{0,30}}?\bdefault(?:s)?(?:\s+(?:to|is))?:?\s+{VALUE}")
# [--steps 10]; not [--key K|auto] nor a placeholder [--out NAME.zip]
SYNOPSIS = re.compile(rf"\[(?P<name>{FLAG}) (?P<value>[^\]\s|A-Z.][^\]\s|]*)\]")
# `--chunk-seconds` (30 s): a number and at most a unit in parentheses right after the flag
FLAG_NUMBER = re.compile(rf"`(?P<name>{FLAG})` \((?P<value>[−-]?\d[\d.]*)(?: [A-Za-z]+)?\)")
NUMBER_KEY = re.compile(rf"(?P<value>\d[\d.]*) (?P<name>{KEY}) (?:by )?default\b")  # "10 steps by default"
STAGE_RUN = re.compile(rf"python -m core ({'|'.join(STAGES)})\b")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def stated_defaults(text: str, path: str) -> Iterator[Claim]:
    """Every default the Markdown ``text`` states for a flag or a key, with the stage it is about."""
    file_stage = Path(path).stem if Path(path).stem in STAGES else None
    default_column: int | None = None
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        where = f"{path}:{number}"
        run = STAGE_RUN.search(line)
        stage = run.group(1) if run else file_stage
        if line.lstrip().startswith("|"):
            cells = _cells(line)
            if any(c.lower() == "default" for c in cells):
                default_column = [c.lower() for c in cells].index("default")
            elif default_column is not None and len(cells) > default_column and not set(cells[0]) <= set("-: "):
                name = next((m.group(1) for c in cells if (m := re.fullmatch(rf"`({FLAG}|{KEY})(?: [A-Z]+)?`", c))), None)
                if name:
                    yield Claim(where, name, cells[default_column], stage)
        else:
            default_column = None
        # a sentence may wrap: read on into the next line, keeping the matches that start on this one
        wrapped = f"{line} {lines[number].strip()}" if number < len(lines) else line
        for m in (m for m in PHRASE.finditer(wrapped) if m.start() < len(line)):
            for name in re.findall(rf"`({FLAG}|{KEY})", m.group("names")):
                yield Claim(where, name, m.group("value"), stage)
        for m in SYNOPSIS.finditer(line):
            yield Claim(where, m.group("name"), m.group("value"), stage)
        for m in FLAG_NUMBER.finditer(line):
            yield Claim(where, m.group("name"), m.group("value"), stage)
        for m in NUMBER_KEY.finditer(line):
            yield Claim(where, m.group("name"), m.group("value"), stage)


# ------------------------------------------------------------------------------------------- comparing
WORDS = {"off": False, "false": False, "no": False, "on": True, "true": True, "yes": True, "none": None}


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def agrees(value: str, default: Any) -> bool | None:
    """Whether the stated ``value`` is ``default``; None when the text is prose, not a value."""
    text = value.strip("`'\"").replace("−", "-").rstrip(".,;:)")
    if (number := _number(text)) is not None:
        if isinstance(default, bool) or default is None:
            return False
        return _number(str(default)) == number
    if text.lower() in WORDS:
        word = WORDS[text.lower()]
        return default is word or (word is False and default is None) or (word is None and default is False)
    if value.startswith("`") or text == str(default):
        return text == str(default)
    return None


def disagreements(claims: list[Claim], names: dict[str, Known]) -> list[str]:
    out = []
    for claim in claims:
        known = names.get(claim.name)
        if known is None:
            continue
        candidates = known.defaults
        scoped = {k: v for k, v in candidates.items() if k == claim.stage or k in gen.STAGE_CONFIGS.get(claim.stage, ())}
        if claim.stage in gen.STAGE_CONFIGS and not scoped and not claim.name.startswith("--"):
            continue  # a key of another stage's config named in this stage's text: some other setting
        candidates = scoped or candidates
        results = [agrees(claim.value, d) for d in candidates.values()]
        if any(r is None for r in results):
            # prose, unless the words are one of the flag's choices or another stage's default
            plain_text = claim.value.strip("`")
            if plain_text not in known.choices and plain_text not in {str(d) for d in known.defaults.values()}:
                continue
            results = [plain_text == str(d) for d in candidates.values()]
        if not any(results):
            code = ", ".join(f"{k}: {d!r}" for k, d in candidates.items())
            out.append(f"{claim.where}: {claim.name} default stated as {claim.value!r}; the code says {code}")
    return out


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "configuration.md")]


def claims_in_docs() -> list[Claim]:
    return [
        claim
        for path in doc_files()
        for claim in stated_defaults(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix())
    ]


# ------------------------------------------------------------------------------------------- the tests
def test_configuration_reference_is_generated_from_todays_code() -> None:
    unclassified = [f"{f}: add it to NOT_CONFIG or FLAG_TARGETS in docs/gen_configuration.py"
                    for f in gen.unclassified_flags()]  # fmt: skip
    problems = gen.undocumented_keys() + gen.unknown_ui_controls() + unclassified
    assert not problems, "\n".join(problems)
    stale = gen.stale_lines(gen.DOC.read_text(encoding="utf-8"), gen.render())
    assert not stale, "run 'python docs/gen_configuration.py':\n" + "\n".join(stale[:20])


def test_every_cli_flag_default_is_its_dataclass_default() -> None:
    mapped = {flag.stage for flag in gen.cli_flags() if flag.targets}
    assert mapped == set(gen.STAGE_CONFIGS), f"stages whose flags fill no config key: {set(gen.STAGE_CONFIGS) - mapped}"
    assert not gen.flag_mismatches(), "\n".join(gen.flag_mismatches())


def test_readme_and_docs_state_the_code_defaults() -> None:
    claims = claims_in_docs()
    assert len(claims) >= 30, f"the matcher found only {len(claims)} stated defaults: is it still reading the docs?"
    problems = disagreements(claims, known_names())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("Use `--protect P`, default 0.4, to spare breaths.", "docs/convert.md"),
        ("`--steps` (default: 20) sets the sampler steps", "docs/convert.md"),
        ("python -m core convert --exp NAME [--steps 20]", "README.md"),
        ("| Convert: DPM-Solver++ 20 steps default | `python -m core convert --exp NAME` |", "README.md"),
        ("Samplers: DPM-Solver++, 20 steps by default.", "docs/vocoder-and-samplers.md"),
        ("`--separator`, `--karaoke-model` default to `roformer`", "docs/cover.md"),
        ("| flag | default |\n|---|---|\n| `--threshold-db` | −40 |", "docs/dataset.md"),
        ("`--sampler` (default pndm)", "docs/convert.md"),
        ("`--json` prints JSON (default on)", "docs/dataset.md"),
        ("separated in windows of `--chunk-seconds` (20 s) overlapping by 2 s", "docs/cover.md"),
        ("| key | default |\n|---|---|\n| `crop_frames` | 128 |", "docs/train.md"),
    ],
)
def test_the_checker_reports_a_wrong_default_with_its_line(text: str, path: str) -> None:
    problems = disagreements(list(stated_defaults(text, path)), known_names())
    assert len(problems) >= 1, f"not caught: {text!r}"
    assert problems[0].startswith(f"{path}:{text.count(chr(10)) + 1}: "), problems


@pytest.mark.parametrize(
    ("text", "path", "n_claims"),
    [
        ("Use `--protect P`, default 0.5, to spare breaths.", "docs/convert.md", 1),
        ("`--steps` (default: 10) sets the sampler steps", "docs/convert.md", 1),
        ("`--steps` (default: 20000): train until this step", "docs/train.md", 1),
        ("python -m core train --exp NAME [--steps 20000] [--lr 2e-4] [--key K|auto] [--f0 rmvpe]", "README.md", 3),
        ("| flag | default |\n|---|---|\n| `--threshold-db` | −42 |\n| `--json` | off |\n| `--exp` | (required) |",
         "docs/dataset.md", 3),
        ("`--f0` (default: the one the model was trained with)", "docs/convert.md", 1),
        ("`--separator`, `--karaoke-model`, `--dereverb-model` default to `auto` (Roformer with a CUDA GPU)",
         "docs/cover.md", 3),
        ("CPU (2 threads by default): a benchmark's setting, not TrainConfig.threads", "docs/extract.md", 1),
        ("separated in windows of `--chunk-seconds` (30 s) overlapping by 2 s", "docs/cover.md", 1),
    ],
)
def test_the_checker_accepts_the_code_defaults_and_prose(text: str, path: str, n_claims: int) -> None:
    claims = list(stated_defaults(text, path))
    assert len(claims) == n_claims, claims
    assert disagreements(claims, known_names()) == []


def test_a_stale_reference_names_its_line() -> None:
    good = gen.render()
    line = next(i for i, text in enumerate(good.splitlines(), 1) if text.startswith("| `steps` | `20000` |"))
    stale = gen.stale_lines(good.replace("| `steps` | `20000` |", "| `steps` | `2000` |"), good)
    assert len(stale) == 1 and stale[0].startswith(f"docs/configuration.md:{line}: "), stale


def test_flag_default_comparison() -> None:
    assert gen.same_default("32", 32)  # --batch-size is parsed by the stage ("auto" or an integer)
    assert gen.same_default(0.0, 0.0) and gen.same_default(4, 4.0)
    assert not gen.same_default(20, 10)
    assert not gen.same_default(False, 0)  # a switch never stands for a number
    assert gen.same_default(False, True, negated=True)  # --no-loudness-match off = match_loudness on
    assert not gen.same_default(False, False, negated=True)


def test_a_flag_default_that_differs_from_its_field_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    steps = next(f for f in gen.cli_flags() if f.stage == "convert" and f.option == "--steps")
    code = gen.field_defaults("ConvertConfig")["steps"]
    wrong = gen.Flag(steps.stage, steps.option, steps.dest, code + 1, steps.help, steps.targets)
    monkeypatch.setattr(gen, "cli_flags", lambda: (wrong,))
    assert gen.flag_mismatches() == [f"convert --steps: default {code + 1} but ConvertConfig.steps = {code}"]


def test_a_ui_control_that_does_not_exist_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    section = gen.Section("MixSettings", "Cover: remix", "", {"key": ("Convert › Song → cover › Pitch", gen.REMIX, "")})
    monkeypatch.setattr(gen, "SECTIONS", [section])
    assert gen.unknown_ui_controls() == ["MixSettings.key: no UI control labelled 'Pitch'..."]

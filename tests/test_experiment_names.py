"""Experiment names: Windows-reserved device names are refused on every OS, with a cleaned suggestion."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import InvalidNameError
from core.experiment import NAME_PATTERN, is_windows_reserved, suggest_name, validate_name

RESERVED = ["CON", "con", "Prn", "AUX", "nul", "NUL", "COM1", "com9", "LPT1", "lPt5"]


@pytest.mark.parametrize("name", RESERVED)
def test_windows_reserved_names_are_refused_with_a_suggestion(name: str) -> None:
    with pytest.raises(InvalidNameError, match="Windows reserves") as err:
        validate_name(name)
    suggestion = suggest_name(name)
    assert repr(suggestion) in str(err.value) and "\n" not in str(err.value)
    assert validate_name(suggestion) == suggestion


@pytest.mark.parametrize("name", ["nul.txt", "COM1.wav", "con.", "Aux.tar.gz"])
def test_reserved_with_an_extension(name: str) -> None:
    assert is_windows_reserved(name)
    with pytest.raises(InvalidNameError):
        validate_name(name)


@pytest.mark.parametrize("name", ["CONsole", "COM10", "LPT0", "nully", "my_CON", "com", "voice1"])
def test_similar_names_stay_valid(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("my voice", "my_voice"), ("CON", "CON_1"), ("nul", "nul_1"), ("../../etc/x", "x"), ("a  b!!c", "a_b_c"),
     ("Ünïcode", "Unicode"), ("", "voice"), ("***", "voice"), ("x" * 100, "x" * 64), ("dir\\sub\\take 2", "take_2")],
)  # fmt: skip
def test_suggest_name_gives_a_valid_close_name(raw: str, expected: str) -> None:
    got = suggest_name(raw)
    assert got == expected
    assert NAME_PATTERN.fullmatch(got) and validate_name(got) == got


def test_invalid_name_message_suggests_the_cleaned_form() -> None:
    with pytest.raises(InvalidNameError, match="try 'my_voice'"):
        validate_name("my voice")


def test_dataset_refuses_a_reserved_name_and_writes_nothing(tmp_logs: Path, tmp_path: Path) -> None:
    from core.dataset import build_dataset

    with pytest.raises(InvalidNameError, match="CON_1"):
        build_dataset("CON", [tmp_path])
    assert list(tmp_logs.iterdir()) == []

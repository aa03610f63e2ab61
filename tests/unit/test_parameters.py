"""Flat parameters and casting stored strings back to the code's types."""

from __future__ import annotations

import argparse
from types import SimpleNamespace
from typing import Any

import pytest

from clearq.errors import InvalidInput
from clearq.sdk import argparse_hook
from clearq.sdk.parameters import (
    apply_overrides,
    cast_like,
    flatten,
    object_fields,
    section_of,
    to_text,
)


def test_flatten_nested_dicts_and_lists() -> None:
    flat = flatten({"lr": 0.01, "model": {"layers": 3, "act": "relu"}, "sizes": [1, 2]}, "General")
    assert flat == {
        "General/lr": "0.01",
        "General/model/layers": "3",
        "General/model/act": "relu",
        "General/sizes": "[1, 2]",
    }
    assert section_of(flat, "General")["model/layers"] == "3"


def test_names_with_the_separator_are_refused() -> None:
    with pytest.raises(InvalidInput, match="rename"):
        flatten({"a/b": 1}, "General")


@pytest.mark.parametrize(
    ("text", "default", "expected"),
    [
        ("0.1", 0.01, 0.1),
        ("5", 3, 5),
        ("5.0", 3, 5),
        ("true", False, True),
        ("0", True, False),
        ("adam", "sgd", "adam"),
        ("[3, 4]", [1], [3, 4]),
        ("[3, 4]", (1,), (3, 4)),
        ('{"a": 1}', {}, {"a": 1}),
        ("None", None, None),
        ("7", None, 7),
    ],
)
def test_cast_like_the_default(text: str, default: Any, expected: Any) -> None:
    value = cast_like(text, default)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(("text", "default"), [("abc", 1), ("maybe", True), ("{", [1])])
def test_bad_override_says_which_parameter(text: str, default: Any) -> None:
    with pytest.raises(InvalidInput, match="General/x"):
        cast_like(text, default, name="General/x")


def test_round_trip_through_text() -> None:
    original = {"lr": 0.5, "epochs": 3, "flag": True, "name": "x", "dims": [1, 2], "opt": None}
    stored = flatten(original, "S")
    target = {k: v for k, v in original.items()}
    apply_overrides(target, stored, "S")
    assert target == original


def test_apply_overrides_nested_and_only_known_keys() -> None:
    target: dict[str, Any] = {"lr": 0.01, "model": {"layers": 3}}
    apply_overrides(
        target, {"General/lr": "0.2", "General/model/layers": "8", "General/x": "1"}, "General"
    )
    assert target == {"lr": 0.2, "model": {"layers": 8}}


def test_object_fields_skip_private_and_methods() -> None:
    class Config:
        lr = 0.1
        _hidden = 1

        def method(self) -> None: ...

    assert object_fields(Config) == {"lr": 0.1}
    assert object_fields(SimpleNamespace(a=1, _b=2)) == {"a": 1}
    assert to_text(3.5) == "3.5"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--name", default=None)
    return parser


def test_argparse_local_run_records_every_argument() -> None:
    recorded: dict[str, str] = {}
    argparse_hook.install(argparse_hook.ArgparseHook(overrides=None, record=recorded.update))
    try:
        args = _parser().parse_args(["--lr", "0.5"])
    finally:
        argparse_hook.uninstall()
    assert args.lr == 0.5
    assert recorded == {
        "Args/lr": "0.5",
        "Args/epochs": "2",
        "Args/fast": "False",
        "Args/name": "None",
    }


def test_argparse_under_agent_gets_overrides_cast() -> None:
    overrides = {"Args/lr": "0.25", "Args/epochs": "7", "Args/fast": "True", "Args/name": "run1"}
    argparse_hook.install(argparse_hook.ArgparseHook(overrides=overrides, record=lambda _: None))
    try:
        args = _parser().parse_args([])
    finally:
        argparse_hook.uninstall()
    assert (args.lr, args.epochs, args.fast, args.name) == (0.25, 7, True, "run1")
    assert argparse.ArgumentParser.parse_known_args is argparse_hook._original

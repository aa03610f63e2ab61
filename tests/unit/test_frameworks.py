"""auto_connect_frameworks: which captures a value turns on, and patches made on import."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest

from clearq.errors import InvalidInput
from clearq.sdk import frameworks


def test_true_turns_everything_on_and_a_dict_turns_single_ones_off() -> None:
    assert frameworks.chosen(True) == set(frameworks.CAPTURED)
    assert frameworks.chosen(False) == set()
    on = frameworks.chosen({"matplotlib": False, "xgboost": True, "pytorch": False})
    assert on == set(frameworks.CAPTURED) - {"matplotlib", "pytorch"}


def test_unknown_names_and_values_are_refused_with_the_known_ones() -> None:
    with pytest.raises(InvalidInput, match="unknown \\['matplotlb'\\]; known"):
        frameworks.chosen({"matplotlb": False})
    with pytest.raises(InvalidInput, match="a bool or a dict"):
        frameworks.chosen("yes")  # type: ignore[arg-type]


def test_a_module_is_patched_when_imported_and_at_once_if_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "clearq_lazy_probe.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen: list[ModuleType] = []
    frameworks.when_imported("clearq_lazy_probe", seen.append)
    assert seen == []
    assert "clearq_lazy_probe" not in sys.modules  # nothing imported for the hook
    import clearq_lazy_probe  # type: ignore[import-not-found]

    assert seen == [clearq_lazy_probe]
    frameworks.when_imported("clearq_lazy_probe", seen.append)
    assert seen == [clearq_lazy_probe, clearq_lazy_probe]
    monkeypatch.delitem(sys.modules, "clearq_lazy_probe")

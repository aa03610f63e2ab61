"""GPU allotment: a dynamic pool never hands one device to two tasks."""

from __future__ import annotations

import pytest

from clearq.cli.agent_checks import agent_gpus
from clearq.errors import InvalidInput
from clearq.runtime.gpu_metrics import GpuReader
from clearq.runtime.gpus import GpuPool, parse_gpus


def test_a_static_pool_gives_every_task_all_devices() -> None:
    pool = GpuPool(("0", "1"), dynamic=False)
    assert pool.take(1) == ("0", "1")
    assert pool.take(2) == ("0", "1")
    assert pool.claimable_queues({"a": 5, "b": 0}) == ["a", "b"]


def test_a_dynamic_pool_hands_out_distinct_devices_and_takes_them_back() -> None:
    pool = GpuPool(("0", "1", "2"), dynamic=True)
    first = pool.take(2)
    assert first == ("0", "1")
    assert pool.claimable_queues({"two": 2, "one": 1, "none": 0}) == ["one", "none"]
    assert pool.take(2) is None
    second = pool.take(1)
    assert second == ("2",)
    assert set(first) & set(second) == set()
    assert pool.free == ()
    pool.give_back(first)
    assert pool.free == ("0", "1")
    with pytest.raises(InvalidInput, match="not taken"):
        pool.give_back(("0",))


@pytest.mark.parametrize(
    ("text", "cpu_only", "expected"),
    [
        (None, False, None),
        ("0,1", False, ("0", "1")),
        (" 2 ", False, ("2",)),
        ("all", False, ("0", "1", "2")),
        (None, True, ()),
    ],
)
def test_parse_gpus(text: str | None, cpu_only: bool, expected: tuple[str, ...] | None) -> None:
    assert parse_gpus(text, cpu_only=cpu_only, detected=3) == expected


@pytest.mark.parametrize(("text", "cpu_only"), [("0,x", False), ("", False), ("0", True)])
def test_bad_gpu_flags_say_what_to_give(text: str, cpu_only: bool) -> None:
    with pytest.raises(InvalidInput):
        parse_gpus(text, cpu_only=cpu_only, detected=3)


@pytest.mark.parametrize("text", ["all", "0", "0,1"])
def test_gpus_on_a_machine_without_any_say_that_none_was_found(text: str) -> None:
    with pytest.raises(InvalidInput, match=r"no GPU was found on this machine \(no driver\)"):
        parse_gpus(text, cpu_only=False, detected=0, why="no driver")


def test_devices_the_machine_does_not_have_are_refused_by_number() -> None:
    with pytest.raises(InvalidInput, match="this machine has no GPU 2, 3 \\(it has 0,1\\)"):
        parse_gpus("1,2,3", cpu_only=False, detected=2)


def test_unchecked_devices_are_taken_as_named_but_all_needs_them_found() -> None:
    assert parse_gpus("4,5", cpu_only=False, detected=None) == ("4", "5")
    with pytest.raises(InvalidInput, match="name them"):
        parse_gpus("all", cpu_only=False, detected=None)


def test_the_agent_probes_the_machine_for_the_devices_it_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(GpuReader, "probe", staticmethod(lambda: (0, "no NVIDIA driver answers")))
    with pytest.raises(InvalidInput, match="no GPU was found"):
        agent_gpus("all", cpu_only=False, dynamic=True, unchecked=False)
    assert agent_gpus("0,1", cpu_only=False, dynamic=True, unchecked=True) == ("0", "1")
    monkeypatch.setattr(GpuReader, "probe", staticmethod(lambda: (2, "")))
    assert agent_gpus("all", cpu_only=False, dynamic=True, unchecked=False) == ("0", "1")
    with pytest.raises(InvalidInput, match="needs the devices to share"):
        agent_gpus(None, cpu_only=False, dynamic=True, unchecked=False)

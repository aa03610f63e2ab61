"""``@value_class`` behaves as a frozen dataclass does, without generating code."""

from __future__ import annotations

import copy
import pickle
from dataclasses import FrozenInstanceError
from typing import ClassVar

import pytest

from clearq.valueclass import fields, replace, value_class

pytestmark = pytest.mark.fast


@value_class
class Point:
    x: int
    y: int = 0
    label: str | None = None
    ORIGIN: ClassVar[str] = "origin"

    @property
    def norm(self) -> int:
        return abs(self.x) + abs(self.y)


def test_construction_by_position_keyword_and_default() -> None:
    assert Point(1, 2) == Point(x=1, y=2) == Point(1, y=2, label=None)
    assert Point(3).y == 0
    assert Point(3).label is None
    assert Point(1, 2).norm == 3
    assert Point.ORIGIN == "origin"


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), ((1, 2, "a", 4), {}), ((1,), {"x": 2}), ((1,), {"z": 2})],
)
def test_wrong_arguments_raise_type_error(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    with pytest.raises(TypeError):
        Point(*args, **kwargs)  # type: ignore[arg-type]


def test_equality_hash_and_repr_are_by_value() -> None:
    assert Point(1, 2) != Point(2, 1)
    assert Point(1, 2) != (1, 2)
    assert hash(Point(1, 2, "a")) == hash(Point(1, 2, "a"))
    assert len({Point(1), Point(1), Point(2)}) == 2
    assert repr(Point(1, label="a")) == "Point(x=1, y=0, label='a')"


def test_fields_cannot_be_assigned_or_deleted() -> None:
    p = Point(1)
    with pytest.raises(FrozenInstanceError):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del p.x  # type: ignore[misc]
    assert p.x == 1


def test_copies_and_pickles_are_equal() -> None:
    p = Point(1, 2, "a")
    assert copy.copy(p) == p == copy.deepcopy(p)
    assert pickle.loads(pickle.dumps(p)) == p


def test_pattern_matching_by_position() -> None:
    match Point(1, 2):
        case Point(1, y):
            assert y == 2
        case _:
            pytest.fail("no match")


def test_a_value_class_cannot_extend_another() -> None:
    with pytest.raises(TypeError, match="cannot extend"):

        @value_class
        class Point3(Point):  # type: ignore[misc]
            z: int = 0


@value_class
class Account:
    name: str
    token: str = ""

    def __repr__(self) -> str:
        return f"Account(name={self.name!r})"

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("an account needs a name")


def test_its_own_repr_is_kept_and_its_post_init_checks_every_copy() -> None:
    account = Account("a", token="secret")
    assert "secret" not in repr(account)
    assert fields(Account) == ("name", "token")
    assert replace(account, token="other") == Account("a", "other")
    with pytest.raises(ValueError, match="needs a name"):
        Account("")
    with pytest.raises(ValueError, match="needs a name"):
        replace(account, name="")

"""Hyper-parameter ranges and the grid and random strategies (no store, no agents)."""

from __future__ import annotations

import random

import pytest

from clearq.automation import (
    DiscreteParameterRange,
    GridSearch,
    LogUniformParameterRange,
    Objective,
    RandomSearch,
    UniformIntegerParameterRange,
    UniformParameterRange,
)
from clearq.automation.hpo import HyperParameterOptimizer
from clearq.automation.hpo_strategies import SearchContext, SearchStrategy
from clearq.automation.hpo_trials import Suggestion, search_name
from clearq.errors import InvalidInput
from clearq.models import ScalarSummary

X = DiscreteParameterRange("General/x", values=[1, 2, 3])
Y = UniformIntegerParameterRange("General/y", min_value=-1, max_value=0)
OBJECTIVE = Objective("loss", "total", "min")


def context(*ranges: object, seed: int | None = None) -> SearchContext:
    return SearchContext(tuple(ranges), OBJECTIVE, "search", "sqlite://", seed)  # type: ignore[arg-type]


def drain(strategy: SearchStrategy) -> list[Suggestion]:
    found = []
    while (s := strategy.suggest()) is not None:
        found.append(s)
    return found


def test_a_stepped_uniform_range_lists_round_values_up_to_its_max() -> None:
    r = UniformParameterRange("General/lr", min_value=0.1, max_value=0.5, step_size=0.1)
    assert [v["General/lr"] for v in r.to_list()] == [0.1, 0.2, 0.3, 0.4, 0.5]
    shy = UniformParameterRange("a/b", 0.0, 1.0, step_size=0.25, include_max_value=False)
    assert [v["a/b"] for v in shy.to_list()] == [0.0, 0.25, 0.5, 0.75]


def test_a_continuous_range_draws_within_bounds_but_cannot_be_a_grid() -> None:
    r = UniformParameterRange("General/lr", min_value=-2.0, max_value=3.0)
    rng = random.Random(0)
    assert all(-2.0 <= r.get_value(rng)["General/lr"] <= 3.0 for _ in range(200))
    assert r.size() is None
    with pytest.raises(InvalidInput, match="step_size"):
        r.to_list()


def test_integer_ranges_include_their_max_by_default() -> None:
    assert [v["n"] for v in UniformIntegerParameterRange("n", 2, 8, step_size=3).to_list()] == [
        2,
        5,
        8,
    ]
    shy = UniformIntegerParameterRange("n", 2, 4, include_max_value=False)
    assert [v["n"] for v in shy.to_list()] == [2, 3]


def test_log_uniform_bounds_are_exponents_and_draws_stay_within_them() -> None:
    r = LogUniformParameterRange("General/lr", min_value=-4, max_value=-1)
    assert (r.low, r.high) == pytest.approx((1e-4, 0.1))
    rng = random.Random(7)
    draws = [r.get_value(rng)["General/lr"] for _ in range(500)]
    assert all(1e-4 <= d <= 0.1 for d in draws)
    assert min(draws) < 1e-3
    assert max(draws) > 1e-2
    two = LogUniformParameterRange("b", min_value=1, max_value=3, base=2, step_size=1)
    assert [v["b"] for v in two.to_list()] == [2.0, 4.0, 8.0]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: UniformParameterRange("a/b", 2.0, 1.0), "not above max_value"),
        (lambda: UniformParameterRange("a/b", 0.0, 1.0, step_size=0), "step_size"),
        (lambda: DiscreteParameterRange("a/b", values=[]), "at least one value"),
        (lambda: LogUniformParameterRange("a/b", 0, 1, base=1), "base"),
        (lambda: DiscreteParameterRange("", values=[1]), "needs a name"),
    ],
)
def test_bad_ranges_say_what_is_wrong(make: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        make()  # type: ignore[operator]


def test_grid_search_enumerates_every_combination_once_then_stops() -> None:
    found = drain(GridSearch(context(X, Y)))
    assert [dict(s.parameters) for s in found] == [
        {"General/x": x, "General/y": y} for x in (1, 2, 3) for y in (-1, 0)
    ]
    assert [s.number for s in found] == list(range(6))


def test_random_search_with_a_seed_repeats_its_sequence_and_never_a_combination() -> None:
    first = [dict(s.parameters) for s in drain(RandomSearch(context(X, Y, seed=3)))]
    again = [dict(s.parameters) for s in drain(RandomSearch(context(X, Y, seed=3)))]
    other = [dict(s.parameters) for s in drain(RandomSearch(context(X, Y, seed=4)))]
    assert first == again
    assert first != other
    assert len(first) == 6  # the whole finite space, each combination once
    assert sorted(map(str, first)) == sorted(map(str, other))


def test_random_search_over_a_continuous_range_never_runs_dry() -> None:
    search = RandomSearch(context(UniformParameterRange("General/lr", 0.0, 1.0), seed=1))
    values = [search.suggest() for _ in range(50)]
    assert all(v is not None for v in values)


def test_the_objective_is_read_by_its_sign() -> None:
    row = ScalarSummary(title="loss", series="total", last=2.0, min=1.0, max=5.0, last_iteration=3)
    other = ScalarSummary(title="loss", series="val", last=0.0, min=0.0, max=0.0, last_iteration=3)
    assert Objective("loss", "total", "min").find([other, row]) is row
    values = {s: Objective("loss", "total", s).value(row) for s in ("min", "max")}
    assert values == {"min": 2.0, "max": 2.0}
    assert Objective("loss", "total", "min_global").value(row) == 1.0
    assert Objective("loss", "total", "max_global").value(row) == 5.0
    assert Objective("acc", "val", "max").rank(0.9) < Objective("acc", "val", "max").rank(0.5)
    with pytest.raises(InvalidInput, match="objective_metric_sign"):
        Objective("loss", "total", "lowest")


def test_a_search_name_is_stable_and_changes_with_its_arguments() -> None:
    name = search_name("t1", (X, Y), OBJECTIVE, GridSearch)
    assert name == search_name("t1", (X, Y), OBJECTIVE, GridSearch)
    assert name != search_name("t1", (X,), OBJECTIVE, GridSearch)
    assert name != search_name("t1", (X, Y), OBJECTIVE, RandomSearch)
    assert name.startswith("hpo-t1-")


@pytest.mark.parametrize(
    ("ranges", "kwargs", "message"),
    [
        ((), {}, "hyper_parameters is empty"),
        ((UniformParameterRange("a/b", 0.0, 1.0),), {}, "never end"),
        ((X,), {"max_number_of_concurrent_tasks": 0}, "at least 1"),
        ((X,), {"total_max_jobs": 0}, "at least 1"),
        ((X,), {"pool_period_sec": 0}, "positive"),
    ],
)
def test_an_optimizer_that_cannot_work_is_refused_before_it_touches_the_store(
    ranges: tuple[object, ...], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        HyperParameterOptimizer(
            "not-a-task",
            hyper_parameters=ranges,  # type: ignore[arg-type]
            objective_metric_title="loss",
            objective_metric_series="total",
            optimizer_class=RandomSearch,
            **kwargs,  # type: ignore[arg-type]
        )

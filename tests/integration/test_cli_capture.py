"""click and typer options connected as Args/..., as argparse's are: recorded by hand,
replaced by a clone's overrides under an agent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import typer

from clearq import Task
from clearq.config import Settings
from clearq.scheduler import Store
from clearq.sdk.frameworks import connect_frameworks
from clearq.sdk.records import StoreRecords
from clearq.sdk.roles import AgentRun
from tests.runs import start_run

SEEN: dict[str, object] = {}


@click.command()
@click.option("--lr", type=float, default=0.1)
@click.option("--epochs", type=int, default=3)
@click.option("--name", default="base")
def train(lr: float, epochs: int, name: str) -> None:
    SEEN.update(lr=lr, epochs=epochs, name=name)


app = typer.Typer()


@app.command()
def fit(batch: int = 32, augment: bool = False) -> None:
    SEEN.update(batch=batch, augment=augment)


@pytest.fixture
def store(sqlite_url: str, settings: Settings) -> Iterator[Store]:
    """The connection rules do not depend on the database: SQLite alone."""
    with Store(sqlite_url, settings=settings) as s:
        yield s


@pytest.fixture
def task(store: Store, sqlite_url: str, tmp_path: Path) -> Iterator[Task]:
    made = start_run(sqlite_url, tmp_path / "out", store=store)
    connect_frameworks(made, {"click": True})
    SEEN.clear()
    yield made
    made.close()


def test_options_are_recorded_by_hand(task: Task) -> None:
    train.main(["--lr", "0.5"], standalone_mode=False)
    assert SEEN == {"lr": 0.5, "epochs": 3, "name": "base"}
    typer.main.get_command(app).main(["--batch", "64"], standalone_mode=False)
    params = task.get_parameters()
    assert {k: params[k] for k in ("Args/lr", "Args/epochs", "Args/name")} == {
        "Args/lr": "0.5",
        "Args/epochs": "3",
        "Args/name": "base",
    }
    assert (params["Args/batch"], params["Args/augment"]) == ("64", "False")


def test_a_clones_overrides_replace_the_options_under_an_agent(task: Task, store: Store) -> None:
    run = task._run
    assert run is not None
    stored = {"Args/lr": "0.01", "Args/epochs": "7", "Args/augment": "True"}
    under_agent = Task(
        StoreRecords(store),
        task_id=run.fence.task_id,
        project="p",
        name="n",
        role=AgentRun(run, stored),
    )
    connect_frameworks(under_agent, True)
    train.main(["--lr", "0.5"], standalone_mode=False)
    assert SEEN == {"lr": 0.01, "epochs": 7, "name": "base"}
    typer.main.get_command(app).main([], standalone_mode=False)
    assert (SEEN["batch"], SEEN["augment"]) == (32, True)


def _jsonargparse_parser() -> Any:
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--model.layers", type=int, default=2)
    return parser


def test_jsonargparse_options_are_recorded_and_overridden(task: Task, store: Store) -> None:
    parsed = _jsonargparse_parser().parse_args(["--lr", "0.5"])
    assert (parsed.lr, parsed.model.layers) == (0.5, 2)
    params = task.get_parameters()
    assert (params["Args/lr"], params["Args/model/layers"]) == ("0.5", "2")

    run = task._run
    assert run is not None
    stored = {"Args/lr": "0.01", "Args/model/layers": "8"}
    agent_task = Task(
        StoreRecords(store),
        task_id=run.fence.task_id,
        project="p",
        name="n",
        role=AgentRun(run, stored),
    )
    connect_frameworks(agent_task, True)
    parsed = _jsonargparse_parser().parse_args(["--lr", "0.5"])
    assert (parsed.lr, parsed.model.layers) == (0.01, 8)


def test_a_hydra_config_takes_a_clones_overrides(task: Task, store: Store) -> None:
    from omegaconf import OmegaConf

    from clearq.sdk.frameworks import patches

    run = task._run
    assert run is not None
    stored = {"OmegaConf/db/port": "6543", "OmegaConf/tags": '["a", "b"]'}
    agent_task = Task(
        StoreRecords(store),
        task_id=run.fence.task_id,
        project="p",
        name="n",
        role=AgentRun(run, stored),
    )
    connect_frameworks(agent_task, True)
    cfg = OmegaConf.create({"db": {"host": "localhost", "port": 5432}, "tags": ["x"]})
    OmegaConf.set_struct(cfg, True)  # as Hydra hands it over
    patches._connect_omegaconf(cfg)
    assert cfg.db.port == 6543
    assert list(cfg.tags) == ["a", "b"]
    assert cfg.db.host == "localhost"


def fire_train(lr: float = 0.1, epochs: int = 3) -> None:
    SEEN.update(lr=lr, epochs=epochs)


def test_fire_arguments_are_recorded_and_overridden(task: Task, store: Store) -> None:
    import fire

    fire.Fire(fire_train, command=["--lr", "0.5"])
    assert SEEN == {"lr": 0.5, "epochs": 3}
    params = task.get_parameters()
    assert (params["Args/lr"], params["Args/epochs"]) == ("0.5", "3")

    run = task._run
    assert run is not None
    stored = {"Args/lr": "0.01", "Args/epochs": "7"}
    agent_task = Task(
        StoreRecords(store),
        task_id=run.fence.task_id,
        project="p",
        name="n",
        role=AgentRun(run, stored),
    )
    connect_frameworks(agent_task, True)
    fire.Fire(fire_train, command=["--lr", "0.5"])
    assert SEEN == {"lr": 0.01, "epochs": 7}


class FireTrainer:
    def __init__(self, depth: int = 2) -> None:
        self.depth = depth

    def fit(self, lr: float = 0.1) -> None:
        SEEN.update(depth=self.depth, lr=lr)


def test_fire_classes_methods_and_the_callers_globals_are_connected(
    task: Task, store: Store
) -> None:
    import fire

    fire.Fire(FireTrainer, command=["--depth", "4", "fit", "--lr", "0.5"])
    assert SEEN == {"depth": 4, "lr": 0.5}
    params = task.get_parameters()
    assert (params["Args/depth"], params["Args/lr"]) == ("4", "0.5")
    SEEN.clear()
    fire.Fire(command=["fire_train", "--epochs", "9"])  # fire's default: the caller's names
    assert SEEN == {"lr": 0.1, "epochs": 9}
    params = task.get_parameters()
    assert (params["Args/lr"], params["Args/epochs"]) == ("0.1", "9")
    assert isinstance(fire.Fire({"t": FireTrainer}, command=["t"]), FireTrainer)

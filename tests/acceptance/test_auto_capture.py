"""Automatic capture, as a user's script meets it: matplotlib, TensorBoard (torch's and
TensorFlow's) and model files (torch, scikit-learn, Keras) reach the task without a Logger
call; ``auto_connect_frameworks`` turns each off."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from clearq.config import Settings
from clearq.models import TaskStatus
from clearq.scheduler import Store
from tests.conftest import on_one_database

SCRIPT = """
import pickle

import joblib
import matplotlib
import numpy as np
import torch

from clearq import Task

matplotlib.use("Agg")
task = Task.init(project_name="auto", task_name="capture", auto_connect_frameworks=FRAMEWORKS)

# Imported after Task.init: patched as they are imported.
import matplotlib.pyplot as plt
from sklearn.linear_model import LogisticRegression
from torch.utils.tensorboard import SummaryWriter

fig, ax = plt.subplots()
ax.plot([1, 2, 3], [1, 4, 9])
ax.set_title("curve")
plt.show()
fig.savefig("curve.png")  # unchanged since it was shown: not reported again
writer = SummaryWriter("runs")
for step in range(3):
    writer.add_scalar("loss/train", 1.0 / (step + 1), step)
writer.add_scalars("lr", {"group0": 0.1, "group1": 0.2}, 0)
writer.add_image("input/sample", np.random.rand(3, 8, 8), 0)
writer.add_histogram("weights/w", np.random.randn(100), 0)
writer.close()
torch.save({"w": torch.zeros(2)}, "model.pt")
estimator = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
joblib.dump(estimator, "estimator.joblib")
with open("estimator.pkl", "wb") as f:
    pickle.dump(estimator, f)
with open("plain.pkl", "wb") as f:
    pickle.dump({"not": "a model"}, f)
print("done")
"""


def _run(store_url: str, tmp_path: Path, frameworks: str, script: str = SCRIPT) -> Store:
    work = tmp_path / "work"
    work.mkdir()
    (work / "train.py").write_text(textwrap.dedent(script).replace("FRAMEWORKS", frameworks))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARQ_")}
    env.update(CLEARQ_DATABASE_URL=store_url, CLEARQ_HOME=str(tmp_path / "home"))
    done = subprocess.run(
        [sys.executable, "train.py"], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "done" in done.stdout
    assert (work / "runs").is_dir()  # TensorBoard still writes its own event files
    return Store(store_url, settings=Settings(home=tmp_path / "home"))


@on_one_database("postgres")
def test_figures_tensorboard_and_model_files_reach_the_task(store_url: str, tmp_path: Path) -> None:
    with _run(store_url, tmp_path, "True") as store:
        [task] = store.tasks.list(project="auto")
        assert task.status is TaskStatus.COMPLETED
        plots = store.reported.plots(task.id)
        assert [(p.title, p.series, p.kind) for p in plots if p.kind == "matplotlib"] == [
            ("curve", "plot", "matplotlib")
        ]
        assert [p.figure["data"][0]["y"] for p in plots if p.title == "curve"] == [[1, 4, 9]]
        assert [(p.title, p.series) for p in plots if p.kind == "histogram"] == [("weights", "w")]
        loss = store.outputs.scalars(task.id, title="loss", series="train")
        assert [(p.iteration, p.value) for p in loss] == [(0, 1.0), (1, 0.5), (2, 1.0 / 3)]
        assert {p.series for p in store.outputs.scalars(task.id, title="lr")} == {
            "group0",
            "group1",
        }
        [image] = store.reported.samples(task.id, title="input", series="sample")
        assert image.kind == "image"
        models = {m.name: m.framework for m in store.registry.of_task(task.id)}
        assert models == {
            "model.pt": "PyTorch",
            "estimator.joblib": "scikit-learn",
            "estimator.pkl": "scikit-learn",
        }
        assert all(m.uri and m.size for m in store.registry.of_task(task.id))


@on_one_database("sqlite")
def test_each_framework_can_be_turned_off(store_url: str, tmp_path: Path) -> None:
    off = '{"matplotlib": False, "pytorch": False, "tensorboard": False, "xgboost": True}'
    with _run(store_url, tmp_path, off) as store:
        [task] = store.tasks.list(project="auto")
        assert store.reported.plots(task.id) == []
        # None from TensorBoard (the resource monitor's own appear once a slow run lasts 30 s).
        scalars = store.outputs.scalars(task.id)
        assert [p for p in scalars if not p.title.startswith(":monitor:")] == []
        assert {m.name for m in store.registry.of_task(task.id)} == {
            "estimator.joblib",
            "estimator.pkl",
        }


HYDRA_APP = """
import hydra
from clearq import Task

task = Task.init(project_name="auto", task_name="hydra")


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg):
    print(f"port={cfg.db.port}")


main()
"""


@on_one_database("sqlite")
def test_a_hydra_apps_composed_config_is_recorded(store_url: str, tmp_path: Path) -> None:
    work = tmp_path / "app"
    (work / "conf").mkdir(parents=True)
    (work / "conf" / "config.yaml").write_text("db:\n  host: localhost\n  port: 5432\n")
    (work / "app.py").write_text(textwrap.dedent(HYDRA_APP))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARQ_")}
    env.update(CLEARQ_DATABASE_URL=store_url, CLEARQ_HOME=str(tmp_path / "home"))
    args = [sys.executable, "app.py", "db.port=6000", f"hydra.run.dir={tmp_path / 'runs'}"]
    done = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "port=6000" in done.stdout
    with Store(store_url, settings=Settings(home=tmp_path / "home")) as store:
        [task] = store.tasks.list(project="auto", name="hydra")
        assert task.parameters["OmegaConf/db/port"] == "6000"
        assert task.parameters["OmegaConf/db/host"] == "localhost"


TF_SCRIPT = """
import numpy as np

from clearq import Task

task = Task.init(project_name="auto", task_name="tf", auto_connect_frameworks=FRAMEWORKS)

import keras  # imported after Task.init, as the other script's libraries are
import tensorflow as tf

writer = tf.summary.create_file_writer("runs/custom")
with writer.as_default():
    for step in range(3):
        tf.summary.scalar("loss/train", 1.0 / (step + 1), step=step)
    tf.summary.image("input/sample", np.random.rand(1, 8, 8, 3), step=0)
    tf.summary.histogram("weights/w", tf.random.normal([100]), step=0)

    @tf.function
    def traced(x):
        tf.summary.scalar("traced", x, step=5)  # a symbol when traced: the event file's alone
        return x

    traced(tf.constant(2.0))
tf.summary.scalar("unwritten", 1.0, step=0)  # no default writer: written nowhere

model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
x, y = np.random.rand(16, 4), np.random.rand(16, 1)
board = keras.callbacks.TensorBoard(log_dir="runs/fit")
model.fit(x, y, epochs=2, validation_data=(x, y), verbose=0, callbacks=[board])
model.save("model.keras")
model.save_weights("model.weights.h5")
print("done")
"""


@on_one_database("sqlite")
def test_tf_summary_and_keras_models_reach_the_task(store_url: str, tmp_path: Path) -> None:
    with _run(store_url, tmp_path, "True", TF_SCRIPT) as store:
        [task] = store.tasks.list(project="auto")
        assert task.status is TaskStatus.COMPLETED
        loss = store.outputs.scalars(task.id, title="loss", series="train")
        assert [(p.iteration, p.value) for p in loss] == [(0, 1.0), (1, 0.5), (2, 1.0 / 3)]
        # Keras's callback writes epoch_loss into runs/fit/train and runs/fit/validation:
        # the writer's folder is the series.
        epochs = store.outputs.scalars(task.id, title="epoch_loss")
        assert sorted((p.series, p.iteration) for p in epochs) == [
            ("train", 0),
            ("train", 1),
            ("validation", 0),
            ("validation", 1),
        ]
        titles = {p.title for p in store.outputs.scalars(task.id)}
        assert not titles & {"traced", "unwritten"}
        [image] = store.reported.samples(task.id, title="input", series="sample")
        assert image.kind == "image"
        plots = store.reported.plots(task.id)
        assert [(p.title, p.series) for p in plots if p.kind == "histogram"] == [("weights", "w")]
        models = {m.name: m.framework for m in store.registry.of_task(task.id)}
        assert models == {"model.keras": "Keras", "model.weights.h5": "Keras"}
        assert all(m.uri and m.size for m in store.registry.of_task(task.id))

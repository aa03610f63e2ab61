"""A small training script: fit y = 3x + 1 by gradient descent, reporting into clearq.

    python examples/train.py --lr 0.05 --epochs 30

Then `clearq task list` and `clearq task show <id>` show what was captured: the code and
its uncommitted changes, the arguments and connected parameters, the loss curve.
"""

import argparse
import random

from clearq import Task

task = Task.init(project_name="examples", task_name="linear-regression")

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.05)
parser.add_argument("--epochs", type=int, default=30)
args = parser.parse_args()  # recorded as Args/lr and Args/epochs; overridable per clone
config = task.connect({"samples": 200, "noise": 0.1, "seed": 0})

rng = random.Random(config["seed"])  # noqa: S311 - synthetic data, not security
xs = [rng.uniform(-1, 1) for _ in range(config["samples"])]
ys = [3 * x + 1 + rng.gauss(0, config["noise"]) for x in xs]

w, b = 0.0, 0.0
logger = task.get_logger()
for epoch in range(args.epochs):
    grad_w = sum(2 * (w * x + b - y) * x for x, y in zip(xs, ys, strict=True)) / len(xs)
    grad_b = sum(2 * (w * x + b - y) for x, y in zip(xs, ys, strict=True)) / len(xs)
    w, b = w - args.lr * grad_w, b - args.lr * grad_b
    loss = sum((w * x + b - y) ** 2 for x, y in zip(xs, ys, strict=True)) / len(xs)
    logger.report_scalar("loss", "train", loss, epoch)
    print(f"epoch {epoch:3d}  loss {loss:.4f}  w {w:.3f}  b {b:.3f}")

logger.report_single_value("final_loss", loss)
task.upload_artifact("weights", {"w": w, "b": b})

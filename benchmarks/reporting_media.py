"""What debug images cost a training loop: 1,000 scalars with and without 50 images.

The run is the one ``Task.init`` makes (a RunLink, its Reporter with its one-second
background flush, a Run) on a fresh SQLite file, or on a throwaway PostgreSQL database with
``--postgres``. Each iteration does ``--work-ms`` of numpy work (a training step
stand-in, so the reporter's thread competes with it as it would) and reports a scalar;
the "images" variant also reports a 256x256 RGB numpy image (noise: the worst case for
compression) every 20 iterations (50 in all). The two variants alternate, ``--runs`` times
each; printed are the loop's wall time (what the training script waits for), the time of
the final flush (what is still unwritten when the loop ends), the loop's added time per
image and the time spent inside ``report_image`` itself, min/median/max. On a machine
with a spare core the added time is the call's; on a busy one the reporter thread's
encoding (about 6 ms an image) competes with the loop for the CPU.

    python benchmarks/reporting_media.py [--runs 3] [--work-ms 1] [--postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from clearq.models import EnvSpec, Script
from clearq.scheduler import Store
from clearq.scheduler.runlink import open_run_link
from clearq.sdk.records import StoreRecords
from clearq.sdk.reporter import Reporter
from clearq.sdk.roles import LocalRun
from clearq.sdk.run import Run
from clearq.sdk.task import Task

SCALARS = 1000
IMAGE_EVERY = 20
SIDE = 256


def _busy(ms: float, a: np.ndarray) -> None:
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        a @ a  # numpy work releases the GIL, like a training step


def one_run(url: str, out: Path, *, images: bool, work_ms: float) -> tuple[float, float, float]:
    """(loop seconds, final flush seconds, seconds inside report_image) of one run."""
    link = open_run_link(url, lease_seconds=60)
    fence = link.create_running(
        project="bench",
        name="media",
        task_type="training",
        script=Script().model_dump(mode="json"),
        env=EnvSpec().model_dump(mode="json"),
        max_attempts=1,
    )
    run = Run(link, fence, Reporter(link, fence), under_agent=False, output_root=str(out))
    role = LocalRun(run)
    task = Task(StoreRecords(), task_id=fence.task_id, project="bench", name="media", role=role)
    logger = task.get_logger()
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 255, size=(SIDE, SIDE, 3), dtype=np.uint8)
    a = rng.random((64, 64))
    inside = 0.0
    start = time.perf_counter()
    for i in range(SCALARS):
        _busy(work_ms, a)
        logger.report_scalar("loss", "train", 1.0 / (i + 1), i)
        if images and i % IMAGE_EVERY == 0:
            called = time.perf_counter()
            logger.report_image("samples", "input", iteration=i, image=picture)
            inside += time.perf_counter() - called
    loop = time.perf_counter() - start
    start = time.perf_counter()
    run.end()
    flush = time.perf_counter() - start
    with Store(url) as store:
        stored = len(store.reported.samples(fence.task_id))
        points = len(store.outputs.scalars(fence.task_id))
    if points != SCALARS or stored != (SCALARS // IMAGE_EVERY if images else 0):
        raise SystemExit(f"lost reports: {points} scalars, {stored} samples")
    return loop, flush, inside


@contextlib.contextmanager
def database(postgres: bool, root: Path) -> Iterator[str]:
    """A fresh SQLite file, or a throwaway PostgreSQL database."""
    if not postgres:
        yield f"sqlite:///{root / 'bench.db'}"
        return
    from benchmarks.common import bench_database

    with bench_database("media") as url:
        yield url


def _stats(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"{min(ms):8.1f} {statistics.median(ms):8.1f} {max(ms):8.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work-ms", type=float, default=1.0)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    loops: dict[str, list[float]] = {"scalars": [], "images": []}
    flushes: dict[str, list[float]] = {"scalars": [], "images": []}
    calls: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, database(args.postgres, Path(tmp)) as url:
        for _ in range(args.runs):
            for variant in ("scalars", "images"):
                loop, flush, inside = one_run(
                    url, Path(tmp) / "out", images=variant == "images", work_ms=args.work_ms
                )
                loops[variant].append(loop)
                flushes[variant].append(flush)
                if variant == "images":
                    calls.append(inside / (SCALARS // IMAGE_EVERY))
    where = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"{SCALARS} report_scalar calls, {args.work_ms} ms of work each; images: "
        f"+{SCALARS // IMAGE_EVERY} x {SIDE}x{SIDE} RGB. {where}, {args.runs} runs, load "
        f"{os.getloadavg()[0]:.2f}"
    )
    print(f"{'':24}{'min':>8} {'median':>8} {'max':>8}   (ms)")
    for variant in ("scalars", "images"):
        print(f"{variant + ' loop':24}{_stats(loops[variant])}")
        print(f"{variant + ' final flush':24}{_stats(flushes[variant])}")
    added = [
        (i - s) / (SCALARS // IMAGE_EVERY)
        for i, s in zip(loops["images"], loops["scalars"], strict=True)
    ]
    print(f"{'loop added per image':24}{_stats(added)}")
    print(f"{'report_image call':24}{_stats(calls)}")


if __name__ == "__main__":
    main()

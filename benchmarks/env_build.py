"""What a task's environment costs: cold builds, cached reuse, and copies, same run.

For one spec (default: numpy and pandas, unpinned, resolved once and then pinned so
every side installs the same versions):

1. cold build with uv (``EnvCache.acquire`` on an empty cache) vs reuse of the cached
   env (``acquire`` again: a lock, a record read, a shared lock) - median of many;
2. uv vs pip cold build of the same pinned spec, with the ratio;
3. ClearML-style reuse (``shutil.copytree`` of the cached env into a new folder) vs
   clearq's reuse in place vs a hard-link clone (``acquire(spec, clone_to=...)``).

Builds run with warm download caches (uv's and pip's): a warm-up build of each side
comes first and is not counted, so the figures measure building, not downloading.
Every cache lives in a temporary folder removed at the end. Target: reuse < 0.1 s.

    python benchmarks/env_build.py [--requirements numpy pandas] [--reuse-samples 50]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from clearq.envs import EnvCache, NullProgress
from clearq.envs.layout import tree_size
from clearq.models import EnvManager, EnvSpec


def timed(action: Callable[..., object], *args: object, **kwargs: object) -> float:
    """Seconds one call of ``action(*args, **kwargs)`` took."""
    started = time.perf_counter()
    action(*args, **kwargs)
    return time.perf_counter() - started


def pinned(requirements: list[str], scratch: Path) -> tuple[str, ...]:
    """The requirements as resolved now (uv), pinned, so both builders get the same."""
    env = EnvCache(scratch / "resolve").ensure(EnvSpec(requirements=tuple(requirements)))
    frozen = subprocess.run(
        [str(env.python), "-c", FREEZE], capture_output=True, text=True, check=True
    ).stdout.split()
    return tuple(sorted(frozen))


FREEZE = (
    "from importlib import metadata\n"
    "print(' '.join(f\"{d.metadata['Name']}=={d.version}\" for d in metadata.distributions()))"
)


def cold_build(root: Path, spec: EnvSpec) -> float:
    """Build ``spec`` into an empty cache at ``root``; its build seconds."""
    with EnvCache(root).acquire(spec, progress=NullProgress()) as env:
        assert not env.hit
        return env.build_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requirements", nargs="+", default=["numpy", "pandas"])
    parser.add_argument("--reuse-samples", type=int, default=50)
    parser.add_argument("--copy-samples", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="clearq-bench-envs-") as folder:
        scratch = Path(folder)
        pins = pinned(args.requirements, scratch)
        print(f"spec: {' '.join(pins)}")
        uv_spec = EnvSpec(manager=EnvManager.UV, requirements=pins)
        pip_spec = EnvSpec(manager=EnvManager.PIP, requirements=pins)

        # Warm-up (not counted): fills uv's and pip's download caches.
        cold_build(scratch / "warm-uv", uv_spec)
        cold_build(scratch / "warm-pip", pip_spec)

        uv_cold = cold_build(scratch / "uv", uv_spec)
        pip_cold = cold_build(scratch / "pip", pip_spec)
        cache = EnvCache(scratch / "uv")

        def reuse() -> None:
            lease = cache.acquire(uv_spec)
            assert lease.env.hit
            lease.release()

        def clone(dest: Path) -> None:
            cache.acquire(uv_spec, clone_to=dest).release()

        reuse_times = [timed(reuse) for _ in range(args.reuse_samples)]
        entry = cache.layout.entry(cache.key(uv_spec))
        files = sum(len(names) for _, _, names in os.walk(entry))
        copies, clones = [], []
        for n in range(args.copy_samples):
            copy_to, clone_to = scratch / f"copy-{n}", scratch / f"clone-{n}"
            copies.append(timed(shutil.copytree, entry, copy_to, symlinks=True))
            clones.append(timed(clone, clone_to))

        reuse_median = statistics.median(reuse_times)
        print(f"env: {tree_size(entry) / 1e6:.0f} MB in {files} files (uv's)")
        print()
        print("1. cold build vs reuse (uv)")
        print(f"   cold build           {uv_cold:9.3f} s")
        print(
            f"   reuse (median of {len(reuse_times)})  {reuse_median * 1000:9.2f} ms   "
            f"(max {max(reuse_times) * 1000:.2f} ms; target < 100 ms: "
            f"{'met' if reuse_median < 0.1 else 'MISSED'})"
        )
        print(f"   cold / reuse         {uv_cold / reuse_median:9.0f} x")
        print()
        print("2. cold build, same pinned spec")
        print(f"   uv                   {uv_cold:9.3f} s")
        print(f"   pip (venv + pip)     {pip_cold:9.3f} s")
        print(f"   pip / uv             {pip_cold / uv_cold:9.1f} x")
        print()
        print(f"3. giving a task the cached env (median of {args.copy_samples})")
        copy_median, clone_median = statistics.median(copies), statistics.median(clones)
        print(f"   copytree (ClearML)   {copy_median:9.3f} s")
        print(f"   hard-link clone      {clone_median:9.3f} s")
        print(f"   reuse in place       {reuse_median:9.5f} s")
        print(f"   copytree / clone     {copy_median / clone_median:9.1f} x")
        print(f"   copytree / reuse     {copy_median / reuse_median:9.0f} x")


if __name__ == "__main__":
    main()

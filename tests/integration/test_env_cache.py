"""The env cache with real venvs, real installs from the package index, real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from filelock import FileLock

from clearq.envs import EnvCache, ReadyEnv
from clearq.models import EnvSpec

SPEC = EnvSpec(requirements=("six", "idna"))

# A child process that builds SPEC-like specs through a real uv builder wrapped so the
# parent can count builds (one line per build in a marker file) and catch it half way.
CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from clearq.envs import EnvCache, UvBuilder
    from clearq.models import EnvManager, EnvSpec

    root, marker, go, pause, reqs = sys.argv[1:6]

    class CountingBuilder:
        relocatable = True

        def build(self, spec, dest, progress):
            with open(marker, "a") as f:
                f.write(f"{dest}\\n")
            UvBuilder().build(spec, dest, progress)
            Path(marker + ".built").touch()
            time.sleep(float(pause))

    while not Path(go).exists():
        time.sleep(0.01)
    cache = EnvCache(Path(root), builders={EnvManager.UV: CountingBuilder()})
    env = cache.ensure(EnvSpec(requirements=tuple(reqs.split(","))))
    print(json.dumps({"hit": env.hit, "path": str(env.path)}))
    """
)


def _run(env: ReadyEnv, code: str) -> str:
    done = subprocess.run(
        [str(env.python), "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


def _child(tmp_path: Path, root: Path, *, pause: float, reqs: str) -> subprocess.Popen[str]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    argv = [sys.executable, str(script), str(root), str(tmp_path / "builds"), str(tmp_path / "go")]
    return subprocess.Popen(
        [*argv, str(pause), reqs], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_miss_then_hit(tmp_path: Path) -> None:
    cache = EnvCache(tmp_path / "envs")
    with cache.acquire(SPEC) as first:
        assert not first.hit
        assert first.build_seconds > 0
        assert first.python == first.path / "bin" / "python"
        assert first.path.parent == cache.root
        assert _run(first, "import six, idna; print('ok')") == "ok"
    started = time.perf_counter()
    with cache.acquire(EnvSpec(requirements=("IDNA", " six"))) as second:
        elapsed = time.perf_counter() - started
    assert second.hit
    assert second.build_seconds == 0.0
    assert (second.key, second.path) == (first.key, first.path)
    assert elapsed < 1.0
    assert [e.key for e in cache.entries()] == [first.key]
    assert os.listdir(cache.layout.tmp) == []


def test_two_processes_build_one_key_once(tmp_path: Path) -> None:
    root = tmp_path / "envs"
    children = [_child(tmp_path, root, pause=0.5, reqs="six,tomli") for _ in range(2)]
    (tmp_path / "go").touch()
    results = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        results.append(json.loads(out))
    assert len((tmp_path / "builds").read_text().splitlines()) == 1
    assert sorted(r["hit"] for r in results) == [False, True]
    assert results[0]["path"] == results[1]["path"]
    env = EnvCache(root).ensure(EnvSpec(requirements=("six", "tomli")))
    assert env.hit
    assert _run(env, "import six, tomli; print('ok')") == "ok"


def test_a_build_killed_half_way_leaves_nothing_usable(tmp_path: Path) -> None:
    root = tmp_path / "envs"
    child = _child(tmp_path, root, pause=60, reqs="six")
    (tmp_path / "go").touch()
    deadline = time.monotonic() + 60
    while not (tmp_path / "builds.built").exists():
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=10)
    cache = EnvCache(root)
    spec = EnvSpec(requirements=("six",))
    assert cache.entries() == []
    assert not cache.layout.entry(cache.key(spec)).exists()
    assert len(os.listdir(cache.layout.tmp)) == 1  # the dead build's folder, not an entry

    with cache.acquire(spec) as env:
        assert not env.hit
        assert _run(env, "import six; print('ok')") == "ok"
    assert os.listdir(cache.layout.tmp) == []


def _distinct(n: int) -> EnvSpec:
    """A spec of its own key that installs nothing (its index is never asked)."""
    return EnvSpec(index_urls=(f"https://index-{n}.example/simple",))


def test_least_recently_used_go_past_the_count_but_not_in_use(tmp_path: Path) -> None:
    cache = EnvCache(tmp_path / "envs", max_entries=2)
    a = cache.acquire(_distinct(1))  # held: in use throughout
    b = cache.ensure(_distinct(2))
    time.sleep(0.01)
    c = cache.ensure(_distinct(3))
    kept = {e.key for e in cache.entries()}
    assert kept == {a.env.key, c.key}, "b was least recently used and not in use"
    assert a.env.python.exists()
    a.release()
    d = cache.ensure(_distinct(4))
    assert {e.key for e in cache.entries()} == {c.key, d.key}
    assert not b.path.exists()
    assert not a.env.path.exists()


def test_reuse_counts_as_use(tmp_path: Path) -> None:
    cache = EnvCache(tmp_path / "envs", max_entries=2)
    a = cache.ensure(_distinct(1))
    b = cache.ensure(_distinct(2))
    time.sleep(0.01)
    assert cache.ensure(_distinct(1)).hit
    c = cache.ensure(_distinct(3))
    assert {e.key for e in cache.entries()} == {a.key, c.key}
    assert not b.path.exists()


def test_least_recently_used_go_past_the_size(tmp_path: Path) -> None:
    root = tmp_path / "envs"
    a = EnvCache(root).ensure(_distinct(1))
    (size,) = [e.size_bytes for e in EnvCache(root).entries()]
    assert size > 0
    cache = EnvCache(root, max_bytes=size + size // 2)
    b = cache.ensure(_distinct(2))
    assert [e.key for e in cache.entries()] == [b.key]
    assert not a.path.exists()
    assert os.listdir(cache.layout.trash) == []


def test_a_hard_link_clone_is_the_tasks_own(tmp_path: Path) -> None:
    cache = EnvCache(tmp_path / "envs")
    built = cache.ensure(SPEC)
    clone = tmp_path / "task-env"
    with cache.acquire(SPEC, clone_to=clone) as env:
        assert env.hit
        assert env.cloned
        assert env.path == clone
        assert env.key == built.key
        assert _run(env, "import six, sys; print(sys.prefix)") == str(clone)
    site = next(built.path.glob("lib/python*/site-packages"))
    twin = clone / site.relative_to(built.path) / "six.py"
    assert twin.stat().st_ino == (site / "six.py").stat().st_ino
    assert cache.evict() == []  # within the limits
    assert EnvCache(cache.root, max_entries=0).evict() == [built.key]  # the clone held nothing
    assert _run(env, "import six; print('still ok')") == "still ok"


def test_a_renamed_env_runs_its_entry_point_scripts(tmp_path: Path) -> None:
    env = EnvCache(tmp_path / "envs").ensure(EnvSpec(requirements=("wheel",)))
    done = subprocess.run(
        [str(env.path / "bin" / "wheel"), "version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "wheel" in done.stdout


def test_eviction_clears_what_dead_builds_left(tmp_path: Path) -> None:
    cache = EnvCache(tmp_path / "envs")
    assert cache.evict() == []  # nothing yet, not even the folder
    kept = cache.ensure(_distinct(1))
    unfinished = cache.layout.entry("conda-py3.11-0000")  # an in-place build that died
    (unfinished / "bin").mkdir(parents=True)
    stale = cache.layout.tmp / "uv-py3.11-1111.123.abcd"
    stale.mkdir()
    assert cache.evict() == []
    assert not unfinished.exists()
    assert not stale.exists()
    assert kept.python.exists()


class _Recorder:
    def __init__(self) -> None:
        self.stages: list[str] = []

    def stage(self, text: str) -> None:
        self.stages.append(text)

    def output(self, line: str) -> None:
        pass


def test_a_request_waiting_on_another_build_says_so(tmp_path: Path) -> None:
    cache = EnvCache(tmp_path / "envs")
    spec = _distinct(1)
    cache.layout.prepare()
    other = FileLock(cache.layout.build_lock(cache.key(spec)))  # another agent's build
    other.acquire()
    recorder = _Recorder()
    got: list[ReadyEnv] = []
    waiter = threading.Thread(target=lambda: got.append(cache.ensure(spec, progress=recorder)))
    waiter.start()
    deadline = time.monotonic() + 10
    while not recorder.stages and time.monotonic() < deadline:
        time.sleep(0.01)
    assert recorder.stages == [f"waiting: another process is building {cache.key(spec)}"]
    other.release()
    waiter.join(timeout=30)
    assert got
    assert not got[0].hit

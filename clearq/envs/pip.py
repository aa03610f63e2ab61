"""The pip builder: the standard library's ``venv`` (with pip), then ``pip install``.

For users who opt out of uv. The spec's steps run in order (``install_first``, the
requirements, ``no_build_isolation`` with ``--no-build-isolation``). uv still finds the
requested Python (``uv python find``), so a version means the same thing to both
builders. A venv made by ``venv`` names its own folder in its scripts' ``#!`` lines;
they are rewritten to find the interpreter beside themselves, as uv's relocatable venvs
do, so the venv survives its rename into the cache and a hard-link clone.
"""

from __future__ import annotations

from pathlib import Path

from uv import find_uv_bin

from clearq.envs.builder import env_python
from clearq.envs.process import run_installer
from clearq.envs.progress import BuildProgress
from clearq.envs.spec import CheckedSpec

__all__ = ["PipBuilder", "make_scripts_relocatable"]

_RELATIVE_SHEBANG = (
    "#!/bin/sh\n"
    '\'\'\'exec\' "$(dirname -- "$(realpath -- "$0")")"/\'{name}\' "$0" "$@"\n'
    "' '''\n"
)
"""A line pair that is shell to ``sh`` and a string to Python: uv's relocatable header."""
_LONG_HEADER = b"#!/bin/sh\n'''exec' "


class PipBuilder:
    """Builds pip-style requirement lists with ``venv`` and pip."""

    relocatable = True

    def build(self, spec: CheckedSpec, dest: Path, progress: BuildProgress) -> None:
        """Create a venv with pip in ``dest`` and pip-install the spec's requirements."""
        progress.stage(f"finding Python {spec.python}")
        found = run_installer(
            [find_uv_bin(), "python", "find", spec.python],
            manager="pip",
            step=f"finding Python {spec.python}",
            progress=progress,
            cwd=dest.parent,
        )
        base = found.strip().splitlines()[-1]
        progress.stage(f"creating a Python {spec.python} venv")
        run_installer(
            [base, "-m", "venv", str(dest)],
            manager="pip",
            step="creating a venv",
            progress=progress,
            cwd=dest.parent,
        )
        for lines, unisolated in spec.steps:
            how = " without build isolation" if unisolated else ""
            progress.stage(f"installing {len(lines)} requirements{how}")
            argv = [str(env_python(dest)), "-m", "pip", "install", "--no-input"]
            if unisolated:
                argv.append("--no-build-isolation")
            for url in spec.index_urls:
                argv += ["--extra-index-url", url]
            run_installer(
                [*argv, "--", *lines],
                manager="pip",
                step=f"installing requirements{how}",
                progress=progress,
                requirements=lines,
                cwd=dest.parent,
            )
        make_scripts_relocatable(dest)


def make_scripts_relocatable(env: Path) -> None:
    """Rewrite scripts in ``env/bin`` that name ``env``'s Python to find it beside them.

    Both of pip's headers are handled: ``#!<env>/bin/python``, and, for a long path, a
    ``#!/bin/sh`` line followed by an ``exec <env>/bin/python`` line.
    """
    bin_dir = f"{env / 'bin'}/".encode()
    for script in (env / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        data = script.read_bytes()
        for header, lines in ((b"#!" + bin_dir, 1), (_LONG_HEADER + bin_dir, 3)):
            if data.startswith(header):
                name = data[len(header) :].split()[0].decode()
                rest = data.split(b"\n", lines)[-1]
                script.write_bytes(_RELATIVE_SHEBANG.format(name=name).encode() + rest)
                break

"""Requirement lines: read them safely, name them, merge and sort them.

Every line clearq stores is one PEP 508 requirement (``numpy==1.26.4``,
``torch>=2; sys_platform == "linux"``, ``pkg @ https://...``). pip options (``-e``,
``-r``, ``--index-url``, ``-f`` ...) are refused: a requirement file must not be able
to point an agent's installer at another index or at files outside the task. Index
URLs belong in ``EnvSpec.index_urls``, where a person sees them.

Lines are checked with ``packaging.requirements.Requirement`` where ``packaging`` is
importable, and with a plain name check where it is not. A plain pin (``name==1.2.3``,
what an import scan produces) is read without it: importing ``packaging`` costs
``Task.init`` more than all its own checks.

One kind of path is kept: the repository itself or a folder in it (``-e .``, ``.``,
``./sub``; ``clearq.local_requirements``), which the agent installs from the task's
checked-out code. Any other path is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

from clearq.errors import InvalidInput
from clearq.local_requirements import local_requirement

CLEARQ = "clearq"
"""Never pinned: the agent gives each task its own clearq, not the index's."""

_NAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")
_PIN = re.compile(
    r"^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)"
    r"==\d+(?:\.\d+)*(?:(?:a|b|rc)\d+)?(?:\.post\d+)?(?:\.dev\d+)?(?:\+[a-z0-9]+(?:\.[a-z0-9]+)*)?$"
)
"""``name==version`` (a normalised PEP 440 version) and nothing else: valid on its face."""
_COMMENT = re.compile(r"(^|\s)#.*$")
_SEPARATORS = re.compile(r"[-_.]+")


def canonical_name(name: str) -> str:
    """The PEP 503 normal form of a distribution name (``Py_YAML`` -> ``py-yaml``)."""
    return _SEPARATORS.sub("-", name).lower()


def requirement_name(line: str, *, source: str = "requirement") -> str:
    """The canonical distribution name a requirement line is about.

    A line that installs the repository from a path is named by itself (``-e .``).
    Raises InvalidInput for a pip option or a line that is not a requirement.
    """
    try:
        local = local_requirement(line)
    except InvalidInput as exc:
        raise InvalidInput(f"{source}: {exc}") from None
    if local is not None:
        return local.line
    _refuse_option(line, source)
    pin = _PIN.match(line)
    if pin is not None:
        return canonical_name(pin.group(1))
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:  # pragma: no cover - packaging is present wherever pip is
        match = _NAME.match(line)
        if match is None:
            raise _unparseable(line, source, "it does not start with a package name") from None
        return canonical_name(match.group(1))
    try:
        return canonical_name(Requirement(line).name)
    except InvalidRequirement as exc:
        raise _unparseable(line, source, str(exc)) from None


def parse_requirements(
    lines: str | Iterable[str], *, source: str = "requirements"
) -> tuple[str, ...]:
    """The requirements in a requirements file's text (or its lines), checked.

    Comments, blank lines and ``\\`` continuations are handled as pip does. ``source``
    names the file in error messages. Raises InvalidInput for a pip option or an
    unparseable line.
    """
    text = lines if isinstance(lines, str) else "\n".join(lines)
    checked = []
    for number, line in _logical_lines(text):
        requirement_name(line, source=f"{source}, line {number}")
        checked.append(line)
    return tuple(checked)


def check_requirements(lines: Iterable[str], *, source: str) -> tuple[str, ...]:
    """Given lines (``add_requirements``, ``[project].dependencies``), stripped and checked."""
    checked = []
    for line in lines:
        stripped = line.strip()
        if stripped:
            requirement_name(stripped, source=source)
            checked.append(stripped)
    return tuple(checked)


def merge_requirements(
    base: Iterable[str], *, add: Sequence[str] = (), ignore: Sequence[str] = ()
) -> tuple[str, ...]:
    """``base`` with ``add`` overriding lines of the same name and ``ignore``d names removed.

    ``ignore`` entries are names or requirements (only the name counts). The result is
    sorted and free of exact duplicates.
    """
    added = check_requirements(add, source="add_requirements")
    dropped = {requirement_name(item.strip(), source="ignore_requirements") for item in ignore}
    overridden = {requirement_name(line) for line in added}
    kept = [line for line in base if requirement_name(line) not in overridden]
    return sort_requirements(
        line for line in (*kept, *added) if requirement_name(line) not in dropped
    )


def check_requested(
    *,
    add: Sequence[str],
    ignore: Sequence[str],
    first: Sequence[str],
    no_build_isolation: Sequence[str],
) -> None:
    """Refuse the lines a script gave (``Task.add_requirements``, ``ignore_requirements``)
    as ``capture_packages`` would: InvalidInput, before the capture starts."""
    check_requirements(add, source="add_requirements")
    check_requirements(first, source="install_first")
    check_requirements(no_build_isolation, source="no_build_isolation")
    for item in ignore:
        requirement_name(item.strip(), source="ignore_requirements")


def without_clearq(lines: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split off lines about clearq itself: (kept, dropped)."""
    kept: list[str] = []
    dropped: list[str] = []
    for line in lines:
        (dropped if requirement_name(line) == CLEARQ else kept).append(line)
    return tuple(kept), tuple(dropped)


def sort_requirements(lines: Iterable[str]) -> tuple[str, ...]:
    """Unique lines, sorted by canonical name, then by the line itself."""
    return tuple(sorted(set(lines), key=lambda line: (requirement_name(line), line.lower())))


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, line) of each requirement, joining ``\\`` continuations."""
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        line = _COMMENT.sub("", pending + line).strip()
        pending = ""
        if line:
            yield start, line
    last = _COMMENT.sub("", pending).strip()
    if last:
        yield start, last


def _refuse_option(line: str, source: str) -> None:
    if line.lstrip().startswith("-"):
        raise InvalidInput(
            f"{source}: {line!r} is a pip option, and clearq refuses options in requirement "
            "lines (they could point an agent's installer anywhere). List packages as "
            "requirements ('name==1.2', 'name @ https://...'), and put index URLs in the "
            "task's EnvSpec.index_urls instead."
        )


def _unparseable(line: str, source: str, why: str) -> InvalidInput:
    return InvalidInput(
        f"{source}: cannot read {line!r} as a requirement ({why}). Write one PEP 508 "
        "requirement per line, such as 'numpy==1.26.4' or 'pkg @ https://host/pkg.whl'."
    )

"""Read an installer's failure: which kind it is and which requirement it was about.

The installers (uv, pip, conda) say it in words; the patterns below are the words they
use. Network and machine failures are looked for first: pip, for one, reports an index
it cannot reach as "no matching distribution", the words of a bad requirement.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from clearq.errors import EnvBuildError, EnvFailure

__all__ = ["classify", "failed_requirement", "installer_error"]

_PATTERNS: tuple[tuple[EnvFailure, re.Pattern[str]], ...] = (
    (
        EnvFailure.NETWORK,
        re.compile(
            r"failed to fetch|error sending request|tcp connect error|connection refused|"
            r"connection reset|timed out|timeout|dns error|name or service not known|"
            r"temporary failure in name resolution|failed to establish a new connection|"
            r"max retries exceeded|proxyerror|sslerror|certificate verify failed|"
            r"network is unreachable|could not connect|condahttperror",
            re.IGNORECASE,
        ),
    ),
    (EnvFailure.SYSTEM, re.compile(r"no space left on device|disk quota exceeded", re.I)),
    (
        EnvFailure.PYTHON,
        re.compile(
            r"no interpreter found|failed to inspect python interpreter|"
            r"no download found for request",
            re.IGNORECASE,
        ),
    ),
    (
        EnvFailure.REQUIREMENT,
        re.compile(
            r"not found in the package registry|no version of|no solution found|"
            r"could not find a version that satisfies|no matching distribution|"
            r"unsatisfiable|resolutionimpossible|packagesnotfounderror|"
            r"failed to build|failed to download and build|invalid requirement|"
            r"conflicting dependencies|not found in the provided indexes",
            re.IGNORECASE,
        ),
    ),
)


_ERROR_LINE = re.compile(r"error|cause|because|╰─▶", re.IGNORECASE)


def classify(output: str) -> EnvFailure:
    """The kind of failure an installer's ``output`` describes."""
    for failure, pattern in _PATTERNS:
        if pattern.search(output):
            return failure
    return EnvFailure.INSTALLER


def failed_requirement(output: str, requirements: Sequence[str]) -> str | None:
    """The requirement line the installer's ``output`` complains about, if it names one.

    Only the lines that report the error are read: installers name every package they
    collect on the way (``Collecting idna``), not only the one that failed.
    """
    text = "\n".join(line for line in output.lower().splitlines() if _ERROR_LINE.search(line))
    for line in requirements:
        try:
            name = canonicalize_name(Requirement(line).name)
        except InvalidRequirement:
            continue
        spellings = {name, name.replace("-", "_"), name.replace("-", ".")}
        if any(re.search(rf"(?<![\w.-]){re.escape(s)}(?![\w-])", text) for s in spellings):
            return line
    return None


def installer_error(
    manager: str, step: str, output: str, requirements: Sequence[str]
) -> EnvBuildError:
    """The EnvBuildError for an installer that failed at ``step`` saying ``output``."""
    failure = classify(output)
    requirement = failed_requirement(output, requirements)
    if failure is EnvFailure.NETWORK:
        message = f"{step}: a package index or download could not be reached; retry later"
    elif failure is EnvFailure.SYSTEM:
        message = f"{step}: this machine ran out of disk space (or quota); free some and retry"
    elif failure is EnvFailure.PYTHON:
        message = f"{step}: the requested Python cannot be found or installed by uv"
    elif requirement is not None:
        message = f"{step}: requirement {requirement!r} cannot be installed"
    else:
        message = f"{step} failed ({failure.value})"
    return EnvBuildError(
        failure, message, requirement=requirement, manager=manager, output=output.strip()
    )

"""Fixtures for the integration tests that need a Docker engine.

The Docker tests run against a real engine and a test image built on this machine
(no registry is reachable from CI): ``clearq-test-python:bookworm``, a Debian minbase
rootfs with python3 made by ``debootstrap`` and ``docker import`` (``.ci/run`` builds it;
``CLEARQ_TEST_DOCKER_IMAGE`` names another). Where no engine answers or the image is
missing they skip with the reason; with ``CLEARQ_REQUIRE_DOCKER=1`` (CI sets it) they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from clearq.envs.docker_engine import DockerEngine
from clearq.errors import EngineUnavailable, ImageNotFound

REQUIRE_DOCKER = os.environ.get("CLEARQ_REQUIRE_DOCKER", "") not in ("", "0", "false")
DOCKER_TEST_IMAGE = os.environ.get("CLEARQ_TEST_DOCKER_IMAGE", "clearq-test-python:bookworm")


def _docker_unavailable(reason: str) -> None:
    if REQUIRE_DOCKER:
        pytest.fail(f"Docker is required (CLEARQ_REQUIRE_DOCKER) but: {reason}")
    pytest.skip(f"no Docker: {reason}")


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """The machine's Docker engine, with the test image present."""
    try:
        engine = DockerEngine()
    except EngineUnavailable as e:
        _docker_unavailable(str(e))
    with engine:
        try:
            engine.image_id(DOCKER_TEST_IMAGE, pull=False)
        except ImageNotFound:
            _docker_unavailable(
                f"the test image {DOCKER_TEST_IMAGE} is not built (.ci/run shows how)"
            )
        yield engine

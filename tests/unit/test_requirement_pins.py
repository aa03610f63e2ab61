"""Plain pins are named without packaging; anything else is still checked by it."""

from __future__ import annotations

import pytest

from clearq.errors import InvalidInput
from clearq.sdk.capture.packages_requirements import requirement_name

pytestmark = pytest.mark.fast


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("numpy==1.26.4", "numpy"),
        ("PyYAML==6.0.2", "pyyaml"),
        ("torch==2.1.0+cu118", "torch"),
        ("zope.interface==6.0rc1.post2.dev3", "zope-interface"),
        ("scikit_learn==1.5.0", "scikit-learn"),
        ('numpy==1.26.4; python_version >= "3.9"', "numpy"),
        ("numpy>=1.26", "numpy"),
    ],
)
def test_a_requirement_is_named(line: str, name: str) -> None:
    assert requirement_name(line) == name


@pytest.mark.parametrize("line", ["numpy==1..2", "numpy==", "==1.0", "numpy==1.0 extra"])
def test_a_line_that_only_looks_like_a_pin_is_refused(line: str) -> None:
    with pytest.raises(InvalidInput):
        requirement_name(line)

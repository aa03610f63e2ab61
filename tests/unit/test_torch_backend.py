"""A task asking for a PyTorch build (``EnvSpec.torch_backend``) gets uv's
``--torch-backend`` on every install step (``auto``: the CUDA build for the agent's
driver), and its own env cache key; other managers refuse it. No install runs here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import clearq.envs.uv as uv
from clearq.envs.spec import check_spec, env_key
from clearq.errors import EnvBuildError
from clearq.models import EnvManager, EnvSpec


class _Quiet:
    def stage(self, text: str) -> None:
        pass


def _argvs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []

    def run_installer(argv: list[str], **_: Any) -> None:
        calls.append(list(argv))

    monkeypatch.setattr(uv, "run_installer", run_installer)
    return calls


def test_every_install_step_passes_the_backend(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = _argvs(monkeypatch)
    spec = EnvSpec(requirements=("torchvision",), install_first=("torch",), torch_backend="Auto")
    uv.UvBuilder().build(check_spec(spec), tmp_path / "env", _Quiet())  # type: ignore[arg-type]
    installs = [argv for argv in calls if argv[1:3] == ["pip", "install"]]
    assert len(installs) == 2
    for argv in installs:
        flag = argv.index("--torch-backend")
        assert argv[flag + 1] == "auto"
        assert flag < argv.index("--")  # an option, never a requirement


def test_without_a_backend_no_flag_and_the_key_is_unchanged(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = _argvs(monkeypatch)
    plain = EnvSpec(requirements=("torch",))
    uv.UvBuilder().build(check_spec(plain), tmp_path / "env", _Quiet())  # type: ignore[arg-type]
    assert all("--torch-backend" not in argv for argv in calls)
    cuda = EnvSpec(requirements=("torch",), torch_backend="cu126")
    assert env_key(cuda) != env_key(plain)
    assert env_key(cuda) != env_key(EnvSpec(requirements=("torch",), torch_backend="cpu"))
    assert env_key(EnvSpec(requirements=("torch",), torch_backend=None)) == env_key(plain)


@pytest.mark.parametrize("bad", ["cuda", "cu12", "auto; rm -rf /", "--index-url=x", ""])
def test_a_backend_uv_does_not_know_is_refused(bad: str) -> None:
    with pytest.raises(EnvBuildError, match="torch backend"):
        check_spec(EnvSpec(requirements=("torch",), torch_backend=bad))


def test_other_managers_refuse_a_backend() -> None:
    with pytest.raises(EnvBuildError, match="does not take one"):
        check_spec(EnvSpec(manager=EnvManager.PIP, requirements=("torch",), torch_backend="auto"))

"""Docker mode's checks on task data: extra docker arguments, packages, image, requirements."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearq.envs.docker_args import (
    check_image_name,
    check_system_packages,
    parse_docker_args,
)
from clearq.envs.docker_config import database_mounts
from clearq.envs.docker_deps import checked_requirements, index_args
from clearq.envs.docker_engine import run_kwargs
from clearq.envs.docker_spec import ContainerSpec, Mount
from clearq.errors import ContainerError, DockerArgsRefused


def test_accepted_flags_in_every_spelling() -> None:
    args = parse_docker_args(
        [
            "--shm-size=8g",
            "--ipc",
            "shareable",
            "-e",
            "A=1",
            "-eB=two words",
            "--env=C=x=y",
            "--network",
            "bridge",
            "-m",
            "2g",
            "--cpus=1.5",
            "--gpus",
            "all",
        ]
    )
    assert args.shm_size == "8g"
    assert args.ipc_mode == "shareable"
    assert args.environment == {"A": "1", "B": "two words", "C": "x=y"}
    assert args.network_mode == "bridge"
    assert args.mem_limit == "2g"
    assert args.nano_cpus == 1_500_000_000
    assert args.gpus_requested == "all"


@pytest.mark.parametrize(
    ("arguments", "refused"),
    [
        (["--ipc", "host"], "--ipc host is not allowed on this agent"),
        (["--ipc=host"], "--ipc host is not allowed on this agent"),
        (["--network", "host"], "--network host is not allowed on this agent"),
        (["--net=host"], "--network host is not allowed on this agent"),
    ],
)
def test_the_hosts_ipc_and_network_need_the_operators_leave(
    arguments: list[str], refused: str
) -> None:
    with pytest.raises(DockerArgsRefused, match=refused):
        parse_docker_args(arguments)
    allowed = parse_docker_args(arguments, allow_host_ipc=True, allow_host_network=True)
    assert "host" in (allowed.ipc_mode, allowed.network_mode)


def test_a_string_is_split_like_a_shell_without_one() -> None:
    args = parse_docker_args("--shm-size 1g -e 'MSG=hello world; rm -rf /'")
    assert args.shm_size == "1g"
    assert args.environment == {"MSG": "hello world; rm -rf /"}


def test_nothing_given_changes_nothing() -> None:
    args = parse_docker_args(())
    assert args.environment == {}
    assert args.volumes == ()
    assert args.network_mode is None


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (["--privileged"], "'--privileged' is not allowed"),
        (["--cap-add=SYS_ADMIN"], "'--cap-add' is not allowed"),
        (["--pid", "host"], "'--pid' is not allowed"),
        (["--device=/dev/sda"], "'--device' is not allowed"),
        (["-it"], "'-i' is not allowed"),
        (["--entrypoint", "sh"], "'--entrypoint' is not allowed"),
        (["ubuntu"], "is not a flag"),
        (["--shm-size"], "needs a value"),
        (["--shm-size", "lots"], "not a size"),
        (["--ipc", "container:abc"], "--ipc 'container:abc' is not allowed"),
        (["--network", "container:db"], "--network 'container:db' is not allowed"),
        (["-e", "HOME"], "needs a value"),
        (["-e", "1X=2"], "not an environment variable name"),
        (["-e", "CLEARQ_TASK_ID=x"], "CLEARQ_\\* variables are set by the agent only"),
        (["--cpus", "-1"], "not a number of CPUs"),
    ],
)
def test_anything_else_is_refused_with_the_reason(arguments: list[str], words: str) -> None:
    with pytest.raises(DockerArgsRefused, match=words):
        parse_docker_args(arguments)


def test_volumes_only_under_the_agents_roots(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "set").mkdir(parents=True)
    args = parse_docker_args(
        [f"-v={data}/set:/data", "--volume", f"{data}:/out:rw"], volume_roots=[data]
    )
    assert args.volumes == (
        Mount(source=data / "set", target="/data", read_only=True),
        Mount(source=data, target="/out", read_only=False),
    )


@pytest.mark.parametrize(
    ("volume", "words"),
    [
        ("/etc:/host-etc", "outside the folders"),
        ("{data}/../secret:/x", "outside the folders"),
        ("{data}/link:/x", "outside the folders"),
        ("named:/x", "named volumes are not allowed"),
        ("{data}/missing:/x", "does not exist"),
        ("{data}:relative", "absolute folder"),
        ("{data}:/", "absolute folder"),
        ("{data}:/clearq/envs", "/clearq is clearq's own"),
        ("{data}:/x:z", "SOURCE:TARGET"),
        ("{data}", "SOURCE:TARGET"),
    ],
)
def test_unsafe_volumes_are_refused(tmp_path: Path, volume: str, words: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "secret").mkdir()
    (data / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(DockerArgsRefused, match=words):
        parse_docker_args(["-v", volume.format(data=data)], volume_roots=[data])


def test_no_volume_is_allowed_without_roots(tmp_path: Path) -> None:
    with pytest.raises(DockerArgsRefused, match="CLEARQ_DOCKER_VOLUME_ROOTS"):
        parse_docker_args(["-v", f"{tmp_path}:/x"])


def test_system_packages_are_names_not_options() -> None:
    assert check_system_packages([" libgl1 ", "curl=7.88.1-10+deb12u5", ""]) == (
        "libgl1",
        "curl=7.88.1-10+deb12u5",
    )
    for bad in ["-o=APT::Get::Foo", "curl; rm -rf /", "Foo", "lib*", "a b"]:
        with pytest.raises(DockerArgsRefused, match="not a Debian package name"):
            check_system_packages([bad])


def test_image_names() -> None:
    assert (
        check_image_name(" nvcr.io/nvidia/pytorch:24.01-py3 ") == "nvcr.io/nvidia/pytorch:24.01-py3"
    )
    for bad in ["", "--rm", "a b", "img;id"]:
        with pytest.raises(DockerArgsRefused, match="not an image name"):
            check_image_name(bad)


def test_requirements_are_requirements_and_never_clearq() -> None:
    lines = ["six==1.16.0", "  ", "# note", "numpy>=1 # pinned", "clearq==0.1.0", "six==1.16.0"]
    assert checked_requirements(lines) == ("numpy>=1", "six==1.16.0")
    with pytest.raises(ContainerError, match="installer option"):
        checked_requirements(["--index-url=https://evil.example/simple"])
    with pytest.raises(ContainerError, match="not a requirement"):
        checked_requirements(["six is fine"])


def test_index_urls_become_pip_options() -> None:
    assert index_args(["https://a/simple", "https://b/simple"]) == [
        "--index-url",
        "https://a/simple",
        "--extra-index-url",
        "https://b/simple",
    ]
    with pytest.raises(ContainerError, match="not an http"):
        index_args(["ftp://x"])


def test_run_kwargs_pass_gpus_as_device_requests_and_nothing_through_a_shell() -> None:
    spec = ContainerSpec(
        image="img",
        command=("python3", "-I", "/clearq/bootstrap.py", "/clearq/control/plan.json"),
        environment={"A": "1"},
        mounts=(Mount(Path("/srv/ws"), "/clearq/workspace", read_only=False),),
        gpus=("0", "3"),
        shm_size="8g",
    )
    kwargs = run_kwargs(spec)
    assert kwargs["command"] == list(spec.command)
    assert kwargs["network_mode"] == "bridge"
    assert kwargs["shm_size"] == "8g"
    assert "ipc_mode" not in kwargs
    [request] = kwargs["device_requests"]
    assert request["DeviceIDs"] == ["0", "3"]
    assert request["Capabilities"] == [["gpu"]]
    [mount] = kwargs["mounts"]
    assert (mount["Source"], mount["Target"], mount["ReadOnly"]) == (
        "/srv/ws",
        "/clearq/workspace",
        False,
    )


def test_run_kwargs_without_gpus_ask_for_none() -> None:
    assert "device_requests" not in run_kwargs(ContainerSpec(image="img", command=("true",)))


def test_an_sqlite_database_folder_is_mounted_at_the_same_path(tmp_path: Path) -> None:
    [mount] = database_mounts(f"sqlite:///{tmp_path}/db/clearq.db")
    assert mount == Mount(tmp_path / "db", str(tmp_path / "db"), read_only=False)
    assert database_mounts("postgresql://u@127.0.0.1/x") == ()
    assert database_mounts("sqlite://") == ()

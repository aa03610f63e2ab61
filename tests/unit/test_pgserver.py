"""Tests of tests/pgserver.py against a real server and a real throwaway cluster."""

from __future__ import annotations

import importlib.util
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.pgserver import (
    ENV_VAR,
    PgServer,
    PgServerError,
    ServerUnavailable,
    Source,
    find_pg_bin_dirs,
    find_server,
    normalize_url,
    start_cluster,
    start_container,
    unique_database_name,
)

LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/test"
"""The server this repository's dev environment runs (trust auth)."""


@pytest.fixture
def env_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[PgServer]:
    """The server named by CLEARQ_TEST_POSTGRES_URL (LOCAL_URL when it is not set)."""
    configured = os.environ.get(ENV_VAR, "").strip()
    monkeypatch.setenv(ENV_VAR, configured or LOCAL_URL)
    found = find_server(sources=(Source.ENV,))
    if found.server is None:
        if configured:
            pytest.fail(found.reason)
        pytest.skip(found.reason)
    assert found.source is Source.ENV
    with found.server as server:
        yield server


def _database_exists(server: PgServer, name: str) -> bool:
    with server.connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
    assert row is not None
    return bool(row[0])


@pytest.mark.postgres
def test_env_server_template_copy_and_drop(env_server: PgServer) -> None:
    template = unique_database_name("pgs_tpl")
    copy = unique_database_name("pgs_copy")

    template_url = env_server.create_database(template)
    assert template_url == env_server.database_url(template)
    assert template_url.startswith("postgresql+psycopg://")
    assert normalize_url(template_url).database == template
    with env_server.connect(template) as conn:
        conn.execute("CREATE TABLE seeded (id int PRIMARY KEY, label text NOT NULL)")
        conn.execute("INSERT INTO seeded VALUES (1, 'from template')")

    env_server.create_database(copy, template=template)
    with env_server.connect(copy) as conn:
        rows = conn.execute("SELECT id, label FROM seeded").fetchall()
    assert rows == [(1, "from template")]

    env_server.drop_database(copy)
    env_server.drop_database(template)
    assert not _database_exists(env_server, copy)
    assert not _database_exists(env_server, template)


@pytest.mark.postgres
def test_drop_terminates_open_connections(env_server: PgServer) -> None:
    name = unique_database_name("pgs_busy")
    env_server.create_database(name)
    with env_server.connect(name) as held:
        env_server.drop_database(name)
        with pytest.raises(psycopg.OperationalError):
            held.execute("SELECT 1")
    assert not _database_exists(env_server, name)
    env_server.drop_database(name)  # missing_ok by default
    with pytest.raises(psycopg.errors.InvalidCatalogName):
        env_server.drop_database(name, missing_ok=False)


@pytest.mark.postgres
def test_close_drops_leftover_databases() -> None:
    environ = {ENV_VAR: os.environ.get(ENV_VAR, "").strip() or LOCAL_URL}
    found = find_server(sources=(Source.ENV,), environ=environ)
    if found.server is None:
        pytest.skip(found.reason)
    server = found.server
    kept = unique_database_name("pgs_kept")
    server.create_database(kept)
    server.close()
    server.close()  # idempotent
    assert server.closed
    with pytest.raises(PgServerError, match="closed"):
        server.create_database(unique_database_name())
    observer = find_server(sources=(Source.ENV,), environ=environ).server
    assert observer is not None
    with observer:
        assert not _database_exists(observer, kept)


def test_unusable_env_url_ends_the_search() -> None:
    found = find_server(environ={ENV_VAR: "postgresql://postgres@127.0.0.1:1/nothing"})
    assert found.server is None
    assert found.source is Source.ENV
    assert ENV_VAR in found.reason
    assert "cannot connect" in found.reason


def test_non_postgres_env_url_is_reported() -> None:
    found = find_server(environ={ENV_VAR: "mysql://root@localhost/db"})
    assert found.server is None
    assert found.source is Source.ENV
    assert "not a PostgreSQL URL" in found.reason


def test_nothing_found_explains_how_to_provide_a_server() -> None:
    found = find_server(sources=(Source.ENV,), environ={})
    assert found.server is None
    assert found.source is None
    assert f"{ENV_VAR}: not set" in found.reason
    assert f"set {ENV_VAR}" in found.reason


def test_normalize_url_switches_driver_and_keeps_query() -> None:
    url = normalize_url("postgresql+psycopg2://u:p%40ss@/db?host=/run/pg")
    assert url.drivername == "postgresql+psycopg"
    assert url.password == "p@ss"
    assert url.query == {"host": "/run/pg"}


def test_unique_names_include_pid_and_fit_postgres_limits() -> None:
    names = {unique_database_name() for _ in range(50)}
    assert len(names) == 50
    assert all(str(os.getpid()) in name for name in names)
    with pytest.raises(ValueError, match="63 bytes"):
        unique_database_name("x" * 60)


@pytest.mark.skipif(
    importlib.util.find_spec("testcontainers") is not None,
    reason="testcontainers is installed; this checks the report when it is not",
)
def test_container_source_reports_missing_package() -> None:
    with pytest.raises(ServerUnavailable, match="testcontainers package is not installed"):
        start_container()


def _fake_tool(directory: Path, name: str, body: str) -> None:
    tool = directory / name
    tool.write_text(f"#!/bin/sh\n{body}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def test_bin_dirs_prefer_path_then_newest_version(tmp_path: Path) -> None:
    on_path = tmp_path / "opt" / "bin"
    versioned = tmp_path / "lib"
    for directory in (on_path, versioned / "9.6" / "bin", versioned / "16" / "bin"):
        directory.mkdir(parents=True)
        _fake_tool(directory, "initdb", "exit 0")
        _fake_tool(directory, "pg_ctl", "exit 0")
    (versioned / "17" / "bin").mkdir(parents=True)  # no binaries: not a candidate
    _fake_tool(versioned / "17" / "bin", "initdb", "exit 0")

    found = find_pg_bin_dirs(search_path=str(on_path), versioned_root=versioned)

    assert found == [
        on_path.resolve(),
        (versioned / "16" / "bin").resolve(),
        (versioned / "9.6" / "bin").resolve(),
    ]


def test_failed_initdb_is_reported_and_cleaned_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    _fake_tool(fake_bin, "initdb", "echo 'initdb: simulated failure' >&2; exit 3")
    _fake_tool(fake_bin, "pg_ctl", "exit 0")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    with pytest.raises(ServerUnavailable, match="initdb") as caught:
        start_cluster(fake_bin)

    if os.geteuid() != 0:  # as root it runs as `postgres`, who may not reach tmp_path
        assert "simulated failure" in str(caught.value)
    assert list(scratch.iterdir()) == []


@pytest.mark.postgres
def test_throwaway_cluster_lifecycle() -> None:
    if not find_pg_bin_dirs():
        pytest.skip("no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin")
    found = find_server(sources=(Source.CLUSTER,), environ={})
    assert found.server is not None, found.reason
    assert found.source is Source.CLUSTER
    server = found.server
    workdir = server.workdir
    assert workdir is not None
    url = normalize_url(server.url)
    try:
        assert url.host == "127.0.0.1"
        with server.connect() as conn:
            row = conn.execute(
                "SELECT current_setting('listen_addresses'), current_setting('fsync')"
            ).fetchone()
        assert row == ("127.0.0.1", "off")
        # The unix socket lives inside the work dir.
        with psycopg.connect(
            host=str(workdir / "sock"), port=url.port, user="postgres", dbname="postgres"
        ) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        name = unique_database_name("pgs_cluster")
        server.create_database(name)
        with server.connect(name) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (name,)
    finally:
        server.close()

    assert not workdir.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="127.0.0.1", port=url.port, user="postgres", connect_timeout=2)

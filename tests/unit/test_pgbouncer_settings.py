"""pgbouncer mode and pool sizes: what the settings make the store's connections do."""

from __future__ import annotations

import pytest

from clearq.config import load_settings
from clearq.errors import ConfigError
from clearq.scheduler.engine import Database, pg_connect_args
from clearq.scheduler.pool import ElasticPool

URL = "postgresql://u@bouncer:6432/db"


def test_pgbouncer_mode_prepares_nothing_and_sends_no_startup_options() -> None:
    settings = load_settings({"CLEARQ_DATABASE_PGBOUNCER": "1"})
    args = pg_connect_args(settings)
    assert args["prepare_threshold"] is None
    assert "options" not in args
    assert "prepare_threshold" not in pg_connect_args(load_settings({}))


def test_pool_sizes_come_from_the_settings() -> None:
    settings = load_settings({"CLEARQ_DB_POOL_SIZE": "3", "CLEARQ_DB_MAX_OVERFLOW": "0"})
    db = Database(URL, settings=settings)
    assert isinstance(db.engine.pool, ElasticPool)
    assert (db.engine.pool.size(), db.engine.pool.overflow_limit) == (3, 0)
    default = Database(URL, settings=load_settings({}))
    assert isinstance(default.engine.pool, ElasticPool)
    assert (default.engine.pool.size(), default.engine.pool.overflow_limit) == (2, 0)


@pytest.mark.parametrize(
    ("name", "value"), [("CLEARQ_DB_POOL_SIZE", "0"), ("CLEARQ_DB_MAX_OVERFLOW", "-1")]
)
def test_a_pool_size_out_of_range_is_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})


def test_the_listen_url_is_read() -> None:
    settings = load_settings({"CLEARQ_LISTEN_URL": " postgresql://u@db/x "})
    assert settings.listen_url == "postgresql://u@db/x"

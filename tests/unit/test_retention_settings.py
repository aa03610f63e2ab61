"""Retention settings (``clearq gc``): read from ``CLEARQ_RETENTION_*``, checked."""

from __future__ import annotations

import pytest

from clearq.config import DEFAULT_RETENTION_ENVS_DAYS, Settings, load_settings
from clearq.errors import ConfigError


def test_retention_is_off_for_store_rows_and_thirty_days_for_files_by_default() -> None:
    s = Settings()
    assert (s.retention_logs_days, s.retention_metrics_days, s.retention_archived_days) == (
        None,
        None,
        None,
    )
    assert s.retention_envs_days == s.retention_mirrors_days == DEFAULT_RETENTION_ENVS_DAYS


def test_retention_days_are_read_from_the_environment() -> None:
    s = load_settings(
        {
            "CLEARQ_RETENTION_LOGS_DAYS": "30",
            "CLEARQ_RETENTION_METRICS_DAYS": "0.5",
            "CLEARQ_RETENTION_ARCHIVED_DAYS": " 90 ",
            "CLEARQ_RETENTION_ENVS_DAYS": "7",
            "CLEARQ_RETENTION_MIRRORS_DAYS": "14",
        }
    )
    assert (s.retention_logs_days, s.retention_metrics_days, s.retention_archived_days) == (
        30.0,
        0.5,
        90.0,
    )
    assert (s.retention_envs_days, s.retention_mirrors_days) == (7.0, 14.0)
    assert load_settings({"CLEARQ_RETENTION_LOGS_DAYS": ""}).retention_logs_days is None


@pytest.mark.parametrize("text", ["0", "-3", "nan"])
def test_a_retention_must_be_above_zero(text: str) -> None:
    with pytest.raises(ConfigError, match="CLEARQ_RETENTION_LOGS_DAYS must be a number of days"):
        load_settings({"CLEARQ_RETENTION_LOGS_DAYS": text})


def test_a_retention_that_is_not_a_number_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="CLEARQ_RETENTION_ENVS_DAYS='a month' cannot be used"):
        load_settings({"CLEARQ_RETENTION_ENVS_DAYS": "a month"})
    with pytest.raises(ConfigError, match="CLEARQ_RETENTION_ENVS_DAYS='' cannot be used"):
        load_settings({"CLEARQ_RETENTION_ENVS_DAYS": ""})

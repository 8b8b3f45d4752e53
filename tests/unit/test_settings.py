import pytest

from worker.errors import SettingsError
from worker.settings import Settings


def test_defaults_apply_when_environment_is_empty() -> None:
    settings = Settings.from_env({})
    assert settings.max_jobs == 1000
    assert settings.broker_url == "redis://127.0.0.1:6379/0"


def test_values_are_read_and_converted() -> None:
    settings = Settings.from_env({"RUNNER_MAX_JOBS": "5", "RUNNER_LOG_FORMAT": "json"})
    assert settings.max_jobs == 5
    assert settings.log_format == "json"


def test_unknown_runner_variable_is_rejected_with_its_name() -> None:
    with pytest.raises(SettingsError, match="'RUNNER_MAX_JOB'"):
        Settings.from_env({"RUNNER_MAX_JOB": "5"})


def test_other_variables_are_ignored() -> None:
    assert Settings.from_env({"PATH": "/bin", "RUNNERX": "1"}) == Settings()


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("RUNNER_MAX_JOBS", "many", "whole number"),
        ("RUNNER_MAX_JOBS", "0", "at least 1"),
        ("RUNNER_LOG_FORMAT", "xml", "one of console, json"),
        ("RUNNER_MAX_MEMORY_MB", "8", "at least 16"),
    ],
)
def test_invalid_values_are_rejected_quoting_the_name(key: str, value: str, why: str) -> None:
    with pytest.raises(SettingsError, match=why) as info:
        Settings.from_env({key: value})
    assert key in str(info.value)


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().max_jobs = 3  # type: ignore[misc]


def test_every_setting_is_documented() -> None:
    for name, _default, doc in Settings.describe():
        assert name.startswith("RUNNER_")
        assert doc


def test_maxima_come_from_settings() -> None:
    maxima = Settings.from_env({"RUNNER_MAX_TESTS": "3"}).maxima()
    assert maxima.tests == 3


def test_one_redis_url_gives_the_broker_db_0_and_the_results_db_1() -> None:
    both = Settings.from_env({"RUNNER_REDIS_URL": "redis://10.0.0.5:6380/"})
    assert (both.broker_url, both.result_backend) == (
        "redis://10.0.0.5:6380/0",
        "redis://10.0.0.5:6380/1",
    )
    given = Settings.from_env(
        {"RUNNER_REDIS_URL": "redis://h:1", "RUNNER_RESULT_BACKEND": "redis://other:2/5"}
    )
    assert (given.broker_url, given.result_backend) == ("redis://h:1/0", "redis://other:2/5")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RUNNER_REDIS_URL": "redis://h:1/3"}, "names a database"),
        ({"RUNNER_REDIS_URL": "http://h:1"}, "not a redis:// or rediss:// URL"),
        ({"RUNNER_BROKER_URL": "amqp://h"}, "RUNNER_BROKER_URL='amqp://h' is not a redis://"),
    ],
)
def test_redis_urls_that_cannot_work_are_refused_by_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)

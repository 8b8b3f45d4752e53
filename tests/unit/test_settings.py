import pytest

from worker.errors import SettingsError
from worker.languages import LANGUAGES
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


# What GitHub Actions sets on every job (hosted and self-hosted runners), as of 2025.
GITHUB_ACTIONS = {
    "RUNNER_OS": "Linux",
    "RUNNER_ARCH": "X64",
    "RUNNER_NAME": "GitHub Actions 12",
    "RUNNER_ENVIRONMENT": "github-hosted",
    "RUNNER_TEMP": "/home/runner/work/_temp",
    "RUNNER_TOOL_CACHE": "/opt/hostedtoolcache",
    "RUNNER_DEBUG": "1",
    "RUNNER_WORKSPACE": "/home/runner/work/shop",
    "RUNNER_PERFLOG": "/home/runner/perflog",
    "RUNNER_TRACKING_ID": "github_0b2f",
    "RUNNER_USER": "runner",
    "RUNNER_TOOLSDIRECTORY": "/opt/hostedtoolcache",
    "RUNNER_ALLOW_RUNASROOT": "1",
    "RUNNER_LABELS": "ubuntu-latest",
    "RUNNER_WORKDIR": "/home/runner/work",
}


def test_the_variables_github_actions_sets_are_left_alone() -> None:
    """A backend's CI job (which has these in its environment) can make a Client and run
    runner commands unchanged; the settings it does give still count."""
    settings = Settings.from_env({**GITHUB_ACTIONS, "RUNNER_MAX_JOBS": "7"})
    assert settings == Settings(max_jobs=7)
    assert Settings.ignored({**GITHUB_ACTIONS, "RUNNER_MAX_JOBS": "7"}) == sorted(GITHUB_ACTIONS)


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("RUNNER_CONCURENCY", "RUNNER_CONCURRENCY"),  # a letter missing
        ("RUNNER_LOG_LEVLE", "RUNNER_LOG_LEVEL"),  # two swapped
        ("RUNNER_QUEU", "RUNNER_QUEUE"),
        ("RUNNER_REDIS_URI", "RUNNER_REDIS_URL"),
        ("RUNNER_OUTAGE_WINDOW", "RUNNER_OUTAGE_WINDOW_S"),  # the unit left out
        ("RUNNER_OUTAGE_WINDOW_MS", "RUNNER_OUTAGE_WINDOW_S"),  # another unit
        ("RUNNER_REDIS", "RUNNER_REDIS_URL"),
        ("RUNNER_MAX_MEMORY", "RUNNER_MAX_MEMORY_MB"),
        ("RUNNER_MAX_TEST", "RUNNER_MAX_TESTS"),
    ],
)
def test_a_near_miss_of_a_setting_is_refused_naming_the_one_meant(typo: str, meant: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({**GITHUB_ACTIONS, typo: "1"})
    assert f"unknown setting {typo!r}: did you mean {meant}?" in str(info.value)
    assert typo not in Settings.ignored({typo: "1"})


def test_secrets_and_url_passwords_are_never_shown() -> None:
    settings = Settings.from_env(
        {
            "RUNNER_REDIS_URL": "redis://:hunter2@redis:6379",
            "RUNNER_CACHE_URL": "redis://cache-user:hunter3@cache:6379/0",
            "RUNNER_API_WEBHOOK_SECRET": "whsec_aHVudGVyMy1odW50ZXIzLWh1bnRlcjMtaHVudGVyMyE=",
        }
    )
    assert settings.broker_url == "redis://:hunter2@redis:6379/0"  # used as given
    shown = repr(settings)
    for secret in ("hunter2", "hunter3", "aHVudGVyMy1odW50"):
        assert secret not in shown
    assert settings.shown("broker_url") == "'redis://:***@redis:6379/0'"
    assert settings.shown("cache_url") == "'redis://cache-user:***@cache:6379/0'"
    assert settings.shown("api_webhook_secret") == "'***'"
    assert Settings().shown("api_webhook_secret") == "''"  # unset says so
    # refusals quote the value, never its password
    for env in (
        {"RUNNER_BROKER_URL": "amqp://u:hunter2@h"},
        {"RUNNER_REDIS_URL": "redis://:hunter2@h:1/3"},
        {"RUNNER_REDIS_URL": "http://:hunter2@h:1"},
    ):
        with pytest.raises(SettingsError) as info:
            Settings.from_env(env)
        assert "hunter2" not in str(info.value) and ":***@h" in str(info.value), info.value


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


def test_the_languages_a_deployment_runs_are_names_or_aliases_in_the_registrys_order() -> None:
    assert Settings().chosen_languages() == list(LANGUAGES)
    chosen = Settings.from_env({"RUNNER_LANGUAGES": " Py, c++ ,python"}).chosen_languages()
    assert chosen == ["cpp", "python"]


def test_a_language_the_registry_does_not_know_is_refused_quoted() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"RUNNER_LANGUAGES": "python,cobol"})
    assert str(info.value).startswith(
        "RUNNER_LANGUAGES='python,cobol': 'cobol' is no language (choose from "
    )

"""How clients log in to Redis and check its TLS certificate (worker.redis_access)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from worker.app import celery_config
from worker.errors import SettingsError
from worker.redis_access import celery_options, redis_options
from worker.settings import Settings

TLS = "rediss://redis.example:6380"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    made = {}
    for name, text in (("ca", "CA"), ("cert", "C"), ("key", "K"), ("password", "s3cret\n")):
        (tmp_path / name).write_text(text)
        made[name] = str(tmp_path / name)
    return made


def test_rediss_always_checks_the_certificate_even_without_a_ca() -> None:
    settings = Settings.from_env({"RUNNER_REDIS_URL": TLS})
    options = redis_options(settings, settings.broker_url)
    assert options["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    assert options["ssl_check_hostname"] is True
    assert options["ssl_ca_certs"] is None  # the system's store, verification on
    config = celery_config(settings)
    # kombu alone would connect with CERT_NONE on rediss:// (FACTS.md)
    assert config["broker_use_ssl"]["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    assert config["redis_backend_use_ssl"]["ssl_cert_reqs"] == ssl.CERT_REQUIRED


def test_tls_files_and_the_password_file_reach_every_client(files: dict[str, str]) -> None:
    settings = Settings.from_env(
        {
            "RUNNER_REDIS_URL": TLS,
            "RUNNER_REDIS_TLS_CA": files["ca"],
            "RUNNER_REDIS_TLS_CERT": files["cert"],
            "RUNNER_REDIS_TLS_KEY": files["key"],
            "RUNNER_REDIS_ACL_USER": "worker",
            "RUNNER_REDIS_ACL_PASSWORD_FILE": files["password"],
        }
    )
    options = redis_options(settings, settings.result_backend)
    assert options["ssl_ca_certs"] == files["ca"]
    assert (options["ssl_certfile"], options["ssl_keyfile"]) == (files["cert"], files["key"])
    assert (options["username"], options["password"]) == ("worker", "s3cret")
    config = celery_options(settings)
    assert (config["broker_user"], config["broker_password"]) == ("worker", "s3cret")
    assert (config["redis_username"], config["redis_password"]) == ("worker", "s3cret")
    assert config["broker_use_ssl"]["ssl_ca_certs"] == files["ca"]
    # never printed
    assert "s3cret" not in repr(settings)


def test_plaintext_urls_get_no_tls_options() -> None:
    settings = Settings.from_env(
        {"RUNNER_REDIS_ACL_USER": "api", "RUNNER_REDIS_ACL_PASSWORD": "pw"}
    )
    assert redis_options(settings, settings.broker_url) == {"username": "api", "password": "pw"}
    assert "broker_use_ssl" not in celery_options(settings)
    assert "pw" not in repr(settings)


def test_kombu_and_celery_take_rediss_through_the_fleets_own_classes() -> None:
    from celery.app.backends import BACKEND_ALIASES
    from kombu.transport import TRANSPORT_ALIASES

    assert (
        TRANSPORT_ALIASES["rediss"]
        == TRANSPORT_ALIASES["redis"]
        == "worker.queue.transport:Transport"
    )
    assert BACKEND_ALIASES["rediss"] == BACKEND_ALIASES["redis"]


@pytest.mark.parametrize(
    ("env", "why"),
    [
        (
            {"RUNNER_REDIS_TLS_CA": "/etc/passwd"},
            r"RUNNER_BROKER_URL='redis://127.0.0.1:6379/0' is plaintext redis:// while "
            r"RUNNER_REDIS_TLS_CA is set: use rediss://",
        ),
        (
            {"RUNNER_BROKER_URL": "rediss://h:1/0?ssl_cert_reqs=none"},
            r"RUNNER_BROKER_URL=.* sets ssl_cert_reqs: TLS options come from RUNNER_REDIS_TLS_CA",
        ),
        (
            {"RUNNER_REDIS_URL": "rediss://h:1?ssl_cert_reqs=none"},
            r"RUNNER_REDIS_URL=.* carries a query string",
        ),
        (
            {"RUNNER_REDIS_ACL_PASSWORD": "a", "RUNNER_REDIS_ACL_PASSWORD_FILE": "f"},
            "RUNNER_REDIS_ACL_PASSWORD and RUNNER_REDIS_ACL_PASSWORD_FILE are both set",
        ),
        (
            {"RUNNER_REDIS_ACL_PASSWORD_FILE": "/nonexistent/pw"},
            r"RUNNER_REDIS_ACL_PASSWORD_FILE='/nonexistent/pw' cannot be read",
        ),
        (
            {"RUNNER_REDIS_URL": TLS, "RUNNER_REDIS_TLS_CA": "/nonexistent/ca"},
            r"RUNNER_REDIS_TLS_CA='/nonexistent/ca' is not a readable file",
        ),
        (
            {"RUNNER_REDIS_ACL_USER": "w", "RUNNER_BROKER_URL": "redis://u:secretpw@h:1/0"},
            r"RUNNER_BROKER_URL='redis://u:\*\*\*@h:1/0' carries credentials",
        ),
    ],
)
def test_ambiguous_or_unchecked_access_is_refused(env: dict[str, str], why: str) -> None:
    with pytest.raises(SettingsError, match=why) as info:
        Settings.from_env(env)
    assert "secretpw" not in str(info.value)


def test_a_client_certificate_needs_its_key(files: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="RUNNER_REDIS_TLS_CERT and RUNNER_REDIS_TLS_KEY"):
        Settings.from_env({"RUNNER_REDIS_URL": TLS, "RUNNER_REDIS_TLS_CERT": files["cert"]})


def test_an_empty_password_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("\n")
    with pytest.raises(SettingsError, match="first line is empty"):
        Settings.from_env({"RUNNER_REDIS_ACL_PASSWORD_FILE": str(tmp_path / "pw")})


def test_refusals_are_told_apart_from_outages() -> None:
    import redis

    from worker.errors import BrokerError
    from worker.redis_access import refusal

    denied = refusal(redis.exceptions.NoPermissionError("no permissions"), "monitor")
    assert isinstance(denied, BrokerError)
    assert "refused monitor a command or key its role may not use" in str(denied)
    login = refusal(redis.AuthenticationError("invalid username-password pair"), "api")
    assert login is not None and "refused to log in api" in str(login)
    try:
        try:
            raise ssl.SSLCertVerificationError("certificate verify failed")
        except ssl.SSLError:
            raise redis.ConnectionError("Error 1 connecting") from None
    except redis.ConnectionError as exc:
        # redis-py raises it while handling the certificate's failure
        exc.__context__ = ssl.SSLCertVerificationError("certificate verify failed")
        certificate = refusal(exc, "")
    assert certificate is not None and "RUNNER_REDIS_TLS_CA" in str(certificate)
    assert refusal(redis.ConnectionError("Connection refused"), "worker") is None

"""How every Redis client of the fleet logs in and checks the server: ACL user, password, TLS.

One place turns the settings into what each library takes, so that no client is made without
them: :func:`redis_options` for redis-py (the intake, the API, the CLI), :func:`celery_options`
for Celery's broker (kombu) and result backend.

- **Who**: ``RUNNER_REDIS_ACL_USER`` and its password (``RUNNER_REDIS_ACL_PASSWORD_FILE``, a
  file such as a mounted secret, or ``RUNNER_REDIS_ACL_PASSWORD``), or both in the URLs; never both
  ways at once. Each process connects as its role's ACL user (:mod:`worker.keyspace.acl`).
- **TLS**: a ``rediss://`` URL always checks the server's certificate and host name
  (``ssl_cert_reqs=CERT_REQUIRED``): against ``RUNNER_REDIS_TLS_CA`` when set, else against
  the system's store. There is no setting and no URL parameter that turns the check off
  (kombu's own default on ``rediss://`` without options is no check at all). A client
  certificate (``RUNNER_REDIS_TLS_CERT`` and ``_KEY``) is sent when the server asks for one.
  TLS settings with a plaintext ``redis://`` URL are refused rather than ignored.

Secrets are read here, when a client is made, and go only to the libraries: never into a URL,
a log line or a repr (:class:`~worker.settings.Settings` redacts them).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import redis

from worker.errors import RedisRefused, SettingsError


class Settings(Protocol):
    """What is read here of :class:`worker.settings.Settings` (which imports this module)."""

    @property
    def broker_url(self) -> str: ...

    @property
    def result_backend(self) -> str: ...

    @property
    def cache_url(self) -> str: ...

    @property
    def redis_acl_user(self) -> str: ...

    @property
    def redis_acl_password_file(self) -> str: ...

    @property
    def redis_acl_password(self) -> str: ...

    @property
    def redis_tls_ca(self) -> str: ...

    @property
    def redis_tls_cert(self) -> str: ...

    @property
    def redis_tls_key(self) -> str: ...


# the Redis URLs of the settings, by field
URL_FIELDS = ("broker_url", "result_backend", "cache_url")
TLS_FIELDS = ("redis_tls_ca", "redis_tls_cert", "redis_tls_key")
# URL parameters that would set TLS behind the settings' back (Celery and redis-py read them)
_TLS_PARAMETERS = ("ssl", "ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile")


def check(settings: Settings) -> None:
    """Refuse settings whose Redis access is ambiguous or unreadable, quoting the setting
    (never a secret); :func:`url_problem` says what is wrong with a URL."""
    if settings.redis_acl_password and settings.redis_acl_password_file:
        raise SettingsError(
            "RUNNER_REDIS_ACL_PASSWORD and RUNNER_REDIS_ACL_PASSWORD_FILE are both set: give one"
        )
    if settings.redis_acl_password_file:
        _read_password(settings.redis_acl_password_file)
    for name in TLS_FIELDS:
        path = getattr(settings, name)
        if path and not Path(path).is_file():
            raise SettingsError(f"RUNNER_{name.upper()}={path!r} is not a readable file")
    if bool(settings.redis_tls_cert) != bool(settings.redis_tls_key):
        raise SettingsError(
            "RUNNER_REDIS_TLS_CERT and RUNNER_REDIS_TLS_KEY go together (a client certificate "
            "and its key): set both or neither"
        )


def urls(settings: Settings) -> list[tuple[str, str]]:
    """(setting, URL) of every Redis URL set; each URL of a kombu failover list counts."""
    found = []
    for name in URL_FIELDS:
        for url in str(getattr(settings, name)).split(";"):
            if url.strip():
                found.append((f"RUNNER_{name.upper()}", url.strip()))
    return found


def url_problem(settings: Settings, url: str) -> str | None:
    """Why ``url`` may not be used with these settings (a TLS check that could go unmade,
    credentials given twice), or None."""
    parts = urlsplit(url)
    tls_set = [f"RUNNER_{name.upper()}" for name in TLS_FIELDS if getattr(settings, name)]
    if tls_set and parts.scheme == "redis":
        return (
            f"is plaintext redis:// while {', '.join(tls_set)} is set: use rediss:// "
            "(TLS is never dropped silently)"
        )
    given = {key for key, _ in parse_qsl(parts.query)} & set(_TLS_PARAMETERS)
    if given:
        return (
            f"sets {', '.join(sorted(given))}: TLS options come from RUNNER_REDIS_TLS_CA, "
            "RUNNER_REDIS_TLS_CERT and RUNNER_REDIS_TLS_KEY, and the certificate check cannot "
            "be turned off"
        )
    credentials = (
        settings.redis_acl_user or settings.redis_acl_password_file or settings.redis_acl_password
    )
    if credentials and (parts.username or parts.password):
        return (
            "carries credentials while RUNNER_REDIS_ACL_USER or a RUNNER_REDIS_ACL_PASSWORD "
            "setting gives them too: give them one way"
        )
    return None


def _read_password(path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(
            f"RUNNER_REDIS_ACL_PASSWORD_FILE={path!r} cannot be read ({type(exc).__name__})"
        ) from None
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise SettingsError(f"RUNNER_REDIS_ACL_PASSWORD_FILE={path!r}: its first line is empty")
    return lines[0]


def credentials(settings: Settings) -> tuple[str | None, str | None]:
    """(ACL user, password) the settings give, each None when unset (the URL's then)."""
    if settings.redis_acl_password_file:
        password: str | None = _read_password(settings.redis_acl_password_file)
    else:
        password = settings.redis_acl_password or None
    return settings.redis_acl_user or None, password


def tls_options(settings: Settings) -> dict[str, Any]:
    """redis-py's TLS options for a ``rediss://`` server: the certificate and the host name
    always checked, against RUNNER_REDIS_TLS_CA or else the system's store."""
    return {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_ca_certs": settings.redis_tls_ca or None,
        "ssl_certfile": settings.redis_tls_cert or None,
        "ssl_keyfile": settings.redis_tls_key or None,
        "ssl_check_hostname": True,
    }


def redis_options(settings: Settings, url: str) -> dict[str, Any]:
    """Keyword arguments for redis-py's ``Redis.from_url(url, ...)`` (sync or asyncio)."""
    options: dict[str, Any] = {}
    username, password = credentials(settings)
    if username:
        options["username"] = username
    if password:
        options["password"] = password
    if urlsplit(url).scheme == "rediss":
        options.update(tls_options(settings))
    return options


def celery_options(settings: Settings) -> dict[str, Any]:
    """Celery configuration for the broker (kombu) and the result backend to log in as the
    settings say and check TLS certificates (Celery's own names for them)."""
    username, password = credentials(settings)
    config: dict[str, Any] = {}
    if username:
        config["broker_user"] = config["redis_username"] = username
    if password:
        config["broker_password"] = config["redis_password"] = password
    # kombu passes these to redis-py's SSLConnection as they are
    if any(urlsplit(url).scheme == "rediss" for url in settings.broker_url.split(";")):
        config["broker_use_ssl"] = tls_options(settings)
    if urlsplit(settings.result_backend).scheme == "rediss":
        config["redis_backend_use_ssl"] = tls_options(settings)
    return config


def refusal(exc: BaseException, user: str) -> RedisRefused | None:
    """``exc`` as the refusal it is (wrong user or password, a role's missing permission, a
    certificate that failed its check), or None when it is no refusal (Redis away, say).
    ``user``: RUNNER_REDIS_ACL_USER."""
    user = user or "the URL's user (or the default user)"
    if isinstance(exc, redis.AuthenticationError) or "NOAUTH" in str(exc):
        return RedisRefused(
            f"Redis refused to log in {user}: check RUNNER_REDIS_ACL_USER and its password ({exc})"
        )
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return RedisRefused(
            f"Redis refused {user} a command or key its role may not use ({exc}); its ACL "
            "rules come from `python -m worker.keyspace acl`"
        )
    if isinstance(exc.__context__ or exc.__cause__, ssl.SSLCertVerificationError):
        return RedisRefused(
            f"the Redis server's TLS certificate failed its check ({exc}); RUNNER_REDIS_TLS_CA "
            "names the CA it must chain to"
        )
    return None

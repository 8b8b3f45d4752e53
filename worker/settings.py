"""Settings: one frozen dataclass, read once from the environment at start.

Every field is documented where it is declared; its environment variable is ``RUNNER_`` plus
the field name in upper case. A value that does not parse or is out of range raises
:class:`~worker.errors.SettingsError` quoting the name.

``RUNNER_`` is a prefix other tools use too: GitHub Actions sets ``RUNNER_OS``,
``RUNNER_TEMP``, ``RUNNER_TOOL_CACHE``... on every job. So a ``RUNNER_*`` variable that names
no field is refused only when it is a near miss of one (:func:`near_miss`: a typo, a missing or
extra unit such as ``RUNNER_OUTAGE_WINDOW`` for ``RUNNER_OUTAGE_WINDOW_S``), naming the setting
it resembles; any other is left to whoever set it (``runner settings`` lists them as ignored).

Secrets (``secret=True``, and the password of any URL) are never printed: :meth:`shown` and
``repr()`` give them redacted, and refusals quote URLs without their password.
Nothing here reads the environment at import time: call :meth:`Settings.from_env`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from worker import redis_access
from worker.contract import Limits, Maxima
from worker.contract.limits import ceiling, ceiling_setting
from worker.errors import SettingsError
from worker.languages import LANGUAGES, language_named
from worker.webhook_secrets import secret_problem

PREFIX = "RUNNER_"
# RUNNER_HOST_SLICE: a name that is one cgroup directory; the kernel's smallest CFS quota
# (1 ms) over its 100 ms period is RUNNER_HOST_CPUS's lowest
HOST_SLICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MIN_HOST_CPUS = 0.01


def _setting(
    default: Any,
    doc: str,
    *,
    low: int | None = None,
    high: int | None = None,
    choices: tuple[str, ...] = (),
    secret: bool = False,
) -> Any:
    metadata = {"doc": doc, "low": low, "high": high, "choices": choices, "secret": secret}
    return field(default=default, metadata=metadata)


def _ceilings(namespace: dict[str, Any]) -> None:
    """Declare, in the class body being run (``namespace``), one setting per limit: its ceiling
    (:class:`~worker.contract.limits.Ceiling`), so a limit added to the model is capped here."""
    for name in Limits.model_fields:
        cap = ceiling(name)
        namespace["__annotations__"][ceiling_setting(name)] = "int"
        namespace[ceiling_setting(name)] = _setting(cap.default, cap.doc, low=cap.low)


@dataclass(frozen=True)
class Settings:
    # --- images -------------------------------------------------------------------------------
    base_image: str = _setting(
        "",
        "Base image for every Dockerfile. Empty: debian:bookworm-slim when present or pullable, "
        "else a minimal Debian root filesystem built with debootstrap and imported as "
        "runner-base:bookworm.",
    )
    docker_cli: str = _setting(
        "",
        "Docker client used for BuildKit builds. Empty: /usr/bin/docker when present (Debian's "
        "client, which builds with BuildKit without the buildx plugin), else `docker` on PATH.",
    )
    image_prefix: str = _setting("runner", "Prefix of every image name this project builds.")
    registry: str = _setting(
        "",
        "Image registry of the fleet, HOST:PORT[/PATH] (e.g. 127.0.0.1:5000, scripts/lib.sh's "
        "ensure_registry): scripts/build-images --push fills it, and a worker whose engine lacks "
        "an image pulls it from there by its content tag before it prewarms. Empty: no pulls "
        "(a missing image stops the worker's start).",
    )
    registry_user: str = _setting(
        "", "User for RUNNER_REGISTRY when it asks for one (htpasswd). Empty: no credentials."
    )
    registry_password: str = _setting(
        "", "Password of RUNNER_REGISTRY_USER (or give RUNNER_REGISTRY_PASSWORD_FILE)."
    )
    registry_password_file: str = _setting(
        "",
        "File whose first line is RUNNER_REGISTRY_USER's password (a mounted secret); read when "
        "pulling or pushing, never printed.",
    )
    languages: str = _setting(
        "",
        "The languages this deployment judges, by name or alias, comma-separated (e.g. "
        "python,cpp): a worker opens pools, runs self-tests and takes submissions for "
        "these only, and scripts/build-images builds their images only (images named on its "
        "command line win). Every worker of a queue should run the same ones. Empty: every "
        "language of the registry.",
    )
    # --- sandbox ------------------------------------------------------------------------------
    pool_size: int = _setting(
        0, "Pre-warmed sandboxes per image. 0: the worker's concurrency.", low=0
    )
    max_jobs: int = _setting(
        1000,
        "Jobs a sandbox serves before it is recycled; 1 gives a container per job. Each job "
        "already runs under a fresh uid in a wiped dir; recycling bounds what a kernel-level "
        "leak could accumulate, and costs about 400 ms of CPU per container.",
        low=1,
    )
    runtime: str = _setting(
        "", "OCI runtime for sandboxes (e.g. runsc for gVisor). Empty: the engine's default."
    )
    isolation: str = _setting(
        "namespaces",
        "How jobs are kept apart inside a reused sandbox. namespaces: each job gets fresh user, "
        "IPC, mount (private /tmp and /dev/shm) and PID namespaces, so nothing it makes outlives "
        "it; sandboxes whose kernel refuses them fail their readiness check. uid: only a fresh "
        "uid per job and a cleanup afterwards (weaker: for hosts that refuse namespaces, shown "
        "by `runner status` and the worker's log).",
        choices=("namespaces", "uid"),
    )
    job_uid_base: int = _setting(
        100000,
        "First uid of the range jobs run under (one fresh uid per job, 2**30 of them); below "
        "the sandboxes' own uids (from 2**31 - 2**29 on).",
        low=1000,
        high=(1 << 29),
    )
    health_interval_s: int = _setting(
        30, "Seconds between health probes of idle sandboxes (0: never).", low=0
    )
    host_slice: str = _setting(
        "",
        "A CPU slice this worker shares with its sandboxes, as if it were a host of its own: "
        "its name (letters, digits, _ . -; up to 64). The worker process (all its threads and "
        "children) and every sandbox it starts run in the cgroup v1 cpu,cpuacct cgroup "
        "/runner-host-NAME (sandboxes as its children, by the engine's cgroup parent; needs "
        "cgroup v1 and the engine's cgroupfs driver). Workers given the same name share it. "
        "Empty: no slice (the host's CPUs).",
    )
    host_cpus: float = _setting(
        0.0,
        "CPUs the RUNNER_HOST_SLICE may use in all, e.g. 0.4 (a CFS quota over 100 ms "
        "periods; from 0.01), and has first call on (the highest cpu.shares: other load on "
        "the machine cannot take them, as on a host of its own). 0: no quota, the slice only "
        "accounts.",
        low=0,
        high=1024,
    )
    # --- operator maxima a submission may ask for (sandboxes are sized for them) -------------
    # one per limit (max_cpu_time_ms...), read by ceilings(); declared here to keep their place
    _ceilings(locals())
    max_tests: int = _setting(200, "Most tests in one submission.", low=1)
    max_source_kb: int = _setting(256, "Largest source file.", low=1)
    max_stdin_kb: int = _setting(16_384, "Largest stdin of one test.", low=1)
    max_files: int = _setting(64, "Most files in one program (a submission's, a checker's).", low=1)
    compiler_options: str = _setting(
        "",
        "Compiler options allowed beyond each language's own allow-list, exactly as written: "
        "LANGUAGE=OPTION OPTION ...; LANGUAGE=..., e.g. 'cpp=-fno-exceptions -fno-rtti'.",
    )
    # --- fleet --------------------------------------------------------------------------------
    redis_url: str = _setting(
        "",
        "One Redis server for everything, e.g. redis://127.0.0.1:6380 (the demo's): the broker "
        "is its database 0 and the result backend database 1, unless RUNNER_BROKER_URL or "
        "RUNNER_RESULT_BACKEND say otherwise. Empty: those two alone.",
    )
    broker_url: str = _setting("redis://127.0.0.1:6379/0", "Celery broker URL.")
    result_backend: str = _setting("redis://127.0.0.1:6379/1", "Celery result backend URL.")
    redis_acl_user: str = _setting(
        "",
        "ACL user this process logs in to every Redis as: its role's (producer, worker, api or "
        "monitor; `python -m worker.keyspace acl` writes their rules, docs/monitoring.md). "
        "Empty: the URLs' user, else Redis's default user.",
    )
    redis_acl_password_file: str = _setting(
        "",
        "File whose first line is RUNNER_REDIS_ACL_USER's password (a mounted secret); read "
        "when a client is made, never printed. Empty: RUNNER_REDIS_ACL_PASSWORD, or the URLs'.",
    )
    redis_acl_password: str = _setting(
        "",
        "RUNNER_REDIS_ACL_USER's password, when not from a file. Credentials come one way: "
        "these settings or the URLs, not both.",
        secret=True,
    )
    redis_tls_ca: str = _setting(
        "",
        "CA certificate file (PEM) a rediss:// server's certificate must chain to. Empty: the "
        "system's store. On rediss:// the certificate and host name are always checked; TLS "
        "settings with a redis:// URL are refused.",
    )
    redis_tls_cert: str = _setting(
        "", "Client certificate file (PEM) sent to a rediss:// server that asks for one."
    )
    redis_tls_key: str = _setting("", "Private key file (PEM) of RUNNER_REDIS_TLS_CERT.")
    concurrency: int = _setting(
        0,
        "Tests one worker runs at once (threads; also the pool size). 0: twice the CPUs this "
        "process may use (affinity and cgroup quota, not the host's core count).",
        low=0,
    )
    queue: str = _setting("runner", "Queue the worker consumes and runner.submit is sent to.")
    visibility_timeout_s: int = _setting(
        300,
        "Seconds before an unacknowledged task is handed to another worker (a worker that "
        "died holding it); must exceed the longest task time limit.",
        low=10,
    )
    outage_window_s: int = _setting(
        60,
        "Seconds a Redis or Docker engine outage (a restart, a crash recovered from Redis's "
        "append-only file) is waited out: meanwhile a worker's Redis calls and sandbox leases "
        "wait and retry, and sandboxes lost with the engine are made again, so tests are only "
        "delayed. An outage longer than this ends the tests caught in it IE, saying so: "
        "Redis unreachable for 60 s, Docker engine unreachable for 60 s.",
        low=1,
        high=3_600,
    )
    problem_expires_s: int = _setting(
        604_800,
        "Seconds a registered problem (and its test data) is kept after it was registered or "
        "last judged.",
        low=60,
    )
    result_expires_s: int = _setting(
        3_600,
        "Seconds a submission's result, chord state and test data are kept in Redis (and "
        "compiled programs at most); also how long a run whose join never came counts "
        "against its tenant.",
        low=60,
    )
    max_artifact_kb: int = _setting(32_768, "Largest compiled program; bigger ones get CE.", low=64)
    artifact_cache_mb: int = _setting(256, "Compiled programs kept in each worker's memory.", low=0)
    # --- shared state and admission (docs/capacity.md) ---------------------------------------
    cache_url: str = _setting(
        "",
        "Redis for compiled programs, a cache: losing one costs a recompile. Point it at an "
        "instance of its own with maxmemory and allkeys-lru. Empty: the result backend's, "
        "where RUNNER_CACHE_BUDGET_MB alone bounds it.",
    )
    cache_budget_mb: int = _setting(
        512,
        "Compiled programs (compressed) the fleet keeps in the cache Redis; the least recently "
        "used go first.",
        low=1,
    )
    inline_data_kb: int = _setting(
        64,
        "A test's stdin or expected output above this rides the queue as a reference to "
        "compressed, content-addressed data in Redis, not inside the task message.",
        low=0,
    )
    data_cache_mb: int = _setting(256, "Test data kept in each worker's memory.", low=0)
    max_queued_tests: int = _setting(
        20_000,
        "Tests that may wait in the queue; a submission that would pass it is refused with "
        "RJ fleet_busy (0: no bound).",
        low=0,
    )
    redis_high_water_pct: int = _setting(
        80,
        "New submissions are refused (RJ fleet_busy) while the broker's or result backend's "
        "Redis uses this share of its maxmemory or more; the rest is for work accepted.",
        low=1,
        high=100,
    )
    tenant_max_tests: int = _setting(
        5_000,
        "Tests one tenant (the submission's `tenant`) may have in flight; past it its "
        "submissions get RJ tenant_busy (0: no cap).",
        low=0,
    )
    tenant_max_share_pct: int = _setting(
        50,
        "While another tenant is active, no tenant runs more than this share of the fleet's "
        "slots (workers x RUNNER_CONCURRENCY) at once, so a tenant whose tests hold their "
        "slots for seconds leaves the rest to others; a tenant alone gets every slot. Workers "
        "always take the waiting test of the tenant running the fewest first (100: no share).",
        low=1,
        high=100,
    )
    tenant_max_data_mb: int = _setting(
        1_024,
        "Stored test data (compressed) one tenant may have in flight; past it RJ tenant_busy "
        "(0: no cap).",
        low=0,
    )
    # --- HTTP API (runner api) and metrics -----------------------------------------------------
    api_open: int = _setting(
        0,
        "1: `runner api` serves without API keys (anyone who reaches it may submit; for a "
        "loopback-only or otherwise guarded deployment). 0: every request needs a key.",
        low=0,
        high=1,
    )
    api_max_body_mb: int = _setting(
        64, "Largest request body `runner api` reads (a submission's JSON); past it 413.", low=1
    )
    api_max_wait_s: int = _setting(
        60, "Longest `?wait=SECONDS` a request may ask (a held connection each).", low=0
    )
    api_rate_per_s: int = _setting(
        50, "Requests per second a new API key may make, sustained (runner keys create).", low=1
    )
    api_burst: int = _setting(
        100, "Requests a new API key may make at once after a quiet spell.", low=1
    )
    api_max_in_flight: int = _setting(
        200, "Submissions not yet final a new API key may have; past it 429.", low=1
    )
    api_allow_private_callbacks: int = _setting(
        0,
        "1: webhooks may go to loopback, private and link-local addresses (a callback "
        "receiver inside the operator's network). 0: public addresses only.",
        low=0,
        high=1,
    )
    api_webhook_secret: str = _setting(
        "",
        "Signs the webhooks of submissions sent without a key (RUNNER_API_OPEN=1): whsec_ and "
        "the base64 of 24 to 64 random bytes (Standard Webhooks); several, space separated, "
        "each sign (to replace one: add the new one, drop the old one once receivers have "
        "it). Empty: such submissions take no callback_url. Keyed submissions use their key's.",
        secret=True,
    )
    api_webhook_retry_s: int = _setting(
        86_400,
        "How long after a result its webhook is still retried (decided when the submission is "
        "accepted); then it is marked failed. Its state and event are kept until then even "
        "when the result expires first, and RUNNER_RESULT_EXPIRES_S more once settled.",
        low=1,
        high=30 * 86_400,
    )
    api_webhook_backoff_ms: int = _setting(
        1_000, "Delay before a webhook's first retry, doubling to at most an hour.", low=10
    )
    api_webhook_timeout_s: int = _setting(
        15,
        "Deadline of one webhook call, all of it (connecting, sending, the answer's status and "
        "headers; its body is never read); past it the attempt failed and is retried.",
        low=1,
        high=60,
    )
    metrics_port: int = _setting(
        0,
        "Port `runner worker` serves Prometheus metrics on (/metrics); 0: none. Each worker "
        "process on a host needs a port of its own.",
        low=0,
        high=65_535,
    )
    node_name: str = _setting(
        "",
        "Celery node name of `runner worker`, and the node `runner ping` asks. Empty: "
        "runner@<host name>.",
    )
    owner: str = _setting(
        "",
        "Label identifying this worker's sandboxes, so a restarted worker removes what a "
        "crashed one left. Empty: the Celery node name; then workers also remove sandboxes "
        "of other nodes on the same engine that no longer answer a ping.",
    )
    fleet: str = _setting(
        "",
        "Label naming this worker's fleet on its sandboxes; sweeps only ever remove sandboxes "
        "of their own fleet, so fleets that share a Docker engine leave each other alone. "
        "Empty: a short hash of the broker URL's scheme, host, port and database (never its "
        "credentials); set it when one fleet's workers spell the broker differently.",
    )
    log_format: str = _setting(
        "console", "Log rendering: console (readable) or json.", choices=("console", "json")
    )
    log_level: str = _setting(
        "info", "Lowest log level emitted.", choices=("debug", "info", "warning", "error")
    )

    def __post_init__(self) -> None:
        for name in self.languages.split(","):
            if name.strip() and language_named(name.strip()) is None:
                raise SettingsError(
                    f"RUNNER_LANGUAGES={self.languages!r}: {name.strip()!r} is no language "
                    f"(choose from {', '.join(LANGUAGES)}, or their aliases)"
                )
        for name in ("broker_url", "result_backend"):
            url = getattr(self, name)
            if not url.startswith(("redis://", "rediss://", "unix://")):
                raise SettingsError(
                    f"RUNNER_{name.upper()}={redact_url(url)!r} is not a redis://, rediss:// or "
                    "unix:// URL"
                )
        redis_access.check(self)
        for name, url in redis_access.urls(self):
            if why := redis_access.url_problem(self, url):
                raise SettingsError(f"{name}={redact_url(url)!r} {why}")
        for part in self.compiler_options.split(";"):
            language, equals, options = part.partition("=")
            if not part.strip():
                continue
            if not equals or language.strip() not in LANGUAGES:
                raise SettingsError(
                    f"RUNNER_COMPILER_OPTIONS={self.compiler_options!r}: {part.strip()!r} is not "
                    f"LANGUAGE=OPTIONS with a language of {', '.join(LANGUAGES)}"
                )
            for option in options.split():
                if not option.startswith("-"):
                    raise SettingsError(
                        f"RUNNER_COMPILER_OPTIONS={self.compiler_options!r}: {option!r} is not "
                        "an option (options start with -)"
                    )
        if why := registry_problem(self.registry):
            raise SettingsError(f"RUNNER_REGISTRY={self.registry!r} {why}")
        if self.registry_password and self.registry_password_file:
            raise SettingsError(
                "RUNNER_REGISTRY_PASSWORD and RUNNER_REGISTRY_PASSWORD_FILE are both set; give one"
            )
        if (self.registry_password or self.registry_password_file) and not self.registry_user:
            raise SettingsError(
                "RUNNER_REGISTRY_PASSWORD(_FILE) is set without RUNNER_REGISTRY_USER"
            )
        if self.host_slice and not HOST_SLICE_NAME.fullmatch(self.host_slice):
            raise SettingsError(
                f"RUNNER_HOST_SLICE={self.host_slice!r} is not a slice name (letters, digits, "
                "_ . -, starting with a letter or digit; up to 64)"
            )
        if self.host_cpus and not (MIN_HOST_CPUS <= self.host_cpus <= 1024):
            raise SettingsError(
                f"RUNNER_HOST_CPUS={self.host_cpus!r} must be 0 (no quota) or from "
                f"{MIN_HOST_CPUS} to 1024"
            )
        if self.host_cpus and not self.host_slice:
            raise SettingsError(
                f"RUNNER_HOST_CPUS={self.host_cpus!r} needs RUNNER_HOST_SLICE (the slice it sizes)"
            )
        for number, secret in enumerate(self.api_webhook_secret.split(), 1):
            if why := secret_problem(secret):
                raise SettingsError(f"RUNNER_API_WEBHOOK_SECRET: its secret {number} {why}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``environ`` (default: ``os.environ``), rejecting bad values."""
        env = os.environ if environ is None else environ
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key in sorted(env):
            if not key.startswith(PREFIX) or key[len(PREFIX) :].lower() in fields:
                continue
            meant = near_miss(key[len(PREFIX) :].lower(), fields)
            if meant is not None:
                raise SettingsError(
                    f"unknown setting {key!r}: did you mean {PREFIX + meant.upper()}? "
                    "(`runner settings` lists them all)"
                )
        values: dict[str, Any] = {}
        for name, f in fields.items():
            key = PREFIX + name.upper()
            if key in env:
                values[name] = _parse(key, env[key], f)
        for name in ("broker_url", "result_backend"):
            if values.get(name) == "":
                del values[name]  # set but empty: as if unset (RUNNER_REDIS_URL's, or default)
        if values.get("redis_url"):
            server = _server(values["redis_url"])
            values.setdefault("broker_url", f"{server}/0")
            values.setdefault("result_backend", f"{server}/1")
        return cls(**values)

    def chosen_languages(self) -> list[str]:
        """RUNNER_LANGUAGES as the registry's names, in its order (empty: every language)."""
        named = {
            language.name
            for name in self.languages.split(",")
            if name.strip() and (language := language_named(name.strip())) is not None
        }
        return [name for name in LANGUAGES if name in named or not named]

    def ceilings(self) -> Limits:
        """The highest value of each limit a submission may set (``RUNNER_MAX_<LIMIT>``)."""
        return Limits(
            **{name: getattr(self, ceiling_setting(name)) for name in Limits.model_fields}
        )

    def maxima(self) -> Maxima:
        return Maxima(
            limits=self.ceilings(),
            tests=self.max_tests,
            source_kb=self.max_source_kb,
            stdin_kb=self.max_stdin_kb,
            files=self.max_files,
            extra_options=self.extra_options(),
        )

    def extra_options(self) -> frozenset[tuple[str, str]]:
        """RUNNER_COMPILER_OPTIONS as (language, option) pairs."""
        pairs: set[tuple[str, str]] = set()
        for part in self.compiler_options.split(";"):
            if not part.strip():
                continue
            language, _, options = part.partition("=")
            pairs.update((language.strip(), option) for option in options.split())
        return frozenset(pairs)

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """(variable, default, doc) for every setting, for the README and ``runner settings``."""
        return [
            (PREFIX + f.name.upper(), repr(f.default), f.metadata["doc"])
            for f in dataclasses.fields(cls)
        ]

    @classmethod
    def ignored(cls, environ: Mapping[str, str] | None = None) -> list[str]:
        """The ``RUNNER_*`` variables of ``environ`` that are no setting and no near miss of
        one: other tools' (GitHub Actions' RUNNER_OS...), which :meth:`from_env` leaves alone."""
        env = os.environ if environ is None else environ
        names = {f.name for f in dataclasses.fields(cls)}
        return sorted(
            key
            for key in env
            if key.startswith(PREFIX)
            and key[len(PREFIX) :].lower() not in names
            and near_miss(key[len(PREFIX) :].lower(), names) is None
        )

    def shown(self, name: str) -> str:
        """A setting's value as it may be printed or logged: a secret as ``'***'`` (or ``''``
        when unset), a URL without its password."""
        f = next(f for f in dataclasses.fields(self) if f.name == name)
        value = getattr(self, name)
        if _is_secret(f):
            return repr("***" if value else "")
        if isinstance(value, str):
            return repr(redact_url(value))
        return repr(value)

    def __repr__(self) -> str:
        # the dataclass's own would print every secret and password
        shown = ", ".join(f"{f.name}={self.shown(f.name)}" for f in dataclasses.fields(self))
        return f"Settings({shown})"


# What makes a setting secret besides its own ``secret=True``: a setting added later with one
# of these words in its name is redacted without anyone having to remember the flag.
SECRET_WORDS = ("secret", "password", "token")
# A trailing word a setting's name may be given without, or with one too many, and still be
# meant for it: RUNNER_OUTAGE_WINDOW for RUNNER_OUTAGE_WINDOW_S, RUNNER_REDIS for _REDIS_URL.
_WORD = "_"


def _is_secret(f: dataclasses.Field[Any]) -> bool:
    return bool(f.metadata.get("secret")) or any(word in f.name for word in SECRET_WORDS)


def near_miss(name: str, known: Iterable[str]) -> str | None:
    """The known setting ``name`` (both lower case, without the prefix) is most likely meant
    for, or None when it resembles none: at most one edit (an insertion, deletion, substitution
    or swap of neighbours) from a name of up to 6 characters, two from a longer one, or the
    same but for one trailing ``_word``. Names other tools set in CI (GitHub Actions' os, temp,
    arch, name, tool_cache, workspace...) are far from every setting (tests/unit/test_settings.py
    keeps them so)."""
    best: tuple[int, str] | None = None
    for candidate in sorted(known):
        allowed = 1 if len(candidate) <= 6 else 2
        distance = _distance(name, candidate)
        if name.rpartition(_WORD)[0] == candidate or candidate.rpartition(_WORD)[0] == name:
            distance = min(distance, allowed)
        if distance <= allowed and (best is None or distance < best[0]):
            best = (distance, candidate)
    return None if best is None else best[1]


def _distance(a: str, b: str) -> int:
    """Edits from ``a`` to ``b``: insertions, deletions, substitutions and swaps of two
    neighbouring characters (optimal string alignment)."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        row = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (x != y))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                row[j] = min(row[j], previous2[j - 2] + 1)
        previous2, previous = previous, row
    return previous[-1]


_REGISTRY = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*")


def registry_problem(value: str) -> str:
    """Why ``value`` is no registry as image references name one (HOST[:PORT][/PATH], no
    scheme, no credentials), or ``""``."""
    if not value:
        return ""
    if "://" in value:
        return "has a scheme; give HOST:PORT[/PATH] as in an image name (e.g. 127.0.0.1:5000)"
    if "@" in value:
        return "carries credentials; give them in RUNNER_REGISTRY_USER and _PASSWORD(_FILE)"
    if not _REGISTRY.fullmatch(value):
        return "is not HOST[:PORT][/PATH] (e.g. 127.0.0.1:5000 or registry.example:5000/fleet)"
    return ""


def redact_url(text: str) -> str:
    """``text`` with the password of a URL in it replaced by ``***``
    (``redis://:***@host:6379/0``); anything else unchanged."""
    parts = urlsplit(text) if "://" in text else None
    if parts is None or not parts.password:
        return text
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _parse(key: str, raw: str, f: dataclasses.Field[Any]) -> Any:
    convert: Callable[[str], Any] = (
        int if f.type in (int, "int") else float if f.type in (float, "float") else str
    )
    # a refusal quotes the value, but never a secret's or a URL's password
    quoted = "***" if _is_secret(f) else redact_url(raw)
    try:
        value = convert(raw.strip())
    except ValueError:
        kind = "a number" if convert is float else "a whole number"
        raise SettingsError(f"{key}={quoted!r} is not {kind}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise SettingsError(f"{key}={quoted!r} is not a finite number")
    low = f.metadata["low"]
    if low is not None and value < low:
        raise SettingsError(f"{key}={quoted!r} must be at least {low}")
    high = f.metadata["high"]
    if high is not None and value > high:
        raise SettingsError(f"{key}={quoted!r} must be at most {high}")
    choices = f.metadata["choices"]
    if choices and value not in choices:
        raise SettingsError(f"{key}={quoted!r} must be one of {', '.join(choices)}")
    return value


def _server(url: str) -> str:
    """RUNNER_REDIS_URL without a trailing slash, once checked to name a server only."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise SettingsError(
            f"RUNNER_REDIS_URL={redact_url(url)!r} is not a redis:// or rediss:// URL"
        )
    if parts.query:
        raise SettingsError(
            f"RUNNER_REDIS_URL={redact_url(url)!r} carries a query string; give the server "
            "only (TLS options: RUNNER_REDIS_TLS_CA, RUNNER_REDIS_TLS_CERT, RUNNER_REDIS_TLS_KEY)"
        )
    if parts.path.strip("/"):
        raise SettingsError(
            f"RUNNER_REDIS_URL={redact_url(url)!r} names a database; give the server only "
            "(the broker uses database 0 and the result backend database 1)"
        )
    return url.strip().rstrip("/")

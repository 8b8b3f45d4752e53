"""The project's exceptions: one tree, rooted in :class:`RunnerError`.

::

    RunnerError                  anything this project raises on purpose
    ├── SettingsError            an environment variable is unknown or invalid
    ├── ImageError               building or finding an image failed
    │   └── BaseImageError       no base image, and none could be made from Debian packages
    ├── SandboxError             a sandbox container misbehaved (Docker failure, dead or
    │   │                        silent supervisor, broken protocol); the pool recycles it
    │   ├── SandboxTimeout       the supervisor did not answer before the outer deadline
    │   ├── SandboxLost          the sandbox died under its job (its container gone, with the
    │   │                        engine's restart say): the job runs again on a fresh one
    │   ├── EngineUnavailable    the Docker engine stayed away longer than the outage window
    │   ├── ProtocolError        the supervisor's answer could not be parsed
    │   └── IsolationUnavailable the host refuses the isolation the settings ask for
    ├── PoolClosed               a lease was asked of a pool that is shutting down
    ├── SubmissionRejected       the submission breaks the contract (verdict ``RJ``)
    ├── ApiKeyError              an API key cannot be created or revoked as asked
    └── BrokerError              Redis or Celery could not be reached or answered wrongly
        └── RedisUnavailable     Redis stayed away longer than the outage window

Docker, Redis and Celery exceptions are translated where they cross into our code
(``raise SandboxError(...) from exc``), so callers catch one family.
"""

from __future__ import annotations


class RunnerError(Exception):
    """Root of every exception this project raises on purpose."""


class SettingsError(RunnerError, ValueError):
    """An environment variable is unknown or holds an invalid value; the message quotes its name."""


class ImageError(RunnerError):
    """An image could not be built, inspected or found."""


class BaseImageError(ImageError):
    """No base image is available and none could be built from Debian packages."""


class SandboxError(RunnerError):
    """A sandbox container failed; the test gets ``IE`` and the container is recycled."""


class SandboxTimeout(SandboxError):
    """The supervisor did not answer before the worker's outer deadline."""


class ProtocolError(SandboxError):
    """The supervisor sent something that is not a valid answer."""


class SandboxLost(SandboxError):
    """The sandbox died under its job (the supervisor's connection closed: its container was
    killed, with an engine restart say); the job did not fail, and runs again on a fresh one."""


class EngineUnavailable(SandboxError):
    """The Docker engine did not answer for longer than ``RUNNER_OUTAGE_WINDOW_S``; the
    message says so (``Docker engine unreachable for 60 s ...``)."""


class IsolationUnavailable(SandboxError):
    """The kernel or the container's profile refuses the namespaces jobs are to get; the
    sandbox is unfit rather than run jobs with weaker isolation than asked."""


class PoolClosed(RunnerError):
    """The pool is shutting down and hands out no more sandboxes."""


class SubmissionRejected(RunnerError):
    """The submission breaks the contract; ``code`` is machine-readable, the message precise."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class BrokerError(RunnerError):
    """Redis or the Celery broker could not be reached or answered wrongly."""


class NotSent(BrokerError):
    """An accepted run's work could not be sent to the broker; its admission was given back."""


class RedisUnavailable(BrokerError):
    """Redis did not answer for longer than ``RUNNER_OUTAGE_WINDOW_S``; the message says so
    (``Redis unreachable for 60 s ...``)."""


class RedisRefused(BrokerError):
    """Redis refused this process: its ACL user or password (``RUNNER_REDIS_ACL_USER``), a
    command or key its role may not use, or a server certificate that failed its check; the
    message says which, never the password."""


class ApiKeyError(RunnerError):
    """An API key cannot be created or revoked as asked (a bad name or limit, an unknown id)."""

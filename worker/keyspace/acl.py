"""Redis ACL users for the fleet's roles, written from :data:`~worker.keyspace.roles.KEYS` and
:data:`~worker.keyspace.roles.ROLES`: no key pattern is spelled here.

Each role (producer, worker, api, monitor) becomes one ACL user named after it, allowed

- the keys of its :class:`~worker.keyspace.roles.Access`: ``%R~pattern`` for those it only reads,
  ``~pattern`` for those it writes (Redis 7 checks each key a command or a script touches);
- the pub/sub channels among them (``&pattern``, the keys whose type names a ``channel``:
  Celery publishes each result on its key's name too). A channel is allowed as a key as well,
  since the scripts that publish get it in KEYS. A channel a role subscribes to by pattern
  (kombu PSUBSCRIBEs its fanout topics) is allowed by exactly that pattern, which is how
  Redis matches a PSUBSCRIBE;
- the commands of :data:`COMMANDS`: categories, then nothing ``@dangerous`` or ``@admin`` (no
  KEYS, FLUSHALL, CONFIG, DEBUG, MONITOR, ACL ...), nor functions or SCRIPT FLUSH/KILL, then
  the few single commands a role needs beyond that (INFO, for the admission's memory check).

The patterns are made concrete for one deployment: ``{queue}`` is ``RUNNER_QUEUE`` (its glob
characters escaped), ``␆␖`` kombu's separator, ``{db}`` the broker's database number (kombu
prefixes its fanout topics with it). The default user is turned off: a client that does not
log in is refused.

:func:`acl_file` writes an ACL file (passwords as SHA-256, never in clear), :func:`setuser`
gives the same rules to a live Redis (``ACL SETUSER``); ``python -m worker.keyspace acl``
prints the file for the settings in the environment.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from worker.keyspace import SEP
from worker.keyspace.roles import KEYS, ROLES

# What each role may run; its key and channel rules decide on which keys and channels. Every
# role needs about the same commands: the producer's admission and the API run scripts, the
# worker consumes (BLMOVE, scripts) and sweeps dead consumers' hand-off lists (SCAN), the
# monitor's control commands declare a reply queue (kombu: MULTI, a script) and read it.
# INFO: the admission's memory check, and Flower's broker page.
_EVERY = (
    "-@all",
    "+@connection",
    "+time",
    "+@read",
    "+@write",
    "+@scripting",
    "+@transaction",
    "+@pubsub",
    "-@dangerous",
    "-@admin",
    "-function",
    "-fcall",
    "-fcall_ro",
    "-script|flush",
    "-script|kill",
    "+info",
)
COMMANDS: dict[str, tuple[str, ...]] = {role: _EVERY for role in ROLES}

_CHANNELS = {k.pattern for k in KEYS if "channel" in k.type}


def _glob_escaped(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def concrete(pattern: str, queue: str, db: int = 0, sep: str = SEP) -> str:
    """A pattern of :data:`KEYS` for one deployment's queue and broker database."""
    return (
        pattern.replace("{queue}", _glob_escaped(queue)).replace("{db}", str(db)).replace("␆␖", sep)
    )


def rules(role: str, queue: str, db: int = 0, sep: str = SEP) -> list[str]:
    """The ACL rules of ``role`` (no user name, no password), in the order Redis applies them."""
    if any(c.isspace() for c in queue) or not queue:
        raise ValueError(f"queue {queue!r} cannot be written into an ACL rule (spaces)")
    access = ROLES[role]
    found = ["resetkeys", "resetchannels"]
    for pattern in dict.fromkeys(access.write):
        made = concrete(pattern, queue, db, sep)
        found += [f"&{made}"] if pattern in _CHANNELS else []
        found.append(f"~{made}")
    for pattern in dict.fromkeys(access.read):
        if pattern in access.write:
            continue
        made = concrete(pattern, queue, db, sep)
        found += [f"&{made}"] if pattern in _CHANNELS else []
        found.append(f"%R~{made}")
    return [*found, *COMMANDS[role]]


def password_hash(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def acl_file(passwords: Mapping[str, str], queue: str, db: int = 0, sep: str = SEP) -> str:
    """An ACL file (``aclfile``) with the default user off and one user per role of
    ``passwords`` (role -> its password, stored hashed)."""
    lines = ["user default off resetkeys resetchannels -@all"]
    for role, password in passwords.items():
        if role not in ROLES:
            raise ValueError(f"{role!r} is no role (choose from {', '.join(ROLES)})")
        lines.append(
            " ".join(
                [
                    "user",
                    role,
                    "reset",
                    "on",
                    "#" + password_hash(password),
                    *rules(role, queue, db, sep),
                ]
            )
        )
    return "\n".join(lines) + "\n"


def setuser(
    client: Any, passwords: Mapping[str, str], queue: str, db: int = 0, sep: str = SEP
) -> None:
    """The same users, given to a live Redis through ``client`` (an admin's redis-py client):
    each user's rules replaced, the default user turned off last."""
    for role, password in passwords.items():
        client.execute_command(
            "ACL", "SETUSER", role, "reset", "on", "#" + password_hash(password),
            *rules(role, queue, db, sep),
        )  # fmt: skip
    client.execute_command("ACL", "SETUSER", "default", "off")

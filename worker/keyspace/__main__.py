"""``python -m worker.keyspace acl --passwords DIR``: the Redis ACL file of the fleet's roles.

``DIR`` holds one file per role (``producer``, ``worker``, ``api``, ``monitor``), the role's
password on its first line (the files each process reads through
``RUNNER_REDIS_ACL_PASSWORD_FILE``); roles without a file get no user. The queue and the
broker's database come from the settings in the environment (``RUNNER_QUEUE``,
``RUNNER_BROKER_URL`` or ``RUNNER_REDIS_URL``). The file holds SHA-256 digests of the
passwords, never the passwords. ``python -m worker.keyspace table`` prints the keyspace table
of docs/monitoring.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import urlsplit

from worker.errors import SettingsError
from worker.keyspace.acl import acl_file
from worker.keyspace.roles import ROLES, table
from worker.settings import Settings


def broker_db(url: str) -> int:
    """The database number of a Redis URL (kombu's first one of a failover list)."""
    path = urlsplit(url.split(";")[0].strip()).path.strip("/")
    return int(path) if path.isdigit() else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.keyspace")
    commands = parser.add_subparsers(dest="command", required=True)
    acl = commands.add_parser("acl", help="the Redis ACL file of the fleet's roles")
    acl.add_argument("--passwords", required=True, type=Path, help="one file per role")
    commands.add_parser("table", help="the keyspace table of docs/monitoring.md")
    args = parser.parse_args(argv)
    if args.command == "table":
        sys.stdout.write(table())
        return 0
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"python -m worker.keyspace: {exc}", file=sys.stderr)
        return 2
    passwords = {}
    for role in ROLES:
        path = args.passwords / role
        if path.is_file():
            line = path.read_text(encoding="utf-8").partition("\n")[0]
            if not line:
                print(
                    f"python -m worker.keyspace: {path}: its first line is empty", file=sys.stderr
                )
                return 2
            passwords[role] = line
    if not passwords:
        print(
            f"python -m worker.keyspace: {args.passwords} holds no password file of a role "
            f"({', '.join(ROLES)})",
            file=sys.stderr,
        )
        return 2
    sys.stdout.write(acl_file(passwords, settings.queue, broker_db(settings.broker_url)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``runner`` command.

::

    runner submit solution.py --lang python --tests tests.json --wait
    runner submit main.cpp util.h --lang cpp --tests tests.json --checker check.cpp testlib.h
    runner result ID [--wait]          # a submission sent before
    runner problem problem.json        # register a problem once; submit --problem ID
    runner worker                      # a Celery worker with warm sandbox pools
    runner api --port 8000             # the HTTP API and playground page
    runner keys create NAME            # an API key (list, revoke, rotate-secret)
    runner webhooks resend ID          # a final submission's webhook sent again
    runner status | ping | settings | schema

Exit codes (every command): 0 done (a submission: accepted), 1 a submission judged and not
accepted, 2 refused (``RJ``) or a usage error (bad flags, a missing or malformed file, a bad
setting, an id nobody knows), 3 the fleet is unreachable or could not do it (Redis away, no
worker consuming the queue or answering, nothing final in time), 4 not final yet (``runner
result`` without ``--wait``). Expected failures are one line on stderr starting ``runner:``,
never a traceback; a reader that goes away (``runner settings | head -1``) ends the command
quietly with 141, as the shell reports any command a closed pipe stopped.

The rooms: ``judging`` (submit, result, problem: files in, tables out), ``operating``
(worker, api, keys, status, ping, settings, schema) and ``webhooks`` (resend).

May import: worker.api, worker.contract, worker.errors, worker.keyspace, worker.logs,
worker.redis_access, worker.settings (each command loads what else it needs when it runs).
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path

from worker.errors import ApiKeyError, BrokerError, RunnerError, SettingsError
from worker.logs import configure_logging
from worker.settings import Settings

ACCEPTED, NOT_ACCEPTED, REFUSED, UNREACHABLE, NOT_FINAL = 0, 1, 2, 3, 4
CLOSED_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a command whose reader went away


class UsageError(RunnerError):
    """A flag, a file or its contents the command cannot use (exit 2)."""


class Unreachable(RunnerError):
    """The fleet cannot be reached, or nothing consumes its queue (exit 3)."""


def parser() -> argparse.ArgumentParser:
    from worker.languages import LANGUAGES

    languages = ", ".join(LANGUAGES)
    top = argparse.ArgumentParser(
        prog="runner",
        description="Code-judging worker fleet",
        epilog="exit codes: 0 accepted/done, 1 not accepted, 2 refused or usage error, "
        "3 fleet unreachable, 4 not final yet. RUNNER_REDIS_URL=redis://HOST:PORT points every "
        "command at one Redis (the demo's: redis://127.0.0.1:6380).",
    )
    top.add_argument("--version", action="version", version=version_line())
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("submit", help="send a submission (and follow it with --wait)")
    p.add_argument("files", type=Path, nargs="+", help="source files; the first is the entry point")
    p.add_argument(
        "--lang", help=f"{languages} (or an alias); default: from the first file's extension"
    )
    p.add_argument(
        "--tests",
        type=Path,
        help="JSON list of {stdin, expected_stdout, group}, or a folder of NAME.in/NAME.out",
    )
    p.add_argument("--problem", help="a registered problem's id, instead of --tests")
    p.add_argument("--option", action="append", default=[], help="a compiler option")
    p.add_argument("--arg", action="append", default=[], help="a program argument")
    p.add_argument("--groups", type=Path, help="JSON list of scored groups")
    p.add_argument("--checker", type=Path, nargs="+", help="a checker's files (testlib protocol)")
    p.add_argument("--checker-lang", default="cpp", help="the checker's language")
    p.add_argument("--interactor", type=Path, nargs="+", help="an interactor's files")
    p.add_argument("--interactor-lang", default="cpp", help="the interactor's language")
    p.add_argument("--id", help="submission id echoed back")
    p.add_argument("--limits", help="JSON, e.g. '{\"cpu_time_ms\": 500}'")
    p.add_argument("--compare", default=None, help="tokens, exact, lines or float")
    following(p)

    r = sub.add_parser("result", help="a submission's result (or progress) by its id")
    r.add_argument("id", help="what `runner submit` printed")
    following(r)

    pr = sub.add_parser("problem", help="register a problem (a JSON file), print its id")
    pr.add_argument("file", type=Path, help="the problem object (docs/contract.md)")
    pr.add_argument("--timeout", type=float, default=120.0)
    pr.add_argument("--json", action="store_true", help="print the answer object as JSON")

    w = sub.add_parser("worker", help="run a Celery worker with prewarmed sandbox pools")
    w.add_argument("-c", "--concurrency", type=int, default=0, help="default: RUNNER_CONCURRENCY")
    w.add_argument("-n", "--hostname", default="", help="default: RUNNER_NODE_NAME or runner@HOST")
    w.add_argument("-l", "--loglevel", default="INFO")

    a = sub.add_parser("api", help="serve the HTTP API and the playground page (docs/api.md)")
    a.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    a.add_argument("--port", type=int, default=8000)

    k = sub.add_parser("keys", help="API keys of `runner api`: create, list, revoke")
    ks = k.add_subparsers(dest="keys_command", required=True)
    kc = ks.add_parser("create", help="a new key; its token is printed once")
    kc.add_argument("name", help="who it is for (A-Z a-z 0-9 . _ -)")
    kc.add_argument("--tenant", default="", help="tenant its submissions queue as (its name)")
    kc.add_argument("--rate", type=int, default=0, help="requests/s (RUNNER_API_RATE_PER_S)")
    kc.add_argument("--burst", type=int, default=0, help="requests at once (RUNNER_API_BURST)")
    kc.add_argument(
        "--in-flight", type=int, default=0, help="unfinished submissions (RUNNER_API_MAX_IN_FLIGHT)"
    )
    kc.add_argument("--json", action="store_true")
    kl = ks.add_parser("list", help="every key (never their tokens or secrets)")
    kl.add_argument("--json", action="store_true")
    kr = ks.add_parser("revoke", help="revoke a key by id (its requests get 401)")
    kr.add_argument("id")
    kw = ks.add_parser(
        "rotate-secret", help="a new webhook secret; the old one signs beside it for a while"
    )
    kw.add_argument("id")
    kw.add_argument("--overlap", type=int, default=86_400, help="seconds both sign (default a day)")
    kw.add_argument("--json", action="store_true")

    wh = sub.add_parser("webhooks", help="webhooks of `runner api`: send one again")
    whs = wh.add_subparsers(dest="webhooks_command", required=True)
    wr = whs.add_parser("resend", help="a final submission's webhook, due again now")
    wr.add_argument("id", help="the submission's id")

    sub.add_parser("status", help="workers, queue lengths and sandbox pools")
    g = sub.add_parser("ping", help="which workers answer (exit 0 if any does)")
    one = g.add_mutually_exclusive_group()
    one.add_argument("-n", "--hostname", default="", help="one worker's node name (default: all)")
    one.add_argument(
        "--self",
        dest="itself",
        action="store_true",
        help="the worker `runner worker` starts here (RUNNER_NODE_NAME or runner@HOST): a "
        "container's health check",
    )
    g.add_argument("--timeout", type=float, default=2.0)
    sub.add_parser("settings", help="every RUNNER_* setting, its value and meaning")
    sc = sub.add_parser("schema", help="the contract's JSON Schemas (stdout, or into a folder)")
    sc.add_argument("folder", type=Path, nargs="?", help="write one file per schema here")
    return top


def following(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait", action="store_true", help="show tests as they finish, then a table")
    p.add_argument("--json", action="store_true", help="print the result object as JSON")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds --wait waits at most")
    p.add_argument(
        "--stdout",
        action="store_true",
        help="show every test's output under its row (tests without an expected output "
        "always show theirs)",
    )


def version_line() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from worker.contract import CONTRACT_VERSION

    try:
        installed = version("code-runner-fleet")
    except PackageNotFoundError:  # run from a checkout that was never installed
        installed = "unknown"
    return f"runner {installed} (contract {CONTRACT_VERSION})"


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The arguments, or exit 2 with the usage of the (sub)command they were meant for:
    argparse itself would answer a mistyped flag of ``runner submit`` with the top-level
    usage, which lists commands, not the flag."""
    top = parser()
    args, extra = top.parse_known_args(argv)
    if extra:
        meant = _subcommand(top, args)
        flags = [o for action in meant._actions for o in action.option_strings]
        hints = []
        for word in extra:
            if word.startswith("-"):
                close = difflib.get_close_matches(word.partition("=")[0], flags, n=1)
                hints += [f"{word}: did you mean {close[0]}?"] if close else []
        said = f" ({'; '.join(hints)})" if hints else ""
        meant.error(f"unrecognized arguments: {' '.join(extra)}{said}")
    return args


def _subcommand(top: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The innermost parser ``args`` went through (``runner keys create``'s, say)."""
    current = top
    while True:
        chosen = [
            action.choices[getattr(args, action.dest)]
            for action in current._actions
            if isinstance(action, argparse._SubParsersAction) and getattr(args, action.dest, None)
        ]
        if not chosen:
            return current
        current = chosen[0]


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, not at exit, where a closed pipe would be a traceback
    except BrokenPipeError:
        # the reader went away (`runner settings | head -1`): nothing more is wanted. Later
        # writes, and the interpreter's own flush at exit, go nowhere instead of failing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return CLOSED_PIPE
    return code


def _main(argv: list[str] | None) -> int:
    args = parse(argv)  # exits 2 with its usage line on bad flags
    from worker.cli import judging, operating, webhooks

    handlers = {
        "submit": judging.submit,
        "result": judging.result,
        "problem": judging.problem,
        "worker": operating.worker,
        "api": operating.api,
        "keys": operating.keys,
        "webhooks": webhooks.webhooks,
        "status": operating.status,
        "ping": operating.ping,
        "settings": operating.settings,
        "schema": operating.schema,
    }
    settings: Settings | None = None
    try:
        settings = Settings.from_env()
        configure_logging(settings.log_format, settings.log_level)
        return handlers[args.command](args, settings)
    except (UsageError, SettingsError, ApiKeyError) as exc:
        return _say(exc, REFUSED)
    except (Unreachable, BrokerError, TimeoutError) as exc:
        return _say(exc, UNREACHABLE)
    except RunnerError as exc:
        # the fleet failed in a way of its own: never 1, which says a submission was judged
        return _say(exc, UNREACHABLE)
    except Exception as exc:
        # Redis refusing this process's ACL user something, wherever it surfaced
        from worker.redis_access import refusal

        refused = refusal(exc, settings.redis_acl_user if settings else "")
        if refused is None:
            raise
        return _say(refused, UNREACHABLE)
    except KeyboardInterrupt:
        return 130


def _say(exc: Exception, code: int) -> int:
    print(f"runner: {exc}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())

"""The ``runner`` command: submit, worker, status, settings, images.

::

    runner submit solution.py --lang python --tests tests.json --wait
    runner submit main.cpp util.h --lang cpp --tests tests.json --checker check.cpp testlib.h
    runner problem problem.json        # register a problem once; submit --problem ID
    runner worker                      # a Celery worker with warm sandbox pools
    runner status                      # workers, queue lengths, pool state
    runner gateway --port 8000         # submissions over HTTP
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
from pathlib import Path
from typing import Any

from worker.errors import RunnerError
from worker.logs import configure_logging
from worker.settings import Settings

VERDICT_STYLE = {"AC": "\033[32m", "SK": "\033[2m"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="runner", description="Code-judging worker fleet")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("submit", help="send a submission (and follow it with --wait)")
    p.add_argument("files", type=Path, nargs="+", help="source files; the first is the entry point")
    p.add_argument("--lang", required=True, help="python, c, cpp or javascript")
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
    p.add_argument("--wait", action="store_true", help="show tests as they finish, then a table")
    p.add_argument("--json", action="store_true", help="print the result object as JSON")
    p.add_argument("--id", help="submission id echoed back")
    p.add_argument("--limits", type=json.loads, default=None, help="e.g. '{\"cpu_time_ms\": 500}'")
    p.add_argument("--compare", default=None, help="tokens, exact, lines or float")
    p.add_argument("--timeout", type=float, default=600.0)

    w = sub.add_parser("worker", help="run a Celery worker with prewarmed sandbox pools")
    w.add_argument("-c", "--concurrency", type=int, default=0, help="default: RUNNER_CONCURRENCY")
    w.add_argument("-n", "--hostname", default="", help="default: RUNNER_NODE_NAME or runner@HOST")
    w.add_argument("-l", "--loglevel", default="INFO")

    gw = sub.add_parser("gateway", help="serve submissions over HTTP (POST /v1/submissions)")
    gw.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    gw.add_argument("--port", type=int, default=8000)

    sub.add_parser("status", help="workers, queue lengths and sandbox pools")
    g = sub.add_parser("ping", help="exit 0 if the named worker answers (a health check)")
    g.add_argument("-n", "--hostname", default="", help="default: RUNNER_NODE_NAME or runner@HOST")
    g.add_argument("--timeout", type=float, default=5.0)
    sub.add_parser("settings", help="every RUNNER_* setting, its value and meaning")
    pr = sub.add_parser("problem", help="register a problem (a JSON file), print its id")
    pr.add_argument("file", type=Path, help="the problem object (docs/contract.md)")
    pr.add_argument("--timeout", type=float, default=120.0)
    sc = sub.add_parser("schema", help="write the contract's JSON Schema files")
    sc.add_argument("folder", type=Path, nargs="?", default=Path("docs/schema"))

    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        configure_logging(settings.log_format, settings.log_level)
        handler = {
            "submit": _submit,
            "problem": _problem,
            "worker": _worker,
            "status": _status,
            "gateway": _gateway,
            "ping": _ping,
            "settings": _settings,
            "schema": _schema,
        }
        return handler[args.command](args, settings)
    except RunnerError as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return 1


def load_tests(path: Path) -> list[dict[str, Any]]:
    """A JSON list, or a folder of NAME.in files with optional NAME.out beside them."""
    if path.is_dir():
        tests = []
        for stdin in sorted(path.glob("*.in")):
            expected = stdin.with_suffix(".out")
            test: dict[str, Any] = {"id": stdin.stem, "stdin": stdin.read_text()}
            if expected.exists():
                test["expected_stdout"] = expected.read_text()
            tests.append(test)
        return tests
    loaded = json.loads(path.read_text())
    if not isinstance(loaded, list):
        raise RunnerError(f"{path}: expected a JSON list of tests")
    return loaded


def program_files(paths: list[Path]) -> tuple[str, list[dict[str, str]]]:
    """The entry's name and every file, named by its path from the entry's folder."""
    root = paths[0].parent
    files = []
    for path in paths:
        try:
            name = path.relative_to(root).as_posix()
        except ValueError:
            raise RunnerError(f"{path}: not in {root}, the first file's folder") from None
        files.append({"name": name, "content": path.read_text()})
    return files[0]["name"], files


def _submit(args: argparse.Namespace, settings: Settings) -> int:
    from worker.client import Client

    if (args.tests is None) == (args.problem is None):
        raise RunnerError("give --tests or --problem (one of them)")
    entry, files = program_files(args.files)
    submission: dict[str, Any] = {"language": args.lang, "files": files, "entry": entry}
    if args.problem:
        submission["problem"] = args.problem
    else:
        submission["tests"] = load_tests(args.tests)
    for flag, field in (("option", "compiler_options"), ("arg", "args")):
        if getattr(args, flag):
            submission[field] = getattr(args, flag)
    if args.groups:
        submission["groups"] = json.loads(args.groups.read_text())
    for role in ("checker", "interactor"):
        if getattr(args, role):
            entry_, files_ = program_files(getattr(args, role))
            language = getattr(args, f"{role}_lang")
            submission[role] = {"language": language, "files": files_, "entry": entry_}
    if args.id:
        submission["id"] = args.id
    if args.limits:
        submission["limits"] = args.limits
    if args.compare:
        submission["compare"] = {"mode": args.compare}
    handle = Client(settings).submit(submission)
    if not args.wait:
        print(handle.id)
        return 0
    ids = [
        str(t.get("id", i)) if isinstance(t, dict) else str(i)
        for i, t in enumerate(submission.get("tests", []))
    ]
    width = max(map(len, ids), default=4)
    if not args.json:
        for index, test in handle.progress(timeout=args.timeout):
            shown = ids[index] if index < len(ids) else str(index)
            print(
                f"  finished {shown:<{width}}  {test.verdict:<4} {test.cpu_time_ms:>6} ms "
                f"{test.memory_kb:>8} KB  {test.message}",
                flush=True,
            )
    result = handle.result(timeout=args.timeout)
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        print(render_table(result.model_dump(mode="json")))
    return 0 if result.verdict == "AC" else 2


def _problem(args: argparse.Namespace, settings: Settings) -> int:
    from worker.client import Client

    answer = Client(settings).register_problem(json.loads(args.file.read_text()), args.timeout)
    if answer.error is not None:
        print(f"runner: {answer.error.code}: {answer.error.message}", file=sys.stderr)
        return 2
    print(answer.problem)
    return 0


def render_table(result: dict[str, Any]) -> str:
    tty = sys.stdout.isatty()
    w = max([4, *(len(test["id"]) for test in result["tests"])])
    lines = [f"{'TEST':<{w}}  {'VERDICT':<8} {'CPU ms':>7} {'WALL ms':>8} {'MEM KB':>8}  MESSAGE"]
    for test in result["tests"]:
        verdict = test["verdict"]
        colour = VERDICT_STYLE.get(verdict, "\033[31m")
        shown = f"{colour}{verdict:<8}\033[0m" if tty else f"{verdict:<8}"
        lines.append(
            f"{test['id']:<{w}}  {shown} {test['cpu_time_ms']:>7} {test['wall_time_ms']:>8} "
            f"{test['memory_kb']:>8}  {test['message']}"
        )
    compile_ = result.get("compile")
    if compile_ and compile_.get("output") and result["verdict"] == "CE":
        lines.append("compiler output:\n" + compile_["output"].rstrip())
    if result.get("error"):
        lines.append(f"error: {result['error']['code']}: {result['error']['message']}")
    for group in result.get("groups") or []:
        lines.append(
            f"group {group['name']}: {group['verdict']}  {group['score']:g}/{group['max_score']:g}"
        )
    score = f"  score {result['score']:g}/{result['max_score']:g}" if "score" in result else ""
    lines.append(
        f"verdict {result['verdict']}  passed {result['passed']}/{result['total']}  "
        f"max cpu {result['max_cpu_time_ms']} ms  max memory {result['max_memory_kb']} KB{score}"
    )
    return "\n".join(lines)


def _ping(args: argparse.Namespace, settings: Settings) -> int:
    """Asks this worker itself, through Celery's control API, whether it is alive."""
    from worker.app import app

    name = args.hostname or node_name(settings)
    replies = app.control.ping(destination=[name], timeout=args.timeout)
    if not replies:
        print(f"{name}: no answer", file=sys.stderr)
        return 1
    print(f"{name}: ok")
    return 0


def node_name(settings: Settings) -> str:
    return settings.node_name or f"runner@{socket.gethostname()}"


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from worker.app import app, concurrency_of

    concurrency = args.concurrency or concurrency_of(settings)
    name = args.hostname or node_name(settings)
    # threads: every test is a wait on a sandbox, and one shared warm pool serves them all
    app.worker_main(
        [
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            str(concurrency),
            "--queues",
            settings.queue,
            "--hostname",
            name,
            "--task-events",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            args.loglevel,
        ]
    )
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from worker.admission import TOTAL as ADMITTED_TESTS
    from worker.app import app
    from worker.fairqueue import fair_key
    from worker.intake import redis_client

    broker = redis_client(settings.broker_url)
    # kombu keeps each priority level in a list of its own, where each waiting task of a
    # tenant has a doorbell; those of tenants held to their share wait in a list of their own
    levels = [settings.queue] + [f"{settings.queue}\x06\x16{p}" for p in (3, 6, 9)]
    waiting = sum(int(broker.llen(name)) for name in levels)
    held = int(broker.llen(fair_key(settings.queue, "\x06\x16", "parked")))
    in_flight = int(redis_client(settings.result_backend).get(ADMITTED_TESTS) or 0)
    print(
        f"queue {settings.queue}: {waiting + held} waiting ({held} held to their tenant's "
        f"share); {in_flight} tests in flight (bound {settings.max_queued_tests})"
    )
    replies = app.control.broadcast("pool_state", reply=True, timeout=2.0)
    if not replies:
        print("no workers answered")
        return 1
    for reply in replies:
        for node, pools in reply.items():
            print(f"worker {node}")
            for pool in pools:
                print("  " + "  ".join(f"{k}={v}" for k, v in pool.items()))
    return 0


def _gateway(args: argparse.Namespace, settings: Settings) -> int:
    from worker.client import Client
    from worker.gateway import serve

    server = serve(Client(settings), args.bind, args.port)
    print(f"runner gateway on http://{args.bind}:{server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


def _schema(args: argparse.Namespace, settings: Settings) -> int:
    from worker.contract import json_schemas

    args.folder.mkdir(parents=True, exist_ok=True)
    for name, schema in json_schemas().items():
        (args.folder / name).write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        print(args.folder / name)
    return 0


def _settings(args: argparse.Namespace, settings: Settings) -> int:
    for name, default, doc in Settings.describe():
        current = getattr(settings, name.removeprefix("RUNNER_").lower())
        print(f"{name}={current!r}  (default {default})\n    {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``runner submit``, ``runner result`` and ``runner problem``: files in, tables (or JSON) out.

Every file a command reads is named in its error (with line and column for JSON); the fleet's
Redis is asked first, for two seconds, so an unreachable one is one line at once, not a
traceback after Celery's retries; and a submission nobody picks up is said to be waiting,
with how to start a worker, within a few seconds.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

import redis

from worker.cli import ACCEPTED, NOT_ACCEPTED, NOT_FINAL, REFUSED, Unreachable, UsageError
from worker.redis_access import redis_options, refusal
from worker.settings import Settings

VERDICT_STYLE = {"AC": "\033[32m", "SK": "\033[2m"}
NOBODY_S = 5.0  # no sign of the submission being worked on after this: is any worker there?


def submit(args: argparse.Namespace, settings: Settings) -> int:
    from worker.client import Client

    if (args.tests is None) == (args.problem is None):
        raise UsageError("give --tests or --problem (one of them)")
    entry, files = program_files(args.files)
    language = args.lang or language_of(entry)
    submission: dict[str, Any] = {"language": language, "files": files, "entry": entry}
    if args.problem:
        submission["problem"] = args.problem
    else:
        submission["tests"] = load_tests(args.tests)
    for flag, field in (("option", "compiler_options"), ("arg", "args")):
        if getattr(args, flag):
            submission[field] = getattr(args, flag)
    if args.groups:
        submission["groups"] = read_json(args.groups)
    for role in ("checker", "interactor"):
        if getattr(args, role):
            entry_, files_ = program_files(getattr(args, role))
            language = getattr(args, f"{role}_lang")
            submission[role] = {"language": language, "files": files_, "entry": entry_}
    if args.id:
        submission["id"] = args.id
    if args.limits:
        submission["limits"] = parse_json(args.limits, "--limits")
    if args.compare:
        submission["compare"] = {"mode": args.compare}
    reachable(settings)
    handle = Client(settings).submit(submission)
    refusal = handle.refusal
    if refusal is not None:
        return shown(args, refusal.model_dump(mode="json"))
    if not args.wait:
        print(json.dumps({"id": handle.id}) if args.json else handle.id)
        return ACCEPTED
    tests = submission.get("tests", [])
    ids = [str(t.get("id", i)) if isinstance(t, dict) else str(i) for i, t in enumerate(tests)]
    # "just run it": a test without an expected output passes on a clean exit, and its
    # output is what the person wanted to see
    just_run = {
        i for i, t in enumerate(tests) if isinstance(t, dict) and "expected_stdout" not in t
    }
    return follow(args, settings, handle, ids, just_run)


def language_of(entry: str) -> str:
    """The language whose source files end like ``entry`` (``--lang`` left out)."""
    from worker.languages import LANGUAGES

    found = [lang.name for lang in LANGUAGES.values() if lang.is_source(entry)]
    if len(found) > 1:
        # a suffix several languages take (.py: CPython's and PyPy's) is the language that has
        # it as its name or an alias (py: Python's); the others are asked for with --lang
        suffix = Path(entry).suffix[1:].lower()
        found = [name for name in found if suffix in (name, *LANGUAGES[name].aliases)]
    if len(found) != 1:
        raise UsageError(
            f"--lang: cannot tell the language of {entry} from its name; give --lang "
            f"({', '.join(LANGUAGES)})"
        )
    return found[0]


def example_language(folder: str, entry: str) -> str:
    """The language of an example of examples/: the one its folder's name ends with
    (``collatz-pypy``), or else the one its entry's name says (``sum-python/main.py``)."""
    from worker.languages import LANGUAGES

    named = Path(folder).name.rpartition("-")[2]
    return named if named in LANGUAGES else language_of(entry)


def result(args: argparse.Namespace, settings: Settings) -> int:
    from worker.client import Client

    reachable(settings)
    handle = Client(settings).handle(args.id)
    if args.wait:
        return follow(args, settings, handle, [])
    stored = handle.peek()
    if stored is None:
        done = len(handle.finished_tests())
        if not done and not admitted(settings, args.id):
            raise UsageError(
                f"no submission {args.id!r} is known: never sent, not taken from the queue yet, "
                f"or its result expired (results are kept {settings.result_expires_s} s, "
                "RUNNER_RESULT_EXPIRES_S)"
            )
        state = "running" if done else "queued"
        if args.json:
            print(json.dumps({"id": args.id, "state": state, "finished": done}))
        else:
            print(f"{args.id}: {state}; {done} tests finished (--wait follows it)")
        return NOT_FINAL
    return shown(args, stored.model_dump(mode="json"))


def admitted(settings: Settings, sid: str) -> bool:
    """Whether ``sid`` is a run admitted and not yet joined (queued, or its compile step)."""
    from worker.keyspace import ADMITTED

    client = redis.Redis.from_url(
        settings.result_backend,
        socket_timeout=5,
        **redis_options(settings, settings.result_backend),
    )
    try:
        return bool(client.hexists(ADMITTED, sid))
    except redis.RedisError as exc:
        raise Unreachable(f"cannot read {sid}'s state ({exc})") from None


def follow(
    args: argparse.Namespace,
    settings: Settings,
    handle: Any,
    ids: list[str],
    just_run: set[int] | frozenset[int] = frozenset(),
) -> int:
    """Tests as they finish, then the table; a submission nobody takes is said to be waiting."""
    quiet_until = time.monotonic() + NOBODY_S
    while not handle.started() and time.monotonic() < quiet_until:
        time.sleep(0.1)
    if not handle.started():
        nobody(settings, handle.id)
    width = max(map(len, ids), default=4)
    try:
        for index, test in handle.progress(timeout=args.timeout):
            if not args.json:
                name = ids[index] if index < len(ids) else str(index)
                print(
                    f"  finished {name:<{width}}  {test.verdict:<4} {test.cpu_time_ms:>6} ms "
                    f"{test.memory_kb:>8} KB  {test.message}",
                    flush=True,
                )
        final = handle.result(timeout=30)
    except TimeoutError:
        raise Unreachable(
            f"{handle.id} is not finished after {args.timeout:g} s; `runner result "
            f"{handle.id} --wait` follows it"
        ) from None
    return shown(args, final.model_dump(mode="json"), just_run)


def nobody(settings: Settings, sid: str) -> None:
    """Raise :class:`Unreachable` if no worker consumes the queue."""
    from worker.app import app

    try:
        replies = app.control.inspect(timeout=1.5).active_queues() or {}
    except Exception:  # the broker went away: the caller's own error says enough
        return
    if not any(q.get("name") == settings.queue for qs in replies.values() for q in qs):
        raise Unreachable(
            f"no worker consumes queue {settings.queue!r}; {sid} waits in it. Start one with "
            f"`runner worker` (or scripts/demo), then `runner result {sid} --wait`"
        )


def problem(args: argparse.Namespace, settings: Settings) -> int:
    from worker.client import Client

    reachable(settings)
    answer = Client(settings).register_problem(read_json(args.file), args.timeout)
    if args.json:
        print(answer.model_dump_json(indent=2, exclude_none=True))
    elif answer.error is not None:
        print(f"runner: {answer.error.code}: {answer.error.message}", file=sys.stderr)
    else:
        print(answer.problem)
    return REFUSED if answer.error is not None else ACCEPTED


def shown(
    args: argparse.Namespace,
    result: dict[str, Any],
    just_run: set[int] | frozenset[int] = frozenset(),
) -> int:
    """Print a result (a table, or JSON); its exit code. The tests of ``just_run`` (or every
    test, with ``--stdout``) show their output under their row."""
    if args.json:
        print(json.dumps(result, indent=2))
    elif result["verdict"] == "RJ":
        error = result.get("error") or {}
        print(f"runner: refused: {error.get('code')}: {error.get('message')}", file=sys.stderr)
    else:
        everything = getattr(args, "stdout", False)
        outputs = set(range(len(result["tests"]))) if everything else set(just_run)
        print(render_table(result, outputs))
    if result["verdict"] == "RJ":
        return REFUSED
    return ACCEPTED if result["verdict"] == "AC" else NOT_ACCEPTED


def reachable(settings: Settings) -> None:
    """Both Redis URLs answer within two seconds, or :class:`Unreachable` naming the one."""
    for what, url in (("broker", settings.broker_url), ("result backend", settings.result_backend)):
        try:
            redis.Redis.from_url(
                url, socket_connect_timeout=2, socket_timeout=2, **redis_options(settings, url)
            ).ping()
        except (redis.RedisError, OSError) as exc:
            if refused := refusal(exc, settings.redis_acl_user):
                raise refused from None
            raise Unreachable(
                f"cannot reach the {what} at {_without_password(url)} ({exc}); start Redis "
                "(scripts/bootstrap), or point RUNNER_REDIS_URL at the fleet's (the demo's: "
                "redis://127.0.0.1:6380)"
            ) from None


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    at = rest.rfind("@")
    return f"{scheme}{sep}***@{rest[at + 1 :]}" if at >= 0 else url


def load_tests(path: Path) -> list[dict[str, Any]]:
    """A JSON list, or a folder of NAME.in files with optional NAME.out beside them."""
    if path.is_dir():
        tests = []
        for stdin in sorted(path.glob("*.in")):
            expected = stdin.with_suffix(".out")
            test: dict[str, Any] = {"id": stdin.stem, "stdin": read_text(stdin)}
            if expected.exists():
                test["expected_stdout"] = read_text(expected)
            tests.append(test)
        if not tests:
            raise UsageError(f"{path}: a folder with no NAME.in files")
        return tests
    loaded = read_json(path)
    if not isinstance(loaded, list):
        raise UsageError(f"{path}: expected a JSON list of tests, got {type(loaded).__name__}")
    return loaded


def program_files(paths: list[Path]) -> tuple[str, list[dict[str, str]]]:
    """The entry's name and every file, named by its path from the entry's folder (a file
    that is not UTF-8 is sent as base64)."""
    root = paths[0].parent
    files = []
    for path in paths:
        try:
            name = path.relative_to(root).as_posix()
        except ValueError:
            raise UsageError(f"{path}: not in {root}, the first file's folder") from None
        data = read_bytes(path)
        try:
            files.append({"name": name, "content": data.decode()})
        except UnicodeDecodeError:
            files.append(
                {"name": name, "content": base64.b64encode(data).decode(), "encoding": "base64"}
            )
    return files[0]["name"], files


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: a folder, not a file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror})") from None


def read_text(path: Path) -> str:
    try:
        return read_bytes(path).decode()
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 (byte {exc.start})") from None


def read_json(path: Path) -> Any:
    return parse_json(read_text(path), str(path))


def parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None


def render_table(result: dict[str, Any], outputs: set[int] | frozenset[int] = frozenset()) -> str:
    """The per-test table and the verdict line; the tests of ``outputs`` (by index) with their
    standard output under their row."""
    tty = sys.stdout.isatty()
    w = max([4, *(len(test["id"]) for test in result["tests"])])
    lines = [f"{'TEST':<{w}}  {'VERDICT':<8} {'CPU ms':>7} {'WALL ms':>8} {'MEM KB':>8}  MESSAGE"]
    for index, test in enumerate(result["tests"]):
        verdict = test["verdict"]
        colour = VERDICT_STYLE.get(verdict, "\033[31m")
        styled = f"{colour}{verdict:<8}\033[0m" if tty else f"{verdict:<8}"
        lines.append(
            f"{test['id']:<{w}}  {styled} {test['cpu_time_ms']:>7} {test['wall_time_ms']:>8} "
            f"{test['memory_kb']:>8}  {test['message']}"
        )
        if index in outputs and verdict != "SK":
            lines.extend(output_lines(test))
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


OUTPUT_LINES = 20  # of a test's output in the table; --json has all the result keeps


def output_lines(test: dict[str, Any]) -> list[str]:
    """A test's standard output as the table shows it: indented under its row, ``stdout:``
    first, cut after OUTPUT_LINES lines (saying so)."""
    text = test.get("stdout") or ""
    if not text:
        return ["    stdout: (empty)"]
    shown_lines = text.splitlines()
    cut = len(shown_lines) > OUTPUT_LINES
    lines = ["    stdout: " + shown_lines[0]] + [
        "            " + line for line in shown_lines[1:OUTPUT_LINES]
    ]
    if cut:
        lines.append(f"            ... {len(shown_lines) - OUTPUT_LINES} more lines (--json)")
    elif test.get("stdout_truncated"):
        lines.append("            ... (the result keeps only the start of it)")
    return lines

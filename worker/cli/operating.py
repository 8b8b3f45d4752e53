"""``runner worker``, ``api``, ``keys``, ``status``, ``ping``, ``settings`` and ``schema``."""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from typing import Any

from worker.cli import ACCEPTED, Unreachable, UsageError
from worker.cli.judging import reachable
from worker.redis_access import redis_options
from worker.settings import Settings


def worker(args: argparse.Namespace, settings: Settings) -> int:
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
    return ACCEPTED


def node_name(settings: Settings) -> str:
    return settings.node_name or f"runner@{socket.gethostname()}"


def api(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from worker.api.routes import create_app

    reachable(settings)
    if not settings.api_open:
        print(
            "runner api: API keys required (runner keys create NAME); RUNNER_API_OPEN=1 serves "
            "without them",
            file=sys.stderr,
        )
    print(f"runner api on http://{args.bind}:{args.port}", flush=True)
    uvicorn.run(
        create_app(settings),
        host=args.bind,
        port=args.port,
        log_config=None,  # ours (structlog); uvicorn's access log would be a line per GET
        access_log=False,
        proxy_headers=False,
    )
    return ACCEPTED


def keys(args: argparse.Namespace, settings: Settings) -> int:
    reachable(settings)
    return asyncio.run(_keys(args, settings))


async def _keys(args: argparse.Namespace, settings: Settings) -> int:
    import redis.asyncio as aioredis

    from worker.api.keys import KeyStore

    client = aioredis.Redis.from_url(
        settings.result_backend, **redis_options(settings, settings.result_backend)
    )
    store = KeyStore(client)
    try:
        if args.keys_command == "create":
            key, token = await store.create(
                args.name,
                rate_per_s=args.rate or settings.api_rate_per_s,
                burst=args.burst or settings.api_burst,
                max_in_flight=args.in_flight or settings.api_max_in_flight,
                tenant=args.tenant,
            )
            if args.json:
                secret = key.webhook_secret
                print(json.dumps({**key.public(), "token": token, "webhook_secret": secret}))
            else:
                print(f"key {key.id} ({key.name}, tenant {key.tenant})")
                print(f"token (shown once, only its hash is kept): {token}")
                print(f"webhook signing secret: {key.webhook_secret}")
        elif args.keys_command == "list":
            found = [key.public() for key in await store.all()]
            if args.json:
                print(json.dumps(found))
            for shown in [] if args.json else found:
                state = "revoked" if shown["revoked"] else "valid"
                print(
                    f"{shown['id']}  {shown['name']:<16} tenant {shown['tenant']:<16} "
                    f"{shown['rate_per_s']}/s burst {shown['burst']} in-flight "
                    f"{shown['max_in_flight']}  {state}"
                )
        elif args.keys_command == "rotate-secret":
            key = await store.rotate_secret(args.id, args.overlap)
            if args.json:
                print(json.dumps({**key.public(), "webhook_secret": key.webhook_secret}))
            else:
                print(f"webhook signing secret of {key.id} ({key.name}): {key.webhook_secret}")
                print(f"the old one signs beside it for {args.overlap} s more")
        else:
            key = await store.revoke(args.id)
            print(f"key {key.id} ({key.name}) revoked")
    finally:
        await client.aclose()
    return ACCEPTED


def status(args: argparse.Namespace, settings: Settings) -> int:
    from worker.app import app
    from worker.keyspace import ADMITTED_TESTS, SEP, fair_key
    from worker.producer.intake import redis_client

    reachable(settings)
    broker = redis_client(settings.broker_url, options=redis_options(settings, settings.broker_url))
    # kombu keeps each priority level in a list of its own, where each waiting task of a
    # tenant has a doorbell; those of tenants held to their share wait in a list of their own
    levels = [settings.queue] + [f"{settings.queue}{SEP}{p}" for p in (3, 6, 9)]
    waiting = sum(int(broker.llen(name)) for name in levels)
    held = int(broker.llen(fair_key(settings.queue, SEP, "parked")))
    backend = settings.result_backend
    in_flight = int(
        redis_client(backend, options=redis_options(settings, backend)).get(ADMITTED_TESTS) or 0
    )
    print(
        f"queue {settings.queue}: {waiting + held} waiting ({held} held to their tenant's "
        f"share); {in_flight} tests in flight (bound {settings.max_queued_tests})"
    )
    replies = app.control.broadcast("pool_state", reply=True, timeout=2.0)
    if not replies:
        sys.stdout.flush()  # the queue's line first, then why nothing follows it
        raise Unreachable("no worker answered within 2 s (start one: runner worker)")
    health = {
        node: languages
        for reply in app.control.broadcast("language_health", reply=True, timeout=2.0) or []
        for node, languages in reply.items()
    }
    for reply in replies:
        for node, pools in reply.items():
            print(f"worker {node}")
            for pool in pools:
                print("  " + "  ".join(f"{k}={v}" for k, v in pool.items()))
            for line in languages_lines(health.get(node, {})):
                print(f"  {line}")
    return ACCEPTED


def languages_lines(reasons: dict[str, str]) -> list[str]:
    """What a worker said of its languages (:func:`worker.pipeline.runtime.language_health`): those
    it judges, then each it cannot with why."""
    healthy = [name for name, reason in reasons.items() if not reason]
    lines = [f"languages: {' '.join(healthy) or '(none)'}"]
    lines += [f"unhealthy: {name}: {reason}" for name, reason in reasons.items() if reason]
    return lines


def ping(args: argparse.Namespace, settings: Settings) -> int:
    """Asks the workers themselves, through Celery's control API, whether they are alive and
    which of their languages cannot be judged: the one named, or every one."""
    from worker.app import app

    reachable(settings)
    if args.itself:
        args.hostname = node_name(settings)
    destination = [args.hostname] if args.hostname else None
    replies = (
        app.control.broadcast(
            "language_health", destination=destination, reply=True, timeout=args.timeout
        )
        or []
    )
    answers = {name: reasons for reply in replies for name, reasons in reply.items()}
    names = sorted(answers)
    if not names:
        if args.hostname:
            raise Unreachable(
                f"{args.hostname}: no answer within {args.timeout:g} s (`runner ping` without "
                "-n lists the workers that answer)"
            )
        raise Unreachable(
            f"no worker answered within {args.timeout:g} s (start one: runner worker)"
        )
    for name in names:
        unhealthy = [f"{lang} ({why})" for lang, why in answers[name].items() if why]
        print(f"{name}: ok" + (f"; unhealthy: {', '.join(unhealthy)}" if unhealthy else ""))
    return ACCEPTED


def settings(args: argparse.Namespace, current: Settings) -> int:
    """Every setting with its value (secrets and passwords in URLs redacted), then the
    ``RUNNER_*`` variables that are none of ours (CI's own), which were left alone."""
    for name, default, doc in Settings.describe():
        value = current.shown(name.removeprefix("RUNNER_").lower())
        print(f"{name}={value}  (default {default})\n    {doc}")
    ignored = Settings.ignored()
    if ignored:
        print(f"\nignored, no setting of this fleet (another tool's): {', '.join(ignored)}")
    return ACCEPTED


def schema(args: argparse.Namespace, _: Settings) -> int:
    from worker.contract import json_schemas

    schemas: dict[str, Any] = json_schemas()
    if args.folder is None:
        print(json.dumps(schemas, indent=2, sort_keys=True))
        return ACCEPTED
    if args.folder.exists() and not args.folder.is_dir():
        raise UsageError(f"{args.folder}: not a folder")
    args.folder.mkdir(parents=True, exist_ok=True)
    for name, body in schemas.items():
        (args.folder / name).write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
        print(args.folder / name)
    return ACCEPTED

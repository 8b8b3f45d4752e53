"""Enqueue ``runner.submit`` with nothing but a Redis client: the recipe for any language.

Usage: raw_producer.py BROKER_URL BACKEND_URL QUEUE SUBMISSION.json [--timeout S]

Builds a Celery task message (protocol v2) by hand, pushes it where kombu's Redis transport
looks for it, then polls the result key the Celery Redis result backend writes. Prints the
submission result (JSON) on stdout; exits 1 on a Celery failure or a timeout. It imports no
Celery or kombu on purpose (tests/fleet/test_foreign.py checks that), so every step below is
one an integrator has to reproduce.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import sys
import time
import uuid
from typing import Any

import redis

TASK = "runner.submit"


def message(task_id: str, queue: str, submission: Any) -> dict[str, Any]:
    """The kombu Redis envelope around a Celery protocol v2 task message."""
    # Protocol v2 body: [args, kwargs, embed]. runner.submit takes exactly one positional
    # argument; the embed is what Celery itself sends when there is no canvas around the task.
    body = [[submission], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    return {
        # the worker decodes the body with properties.body_encoding, then content-type
        "body": base64.b64encode(json.dumps(body).encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",  # the worker reads headers, whatever language sent them
            "task": TASK,
            "id": task_id,  # the result lands under this id
            "root_id": task_id,  # a task sent on its own is the root of its workflow
            "parent_id": None,
            "group": None,
            "retries": 0,
            "timelimit": [None, None],  # the fleet's own limits apply
            "eta": None,
            "expires": None,
            "argsrepr": f"[<submission {submission.get('id')!r}>]"
            if isinstance(submission, dict)
            else "[...]",  # shown in logs and Flower instead of the (large) submission
            "kwargsrepr": "{}",
            "origin": f"{os.getpid()}@{socket.gethostname()}",
        },
        "properties": {
            "correlation_id": task_id,
            "reply_to": "",  # only the rpc:// result backend uses it
            "delivery_mode": 2,  # persistent
            # exchange "" (the default exchange) routes by routing_key straight to the queue
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            # kombu acks and restores unacked messages by this tag: it must be unique
            "delivery_tag": str(uuid.uuid4()),
        },
    }


def send(broker: redis.Redis, queue: str, submission: Any) -> str:
    task_id = str(uuid.uuid4())
    # kombu's Redis transport keeps a queue as a list of that name, LPUSHed by producers and
    # BRPOPped by workers. Priority 0 (or no priority) is the plain name; only other priorities
    # go to "<queue>\x06\x16<step>" lists.
    broker.lpush(queue, json.dumps(message(task_id, queue, submission)))
    return task_id


def wait(backend: redis.Redis, task_id: str, timeout: float) -> Any:
    """Poll the result key until the submission result is there."""
    key = f"celery-task-meta-{task_id}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = backend.get(key)
        if raw is not None:
            meta = json.loads(raw)
            if meta["status"] in ("FAILURE", "REVOKED"):
                raise RuntimeError(f"task {task_id} {meta['status']}: {meta.get('result')}")
            # runner.submit hands over to its workflow, whose last task reuses this task id:
            # only the SUCCESS holding a submission result (it has "contract") is final
            result = meta.get("result")
            if meta["status"] == "SUCCESS" and isinstance(result, dict) and "contract" in result:
                return result
        time.sleep(0.2)
    raise TimeoutError(f"no result for task {task_id} after {timeout} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("broker_url")
    parser.add_argument("backend_url")
    parser.add_argument("queue")
    parser.add_argument("submission", help="path of a JSON file holding the submission object")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    with open(args.submission, encoding="utf-8") as f:
        submission = json.load(f)
    task_id = send(redis.Redis.from_url(args.broker_url), args.queue, submission)
    print(f"raw_producer: sent {TASK} {task_id} to {args.queue}", file=sys.stderr)
    try:
        result = wait(redis.Redis.from_url(args.backend_url), task_id, args.timeout)
    except (RuntimeError, TimeoutError) as exc:
        print(f"raw_producer: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Flower's Celery configuration, for the stock Flower image (no ``worker`` package in it):
mounted into the container and loaded by Celery's default app (``CELERY_CONFIG_MODULE``).

Without it Flower has no result backend (``GET /api/task/result/<id>`` answers 503) and sends
``POST /api/task/send-task/runner.submit`` without a ``queue`` to Celery's default queue
``celery``, which no worker of this fleet reads. This file is configuration of another
program, read once when Flower starts: the fleet's own code reads its settings through
``worker.settings``.
"""

import os

broker_url = os.environ.get("RUNNER_BROKER_URL", "redis://redis:6379/0")
result_backend = os.environ.get("RUNNER_RESULT_BACKEND", "redis://redis:6379/1")
task_default_queue = os.environ.get("RUNNER_QUEUE", "runner")
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

"""Flower's Celery configuration, for the stock Flower image (no ``worker`` package in it):
mounted into the container and loaded by Celery's default app (``CELERY_CONFIG_MODULE``).

Without it Flower has no result backend (``GET /api/task/result/<id>`` answers 503) and sends
``POST /api/task/send-task/runner.submit`` without a ``queue`` to Celery's default queue
``celery``, which no worker of this fleet reads. This file is configuration of another
program, read once when Flower starts: the fleet's own code reads its settings through
``worker.settings`` (and ``worker.redis_access``, whose rules the ACL and TLS part here
follows: on rediss:// the certificate is always checked, against RUNNER_REDIS_TLS_CA or the
system's store; the password comes from RUNNER_REDIS_ACL_PASSWORD_FILE).
"""

import os
import ssl

broker_url = os.environ.get("RUNNER_BROKER_URL", "redis://redis:6379/0")
result_backend = os.environ.get("RUNNER_RESULT_BACKEND", "redis://redis:6379/1")
task_default_queue = os.environ.get("RUNNER_QUEUE", "runner")
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

if os.environ.get("RUNNER_REDIS_ACL_USER"):
    broker_user = redis_username = os.environ["RUNNER_REDIS_ACL_USER"]
if os.environ.get("RUNNER_REDIS_ACL_PASSWORD_FILE"):
    with open(os.environ["RUNNER_REDIS_ACL_PASSWORD_FILE"], encoding="utf-8") as _file:
        broker_password = redis_password = _file.readline().rstrip("\n")
_tls = {
    "ssl_cert_reqs": ssl.CERT_REQUIRED,
    "ssl_ca_certs": os.environ.get("RUNNER_REDIS_TLS_CA") or None,
    "ssl_certfile": os.environ.get("RUNNER_REDIS_TLS_CERT") or None,
    "ssl_keyfile": os.environ.get("RUNNER_REDIS_TLS_KEY") or None,
}
if broker_url.startswith("rediss://"):
    broker_use_ssl = _tls
if result_backend.startswith("rediss://"):
    redis_backend_use_ssl = _tls

"""The HTTP API (``runner api``): submissions, results, progress and webhooks over HTTP, for
backends that do not speak Celery's wire protocol.

The rooms: ``routes`` (the ASGI app: Request-Id and security headers, errors, languages,
health, the playground page), ``submissions`` (the ``/v1/submissions`` routes), ``openapi``
(the OpenAPI document, 3.1 and 3.0), ``service`` (what the routes do: callers, sending once per
Idempotency-Key, batches, languages, readiness), ``progress`` (a submission's status, pages,
waiting, events, cancelling), ``requests`` (reading a body within its limit, refusals),
``models`` (the API's own models), ``keys`` (API keys, hashed at rest), ``limits`` (per-key
rates, in-flight and stream caps in Redis), ``records`` (what the API keeps per submission, its
webhook's state, and the join's notice that one is final: the only part the workers import),
``callbacks`` (which webhook addresses are public: the API's own table; decided once, at
acceptance), ``signing`` (Standard Webhooks secrets and signatures) and ``webhooks`` (delivery:
each call on its own under one deadline, retried for a window).

Every submission goes through :meth:`worker.client.Client.submit`, exactly as the Python
producer and ``runner.submit`` send it; everything the API knows lives in Redis, so any API
process, or one restarted, answers for every submission.

May import: worker.client, worker.contract, worker.data.availability, worker.errors,
worker.keyspace, worker.languages, worker.pipeline.events, worker.pipeline.scoring,
worker.redis_access, worker.settings, worker.verdicts, worker.webhook_secrets.
"""

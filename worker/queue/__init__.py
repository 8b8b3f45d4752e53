"""The broker and the result backend, on kombu's and Celery's Redis: ``transport`` (no
message lost between its queue and its unacked hash, nor by one it cannot parse), ``fairqueue``
(fair queueing between tenants, inside the broker) and ``backend`` (results and the chord's
join, riding out a Redis restart). Private internals of one Celery and one kombu release are
overridden here, and only here (``WRITTEN_FOR``).

May import: worker.errors, worker.keyspace, worker.outages.
"""

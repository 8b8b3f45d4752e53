"""The broker and the result backend, on kombu's and Celery's Redis: ``transport`` (no
message lost between its queue and its unacked hash, nor by one it cannot parse), ``fairqueue``
(fair queueing between tenants, inside the broker) and ``backend`` (results and the chord's
join, riding out a Redis restart). Private internals of one Celery and one kombu release are
overridden here, and only here (:data:`WRITTEN_FOR`).

May import: worker.errors, worker.keyspace, worker.outages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

# The releases whose internals transport.py and backend.py override (private methods and
# attributes, the positions in Celery's chord script); setup.cfg pins exactly these, and the
# Flower image installs this Celery. Change the pin and this together, after re-checking the
# overrides against the new release.
WRITTEN_FOR: Final[Mapping[str, str]] = {"celery": "5.7.0", "kombu": "5.7.0"}

"""kombu's Redis transport, made to survive a message it cannot even parse.

kombu decodes each item it pops from a queue's Redis list as a JSON envelope; an item that is
not JSON raises out of the consumer loop and Celery stops the whole worker ("Unrecoverable
error"). Anyone who can push to the queue could stop every worker that way. Here such an item
is logged and dropped (BRPOP has already removed it), and the worker goes on. Envelopes whose
*body* is undecodable are already logged and rejected by Celery itself.

Importing this module points kombu's ``redis://`` scheme at this transport.
"""

from __future__ import annotations

from typing import Any

import structlog
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis

log = structlog.get_logger()


class Channel(kombu_redis.Channel):
    def _brpop_read(self, **options: Any) -> bool:
        try:
            return bool(super()._brpop_read(**options))
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            log.error("message.undecodable", error=str(exc)[:200], action="dropped")
            return True


class Transport(kombu_redis.Transport):
    Channel = Channel


TRANSPORT_ALIASES["redis"] = f"{__name__}:Transport"

"""Webhook signing as the Standard Webhooks specification has it (standardwebhooks.com), so
the ready-made verifiers (Python, Node, Go, PHP...) check our webhooks unchanged.

A secret reads ``whsec_`` and the standard base64 of 32 random bytes; the HMAC key is those
bytes. Each call is signed over ``{webhook-id}.{webhook-timestamp}.{body}`` with HMAC-SHA256,
and ``webhook-signature`` lists ``v1,<base64>`` for each secret that signs (two while one
replaces another: a receiver accepts either, so a secret changes without a missed webhook).

No web stack here: ``runner keys`` uses it too; a secret's form is
:mod:`worker.webhook_secrets`'s, which the settings check reads.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

from worker.webhook_secrets import PREFIX, secret_problem

SECRET_BYTES = 32  # the specification asks for 24 to 64


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    body = secret.removeprefix(PREFIX)
    if not secret_problem(secret):
        return base64.b64decode(body)
    # A key made before secrets were standard base64 (token_urlsafe): its URL-safe decoding,
    # which Node's verifier shares and stricter ones refuse; `runner keys rotate-secret` gives
    # it a standard one
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def signature(secrets_: Sequence[str], msg_id: str, timestamp: str, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256>`` per secret, space
    separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    macs = (hmac.new(_key(s), signed, hashlib.sha256).digest() for s in secrets_)
    return " ".join("v1," + base64.b64encode(mac).decode() for mac in macs)

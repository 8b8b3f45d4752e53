"""Webhook signing as the Standard Webhooks specification has it (standardwebhooks.com), so
the ready-made verifiers (Python, Node, Go, PHP...) check our webhooks unchanged.

A secret reads ``whsec_`` and the standard base64 of 32 random bytes; the HMAC key is those
bytes. Each call is signed over ``{webhook-id}.{webhook-timestamp}.{body}`` with HMAC-SHA256,
and ``webhook-signature`` lists ``v1,<base64>`` for each secret that signs (two while one
replaces another: a receiver accepts either, so a secret changes without a missed webhook).

No web stack here: ``runner keys`` and the settings check use it too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence

PREFIX = "whsec_"
SECRET_BYTES = 32  # the specification asks for 24 to 64


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_problem(secret: str) -> str:
    """Why ``secret`` is not a signing secret verifiers can use, or ``""``."""
    if not secret.startswith(PREFIX):
        return f"does not start with {PREFIX}"
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return f"is not {PREFIX} followed by standard base64 (A-Z a-z 0-9 + / =)"
    if not 24 <= len(key) <= 64:
        return f"holds {len(key)} bytes; 24 to 64 are needed"
    return ""


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

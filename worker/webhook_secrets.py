"""The form of a webhook signing secret as the Standard Webhooks specification has it:
``whsec_`` and the standard base64 of 24 to 64 bytes. The settings check reads it as well as
the API's signing (:mod:`worker.api.signing`), so it belongs to neither."""

from __future__ import annotations

import base64
import binascii

PREFIX = "whsec_"


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

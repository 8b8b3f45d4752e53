"""Which webhook URLs the API calls, and where: a judge must not become a proxy into its own
network (SSRF).

Only ``http`` and ``https`` URLs without credentials; the host is resolved, and every address
it resolves to must be public: loopback, private, link-local (cloud metadata lives there),
shared, multicast, reserved and unspecified ranges are refused, whatever spelling reaches them
(``localhost``, ``0x7f000001``, ``[::ffff:127.0.0.1]``), unless the operator allows private
targets. The check runs when the submission arrives (a clear ``422``) and again at every
delivery, which connects to the very address it checked (a name that re-resolves elsewhere
between check and call gains nothing).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

MAX_URL = 2048


class CallbackRefused(ValueError):
    """A webhook URL the API will not call; the message says why."""


@dataclass(frozen=True)
class Target:
    url: str  # as given
    parts: SplitResult
    address: str  # the checked address to connect to

    @property
    def host(self) -> str:
        return self.parts.hostname or ""

    def pinned_url(self) -> str:
        """The URL with its host replaced by the checked address (the Host header and TLS
        name stay the URL's own)."""
        ip = ipaddress.ip_address(self.address)
        host = f"[{ip}]" if ip.version == 6 else str(ip)
        netloc = host if self.parts.port is None else f"{host}:{self.parts.port}"
        return self.parts._replace(netloc=netloc).geturl()

    def host_header(self) -> str:
        return self.parts.netloc


def parse(url: str) -> SplitResult:
    if len(url) > MAX_URL:
        raise CallbackRefused(f"callback_url: longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise CallbackRefused(f"callback_url: not a URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise CallbackRefused("callback_url: only http and https URLs are called")
    if not parts.hostname:
        raise CallbackRefused("callback_url: no host")
    if parts.username is not None or parts.password is not None:
        raise CallbackRefused("callback_url: no credentials in the URL (webhooks are signed)")
    return parts


def refused_address(address: str) -> str:
    """Why an address is not a public one, or ``""``."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for what, hit in (
        ("loopback", ip.is_loopback),
        ("unspecified", ip.is_unspecified),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("shared (carrier-grade NAT)", ip in ipaddress.ip_network("100.64.0.0/10")),
        ("private", ip.is_private),
        ("not globally routable", not ip.is_global),
    ):
        if hit:
            return what
    return ""


async def resolve(url: str, allow_private: bool) -> Target:
    """The URL checked and resolved, or :class:`CallbackRefused`."""
    parts = parse(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, port, type=socket.SOCK_STREAM
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise CallbackRefused(f"callback_url: host {parts.hostname!r} does not resolve") from exc
    addresses = [str(info[4][0]) for info in found]
    if not allow_private:
        for address in addresses:
            why = refused_address(address)
            if why:
                raise CallbackRefused(
                    f"callback_url: {parts.hostname!r} resolves to {address}, a {why} address; "
                    "webhooks go to public addresses only (RUNNER_API_ALLOW_PRIVATE_CALLBACKS=1 "
                    "allows others)"
                )
    return Target(url, parts, addresses[0])

"""Which webhook URLs the API calls, and where: a judge must not become a proxy into its own
network (SSRF).

Only ``http`` and ``https`` URLs without credentials; the host is resolved, and every address
it resolves to must be public. What public means is this module's own table (:data:`RULES`),
not the running Python's ``ipaddress`` flags, which change between patch releases (3.11.2
refuses ``192.0.0.8``, 3.11.7 calls it global): the IANA special-purpose ranges, and IPv6
outside global unicast. IPv6 forms that carry an IPv4 address (IPv4-mapped and -compatible,
SIIT, NAT64, 6to4, Teredo) are judged by the IPv4 address they carry, so ``2002:7f00:1::`` is
loopback as surely as ``127.0.0.1``.

The decision is made once, when the submission is accepted (a clear ``422``): the addresses
checked are recorded with the submission, and every delivery connects to one of them, never
to what the name resolves to later (a name that re-resolves elsewhere gains nothing, and API
processes with other settings deliver what another accepted). A refusal never says what a
name resolves to: a key holder must not map the operator's network by asking.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

MAX_URL = 2048
ALLOW_SETTING = "RUNNER_API_ALLOW_PRIVATE_CALLBACKS=1"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class CallbackRefused(ValueError):
    """A webhook URL the API will not call; the message says why."""


def _low32(ip: Address) -> list[ipaddress.IPv4Address]:
    return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]


def _sixtofour(ip: Address) -> list[ipaddress.IPv4Address]:
    return [ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)]  # 2002:AABB:CCDD::/48


def _teredo(ip: Address) -> list[ipaddress.IPv4Address]:
    # 2001:0:SSSS:SSSS:flags:port:CCCC:CCCC: the server, and the client's address inverted
    server = (int(ip) >> 64) & 0xFFFFFFFF
    client = ~int(ip) & 0xFFFFFFFF
    return [ipaddress.IPv4Address(server), ipaddress.IPv4Address(client)]


@dataclass(frozen=True)
class Rule:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    what: str  # why an address in it is refused, or which form it is
    carried: Callable[[Address], list[ipaddress.IPv4Address]] | None = None  # unwrap, judge

    @staticmethod
    def of(
        network: str,
        what: str,
        carried: Callable[[Address], list[ipaddress.IPv4Address]] | None = None,
    ) -> Rule:
        return Rule(ipaddress.ip_network(network), what, carried)


# The first rule an address falls in decides: refused with its reason, or (``carried``)
# judged by the IPv4 addresses it carries. Order matters where ranges nest (::1 before ::/96,
# Teredo before 2001::/23). An address no rule holds is public.
RULES: tuple[Rule, ...] = (
    Rule.of("0.0.0.0/8", "unspecified ('this network')"),
    Rule.of("10.0.0.0/8", "private"),
    Rule.of("100.64.0.0/10", "shared (carrier-grade NAT)"),
    Rule.of("127.0.0.0/8", "loopback"),
    Rule.of("169.254.0.0/16", "link-local"),
    Rule.of("172.16.0.0/12", "private"),
    Rule.of("192.0.0.0/24", "IETF protocol assignment"),  # 192.0.0.8 and the anycast ones too
    Rule.of("192.0.2.0/24", "documentation"),
    Rule.of("192.88.99.0/24", "6to4 relay anycast"),
    Rule.of("192.168.0.0/16", "private"),
    Rule.of("198.18.0.0/15", "benchmarking"),
    Rule.of("198.51.100.0/24", "documentation"),
    Rule.of("203.0.113.0/24", "documentation"),
    Rule.of("224.0.0.0/4", "multicast"),
    Rule.of("240.0.0.0/4", "reserved"),  # and 255.255.255.255, broadcast
    Rule.of("::/128", "unspecified"),
    Rule.of("::1/128", "loopback"),
    Rule.of("::ffff:0:0/96", "IPv4-mapped", _low32),
    Rule.of("::ffff:0:0:0/96", "IPv4-translated (SIIT)", _low32),
    Rule.of("::/96", "IPv4-compatible", _low32),
    Rule.of("64:ff9b::/96", "NAT64", _low32),
    # local-use NAT64 (RFC 8215): where the IPv4 address sits depends on the prefix length
    # its operator chose, and its translator is someone's own network: refused whole
    Rule.of("64:ff9b:1::/48", "local-use NAT64"),
    Rule.of("100::/64", "discard-only"),
    Rule.of("2001::/32", "Teredo", _teredo),
    Rule.of("2001::/23", "IETF protocol assignment"),
    Rule.of("2001:db8::/32", "documentation"),
    Rule.of("2002::/16", "6to4", _sixtofour),
    Rule.of("3fff::/20", "documentation"),
    Rule.of("5f00::/16", "segment routing (SRv6)"),
    Rule.of("fc00::/7", "private (unique local)"),
    Rule.of("fe80::/10", "link-local"),
    Rule.of("fec0::/10", "site-local"),
    Rule.of("ff00::/8", "multicast"),
)
GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")


def refused_address(address: str) -> str:
    """Why an address is not a public one (``loopback``, ``6to4 form of loopback``...), or
    ``""`` when it is."""
    ip = ipaddress.ip_address(address.split("%")[0])  # fe80::1%eth0: the zone is no part
    for rule in RULES:
        if ip.version != rule.network.version or ip not in rule.network:
            continue
        if rule.carried is None:
            return rule.what
        for inner in rule.carried(ip):
            why = refused_address(str(inner))
            if why:
                return f"{rule.what} form of {why}"
        return ""
    if ip.version == 6 and ip not in GLOBAL_UNICAST_V6:
        return "reserved (outside IPv6 global unicast, 2000::/3)"
    return ""


@dataclass(frozen=True)
class Target:
    """A checked webhook URL and the addresses it may be called at (in the resolver's
    order), as recorded when the submission was accepted."""

    url: str
    addresses: tuple[str, ...]

    @property
    def parts(self) -> SplitResult:
        return urlsplit(self.url)

    @property
    def host(self) -> str:
        return self.parts.hostname or ""

    def pinned_url(self, address: str) -> str:
        """The URL with its host replaced by a checked address (the Host header and TLS
        name stay the URL's own)."""
        ip = ipaddress.ip_address(address)
        host = f"[{ip}]" if ip.version == 6 else str(ip)
        port = self.parts.port
        return self.parts._replace(netloc=host if port is None else f"{host}:{port}").geturl()

    def host_header(self) -> str:
        return self.parts.netloc

    def recorded(self) -> str:
        """The addresses as the submission's record keeps them."""
        return " ".join(self.addresses)

    @classmethod
    def from_record(cls, url: str, recorded: str) -> Target:
        return cls(url, tuple(recorded.split()))


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


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def check(url: str, allow_private: bool) -> Target:
    """The URL checked and resolved, or :class:`CallbackRefused`. Every address a name
    resolves to must be public (a name with one private address among public ones could
    be steered to it), unless ``allow_private``."""
    parts = parse(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    public_only = (
        f"webhooks go to public addresses only ({ALLOW_SETTING} allows others on this fleet)"
    )
    literal = _literal(host)
    if literal is not None and not allow_private:
        why = refused_address(str(literal))
        if why:  # the caller wrote this address: naming its kind tells them nothing new
            raise CallbackRefused(f"callback_url: {host} is not public ({why}); {public_only}")
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        found = []
    addresses = tuple(dict.fromkeys(str(info[4][0]).split("%")[0] for info in found))
    if not addresses and allow_private:
        raise CallbackRefused(f"callback_url: host {host!r} does not resolve")
    if not addresses or (not allow_private and any(map(refused_address, addresses))):
        # one answer whether the name is unknown or known only inside: what it resolves to,
        # or whether it resolves at all, is the operator's business
        raise CallbackRefused(
            f"callback_url: host {host!r} does not resolve to public addresses only; " + public_only
        )
    return Target(url, addresses)

"""Which webhook addresses the API refuses, whatever their spelling, and where it connects."""

from __future__ import annotations

import asyncio

import pytest

from worker.api.callbacks import CallbackRefused, parse, refused_address, resolve
from worker.api.webhooks import signature


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
    ],
)
def test_addresses_inside_the_judges_network_are_refused(address: str, why: str) -> None:
    assert refused_address(address) == why


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert refused_address(address) == ""


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.org/", "only http and https"),
        ("http:///path", "no host"),
        ("http://user:pw@example.org/", "no credentials"),
        ("http://example.org:99999/", "not a URL"),
        ("http://" + "a" * 2100, "longer than"),
    ],
)
def test_urls_that_are_not_plain_http_are_refused_before_any_lookup(url: str, why: str) -> None:
    with pytest.raises(CallbackRefused, match=why):
        parse(url)


def test_numeric_spellings_of_loopback_resolve_to_it_and_are_refused() -> None:
    for url in ("http://0x7f000001/", "http://2130706433/", "http://localhost:8080/x"):
        with pytest.raises(CallbackRefused, match="loopback"):
            asyncio.run(resolve(url, allow_private=False))


def test_the_call_goes_to_the_checked_address_with_the_urls_own_host_header() -> None:
    target = asyncio.run(resolve("http://localhost:8080/hook?x=1", allow_private=True))
    assert target.address in ("127.0.0.1", "::1")
    pinned = target.pinned_url()
    assert pinned in ("http://127.0.0.1:8080/hook?x=1", "http://[::1]:8080/hook?x=1")
    assert target.host_header() == "localhost:8080" and target.host == "localhost"


def test_the_signature_covers_timestamp_and_body() -> None:
    one = signature("s3cret", "1700000000", b'{"a":1}')
    assert one.startswith("v1=") and len(one) == 3 + 64
    assert one != signature("s3cret", "1700000001", b'{"a":1}')
    assert one != signature("s3cret", "1700000000", b'{"a":2}')
    assert one != signature("other", "1700000000", b'{"a":1}')

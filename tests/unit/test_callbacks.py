"""Which webhook addresses the API refuses, whatever their spelling and whatever the Python
release (the table is the module's own), and where it connects."""

from __future__ import annotations

import asyncio

import pytest

from worker.api.callbacks import RULES, CallbackRefused, Target, check, parse, refused_address


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("172.18.0.4", "private"),  # a compose network's
        ("192.168.1.1", "private"),
        ("fd00::1", "private (unique local)"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified ('this network')"),
        ("0.1.2.3", "unspecified ('this network')"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        # what Python's own flags call global on one patch release and not on another
        ("192.0.0.8", "IETF protocol assignment"),
        ("192.0.0.9", "IETF protocol assignment"),
        ("192.0.0.170", "IETF protocol assignment"),
        ("192.0.2.1", "documentation"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.9", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("192.88.99.1", "6to4 relay anycast"),
        ("2001:db8::1", "documentation"),
        ("3fff::1", "documentation"),
        ("100::1", "discard-only"),
        ("2001:2::1", "IETF protocol assignment"),
        ("5f00::1", "segment routing (SRv6)"),
        ("fec0::1", "site-local"),
        ("4000::1", "reserved (outside IPv6 global unicast, 2000::/3)"),
        ("64:ff9b:1::a00:1", "local-use NAT64"),
        ("64:ff9b:1::5db8:d822", "local-use NAT64"),  # even a public one: a local translator
    ],
)
def test_addresses_inside_the_judges_network_are_refused(address: str, why: str) -> None:
    assert refused_address(address) == why


@pytest.mark.parametrize(
    ("address", "why"),
    [
        # each transition form, carrying loopback, private and metadata addresses
        ("::ffff:127.0.0.1", "IPv4-mapped form of loopback"),
        ("::ffff:10.0.0.1", "IPv4-mapped form of private"),
        ("::ffff:0:127.0.0.1", "IPv4-translated (SIIT) form of loopback"),
        ("::127.0.0.1", "IPv4-compatible form of loopback"),
        ("::169.254.169.254", "IPv4-compatible form of link-local"),
        ("64:ff9b::127.0.0.1", "NAT64 form of loopback"),
        ("64:ff9b::a9fe:a9fe", "NAT64 form of link-local"),
        ("2002:7f00:1::", "6to4 form of loopback"),  # 127.0.0.1
        ("2002:7f00:1:1234::1", "6to4 form of loopback"),
        ("2002:a00:1::1", "6to4 form of private"),  # 10.0.0.1
        ("2002:c000:8::", "6to4 form of IETF protocol assignment"),  # 192.0.0.8
        # Teredo: the client's address is stored inverted (~127.0.0.1 = 80ff:fffe)
        ("2001:0:5db8:d822:0:0:80ff:fffe", "Teredo form of loopback"),
        ("2001:0:a00:1::5db8:d822", "Teredo form of private"),  # its server 10.0.0.1
        ("2001:0:5db8:d822:0:0:f5ff:fffe", "Teredo form of private"),  # ~10.0.0.1
    ],
)
def test_transition_forms_are_judged_by_the_ipv4_address_they_carry(address: str, why: str) -> None:
    assert refused_address(address) == why


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "8.8.8.8",
        "2606:2800:220:1:248:1893:25c8:1946",
        "::ffff:93.184.216.34",
        "64:ff9b::5db8:d822",  # NAT64 of 93.184.216.34
        "2002:5db8:d822::1",  # 6to4 of 93.184.216.34
        "2001:0:5db8:d822:0:0:a247:27dd",  # Teredo: server and client both public
    ],
)
def test_public_addresses_and_their_transition_forms_are_allowed(address: str) -> None:
    assert refused_address(address) == ""


def test_the_table_is_the_modules_own_not_pythons_flags() -> None:
    """Every rule is a network written out here; none reads ipaddress's is_private/is_global
    (whose answers moved between 3.11.2 and 3.11.7)."""
    assert len({str(rule.network) for rule in RULES}) == len(RULES)
    import inspect

    from worker.api import callbacks

    source = inspect.getsource(callbacks)
    for flag in ("is_private", "is_global", "is_reserved", "is_loopback", "is_link_local"):
        assert flag not in source


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


def test_a_refused_name_is_not_told_what_it_resolves_to() -> None:
    for url in ("http://0x7f000001/", "http://2130706433/", "http://localhost:8080/x"):
        with pytest.raises(CallbackRefused) as refused:
            asyncio.run(check(url, allow_private=False))
        message = str(refused.value)
        assert "127.0.0.1" not in message and "::1" not in message, message
        assert "loopback" not in message, message  # nor what kind of address it found
    with pytest.raises(CallbackRefused) as unknown:
        asyncio.run(check("http://no-such-host.invalid/", allow_private=False))
    with pytest.raises(CallbackRefused) as local:
        asyncio.run(check("http://localhost/", allow_private=False))
    # a name known only inside reads as one that does not resolve
    assert str(unknown.value).replace("no-such-host.invalid", "H") == str(local.value).replace(
        "localhost", "H"
    )


def test_a_literal_address_is_told_its_kind() -> None:
    with pytest.raises(
        CallbackRefused, match=r"2002:7f00:1:: is not public \(6to4 form of loopback\)"
    ):
        asyncio.run(check("http://[2002:7f00:1::]/hook", allow_private=False))
    with pytest.raises(
        CallbackRefused, match=r"192.0.0.8 is not public \(IETF protocol assignment\)"
    ):
        asyncio.run(check("http://192.0.0.8/hook", allow_private=False))


def test_the_call_goes_to_the_checked_address_with_the_urls_own_host_header() -> None:
    target = asyncio.run(check("http://localhost:8080/hook?x=1", allow_private=True))
    assert set(target.addresses) <= {"127.0.0.1", "::1"} and target.addresses
    pinned = target.pinned_url(target.addresses[0])
    assert pinned in ("http://127.0.0.1:8080/hook?x=1", "http://[::1]:8080/hook?x=1")
    assert target.host_header() == "localhost:8080" and target.host == "localhost"
    again = Target.from_record(target.url, target.recorded())
    assert again == target
    assert again.pinned_url("2606:2800:220:1:248:1893:25c8:1946") == (
        "http://[2606:2800:220:1:248:1893:25c8:1946]:8080/hook?x=1"
    )

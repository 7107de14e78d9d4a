"""Kubernetes' IP and CIDR CEL libraries (``ip("10.0.0.1").family() == 4``), over ``ipaddress``.

Parsing follows Go's ``netip``: no IPv4 octets with leading zeros, no IPv6 zones, and (as in
Kubernetes) no IPv4-mapped IPv6 addresses. ``isGlobalUnicast`` uses Go's definition (anything
that is not unspecified, loopback, multicast, link-local or the IPv4 broadcast address), which
differs from Python's ``is_global``.
"""

from __future__ import annotations

import ipaddress

from gpupolicy.policy.cel.core import EvalError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class IP:
    __slots__ = ("addr",)

    def __init__(self, addr: Address) -> None:
        self.addr = addr

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IP) and other.addr == self.addr

    def __hash__(self) -> int:
        return hash(self.addr)

    def __str__(self) -> str:
        return str(self.addr)


class CIDR:
    __slots__ = ("addr", "prefix")

    def __init__(self, addr: Address, prefix: int) -> None:
        self.addr = addr
        self.prefix = prefix

    def network(self) -> Network:
        return ipaddress.ip_network(f"{self.addr}/{self.prefix}", strict=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CIDR) and (other.addr, other.prefix) == (self.addr, self.prefix)

    def __hash__(self) -> int:
        return hash((self.addr, self.prefix))

    def __str__(self) -> str:
        return f"{self.addr}/{self.prefix}"


def _parse_addr(text: str) -> Address:
    if "%" in text:
        raise EvalError(f"IP address with zone value is not allowed: {text!r}")
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise EvalError(f"IP Address {text!r} parse error during conversion from string") from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        raise EvalError(f"IPv4-mapped IPv6 address is not allowed: {text!r}")
    return addr


def ip(text: str) -> IP:
    return IP(_parse_addr(text))


def is_ip(text: str) -> bool:
    try:
        _parse_addr(text)
    except EvalError:
        return False
    return True


def is_canonical(text: str) -> bool:
    return str(_parse_addr(text)) == text


def family(value: IP) -> int:
    return value.addr.version


def is_global_unicast(value: IP) -> bool:
    a = value.addr
    if isinstance(a, ipaddress.IPv4Address) and a == ipaddress.IPv4Address("255.255.255.255"):
        return False
    return not (a.is_unspecified or a.is_loopback or a.is_multicast or a.is_link_local)


def is_link_local_multicast(value: IP) -> bool:
    a = value.addr
    if isinstance(a, ipaddress.IPv4Address):
        return a in ipaddress.IPv4Network("224.0.0.0/24")
    return a.is_multicast and (a.packed[1] & 0x0F) == 0x02


def cidr(text: str) -> CIDR:
    addr_text, sep, prefix_text = text.partition("/")
    if not sep or not prefix_text.isdigit() or (len(prefix_text) > 1 and prefix_text[0] == "0"):
        raise EvalError(f"network address parse error during conversion from string: {text!r}")
    addr = _parse_addr(addr_text)
    prefix = int(prefix_text)
    if prefix > addr.max_prefixlen:
        raise EvalError(f"network address parse error during conversion from string: {text!r}")
    return CIDR(addr, prefix)


def is_cidr(text: str) -> bool:
    try:
        cidr(text)
    except EvalError:
        return False
    return True


def contains_ip(c: CIDR, other: IP | str) -> bool:
    addr = other.addr if isinstance(other, IP) else _parse_addr(other)
    return addr.version == c.addr.version and addr in c.network()


def contains_cidr(c: CIDR, other: CIDR | str) -> bool:
    inner = other if isinstance(other, CIDR) else cidr(other)
    if inner.addr.version != c.addr.version or inner.prefix < c.prefix:
        return False
    return inner.network().subnet_of(c.network())  # type: ignore[arg-type]


def masked(c: CIDR) -> CIDR:
    return CIDR(c.network().network_address, c.prefix)

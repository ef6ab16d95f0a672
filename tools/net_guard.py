"""The SSRF guard: whether the server may send a request to a URL someone else chose.

A URL a user (or a model) gives, a run's webhook today and an MCP server or a fetch tool later,
must not reach what only the server can reach: its own loopback, the private network it sits
in, a cloud's metadata service. The guard parses the URL (``http`` or ``https``, a host, no
user info), resolves the host to **all** its addresses, and refuses the URL when any one of
them is not a public unicast address: loopback, private (RFC 1918, ``fc00::/7``), link-local
(``169.254.0.0/16``, ``fe80::/10``, the metadata services among them), unspecified
(``0.0.0.0``, ``::``), multicast, shared (CGNAT, ``100.64.0.0/10``), reserved or otherwise not
global, including those addresses written as IPv6 (IPv4-mapped, 6to4, NAT64, Teredo). A host
on the allowlist skips the address checks (the tests allowlist ``127.0.0.1``); the match is on
the host as written, so ``http://2130706433/`` is not ``127.0.0.1``.

The answer is a ``Destination``: the URL and the address that was checked. Callers connect to
that address (``Destination.request``), never to a second resolution of the name, so DNS that
answers differently a moment later (rebinding) cannot redirect the request; and they follow no
redirects, which would be URLs nobody checked.

``decide`` and ``refusal`` are pure functions of the host and its addresses, which is how the
tests prove the private and metadata rules without sending anything there; ``check`` adds the
parsing and the resolution (through a resolver that tests replace).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> every address the name resolves to.
Resolver = Callable[[str, int], Awaitable[list[str]]]

_NETWORKS = ipaddress.IPv4Network | ipaddress.IPv6Network


def _nets(*cidrs: str) -> tuple[_NETWORKS, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


# Checked in this order; the first that holds names the refusal. Python's own flags
# (``is_private``, ``is_global``) changed between 3.11 patch releases, so the named rules are
# spelled out here; ``is_global`` is only the last net, for whatever else is special.
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack …
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
    )
)
_RULES: tuple[tuple[str, tuple[_NETWORKS, ...]], ...] = (
    ("unspecified", _nets("0.0.0.0/8", "::/128")),
    ("loopback", _nets("127.0.0.0/8", "::1/128")),
    ("link-local", _nets("169.254.0.0/16", "fe80::/10")),
    ("private", _nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")),
    ("shared address space (CGNAT)", _nets("100.64.0.0/10")),
    ("multicast", _nets("224.0.0.0/4", "ff00::/8")),
    ("reserved", _nets("240.0.0.0/4", "255.255.255.255/32")),
)
# IPv6 prefixes that carry an IPv4 address in their low 32 bits (NAT64 translates to it).
_NAT64 = _nets("64:ff9b::/96", "64:ff9b:1::/48")
# A host as DNS (or an IP literal) writes it: letters, digits, dots, hyphens, colons (IPv6),
# underscores (seen in real names). Anything else (spaces, percent-escapes) is refused.
_HOST = re.compile(r"^[A-Za-z0-9._:-]+$")


class Refused(Exception):
    """The URL may not be requested; ``reason`` says why (safe to show to its author)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Unresolvable(Refused):
    """The host did not resolve (now): maybe a typo, maybe DNS failing for a while."""


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is written as one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address
    if any(address in net for net in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: Address) -> str | None:
    """Why a request must not go to ``address``; ``None`` for a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            why = refusal(inner)
            return f"{why} (as IPv6)" if why else None
    if address in METADATA:
        return "cloud metadata service"
    for name, networks in _RULES:
        if any(address in net for net in networks if net.version == address.version):
            return name
    if not address.is_global:
        return "not globally routable"
    return None


def decide(host: str, addresses: Sequence[str], allowed_hosts: Collection[str]) -> str | None:
    """Why a URL of ``host``, which resolved to ``addresses``, is refused; ``None`` when it is
    not: the host is allowlisted, or every address is public."""
    if host.lower() in {h.lower() for h in allowed_hosts}:
        return None
    if not addresses:
        return f"{host} resolves to no address"
    for text in addresses:
        why = refusal(ipaddress.ip_address(text.split("%")[0]))
        if why is not None and text == host:
            return f"{host} is not an address requests may go to ({why})"
        if why is not None:
            return f"{host} resolves to {text}, which requests may not go to ({why})"
    return None


@dataclass(frozen=True)
class Destination:
    """A checked URL and the address to connect to for it."""

    url: httpx.URL
    address: str

    def request(self) -> tuple[httpx.URL, dict[str, str], dict[str, Any]]:
        """What to send to reach the checked address only: the URL with the address for its
        host, the ``Host`` header of the original, and for HTTPS the name to present (SNI) and
        verify the certificate against."""
        pinned = self.url.copy_with(host=self.address)
        headers = {"Host": self.url.netloc.decode("ascii")}
        extensions: dict[str, Any] = {}
        if self.url.scheme == "https":
            extensions["sni_hostname"] = self.url.raw_host.decode("ascii")
        return pinned, headers, extensions


def parse(url: str) -> httpx.URL:
    """``url`` if it is an absolute ``http(s)`` URL with a host and no user info."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise Refused("not a valid URL") from None
    if parsed.scheme not in ("http", "https"):
        raise Refused("only http and https URLs are allowed")
    if parsed.userinfo:
        raise Refused("a URL with a user name or password is not allowed")
    host = parsed.raw_host.decode("ascii", errors="replace")
    if not host or not _HOST.match(host):
        raise Refused("the URL has no valid host")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise Refused("the URL's port is out of range")
    return parsed


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (IPv4 and IPv6), in the resolver's order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def check(
    url: str, *, allowed_hosts: Collection[str] = (), resolve: Resolver = system_resolver
) -> Destination:
    """The ``Destination`` for ``url``; ``Refused`` (``Unresolvable`` when the host does not
    resolve) when a request must not go there."""
    parsed = parse(url)
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        literal = ipaddress.ip_address(host)
        addresses = [str(literal)]
    except ValueError:
        try:
            addresses = await resolve(host, port)
        except (OSError, UnicodeError):
            raise Unresolvable(f"{host} does not resolve") from None
    why = decide(host, addresses, allowed_hosts)
    if why is not None:
        raise Refused(why)
    return Destination(parsed, addresses[0])

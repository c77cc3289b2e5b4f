"""Where the daemon may send a request whose URL came from data (a `fetch` step, a customer's `webhook` address):
public addresses only, unless the operator allowed a host or network (no SSRF).

A URL taken from a journey file, a fetched answer or a customer's profile could name the cloud's metadata service
(169.254.169.254), Redis on loopback or an internal admin page. So the host is resolved here and every address it
resolves to must be public — a loopback, private, link-local or reserved address (or an IPv6 one carrying such an
IPv4 address: NAT64, 6to4, Teredo) is refused unless the host, or a network holding the address, is listed in
OMNICANAL_OUTBOUND_ALLOW (`hooks.internal`, `10.0.0.0/8`, `127.0.0.1`) or the caller vouches for the host itself
(`fetch` hosts listed by their exact name). The request then goes to the address that was checked (the Host header
and TLS name stay the host's): a DNS answer that changes between the check and the call cannot send it elsewhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TypeVar
from urllib.parse import SplitResult, urlsplit, urlunsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_K = TypeVar("_K")
_V = TypeVar("_V")

DNS_TTL = 10.0
"""Seconds a host's resolved addresses are reused (aiohttp's own DNS cache default): a webhook to one receiver
costs one look-up per TTL, not one per message."""
_CACHE_LIMIT = 4096
"""Entries kept per cache before it starts again: hosts come from data, so the caches must stay bounded."""


_CARRYING_IPV4 = tuple(ipaddress.IPv6Network(network) for network in (
    "::/96",            # IPv4-compatible (deprecated): ::127.0.0.1
    "::ffff:0:0:0/96",  # IPv4-translated (SIIT): ::ffff:0:7f00:1
    "64:ff9b::/96",     # NAT64, well-known prefix: a NAT64 gateway forwards to the IPv4 address inside
    "64:ff9b:1::/48",   # NAT64, local-use prefix
))
"""IPv6 networks whose addresses carry an IPv4 address in their last 32 bits, which is where packets to them may
end up (::ffff:0:0/96, the mapped form, Python already judges by the IPv4 address)."""


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether an address is public: global, and for an IPv6 address that carries an IPv4 one (6to4, Teredo,
    NAT64, the compatible and translated forms) that IPv4 address too — `64:ff9b::7f00:1` reaches 127.0.0.1 through
    a NAT64 gateway. Site-local IPv6 (fec0::/10, deprecated but still routed by some networks) is not public."""
    if not ip.is_global:
        return False
    if isinstance(ip, ipaddress.IPv4Address):
        return True
    if ip.is_site_local:
        return False
    if ip.sixtofour is not None:
        return ip.sixtofour.is_global
    if ip.teredo is not None:
        return all(inner.is_global for inner in ip.teredo)
    if any(ip in network for network in _CARRYING_IPV4):
        return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF).is_global
    return True


def host_allowed(host: str, allowed: Sequence[str]) -> tuple[bool, bool]:
    """(allowed at all, listed by its exact name): `*.shop.example` covers sub-domains, `*` any host."""
    exact = host in allowed
    wildcard = "*" in allowed or any(entry.startswith("*.") and host.endswith(entry[1:]) for entry in allowed)
    return exact or wildcard, exact


def parse_allowed(entries: Iterable[str]) -> tuple[frozenset[str], tuple[Network, ...]]:
    """OMNICANAL_OUTBOUND_ALLOW's entries as (host names, networks); ValueError naming an entry that is neither."""
    hosts: set[str] = set()
    networks: list[Network] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            if not entry or "/" in entry or any(c.isspace() for c in entry):
                raise ValueError(f"{entry!r} is neither a host name nor an address or network (10.0.0.0/8)") from None
            hosts.add(entry.lower())
    return frozenset(hosts), tuple(networks)


@dataclass(frozen=True, slots=True)
class Blocked:
    """Why a request may not go: said on the message or fetch that needed it, so the operator can fix it."""

    reason: str
    transient: bool = False
    """A resolution failure (worth trying again later), not a refusal."""


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """The hosts and networks a request may reach besides public addresses (OMNICANAL_OUTBOUND_ALLOW)."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()
    _verdicts: dict[tuple[str, str], bool] = field(default_factory=dict, compare=False, repr=False)
    """(host, address) -> allowed: the answer never changes for one policy, and each message would ask again."""
    _resolved: dict[tuple[str, int], tuple[float, list[str]]] = field(default_factory=dict, compare=False,
                                                                       repr=False)
    """(host, port) -> (when resolved, addresses), reused for DNS_TTL seconds."""

    @classmethod
    def of(cls, entries: Iterable[str]) -> OutboundPolicy:
        hosts, networks = parse_allowed(entries)
        return cls(hosts, networks)

    def _allows(self, host: str, address: str) -> bool:
        verdict = self._verdicts.get((host, address))
        if verdict is None:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            verdict = is_public(ip) or host.lower() in self.hosts or any(ip in network for network in self.networks)
            _bounded(self._verdicts)[host, address] = verdict
        return verdict

    async def _addresses(self, host: str, port: int) -> list[str] | Blocked:
        """What `host` resolves to: itself when it is an address, else a look-up at most DNS_TTL seconds old."""
        literal = _literal_address(host)
        if literal is not None:
            return [literal]
        now = time.monotonic()
        cached = self._resolved.get((host, port))
        if cached is not None and now - cached[0] < DNS_TTL:
            return cached[1]
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            return Blocked(f"cannot resolve {host!r}: {exc}", transient=True)
        addresses = [str(info[4][0]) for info in infos]
        if addresses:
            _bounded(self._resolved)[host, port] = (now, addresses)
        return addresses

    async def address_of(self, host: str, port: int, vouched: bool = False) -> str | Blocked:
        """The address to send a request for `host` to, once every address it resolves to is allowed; `vouched`:
        the caller's own list names this very host (then any address goes). An address written as the host is
        checked as is, without a look-up."""
        addresses = await self._addresses(host, port)
        if isinstance(addresses, Blocked):
            return addresses
        if not addresses:
            return Blocked(f"cannot resolve {host!r}", transient=True)
        for address in addresses:
            if not vouched and not self._allows(host, address):
                return Blocked(f"host {host!r} resolves to a non-public address ({address}): refused; list the host "
                               "or its network in OMNICANAL_OUTBOUND_ALLOW if that is meant")
        return addresses[0]


def _bounded(cache: dict[_K, _V]) -> dict[_K, _V]:
    """`cache`, emptied first when it is full."""
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    return cache


@lru_cache(maxsize=_CACHE_LIMIT)
def _literal_address(host: str) -> str | None:
    """`host` as an address when it is written as one (`127.0.0.1`, `::1`), else None."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Target:
    """What a request needs of its URL, parsed once per URL (a receiver's URL is the same message after message)."""

    parts: SplitResult
    host: str
    port: int
    host_header: str
    tls: bool


@lru_cache(maxsize=_CACHE_LIMIT)
def target_of(url: str) -> Target | None:
    """The URL's host, port (the scheme's default when absent) and Host header; None for a URL without a host or
    with a port that is not a number (or brackets that hold no address)."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return Target(parts, parts.hostname, port, parts.netloc.rsplit("@", 1)[-1], parts.scheme == "https")


@lru_cache(maxsize=_CACHE_LIMIT)
def pinned_url(parts: SplitResult, address: str) -> str:
    """The URL `parts` with its host replaced by the address it was checked at (fragment dropped)."""
    netloc = f"[{address}]" if ":" in address else address
    return urlunsplit((parts.scheme, f"{netloc}:{parts.port}" if parts.port else netloc, parts.path or "/",
                       parts.query, ""))



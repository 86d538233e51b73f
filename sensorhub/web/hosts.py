"""Which Host names the dashboard answers to, and which one its printed links use.

A browser tricked by DNS rebinding (a page whose name now resolves to this machine) sends that page's
name as Host: answering only to known names makes such pages blind. Names are looked up once at start-up.
"""

from __future__ import annotations

import socket

from sensorhub.web.auth import is_loopback

WILDCARDS = frozenset({"", "0.0.0.0", "::"})
LOCAL_NAMES = ("localhost", "127.0.0.1", "[::1]")
# Documentation addresses (RFC 5737, RFC 3849): a UDP connect to them sends nothing, it only picks the
# interface the default route leaves from.
_PROBES = ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1"))


def bracket(host: str) -> str:
    """A host as it appears in a URL or a Host header (IPv6 literals in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def lan_addresses() -> list[str]:
    """This machine's addresses as a LAN client sees them: the default route's first, then those its
    name resolves to (blocking: DNS)."""
    found: list[str] = []
    for family, probe in _PROBES:
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))
                found.append(str(s.getsockname()[0]))
        except OSError:
            continue  # no route of that family
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, proto=socket.IPPROTO_TCP)
    except OSError:
        infos = []
    found += [str(info[4][0]) for info in infos]
    return [a for a in dict.fromkeys(found) if not is_loopback(a)]


def link_host(bind: str) -> str:
    """The host the printed links use: the bind address, or on a wildcard bind this machine's LAN
    address (a phone cannot open 0.0.0.0)."""
    if bind not in WILDCARDS:
        return bind
    lan = lan_addresses()
    return lan[0] if lan else socket.gethostname()


def allowed_hosts(bind: str, extra: tuple[str, ...] = ()) -> list[str]:
    """Host names (lower case, IPv6 in brackets) for starlette's TrustedHostMiddleware: the bind address,
    the localhost names, the configured extra names, and on a wildcard bind this machine's name and
    LAN addresses (blocking: DNS)."""
    hosts = [*LOCAL_NAMES, *extra]
    if bind in WILDCARDS:
        name = socket.gethostname()
        hosts += [name, socket.getfqdn(name), *lan_addresses()]
    else:
        hosts.append(bind)
    return list(dict.fromkeys(bracket(h).lower() for h in hosts if h))

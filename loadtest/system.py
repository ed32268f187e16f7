"""What the operating system allows a load generator: open files and source addresses."""

from __future__ import annotations

import ipaddress
import resource
import socket


def raise_nofile() -> int:
    """Lift this process's open-file limit to its hard limit; return the new limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def nofile_hard_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def is_loopback(host: str) -> bool:
    """True when ``host`` names this machine's loopback (where 127.0.0.x all work)."""
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False

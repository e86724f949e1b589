"""Where a server listens: `host:port`, `[v6]:port` or `unix:///path`, and whether that is local.

The gRPC stream carries every command line of the node, so without TLS it may listen only where
nothing but this node can reach it: loopback or a unix socket. `local` is decided from the text
alone, without DNS: an IP literal in 127.0.0.0/8 or ::1, the name `localhost`, or a unix path.
Any other name counts as not local, since what it resolves to can change.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ListenAddress", "parse_listen", "parse_tcp_listen"]

_UNIX_PREFIXES = ("unix://", "unix:")


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str = ""  # empty for a unix socket
    port: int = 0  # 0: the kernel picks a free port
    path: Path | None = None  # the socket's path for unix://

    @property
    def unix(self) -> bool:
        return self.path is not None

    @property
    def local(self) -> bool:
        """Reachable from this node only: a unix socket or a loopback address."""
        if self.path is not None:
            return True
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def target(self, port: int | None = None) -> str:
        """The address in gRPC's target syntax, optionally with another port (the bound one)."""
        if self.path is not None:
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port if port is None else port}"

    def __str__(self) -> str:
        return self.target()


def parse_listen(text: str) -> ListenAddress:
    """`unix:///run/execlog.sock`, `127.0.0.1:7000`, `[::1]:7000`, `0.0.0.0:7000`."""
    text = text.strip()
    for prefix in _UNIX_PREFIXES:
        if text.startswith(prefix):
            path = text[len(prefix) :]
            if not path.startswith("/"):
                raise ValueError(
                    f"{text!r}: a unix socket needs an absolute path, e.g. unix:///run/execlog.sock"
                )
            return ListenAddress(path=Path(path))
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(
            f"{text!r} is not host:port or unix:///path (e.g. 127.0.0.1:7000, 0.0.0.0:7000, "
            "unix:///run/execlog.sock)"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} is not an IPv6 address") from None
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:7000")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"{text!r}: the port must be a number from 0 to 65535")
    return ListenAddress(host=host, port=int(port_text))


def parse_tcp_listen(text: str) -> ListenAddress:
    """As parse_listen, for servers that take TCP only (the metrics endpoint)."""
    address = parse_listen(text)
    if address.unix:
        raise ValueError(f"{text!r}: this server listens on TCP only (host:port)")
    return address

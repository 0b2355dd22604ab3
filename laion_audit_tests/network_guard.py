"""Refuse and record every non-loopback network connection made while tests run.

Patched at the socket level (getaddrinfo, connect, connect_ex) so every library is covered — requests,
urllib, huggingface_hub, ultralytics' DNS probes. Refused attempts are also recorded, so a test fails even
when the code under test swallowed the error.
"""

from __future__ import annotations

import ipaddress
import socket

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


class NonLoopbackConnectionError(OSError):
    pass


def is_loopback(host: object) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode()
    host = str(host).strip("[]")
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


class NetworkGuard:
    def __init__(self) -> None:
        self.attempts: list[str] = []
        self._originals: dict[str, object] = {}

    def _refuse(self, what: str) -> None:
        self.attempts.append(what)
        raise NonLoopbackConnectionError(f"test tried to reach the network: {what}")

    def install(self) -> None:
        guard = self
        original_getaddrinfo = socket.getaddrinfo
        original_connect = socket.socket.connect
        original_connect_ex = socket.socket.connect_ex
        self._originals = {
            "getaddrinfo": original_getaddrinfo,
            "connect": original_connect,
            "connect_ex": original_connect_ex,
        }

        def getaddrinfo(host, *args, **kwargs):
            if not is_loopback(host):
                guard._refuse(f"getaddrinfo({host!r})")
            return original_getaddrinfo(host, *args, **kwargs)

        def _check(sock, address):
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address[0]):
                guard._refuse(f"connect({address!r})")

        def connect(sock, address):
            _check(sock, address)
            return original_connect(sock, address)

        def connect_ex(sock, address):
            _check(sock, address)
            return original_connect_ex(sock, address)

        socket.getaddrinfo = getaddrinfo
        socket.socket.connect = connect
        socket.socket.connect_ex = connect_ex

    def uninstall(self) -> None:
        if self._originals:
            socket.getaddrinfo = self._originals["getaddrinfo"]
            socket.socket.connect = self._originals["connect"]
            socket.socket.connect_ex = self._originals["connect_ex"]
            self._originals = {}

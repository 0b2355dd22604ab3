import socket

import pytest

from .network_guard import NetworkGuard, NonLoopbackConnectionError, is_loopback


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("203.0.113.7") and not is_loopback("huggingface.co")


def test_non_loopback_connections_are_refused_and_recorded():
    guard = NetworkGuard()
    guard.install()
    try:
        with pytest.raises(NonLoopbackConnectionError):
            socket.getaddrinfo("example.com", 443)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with pytest.raises(NonLoopbackConnectionError):
            sock.connect(("203.0.113.7", 80))
        sock.close()
        assert len(guard.attempts) == 2
    finally:
        guard.uninstall()


def test_session_guard_is_active(no_network):
    before = len(no_network.attempts)
    with pytest.raises(OSError):
        socket.create_connection(("203.0.113.7", 80), timeout=1)
    # Clear what this test provoked on purpose so the autouse check does not fail it.
    del no_network.attempts[before:]


def test_loopback_is_allowed():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname(), timeout=2)
    client.close()
    server.close()

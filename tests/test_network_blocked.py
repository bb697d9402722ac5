"""The test suite runs with the network blocked, in-process and in child Python processes."""
from __future__ import annotations

import socket
import subprocess
import sys

import pytest


def test_connect_to_a_public_address_is_refused():
    with pytest.raises(OSError, match="blocked"):
        socket.create_connection(("151.101.0.223", 443), timeout=2)


def test_child_python_processes_are_blocked_too():
    code = ("import socket\ntry:\n    socket.create_connection(('151.101.0.223', 443), timeout=2)\n"
            "except OSError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "blocked" in out


def test_loopback_still_works():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname(), timeout=2)
    client.close()
    server.close()

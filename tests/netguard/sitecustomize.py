"""Network guard for the test suite: every Python process started by the tests (pytest itself,
Snakemake and its rule scripts, via PYTHONPATH) refuses to open a connection to anything but the
loopback interface. trajzoo's online paths (Overpass, Mapillary) are never exercised by tests."""
import ipaddress
import socket

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


class NetworkBlockedError(OSError):
    """Raised when code under test tries to reach the network."""


def _allowed(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self, address):
    if not _allowed(address):
        raise NetworkBlockedError(f"network access blocked in tests: connect to {address!r}")
    return _connect(self, address)


def _guarded_connect_ex(self, address):
    if not _allowed(address):
        raise NetworkBlockedError(f"network access blocked in tests: connect to {address!r}")
    return _connect_ex(self, address)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex

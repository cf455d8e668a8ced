"""Free TCP/UDP ports on loopback. Tests only ever bind 127.0.0.0/8 or ::1."""
import itertools
import os
import socket
import threading

_lock = threading.Lock()
# Below the kernel's ephemeral range (ip_local_port_range starts at 32768), so an outgoing
# connection never takes a port between our check and the server's bind; concurrent runs
# (pytest-xdist workers) are spread apart; ports handed out here are never reused.


def _slice():
    """Each pytest-xdist worker (gw0, gw1, ...) hands out ports from its own slice of the
    range: two workers checking the same port before either binds it would both take it
    (seen: one API failed to listen, another worker's tests then talked to the wrong API).
    Outside xdist the whole range, starting at a pid-dependent point."""
    wid, count = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get(
        "PYTEST_XDIST_WORKER_COUNT", "")
    if wid.startswith("gw") and wid[2:].isdigit() and count.isdigit() and int(count) > 1:
        n, i = int(count), int(wid[2:]) % int(count)
        width = (32767 - 20000) // n
        return 20000 + i * width, 20000 + (i + 1) * width - 1
    return 20000, 32767


_LOW, _HIGH = _slice()
_counter = itertools.count(_LOW + (os.getpid() * 7) % (_HIGH - _LOW))
_used = set()


def _can_bind(host, port, kind):
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port(host="127.0.0.1", udp_too=False):
    """A port free for TCP (and UDP when asked) on host, not handed out before."""
    with _lock:
        for _ in range(20000):
            p = next(_counter)
            if p > _HIGH:
                globals()["_counter"] = itertools.count(_LOW)
                continue
            if (host, p) in _used:
                continue
            if not _can_bind(host, p, socket.SOCK_STREAM):
                continue
            if udp_too and not _can_bind(host, p, socket.SOCK_DGRAM):
                continue
            _used.add((host, p))
            return p
    raise RuntimeError("no free port on %s" % host)


def loopback(n):
    """The n-th test address 127.0.0.n (n >= 2): separate hosts for MX tests."""
    if not 1 <= n <= 254:
        raise ValueError(n)
    return "127.0.0.%d" % n

"""Shared by the loopback and HTTP timestamp tests: a busy reader and a real-data wait."""

import socket
import time

import gevent.socket

BUSY = 0.020  # s of CPU burnt by the reader after data is readable, before reading it


def burn(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def wait_data(sock) -> None:
    """Block until data is really queued (libev may report spurious readiness)."""
    raw = sock._sock
    while True:
        gevent.socket.wait_read(raw.fileno())
        try:
            raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            return
        except BlockingIOError:
            continue

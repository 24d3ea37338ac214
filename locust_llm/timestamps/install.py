"""Make a Locust/geventhttpclient client open :class:`TimestampingSocket` connections.

:func:`enable_kernel_timestamps` overrides ``ConnectionPool._create_tcp_socket`` on the pool
instance: the one documented socket factory in geventhttpclient. It returns False (the caller
uses user-space stamps) on non-Linux, for HTTPS (reads happen inside OpenSSL), or when the
option cannot be set. :meth:`StampReader.from_response` finds the socket carrying one
response; it must be taken before the body is read (the response drops its ``_sock`` at
message end).
"""

from __future__ import annotations

import platform
import socket as _stdsocket
import struct
import sys
from typing import Any

from locust_llm.keepalive import on_every_client, unwrap_session
from locust_llm.timestamps.socket import SO_TIMESTAMPNS, TimestampingSocket

__all__ = [
    "StampReader",
    "enable_kernel_timestamps",
    "keep_timestamping_warm",
    "kernel_timestamps_supported",
]

_SOL_SOCKET: int = _stdsocket.SOL_SOCKET
#: Architectures where 35 is known to be SO_TIMESTAMPNS with a 64-bit timespec.
_KNOWN_ARCH = {"x86_64", "amd64", "aarch64", "arm64", "riscv64", "s390x"}


# --- support, warm-up, installer -------------------------------------------------------

_SUPPORTED: bool | None = None
_WARM: _stdsocket.socket | None = None


def kernel_timestamps_supported() -> bool:
    """True on Linux (64-bit, known arch) when a TCP socket accepts ``SO_TIMESTAMPNS``.

    Cached after the first call; a failed probe means user-space stamps.
    """
    global _SUPPORTED
    if _SUPPORTED is None:
        _SUPPORTED = _probe()
    return _SUPPORTED


def _probe() -> bool:
    if not sys.platform.startswith("linux") or not hasattr(_stdsocket.socket, "recvmsg"):
        return False
    if not hasattr(_stdsocket, "SO_TIMESTAMPNS") and platform.machine().lower() not in _KNOWN_ARCH:
        return False
    if struct.calcsize("l") != 8:
        return False
    try:
        s = _stdsocket.socket(_stdsocket.AF_INET, _stdsocket.SOCK_STREAM)
    except OSError:
        return False
    try:
        s.setsockopt(_SOL_SOCKET, SO_TIMESTAMPNS, 1)
        return s.getsockopt(_SOL_SOCKET, SO_TIMESTAMPNS) != 0
    except OSError:
        return False
    finally:
        s.close()


def keep_timestamping_warm() -> bool:
    """Hold one timestamping socket open for the life of the process.

    Why: the kernel turns receive timestamping on lazily, the first time any socket asks,
    and turns it off when the last one closes; the first buffers after that may arrive
    without a stamp. One socket kept open from start-up keeps it on between requests and
    connections. Idempotent; False when unsupported.
    """
    global _WARM
    if _WARM is not None:
        return True
    if not kernel_timestamps_supported():
        return False
    try:
        s = _stdsocket.socket(_stdsocket.AF_INET, _stdsocket.SOCK_DGRAM)
        s.setsockopt(_SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    _WARM = s
    return True


def _create_tcp_socket(family: int, socktype: int, protocol: int) -> TimestampingSocket:
    """Replacement for ``ConnectionPool._create_tcp_socket`` (set on the pool instance)."""
    return TimestampingSocket(family, socktype, protocol)


def _install_on_connection_pool(pool: Any) -> bool:
    """Make a plain-HTTP geventhttpclient ``ConnectionPool`` create timestamping sockets."""
    from geventhttpclient.connectionpool import SSLConnectionPool

    if isinstance(pool, SSLConnectionPool):
        return False  # the TLS layer reads through OpenSSL: no stamps there
    pool._create_tcp_socket = _create_tcp_socket
    return True


def _install_on_client(client: Any) -> bool:
    if getattr(client, "ssl", False):
        return False
    return _install_on_connection_pool(client._connection_pool)


def _install_on_client_pool(cpool: Any) -> None:
    """Patch existing clients and the ones ``cpool`` creates later."""
    on_every_client(cpool, _install_on_client)


def enable_kernel_timestamps(target: Any, base_url: str | None = None) -> bool:
    """Make ``target``'s new connections stamp token arrival in the kernel.

    ``target`` is a Locust ``FastHttpSession`` (``user.client``), a geventhttpclient
    ``UserAgent``, ``HTTPClientPool``, ``HTTPClient`` or ``ConnectionPool``. Connections
    opened afterwards are :class:`TimestampingSocket`; open ones keep user-space stamps
    (call this in ``on_start``, before the first request). Returns False, changing nothing,
    when unsupported: not Linux, the option fails, or the base URL is HTTPS. Also calls
    :func:`keep_timestamping_warm`.
    """
    if not kernel_timestamps_supported():
        return False
    from geventhttpclient.client import HTTPClient, HTTPClientPool
    from geventhttpclient.connectionpool import ConnectionPool

    if base_url is None:
        base_url = getattr(target, "base_url", None)
    if base_url and base_url.lower().startswith("https:"):
        return False
    target = unwrap_session(target)
    if isinstance(target, HTTPClientPool):
        if base_url:
            from geventhttpclient.url import URL

            if not _install_on_client(target.get_client(URL(base_url))):
                return False
        _install_on_client_pool(target)
        ok = True
    elif isinstance(target, HTTPClient):
        ok = _install_on_client(target)
    elif isinstance(target, ConnectionPool):
        ok = _install_on_connection_pool(target)
    else:
        raise TypeError(f"cannot install kernel timestamps on {type(target).__name__}")
    if ok:
        keep_timestamping_warm()
    return ok


# --- per-request reading ---------------------------------------------------------------


class StampReader:
    """Read access to the stamp of the socket that carries one response.

    Take it with :meth:`from_response` right after the request returns and BEFORE reading
    the body: geventhttpclient drops ``response._sock`` when the message completes.
    """

    __slots__ = ("sock",)

    def __init__(self, sock: TimestampingSocket) -> None:
        self.sock = sock

    @classmethod
    def from_response(cls, response: Any) -> StampReader | None:
        """Reader for a Locust ``FastResponse``/``ResponseContextManager``, its ``.stream``,
        or a geventhttpclient ``HTTPSocketResponse``; None when the response is not read
        through a :class:`TimestampingSocket` (HTTPS, not installed, or already complete).
        """
        ghc = getattr(response, "_response", response)
        sock = getattr(ghc, "_sock", None)
        if isinstance(sock, TimestampingSocket) and sock.ts_enabled:
            return cls(sock)
        return None

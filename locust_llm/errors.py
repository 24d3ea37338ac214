"""What a failed connection means, in the words a user acts on.

The stream loop and the pre-flight both meet sockets that fail before an answer; both say the
same thing for the same failure, so the wording lives here once.
"""

from __future__ import annotations

import gevent

__all__ = ["describe_connect_error"]


def describe_connect_error(err: BaseException, target: str | None) -> str:
    """One line naming ``target`` (a host or URL), the likely cause and the exception kind."""
    kind = type(err).__name__
    if isinstance(err, ConnectionRefusedError):
        return f"connection refused by {target}: is the server running and the port right? ({kind})"
    if isinstance(err, (TimeoutError, gevent.Timeout)):
        return f"connect timeout to {target}: host unreachable or firewalled? ({kind})"
    text = str(err) or kind
    if "SSL" in kind or "ssl" in text.lower():
        return f"TLS error talking to {target}: wrong scheme (http vs https)? ({kind}: {text})"
    if "timed out" in text:  # geventhttpclient wraps it: RetriesExceeded(... original=timed out)
        return (
            f"no response from {target} in time (connecting, or waiting for the response "
            f"headers): host unreachable, server overloaded, or a proxy holding the response? "
            f"({kind})"
        )
    return f"cannot reach {target}: {kind}: {text}"

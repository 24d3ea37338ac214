"""What a failed request means: its kind, a short stable key for counting, and the words a user
acts on.

The message may carry a payload preview or a host; the key does not, so a thousand HTTP 500s
with different bodies count as one line ("HTTP 500") with one example message. The kind says
who is to blame: the exit code and back-off read it, never the message text (a server
message that happens to say "aborted" must not turn a failure into an abort). The stream loop
and the pre-flight both meet sockets that fail before an answer; both say the same thing for
the same failure, so the wording lives here once.
"""

from __future__ import annotations

from typing import Any

import gevent

__all__ = [
    "ABORTED",
    "CALLER_TIMEOUT",
    "CANCELLED",
    "CLIENT",
    "HTTP",
    "KINDS",
    "MIDSTREAM",
    "PROTOCOL",
    "TRANSPORT",
    "connect_error_key",
    "describe_connect_error",
    "fail",
]

#: the client stopped the request (users stopped, Ctrl-C): not a server failure
ABORTED = "aborted"
#: a timeout the locustfile put around the request cut it off: counted as aborted
CALLER_TIMEOUT = "caller_timeout"
#: the client hung up on purpose (--llm-cancel-rate/--llm-cancel-after): neither failed nor
#: aborted, counted apart with the tokens it received
CANCELLED = "cancelled"
HTTP = "http"  #: the server answered with a status other than 200
TRANSPORT = "transport"  #: no connection, a read timeout, or the connection lost
PROTOCOL = "protocol"  #: the answer is not a valid, complete OpenAI event stream
MIDSTREAM = "midstream"  #: an error event in place of any token
CLIENT = "client"  #: the request could not be built or sent (locustfile, model lookup)
KINDS = (ABORTED, CALLER_TIMEOUT, CANCELLED, HTTP, TRANSPORT, PROTOCOL, MIDSTREAM, CLIENT)


def fail(res: Any, kind: str, key: str, message: str) -> None:
    """Mark ``res`` (an ``LLMResult``) failed; ``key`` must not hold payloads or hosts."""
    res.error = message
    res.error_kind = kind
    res.error_key = key
    if kind in (ABORTED, CALLER_TIMEOUT):
        res.aborted = True
    elif kind == CANCELLED:
        res.cancelled = True


def connect_error_key(err: BaseException) -> str:
    """The counting key of :func:`describe_connect_error`'s message for the same error."""
    kind = type(err).__name__
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, (TimeoutError, gevent.Timeout)):
        return "connect timeout"
    text = str(err) or kind
    if "SSL" in kind or "ssl" in text.lower():
        return "TLS error"
    if "timed out" in text:
        return "no response in time"
    return f"cannot reach: {kind}"


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

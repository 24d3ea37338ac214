"""Incremental Server-Sent Events parser: bytes in, event payloads out, no I/O.

Written here rather than taken from a library because it sits on the client's hot path and
must work line by line on what geventhttpclient's ``readline`` returns (see DESIGN.md §8).
It follows the WHATWG SSE rules that matter for OpenAI-compatible streams:

* lines end in ``\\n``, ``\\r\\n`` or ``\\r``;
* ``data:`` lines (with or without one space after the colon) accumulate, joined by ``\\n``;
* a blank line dispatches the accumulated event; an event with no ``data`` is dropped;
* lines starting with ``:`` are comments (``: keep-alive``) and are ignored;
* ``event:``/``id:``/``retry:`` are kept on the event but OpenAI servers do not use them;
* an event still open when the stream ends is discarded (the spec's rule), which callers can
  detect through :attr:`SSEParser.pending`.

The parser never raises anything but :class:`SSEError`, and bounds the memory one event may
take (``max_event_bytes``) so a hostile or broken server cannot exhaust the load generator.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["SSEError", "SSEEvent", "SSEParser", "DEFAULT_MAX_EVENT_BYTES"]

DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024


class SSEError(ValueError):
    """The byte stream cannot be a valid SSE stream (for example an event larger than allowed)."""


class SSEEvent(NamedTuple):
    data: bytes
    event: bytes = b""
    id: bytes = b""


class SSEParser:
    """Feed bytes (any split) or whole lines; get back complete events in order."""

    __slots__ = ("_buf", "_data", "_event", "_id", "_size", "_cr_pending", "max_event_bytes")

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.max_event_bytes = max_event_bytes
        self._buf = bytearray()  # an unterminated line from feed()
        self._data: list[bytes] = []
        self._event = b""
        self._id = b""
        self._size = 0
        self._cr_pending = False  # last feed() ended in '\r': a following '\n' belongs to it

    @property
    def pending(self) -> bool:
        """True when bytes of an event have been seen but the event was never dispatched."""
        return bool(self._data or self._buf)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Parse an arbitrary slice of the stream; return the events it completed."""
        events: list[SSEEvent] = []
        if not chunk:
            return events
        if self._cr_pending:
            self._cr_pending = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        buf = self._buf
        buf += chunk
        start = 0
        n = len(buf)
        while start < n:
            cr = buf.find(b"\r", start)
            lf = buf.find(b"\n", start)
            if cr < 0 and lf < 0:
                break
            if cr < 0 or (0 <= lf < cr):
                end, nxt = lf, lf + 1
            else:
                end = cr
                if cr + 1 < n:
                    nxt = cr + 2 if buf[cr + 1] == 0x0A else cr + 1
                else:
                    nxt = cr + 1
                    self._cr_pending = True
            ev = self._line(bytes(buf[start:end]))
            if ev is not None:
                events.append(ev)
            start = nxt
        del buf[:start]
        if len(buf) > self.max_event_bytes:
            self._reset()
            raise SSEError(f"SSE line longer than {self.max_event_bytes} bytes without a line end")
        return events

    def feed_line(self, line: bytes) -> SSEEvent | None:
        """Parse one line as returned by ``readline`` (terminator included or not).

        Faster than :meth:`feed` when the transport already splits on ``\\n``; a line that
        still holds ``\\r`` separators (servers using bare CR) is routed through :meth:`feed`.
        """
        if line.endswith(b"\n"):
            line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        if b"\r" in line or self._buf:
            events = self.feed(line + b"\n")
            if len(events) > 1:  # bare-CR stream: keep all but the last for the next call
                raise SSEError("several events in one line; use feed() for bare-CR streams")
            return events[0] if events else None
        return self._line(line)

    def _line(self, line: bytes) -> SSEEvent | None:
        if not line:
            if not self._data:
                self._event = self._id = b""
                return None
            data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
            ev = SSEEvent(data, self._event, self._id)
            self._reset()
            return ev
        if line[0] == 0x3A:  # ':' comment
            return None
        colon = line.find(b":")
        if colon < 0:
            field, value = line, b""
        else:
            field = line[:colon]
            value = line[colon + 2 :] if line[colon + 1 : colon + 2] == b" " else line[colon + 1 :]
        if field == b"data":
            self._size += len(value) + 1
            if self._size > self.max_event_bytes:
                self._reset()
                raise SSEError(f"SSE event larger than {self.max_event_bytes} bytes")
            self._data.append(value)
        elif field == b"event":
            self._event = value
        elif field == b"id":
            if b"\x00" not in value:
                self._id = value
        # 'retry' and unknown fields are ignored, as the spec says
        return None

    def _reset(self) -> None:
        self._data = []
        self._event = b""
        self._id = b""
        self._size = 0

    def close(self) -> bool:
        """End of stream. Returns True if an event was still open and is therefore dropped."""
        dropped = self.pending
        self._buf.clear()
        self._cr_pending = False
        self._reset()
        return dropped

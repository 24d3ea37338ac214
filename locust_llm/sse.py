"""Incremental Server-Sent Events parser: bytes in, event payloads out, no I/O.

Written here rather than taken from a library because it sits on the client's hot path and
must work line by line on what geventhttpclient's ``readline`` returns, and no maintained
library does that at the speed this path needs.
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
# a line read up to '\n' that holds several whole events: only servers ending lines with a
# bare CR send that, and a stream read one line per event cannot deliver both
BARE_CR_EVENTS = (
    "the server ends SSE lines with a bare CR and sent several events in one line; "
    "end SSE lines with LF or CRLF (as vLLM and OpenAI do)"
)


class SSEError(ValueError):
    """The byte stream cannot be a valid SSE stream (for example an event larger than allowed)."""


class SSEEvent(NamedTuple):
    data: bytes
    event: bytes = b""
    id: bytes = b""


def _first_line_end(chunk: bytes) -> int:
    cr = chunk.find(b"\r")
    lf = chunk.find(b"\n")
    if cr < 0:
        return lf
    return cr if lf < 0 or cr < lf else lf


class SSEParser:
    """Feed bytes (any split) or whole lines; get back complete events in order."""

    __slots__ = (
        "_buf",
        "_data",
        "_event",
        "_id",
        "_size",
        "_cr_pending",
        "_skip",
        "max_event_bytes",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.max_event_bytes = max_event_bytes
        self._buf = bytearray()  # an unterminated line from feed()
        self._data: list[bytes] = []
        self._event = b""
        self._id = b""
        self._size = 0
        self._cr_pending = False  # last feed() ended in '\r': a following '\n' belongs to it
        self._skip = False  # an over-long line was dropped: discard bytes up to its line end

    @property
    def pending(self) -> bool:
        """True when bytes of an event have been seen but the event was never dispatched."""
        return bool(self._data or self._buf)

    @property
    def idle(self) -> bool:
        """True between events: no data line pending, no partial line, nothing being skipped
        (a caller may then frame ``data: ...`` events itself)."""
        return not (self._data or self._buf or self._skip)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Parse an arbitrary slice of the stream; return the events it completed.

        Linear in the bytes fed, however they are split: bytes kept from earlier calls hold no
        line end and are not searched again. After an :class:`SSEError` the parser has dropped
        the offending event and resumes at the next line end.
        """
        events: list[SSEEvent] = []
        if not chunk:
            return events
        if self._cr_pending:
            self._cr_pending = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if self._skip:  # rest of an over-long line: drop it up to its line end
            cut = _first_line_end(chunk)
            if cut < 0:
                return events
            self._skip = False
            chunk = chunk[cut:]  # the line end then closes an empty line: harmless, state is reset
        buf = self._buf
        scan = len(buf)
        buf += chunk
        start = 0
        n = len(buf)
        cr = buf.find(b"\r", scan)
        lf = buf.find(b"\n", scan)
        try:
            while cr >= 0 or lf >= 0:
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
                if 0 <= cr < start:
                    cr = buf.find(b"\r", start)
                if 0 <= lf < start:
                    lf = buf.find(b"\n", start)
        except SSEError:
            buf.clear()
            self._cr_pending = False
            raise
        del buf[:start]
        if len(buf) > self.max_event_bytes:
            buf.clear()
            self._reset()
            self._skip = True
            raise SSEError(f"SSE line longer than {self.max_event_bytes} bytes without a line end")
        return events

    def feed_line(self, line: bytes) -> SSEEvent | None:
        """Parse one line as returned by ``readline`` (terminator included or not).

        Faster than :meth:`feed` when the transport already splits on ``\\n``; a line that
        still holds ``\\r`` separators (servers using bare CR) is routed through :meth:`feed`.
        """
        if not self._buf and not self._skip:
            # fast path for the two shapes OpenAI servers send: "data: {...}\n" and "\n"
            if line[:6] == b"data: " and line[-1:] == b"\n" and b"\r" not in line:
                value = line[6:-1]
                self._size += len(value) + 1
                if self._size > self.max_event_bytes:
                    self._reset()
                    raise SSEError(f"SSE event larger than {self.max_event_bytes} bytes")
                self._data.append(value)
                return None
            if line == b"\n":
                return self._line(b"")
        raw = line
        if line.endswith(b"\n"):
            line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        if b"\r" in line or self._buf or self._skip:
            # feed the line with its own terminator: in b"data: x\r\r\n" the first '\r' ends a
            # line and '\r\n' ends the blank one after it
            events = self.feed(raw if raw is not line else raw + b"\n")
            if len(events) > 1:  # bare-CR stream: keep all but the last for the next call
                raise SSEError(BARE_CR_EVENTS)
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
        self._skip = False
        self._reset()
        return dropped

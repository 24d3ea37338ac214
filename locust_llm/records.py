"""The ``--llm-records`` JSONL file: one line per finished request.

Several Locust processes (``--processes``, workers on one host) may append to the same path,
so each line goes out as ONE ``write(2)`` on a descriptor opened with ``O_APPEND``: the kernel
places it at the end of the file atomically, and a line is never interleaved with another
process's. A short write (disk full, file size limit) is never "undone" by truncating: the
bytes after our line's start may be another process's lines. Instead the torn fragment is
ended with a newline when possible, so every other line still parses, and the writer stops.
"""

from __future__ import annotations

import errno
import os

__all__ = ["RecordsWriter", "truncate"]


class RecordsWriter:
    """Appends whole lines to one file; unbuffered, so a SIGKILL loses nothing written."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    @property
    def closed(self) -> bool:
        return self._fd is None

    def write(self, line: bytes) -> None:
        """Append ``line`` (ending in a newline). Raises ``OSError`` when it could not be
        written whole; the writer is closed then."""
        if self._fd is None:
            raise OSError(errno.EBADF, "records file closed")
        try:
            n = os.write(self._fd, line)
        except OSError:
            self.close()
            raise
        if n != len(line):
            try:  # end the fragment: the next process's line must start on its own line
                os.write(self._fd, b"\n")
            except OSError:
                pass
            self.close()
            raise OSError(errno.ENOSPC, f"short write ({n} of {len(line)} bytes; disk full?)")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def truncate(path: str) -> None:
    """Empty (or create) ``path``: a new run replaces the file, as ``--csv`` does."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb"):
        pass

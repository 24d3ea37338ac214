"""The ``--llm-records`` JSONL file: one line per finished request.

Several Locust processes (``--processes``, workers on one host) may append to the same path,
so each line goes out as ONE ``write(2)`` on a descriptor opened with ``O_APPEND``: the kernel
places it at the end of the file atomically, and a line is never interleaved with another
process's. A short write (disk full, file size limit) leaves a fragment: it is cut off only
when it is still the file's last bytes, checked under an exclusive ``flock`` while every
writer holds a shared one around its writes, so another process's line is never cut; when
lines were appended after it, the fragment is ended with a newline instead. Either way every
other line still parses, and the writer stops.
"""

from __future__ import annotations

import errno
import fcntl
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
        fd = self._fd
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            try:
                n = os.write(fd, line)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:
            self.close()
            raise
        if n != len(line):
            self._drop_fragment(fd, n)
            self.close()
            raise OSError(errno.ENOSPC, f"short write ({n} of {len(line)} bytes; disk full?)")

    @staticmethod
    def _drop_fragment(fd: int, n: int) -> None:
        """Remove the ``n`` bytes just written if nothing follows them, else end the line."""
        end = os.lseek(fd, 0, os.SEEK_CUR)  # O_APPEND: where our own write ended
        fcntl.flock(fd, fcntl.LOCK_EX)  # no other writer is between its seek and its write
        try:
            if os.fstat(fd).st_size == end:
                os.ftruncate(fd, end - n)
            else:
                os.write(fd, b"\n")
        except OSError:
            pass
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def truncate(path: str) -> None:
    """Empty (or create) ``path``: a new run replaces the file, as ``--csv`` does."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb"):
        pass

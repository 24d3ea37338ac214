"""Keep secrets out of what is printed, served or shared."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["redact", "without_credentials", "valid_header_value"]


def redact(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` masked: exception texts may quote request headers."""
    if secret and secret in text:
        return text.replace(secret, "***")
    return text


def without_credentials(url: str | None) -> str | None:
    """``http://user:pass@host`` -> ``http://host``: summaries and pages are shared, keys not."""
    if not url or "@" not in url:
        return url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def valid_header_value(value: str) -> bool:
    """A key with a line break or non-Latin-1 text cannot be sent in an HTTP header."""
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return not any(c in value for c in "\r\n\0")

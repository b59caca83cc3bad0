"""Ledger URLs as they may be shown: never with the password they may carry.

`postgresql://user:PASSWORD@host/db` and `redis://:PASSWORD@host:6379/0` are
how operators pass credentials; any message, log line or metric that names a
ledger says `***` instead of the password, and a driver's error text that
happens to repeat it is scrubbed the same way.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

HIDDEN = "***"


def redacted_url(url: str) -> str:
    """The URL with its password, if any, replaced by ***."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # a malformed port or netloc: show nothing of what follows the scheme
        return url.split("://", 1)[0] + "://" + HIDDEN
    if not password:
        return url
    user = parts.username or ""
    netloc = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{user}:{HIDDEN}@{netloc}").geturl()


def scrubbed(text: str, url: str) -> str:
    """`text` with the URL's password (as written and percent-decoded) replaced by ***."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return text.replace(url, redacted_url(url))
    if not password:
        return text
    for secret in {password, unquote(password)}:
        text = text.replace(secret, HIDDEN)
    return text

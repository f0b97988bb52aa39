"""Database URLs as they may be shown: with every password masked.

A URL carries its password either in the netloc (``postgresql://user:secret@host/db``) or as a
query parameter (``postgresql://user@host/db?password=secret``, which libpq accepts too). Every
message, log line and page shows a URL only through :func:`display_url`, and every driver
message that could quote one goes through :func:`scrub`. Both work on plain strings, so a URL
too malformed for any parser (``postgresql://u:secret@[::1/x``) is masked all the same; where
they cannot tell, they mask too much rather than too little.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"
# A query or key=value parameter that holds a secret: password=, sslpassword=, passwd=, pwd=,
# or any name with "secret" or "token" in it; its value runs to the next separator.
_SECRET_PARAMETER = re.compile(
    r"((?:^|[?&;\s])[^=&?;\s]*(?:pass|pwd|secret|token)[^=&?;\s]*=)([^&;#\s]*)", re.IGNORECASE
)


def display_url(url: object) -> str:
    """``url`` with the password of its netloc and every secret parameter replaced by ***."""
    text = str(url)
    scheme, separator, rest = text.partition("://")
    if separator:
        # The user info ends at the last '@': a password with an unescaped '@' (or '/', '?')
        # is still masked whole, whatever a parser would make of it.
        at = rest.rfind("@")
        if at != -1:
            user, colon, _ = rest[:at].partition(":")
            if colon:
                rest = f"{user}:{MASK}{rest[at:]}"
        text = scheme + separator + rest
    return _SECRET_PARAMETER.sub(lambda match: match.group(1) + MASK, text)


def secrets_of(url: object) -> set[str]:
    """The secret strings in ``url`` (its password, raw and as a parser decodes it, and the
    values of its secret parameters)."""
    text = str(url)
    found = {match.group(2) for match in _SECRET_PARAMETER.finditer(text)}
    _, separator, rest = text.partition("://")
    at = rest.rfind("@")
    if separator and at != -1:
        _, colon, password = rest[:at].partition(":")
        if colon:
            found.add(password)
    found |= {unquote(value) for value in found}  # as the driver sees it: p%40ss is p@ss
    return {secret for secret in found if len(secret) >= 3}  # shorter: no secret, and too common a substring


def scrub(message: str, url: object) -> str:
    """``message`` (a driver's error text, say) with any secret of ``url`` in it masked."""
    for secret in sorted(secrets_of(url), key=len, reverse=True):
        message = message.replace(secret, MASK)
    return display_url_in(message)


def display_url_in(message: str) -> str:
    """Mask any URL-shaped password or secret parameter quoted inside a longer message."""
    return re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://\S+", lambda match: display_url(match.group(0)), message)

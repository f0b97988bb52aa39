"""Text that comes from a user, checked on the way in and made harmless on the way out.

A tag is typed in a form or on the command line, stored, and later printed to terminals and
drawn in pages: it may hold no control characters (a NUL that PostgreSQL refuses, an ESC that
recolours a terminal, a newline that forges a row of ``runs``). A run or sweep id comes from a URL
or a command line: it is a positive 63-bit integer, and anything else is refused before it reaches
a database (SQLite overflows at 2**63, and ``int()`` refuses strings of more than 4,300 digits).
"""

from __future__ import annotations

import math
import unicodedata

MAX_TAG = 200
# The largest run or sweep id SQLite's INTEGER holds; PostgreSQL's INTEGER ends sooner, at
# 2**31 - 1, which the store checks (Store.largest_id).
MAX_ID = 2**63 - 1
# Unicode's bidirectional overrides and isolates reorder the text around them on screen
# ("Trojan source"): as invisible and as misleading in a tag as a control character.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _forbidden(char: str) -> bool:
    # Cc: C0 and C1 controls (NUL, ESC, newline, tab, DEL…); Cs: lone surrogates, which no
    # database can encode.
    return unicodedata.category(char) in ("Cc", "Cs") or char in BIDI_CONTROLS


def text_problem(text: object, longest: int | None = None) -> str | None:
    """Why ``text`` cannot be a one-line text field of at most ``longest`` characters (None: any
    length), on one line and without echoing it, or None if it can."""
    if not isinstance(text, str):
        return f"must be text, got {type(text).__name__}"
    if longest is not None and len(text) > longest:
        return f"at most {longest} characters, got {len(text)}"
    for position, char in enumerate(text, 1):
        if _forbidden(char):
            return (f"cannot hold control characters: U+{ord(char):04X} "
                    f"({unicodedata.name(char, 'a control character')}) at character {position}")
    return None


def check_tag(text: object) -> str | None:
    """Why ``text`` cannot be a tag, or None if it can (RunConfig.validate and Store.set_tag)."""
    return text_problem(text, MAX_TAG)


def printable(text: str) -> str:
    """``text`` with every control character written as an escape (``\\x1b``, ``\\n``), so that
    printing it to a terminal shows it instead of obeying it."""
    if not any(_forbidden(char) for char in text):
        return text
    return "".join(repr(char)[1:-1] if _forbidden(char) else char for char in text)


def parse_id(text: str, kind: str = "run") -> int:
    """A run (or sweep, with ``kind='sweep'``) id typed by a user: ValueError, with a one-line
    message, for anything but a whole number from 1 to 2**63 - 1 (only ASCII digits:
    ``'²'.isdigit()`` is true, yet ``int`` fails; and never ``int()`` of thousands of digits)."""
    stripped = text.strip()
    if stripped.isascii() and stripped.isdecimal() and len(stripped) <= len(str(MAX_ID)):
        value = int(stripped)
        if 1 <= value <= MAX_ID:
            return value
    raise ValueError(f"not a {kind} id: {shorten(stripped)!r} (a whole number from 1 to {MAX_ID})")


def shorten(text: str, limit: int = 24) -> str:
    """At most ``limit`` characters of ``text``, with an ellipsis where it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def storable(text: str) -> str:
    """``text`` (an error message, say) as every database stores it: PostgreSQL refuses NUL
    in text, and no database encodes a lone surrogate."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")



def rounded(value: object, digits: int = 3, signed: bool = False) -> str:
    """A number as a person reads it in a legend, a caption or a table: ``digits`` significant
    figures (0.001202222703522498 → '0.00120', 0.81234 → '0.812', 0.9996 → '1.00'), with the
    trailing zeros dropped only where the value is exact (0.001, 0.5), whole numbers whole (10000,
    not '1e+04'), and an exponent only below 1e-4 ('3.20e-5'); ``signed`` puts '+' before a
    positive number (a difference). Anything not a real number comes back as ``str(value)``, and
    None or NaN as ''. The exact value stays in the CSV."""
    if value is None or isinstance(value, bool | str) or not hasattr(value, "__float__"):
        return "" if value is None else str(value)
    number = float(value)
    if math.isnan(number):
        return ""
    sign = "+" if signed and number > 0 else ""
    if math.isinf(number):
        return sign + ("∞" if number > 0 else "−∞")
    if number.is_integer() and abs(number) < 1e15:
        return f"{sign}{int(number)}"
    if abs(number) < 1e-4:
        return f"{sign}{number:.{digits - 1}e}".replace("e-0", "e-")
    # Positional (no exponent for 1234.5), rounded at the digits-th significant figure.
    places = digits - 1 - math.floor(math.log10(abs(number)))
    if abs(round(number, places)) >= 10 ** (digits - places):  # 0.9996 → 1.00, a figure longer
        places -= 1
    text = f"{round(number, places):.{max(places, 0)}f}"
    if "." in text and float(text) == number:
        text = text.rstrip("0").rstrip(".")
    return sign + text

"""The copy task's vocabulary: nine symbols, the delimiter '$' and the blank ' '.

Indices are fixed (DESIGN.md): the alphabet ``a x c r y w b t o`` is 0–8, ``$`` is 9 and the
blank is 10, so a vocabulary of 11. Blanks and delimiters are shown visibly when decoded
(``·`` and ``$``) because an invisible blank makes a model's output impossible to read.
"""

from __future__ import annotations

from collections.abc import Iterable

ALPHABET = "axcrywbto"
DELIMITER = "$"
BLANK = " "
SYMBOLS = ALPHABET + DELIMITER + BLANK
VOCAB_SIZE = len(SYMBOLS)  # 11
NUM_SYMBOLS = len(ALPHABET)  # 9: the copy targets
DELIMITER_INDEX = SYMBOLS.index(DELIMITER)  # 9
BLANK_INDEX = SYMBOLS.index(BLANK)  # 10
CHANCE_LEVEL = 1.0 / NUM_SYMBOLS  # copy accuracy of a model that guesses a symbol
VISIBLE_BLANK = "·"

_INDEX_OF = {symbol: index for index, symbol in enumerate(SYMBOLS)}


class InvalidSequence(ValueError):
    """Typed text that is not a sequence of the alphabet's letters."""


def encode(text: str) -> list[int]:
    """Text over the vocabulary (``·`` accepted for a blank) → indices."""
    text = text.replace(VISIBLE_BLANK, BLANK)
    unknown = sorted({ch for ch in text if ch not in _INDEX_OF})
    if unknown:
        raise InvalidSequence(f"not in the vocabulary: {', '.join(repr(ch) for ch in unknown)}")
    return [_INDEX_OF[ch] for ch in text]


def decode(indices: Iterable[int], visible: bool = True) -> str:
    """Indices → text; blanks shown as ``·`` unless ``visible`` is False."""
    blank = VISIBLE_BLANK if visible else BLANK
    out = []
    for index in indices:
        index = int(index)
        if not 0 <= index < VOCAB_SIZE:
            raise ValueError(f"index {index} is outside the vocabulary of {VOCAB_SIZE}")
        out.append(blank if index == BLANK_INDEX else SYMBOLS[index])
    return "".join(out)


def validate_symbols(text: str, max_length: int) -> list[int]:
    """Check what a person typed as a sequence to copy and return its indices.

    Only the nine letters are allowed (case and surrounding spaces forgiven); the message names
    every offending character so the person can fix it in one go.
    """
    cleaned = text.strip().lower()
    if not cleaned:
        raise InvalidSequence(f"type at least one of the letters {' '.join(ALPHABET)}")
    if len(cleaned) > max_length:  # checked first: no work on an over-long text
        raise InvalidSequence(f"{len(cleaned)} letters is too long: at most {max_length}")
    bad = sorted({ch for ch in cleaned if ch not in ALPHABET})
    if bad:
        shown = ", ".join(repr(ch) for ch in bad[:10])
        raise InvalidSequence(f"only the letters {' '.join(ALPHABET)} can be copied; not {shown}")
    return [_INDEX_OF[ch] for ch in cleaned]

"""User text (tags, error reasons, values from a link) put into markdown or a plotly label so that
it shows as the text it is.

Streamlit renders markdown in captions, warnings, expander labels and ``st.markdown``: a tag
``![q](http://host/x.png)`` would make every visitor's browser fetch that image, and
``:red[…]``, ``$…$`` or a ``#`` heading would restyle the page. Plotly draws a subset of HTML in
legends and titles (``<a href>``, ``<b>``…). Pure functions; no Streamlit here.
"""

from __future__ import annotations

import re
import string

_MARKDOWN_SPECIAL = re.compile("([" + re.escape(string.punctuation) + "])")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")
# GitHub-flavoured markdown turns bare URLs and e-mail addresses into links even when every
# character is escaped; an invisible WORD JOINER after '://', 'www' and '@' stops it.
_AUTOLINK_START = re.compile(r"(://|\bwww(?=\.)|@)", re.IGNORECASE)
WORD_JOINER = "\u2060"


def unlinked(text: object) -> str:
    """``text`` on one line, with a WORD JOINER where markdown would start an automatic link:
    what :func:`markdown` shows, once rendered."""
    return _AUTOLINK_START.sub(lambda match: match.group(1) + WORD_JOINER, _LINE_BREAKS.sub(" ", str(text)))


def markdown(text: object) -> str:
    """``text`` for a markdown context, shown literally on one line: every ASCII punctuation
    character backslash-escaped (CommonMark lets any of them be; this also disarms Streamlit's
    ``:color[…]``, ``:emoji:`` and ``$`` LaTeX), no automatic links, line breaks as spaces."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", unlinked(text))


def code_span(text: object) -> str:
    """``text`` as inline code: shown verbatim (no markdown, no links, copied as it is), on one
    line. The fence is one backtick longer than any run of backticks inside (CommonMark)."""
    text = _LINE_BREAKS.sub(" ", str(text))
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def plotly(text: object) -> str:
    """``text`` for a plotly label (legend, title, hover): its HTML-like tags shown, not obeyed."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

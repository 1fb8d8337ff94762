"""A user's search term as a PostgreSQL tsquery (the text given to to_tsquery).

What a search box understands, as in Synapse and web search engines: words
must all appear (in any form the stemmer folds together), `"a phrase"` must
appear in order, `-word` must not appear, and `or` between two terms accepts
either. Words of three or more characters also match as prefixes, so
"meet" finds "meetings" while a client searches as the user types.

Every word is quoted for to_tsquery, so no input can make it fail: text with no
words (punctuation, stop words like "the") simply matches nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# -"a phrase" | "a phrase (unterminated) | a word, maybe -negated.
_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')
MIN_PREFIX_CHARS = 3
MAX_TERMS = 32


@dataclass(frozen=True)
class _Term:
    text: str  # tsquery operand: a quoted word or a parenthesised phrase
    negated: bool


def _quote(word: str) -> str:
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"


def _word(word: str) -> str:
    return _quote(word) + (":*" if len(word) >= MIN_PREFIX_CHARS else "")


def _phrase(text: str) -> str | None:
    words = text.split()
    if not words:
        return None
    if len(words) == 1:
        return _word(words[0])
    return "(" + " <-> ".join(_quote(word) for word in words) + ")"


def parse(search_term: str) -> str | None:
    """The tsquery text for a search term, or None when it asks for no word at all
    (empty, or only exclusions: a query of nothing but `-word` would scan everything)."""
    pieces: list[_Term | str] = []  # terms, and "or" between them
    for match in _TOKEN.finditer(search_term):
        negated_phrase, phrase, word = match.groups()
        if word is not None:
            if word.lower() == "or":
                pieces.append("or")
                continue
            negated = word.startswith("-") and len(word) > 1
            text = _word(word[1:] if negated else word)
        else:
            negated = negated_phrase == "-"
            found = _phrase(phrase)
            if found is None:
                continue
            text = found
        pieces.append(_Term(text, negated))
    terms: list[str] = []
    joiner = " & "
    positive = False
    for piece in pieces:
        if isinstance(piece, str):
            joiner = " | " if terms else " & "
            continue
        if len(terms) == MAX_TERMS:
            break
        positive = positive or not piece.negated
        operand = ("!" if piece.negated else "") + piece.text
        terms.append(operand if not terms else joiner + operand)
        joiner = " & "
    if not positive:
        return None
    return "".join(terms)

"""Search box text -> SQLite FTS5 MATCH expressions that can never be a syntax error.

    red cat              both words (prefix match: "cat" finds "cats")
    "red cat"            the phrase
    -dog                 without "dog"
    lora:detail          in a column: prompt: neg: model: lora: tag:

Every term becomes a quoted FTS5 string (``"..."``, inner quotes doubled) followed by ``*``;
terms with no letter or digit are dropped (FTS5 has nothing to match them against), so input such
as ``AND ( "* NEAR`` is searched as words, not parsed as FTS5 syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FIELDS = {"prompt": "prompt", "p": "prompt", "neg": "negative_prompt", "negative": "negative_prompt",
          "model": "model_id", "m": "model_id", "lora": "lora_names", "tag": "tags", "tags": "tags"}
RE_TERM = re.compile(r'(-)?(?:([A-Za-z]+):)?(?:"([^"]*)"?|(\S+))')


@dataclass(frozen=True, slots=True)
class Match:
    positive: str | None      # FTS5 expression every hit must match, or None
    negative: str | None      # FTS5 expression no hit may match, or None


def _phrase(term: str) -> str | None:
    if not any(ch.isalnum() for ch in term):
        return None
    return '"' + term.replace('"', '""') + '"*'


def build_match(text: str) -> Match:
    positive: list[str] = []
    negative: list[str] = []
    for m in RE_TERM.finditer(text or ""):
        minus, field, quoted, bare = m.groups()
        term = quoted if quoted is not None else bare or ""
        column = FIELDS.get(field.lower()) if field else None
        if field and column is None:           # "photo:1.2" is a word, not a column
            term = f"{field}:{term}"
        phrase = _phrase(term)
        if phrase is None:
            continue
        expr = f"{column} : {phrase}" if column else phrase
        (negative if minus else positive).append(expr)
    return Match(" AND ".join(positive) or None, " OR ".join(negative) or None)

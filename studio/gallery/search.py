"""The gallery's search: box text -> SQLite FTS5 MATCH expressions that can never be a syntax
error, and the plan of a whole query (``page_ids``: FTS, filters, order, page).

    red cat              both words (prefix match: "cat" finds "cats")
    "red cat"            the phrase
    -dog                 without "dog"
    lora:detail          in a column: prompt: neg: model: lora: tag:
    seed:42 source:fooocus   exact filters (the same as ``GalleryQuery.seed`` / ``.source``)

Every term becomes a quoted FTS5 string (``"..."``, inner quotes doubled) followed by ``*``;
terms with no letter or digit are dropped (FTS5 has nothing to match them against), so input such
as ``AND ( "* NEAR`` is searched as words, not parsed as FTS5 syntax.

Filters are exact (model, task, LoRA, tag, favourite, missing, dates, size); the ids of a page
are found first, narrowly, and the store loads only their rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Select, func, literal_column, select, text
from sqlalchemy.orm import Session

from studio.errors import InvalidRequest
from studio.gallery.records import GalleryQuery, naive_utc, normalise_tag
from studio.gallery.schema import SEED_ORDER, ImageRow, LoraRow, TagRow
from studio.requests import MAX_SEED

FIELDS = {"prompt": "prompt", "p": "prompt", "neg": "negative_prompt", "negative": "negative_prompt",
          "model": "model_id", "m": "model_id", "lora": "lora_names", "tag": "tags", "tags": "tags"}
RE_TERM = re.compile(r'(-)?(?:([A-Za-z]+):)?(?:"([^"]*)"?|(\S+))')
EXACT = ("seed", "source")  # box terms that are filters, not words
SCAN_ABOVE = 500            # matches above which a page is found by walking the date index


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
        if field and field.lower() in EXACT and not minus:
            continue                           # an exact filter (``exact_terms``)
        column = FIELDS.get(field.lower()) if field else None
        if field and column is None:           # "photo:1.2" is a word, not a column
            term = f"{field}:{term}"
        phrase = _phrase(term)
        if phrase is None:
            continue
        expr = f"{column} : {phrase}" if column else phrase
        (negative if minus else positive).append(expr)
    return Match(" AND ".join(positive) or None, " OR ".join(negative) or None)


def exact_terms(text: str) -> dict[str, object]:
    """``seed:N`` and ``source:NAME`` in the search box: exact filters. A seed that is no seed is
    the user's error, named."""
    found: dict[str, object] = {}
    for m in RE_TERM.finditer(text or ""):
        minus, field, quoted, bare = m.groups()
        if not field or field.lower() not in EXACT or minus:
            continue
        value = (quoted if quoted is not None else bare or "").strip()
        if field.lower() == "seed":
            if not value.isdecimal() or int(value) > MAX_SEED:
                raise InvalidRequest("seed", f"seed:N takes a whole number within 0..{MAX_SEED}, got {value!r}")
            found["seed"] = int(value)
        else:
            found["source"] = value.lower()
    return found


# -- the query plan ---------------------------------------------------------------------------------
def page_ids(session: Session, q: GalleryQuery) -> tuple[list[int], int]:
    """The ids of the page ``q`` asks for, in order, and how many rows match in all.

    Two steps: the total, then the ids of the page (a narrow query SQLite can sort cheaply); the
    caller loads their rows. When many rows match (> ``SCAN_ABOVE``), the ids come from walking
    the ``created_at`` index and probing the match set (``+images.id IN ...`` keeps SQLite from
    sorting every hit); when few match, from the hits, sorted.
    """
    total = count(session, q)
    scan = total > SCAN_ABOVE and q.sort in ("newest", "oldest")
    stmt = ordered(filtered(q, select(ImageRow.id), scan=scan), q)
    return list(session.scalars(stmt.limit(q.per_page).offset((q.page - 1) * q.per_page))), total


def count(session: Session, q: GalleryQuery) -> int:
    match = build_match(q.text)
    only_text = match.positive and not match.negative and not exact_terms(q.text) and GalleryQuery(
        text=q.text, sort=q.sort, page=q.page, per_page=q.per_page, missing=q.missing) == q
    if only_text and q.missing is not True:   # the FTS index knows (triggers keep it equal to images)
        total = int(session.scalar(text("SELECT count(*) FROM images_fts WHERE images_fts MATCH :m"),
                                   {"m": match.positive}) or 0)
        if q.missing is False:                # minus the (few) missing ones, found by their index
            total -= int(session.scalar(filtered(
                GalleryQuery(text=q.text, missing=True), select(func.count(ImageRow.id)))) or 0)
        return total
    return int(session.scalar(filtered(q, select(func.count(ImageRow.id)))) or 0)


def filtered(q: GalleryQuery, stmt: Select | None = None, *, scan: bool = False) -> Select:
    """``stmt`` (default: every column of ``images``) narrowed to the rows ``q`` matches."""
    stmt = select(ImageRow) if stmt is None else stmt
    key = literal_column("+images.id") if scan else ImageRow.id
    match = build_match(q.text)
    if match.positive:
        stmt = stmt.where(key.in_(
            text("SELECT rowid FROM images_fts WHERE images_fts MATCH :fts_pos")
            .bindparams(fts_pos=match.positive).columns(ImageRow.id)))
    if match.negative:
        stmt = stmt.where(ImageRow.id.not_in(
            text("SELECT rowid FROM images_fts WHERE images_fts MATCH :fts_neg")
            .bindparams(fts_neg=match.negative).columns(ImageRow.id)))
    exact = exact_terms(q.text)
    seed = q.seed if q.seed is not None else exact.get("seed")
    if seed is not None:
        stmt = stmt.where(ImageRow.seed == seed)
    if q.owner is not None:                   # public mode: one visitor's images (index ix_images_owner)
        stmt = stmt.where(ImageRow.owner == q.owner)
    source = q.source or exact.get("source")
    if source:
        stmt = stmt.where(ImageRow.source == source)
    if q.model_id:
        stmt = stmt.where(ImageRow.model_id == q.model_id)
    if q.task:
        stmt = stmt.where(ImageRow.task == q.task)
    if q.lora:
        stmt = stmt.where(key.in_(select(LoraRow.image_id).where(LoraRow.name == q.lora)))
    if q.tag:
        stmt = stmt.where(key.in_(select(TagRow.image_id).where(TagRow.tag == normalise_tag(q.tag))))
    # the flags' indexes help find the few True rows; for "False" (nearly every row) they would
    # make SQLite walk the flag index and sort every hit, so "+column" keeps it off them
    for column, wanted in (("favourite", q.favourite), ("missing", q.missing)):
        if wanted is True:
            stmt = stmt.where(getattr(ImageRow, column).is_(True))
        elif wanted is False:
            stmt = stmt.where(literal_column(f"+images.{column}") == 0)
    if q.date_from is not None:
        stmt = stmt.where(ImageRow.created_at >= naive_utc(q.date_from))
    if q.date_to is not None:
        stmt = stmt.where(ImageRow.created_at <= naive_utc(q.date_to, end=True))
    if q.width:
        stmt = stmt.where(ImageRow.width == q.width)
    if q.height:
        stmt = stmt.where(ImageRow.height == q.height)
    return stmt


def ordered(stmt: Select, q: GalleryQuery) -> Select:
    if q.sort == "relevance" and build_match(q.text).positive:
        rank = text("(SELECT rank FROM images_fts WHERE images_fts MATCH :fts_rank AND rowid = images.id)")
        return stmt.order_by(rank.bindparams(fts_rank=build_match(q.text).positive), ImageRow.id.desc())
    if q.sort == "oldest":
        return stmt.order_by(ImageRow.created_at.asc(), ImageRow.id.asc())
    if q.sort == "seed":                      # 64-bit seeds: see schema.Seed (unknown seeds first)
        return stmt.order_by(*(literal_column(x) for x in SEED_ORDER), ImageRow.id.asc())
    return stmt.order_by(ImageRow.created_at.desc(), ImageRow.id.desc())

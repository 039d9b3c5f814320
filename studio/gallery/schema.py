"""Gallery tables: SQLAlchemy 2.0 typed mappings. The migrations beside this file create them.

The ORM classes mirror the newest migration (``migrations/versions``); the migrations, not
``Base.metadata.create_all``, are what build a database, so an old file upgrades the same way
a new one is made. One row per image holds the whole resolved request: the columns are the
fields people filter and sort by, ``request_json`` is the exact request (re-generate uses it).

Full-text search lives in ``images_fts`` (FTS5, external content = ``images``), kept in sync by
triggers over ``prompt, negative_prompt, model_id, lora_names, tags``; ``lora_names`` and
``tags`` are denormalised text copies of ``image_loras`` / ``image_tags`` written in the same
transaction, so the triggers see everything the index needs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

SIGNED = 2**63           # SQLite integers are signed 64-bit


class Seed(TypeDecorator):
    """A seed 0..2^64-1 in SQLite's signed 64-bit INTEGER (revision 5): a seed below 2^63 (every
    seed A1111, InvokeAI, Fooocus and the studio itself draw) is stored as itself, so the column
    reads plainly; one of 2^63 and above (ComfyUI's widget goes to 2^64-1) as seed - 2^64, two's
    complement. ``seed = ?`` stays one index lookup; seed order is ``(seed < 0), seed``
    (``SEED_ORDER``, index ``ix_images_seed_order``). NULL: not known (an image without one)."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value, dialect):  # noqa: ANN001, ANN201 - SQLAlchemy's signature
        if value is None:
            return None
        value = int(value)
        return value - 2 * SIGNED if value >= SIGNED else value

    def process_result_value(self, value, dialect):  # noqa: ANN001, ANN201
        return value + 2 * SIGNED if value is not None and value < 0 else value


SEED_ORDER = ("images.seed < 0", "images.seed")     # ascending seed order, as the index holds it


class Base(DeclarativeBase):
    pass


class ImageRow(Base):
    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    path: Mapped[str] = mapped_column(String(1000), unique=True)     # relative to outputs_dir when inside it
    sha256: Mapped[str] = mapped_column(String(64), index=True)        # revision 4: the index
    task: Mapped[str] = mapped_column(String(20), index=True)
    model_id: Mapped[str] = mapped_column(String(200), index=True)
    model_source: Mapped[str] = mapped_column(String(1000), default="")   # hub repo, folder or file
    model_revision: Mapped[str] = mapped_column(String(100), default="")  # hub commit, or file sha256
    prompt: Mapped[str] = mapped_column(Text, default="")
    negative_prompt: Mapped[str] = mapped_column(Text, default="")
    seed: Mapped[int | None] = mapped_column(Seed, index=True)          # revision 5: 64-bit, NULL unknown
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    steps: Mapped[int | None] = mapped_column(Integer)
    guidance: Mapped[float | None] = mapped_column(Float)
    scheduler: Mapped[str] = mapped_column(String(100), default="")
    strength: Mapped[float | None] = mapped_column(Float)
    loras: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)        # [{name, weight}]
    controls: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)     # [ControlUnit as a dict]
    # [ImagePrompt as a dict] (rows of request version 1 hold one {image, scale}; the store reads both)
    image_prompt: Mapped[Any] = mapped_column(JSON)
    timings: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    request_json: Mapped[str | None] = mapped_column(Text)       # None: imported without a studio request
    infotext: Mapped[str] = mapped_column(Text, default="")
    # studio | a1111 | fooocus | comfyui | invokeai | swarmui | novelai | import (no parameters); revision 5: indexed
    source: Mapped[str] = mapped_column(String(20), default="studio", index=True)
    favourite: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    missing: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    # revision 2
    lora_names: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[str] = mapped_column(Text, default="")
    # revision 6: who made it in public mode (a hash of the visitor's id); NULL on a local studio
    owner: Mapped[str | None] = mapped_column(String(64))

    lora_rows: Mapped[list[LoraRow]] = relationship(cascade="all, delete-orphan", passive_deletes=True)
    tag_rows: Mapped[list[TagRow]] = relationship(cascade="all, delete-orphan", passive_deletes=True)
    input_rows: Mapped[list[InputUseRow]] = relationship(cascade="all, delete-orphan", passive_deletes=True)

    __table_args__ = (Index("ix_images_size", "width", "height"),
                      Index("ix_images_seed_order", text("seed < 0"), "seed"),      # revision 5
                      Index("ix_images_owner", "owner", "created_at"))              # revision 6


class LoraRow(Base):
    __tablename__ = "image_loras"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(300), primary_key=True)
    weight: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_image_loras_name", "name", "image_id"),)


class TagRow(Base):
    __tablename__ = "image_tags"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(100), primary_key=True)

    __table_args__ = (Index("ix_image_tags_tag", "tag", "image_id"),)


class InputUseRow(Base):
    """A stored input (``inputs/<sha256>.png``) an image's request reads (revision 4)."""

    __tablename__ = "image_inputs"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    ref: Mapped[str] = mapped_column(String(100), primary_key=True)

    __table_args__ = (Index("ix_image_inputs_ref", "ref"),)


FTS_COLUMNS = ("prompt", "negative_prompt", "model_id", "lora_names", "tags")


class ScannedDir(Base):
    """A folder under outputs as the last reconcile saw it (revision 3)."""

    __tablename__ = "scanned_dirs"

    path: Mapped[str] = mapped_column(String(1000), primary_key=True)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)

"""Which row uses which stored input (``image_inputs``), and the index imports' duplicate check needs.

``image_inputs(image_id, ref)``: one row per stored input (``inputs/<sha256>.png``, relative to the
outputs folder) an image's request reads; a delete removes an input only when no remaining row
uses it. Back-filled from each row's ``request_json`` (rows of request version 1 refer to no
stored input). ``ix_images_sha256``: "is this content already in the gallery" without a full scan.

Revision ID: 0004
Revises: 0003
"""

import json
import re

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

REF = re.compile(r"inputs/[0-9a-f]{64}\.png")


def _refs(request_json: str | None) -> set[str]:
    """Stored-input references of a request as version 2 writes it (this revision's own reading,
    independent of later request code)."""
    try:
        request = json.loads(request_json or "null")
    except ValueError:
        return set()
    if not isinstance(request, dict):
        return set()
    found = [request.get("init_image"), request.get("mask_image"), *(request.get("references") or [])]
    for unit in request.get("controls") or []:
        if isinstance(unit, dict):
            found += [unit.get("image"), unit.get("map")]
    for prompt in request.get("image_prompts") or []:
        if isinstance(prompt, dict):
            found += list(prompt.get("images") or [])
    return {ref for ref in found if isinstance(ref, str) and REF.fullmatch(ref)}


def upgrade() -> None:
    op.create_table(
        "image_inputs",
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("ref", sa.String(100), primary_key=True),
    )
    op.create_index("ix_image_inputs_ref", "image_inputs", ["ref"])
    op.create_index("ix_images_sha256", "images", ["sha256"])
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, request_json FROM images WHERE request_json LIKE '%inputs/%'"))
    uses = [{"image_id": image_id, "ref": ref} for image_id, request_json in rows for ref in sorted(_refs(request_json))]
    if uses:
        conn.execute(sa.text("INSERT INTO image_inputs (image_id, ref) VALUES (:image_id, :ref)"), uses)


def downgrade() -> None:
    op.drop_index("ix_images_sha256", table_name="images")
    op.drop_table("image_inputs")

"""64-bit seeds, NULL for an unknown seed, and an index on ``source``.

Seeds go up to 2^64-1 (ComfyUI's widget; Fooocus writes up to 2^63-1), but SQLite integers are
signed 64-bit. ``images.seed`` keeps every seed below 2^63 as itself and one of 2^63 and above as
seed - 2^64 (``schema.Seed`` converts both ways), so the column still reads plainly for every
seed A1111, InvokeAI, Fooocus or the studio draws. Seed order is ``(seed < 0), seed``: the new
expression index ``ix_images_seed_order`` serves "sort by seed"; ``ix_images_seed`` still serves
``seed = ?``.

Imports without a seed held -1 (a valid seed now: 2^64-1 is stored as -1): ``seed`` becomes
nullable and those rows get NULL. SQLite cannot drop NOT NULL in place, so the table is rebuilt
(alembic batch mode; ``db.migrate`` runs migrations with foreign keys off, as SQLite's table
rebuild procedure asks, so rows of ``image_loras``/``image_tags``/``image_inputs`` are not
cascaded away), and the FTS triggers, which go with the old table, are made again.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = "prompt, negative_prompt, model_id, lora_names, tags"
NEW = "new.id, new.prompt, new.negative_prompt, new.model_id, new.lora_names, new.tags"
OLD = "old.id, old.prompt, old.negative_prompt, old.model_id, old.lora_names, old.tags"


def _triggers() -> None:
    """The FTS triggers of revision 2 (a rebuilt table has none)."""
    for name in ("images_fts_ai", "images_fts_ad", "images_fts_au"):
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute(f"CREATE TRIGGER images_fts_ai AFTER INSERT ON images BEGIN "
               f"INSERT INTO images_fts(rowid, {COLUMNS}) VALUES ({NEW}); END")
    op.execute(f"CREATE TRIGGER images_fts_ad AFTER DELETE ON images BEGIN "
               f"INSERT INTO images_fts(images_fts, rowid, {COLUMNS}) VALUES ('delete', {OLD}); END")
    op.execute(f"CREATE TRIGGER images_fts_au AFTER UPDATE OF {COLUMNS} ON images BEGIN "
               f"INSERT INTO images_fts(images_fts, rowid, {COLUMNS}) VALUES ('delete', {OLD}); "
               f"INSERT INTO images_fts(rowid, {COLUMNS}) VALUES ({NEW}); END")


def upgrade() -> None:
    with op.batch_alter_table("images", recreate="always") as batch:
        batch.alter_column("seed", existing_type=sa.BigInteger, nullable=True)
    _triggers()
    op.execute("UPDATE images SET seed = NULL WHERE seed < 0")      # before: -1 = "no seed"
    op.create_index("ix_images_seed_order", "images", [sa.text("seed < 0"), "seed"])
    op.create_index("ix_images_source", "images", ["source"])


def downgrade() -> None:
    op.drop_index("ix_images_source", table_name="images")
    op.drop_index("ix_images_seed_order", table_name="images")
    op.execute("UPDATE images SET seed = -1 WHERE seed IS NULL")
    with op.batch_alter_table("images", recreate="always") as batch:
        batch.alter_column("seed", existing_type=sa.BigInteger, nullable=False)
    _triggers()

"""Tags, and FTS5 search over prompt, negative prompt, model, LoRA names and tags.

Adds the denormalised ``lora_names`` / ``tags`` text columns (filled from ``image_loras`` for
existing rows), the ``image_tags`` table, the external-content FTS5 table ``images_fts`` and the
triggers that keep it in step with ``images``, then builds the index for rows already there.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = "prompt, negative_prompt, model_id, lora_names, tags"
NEW = "new.id, new.prompt, new.negative_prompt, new.model_id, new.lora_names, new.tags"
OLD = "old.id, old.prompt, old.negative_prompt, old.model_id, old.lora_names, old.tags"


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("lora_names", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("tags", sa.Text, nullable=False, server_default=""))
    op.create_table(
        "image_tags",
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tag", sa.String(100), primary_key=True),
    )
    op.create_index("ix_image_tags_tag", "image_tags", ["tag", "image_id"])
    op.execute("UPDATE images SET lora_names = coalesce((SELECT group_concat(name, ' ') FROM image_loras "
               "WHERE image_loras.image_id = images.id), '')")
    op.execute(f"CREATE VIRTUAL TABLE images_fts USING fts5({COLUMNS}, content='images', content_rowid='id', "
               "tokenize='unicode61 remove_diacritics 2')")
    op.execute(f"CREATE TRIGGER images_fts_ai AFTER INSERT ON images BEGIN "
               f"INSERT INTO images_fts(rowid, {COLUMNS}) VALUES ({NEW}); END")
    op.execute(f"CREATE TRIGGER images_fts_ad AFTER DELETE ON images BEGIN "
               f"INSERT INTO images_fts(images_fts, rowid, {COLUMNS}) VALUES ('delete', {OLD}); END")
    op.execute(f"CREATE TRIGGER images_fts_au AFTER UPDATE OF {COLUMNS} ON images BEGIN "
               f"INSERT INTO images_fts(images_fts, rowid, {COLUMNS}) VALUES ('delete', {OLD}); "
               f"INSERT INTO images_fts(rowid, {COLUMNS}) VALUES ({NEW}); END")
    op.execute("INSERT INTO images_fts(images_fts) VALUES ('rebuild')")


def downgrade() -> None:
    for name in ("images_fts_ai", "images_fts_ad", "images_fts_au"):
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute("DROP TABLE IF EXISTS images_fts")
    op.drop_table("image_tags")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("tags")
        batch.drop_column("lora_names")

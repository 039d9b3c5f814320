"""Base tables: one row per image with its full request, and the LoRAs it used.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "images",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("task", sa.String(20), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("model_source", sa.String(1000), nullable=False, server_default=""),
        sa.Column("model_revision", sa.String(100), nullable=False, server_default=""),
        sa.Column("prompt", sa.Text, nullable=False, server_default=""),
        sa.Column("negative_prompt", sa.Text, nullable=False, server_default=""),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("steps", sa.Integer),
        sa.Column("guidance", sa.Float),
        sa.Column("scheduler", sa.String(100), nullable=False, server_default=""),
        sa.Column("strength", sa.Float),
        sa.Column("loras", sa.JSON, nullable=False),
        sa.Column("controls", sa.JSON, nullable=False),
        sa.Column("image_prompt", sa.JSON),
        sa.Column("timings", sa.JSON, nullable=False),
        sa.Column("request_json", sa.Text),
        sa.Column("infotext", sa.Text, nullable=False, server_default=""),
        sa.Column("source", sa.String(20), nullable=False, server_default="studio"),
        sa.Column("favourite", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("missing", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.UniqueConstraint("path", name="uq_images_path"),
    )
    for column in ("created_at", "task", "model_id", "seed", "favourite", "missing"):
        op.create_index(f"ix_images_{column}", "images", [column])
    op.create_index("ix_images_size", "images", ["width", "height"])
    op.create_table(
        "image_loras",
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", sa.String(300), primary_key=True),
        sa.Column("weight", sa.Float, nullable=False),
    )
    op.create_index("ix_image_loras_name", "image_loras", ["name", "image_id"])


def downgrade() -> None:
    op.drop_table("image_loras")
    op.drop_table("images")

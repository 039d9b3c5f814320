"""Folders reconcile has seen, with their mtime: an unchanged folder is not listed again.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scanned_dirs",
        sa.Column("path", sa.String(1000), primary_key=True),      # relative to outputs_dir, "" = the root
        sa.Column("mtime_ns", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("scanned_dirs")

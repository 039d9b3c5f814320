"""Who made an image: ``images.owner``, for public mode (a Space, --public).

In public mode each visitor (a browser's visitor cookie, or an API client's session) sees,
searches, re-generates, exports and deletes only the images it made. ``owner`` is a hash of that
visitor's id (never the id itself); NULL for everything made or imported on a local studio, which
a local studio shows whole. The index ``(owner, created_at)`` serves "this visitor's newest first".
A plain ADD COLUMN: no table rebuild, the FTS triggers stay.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("images", sa.Column("owner", sa.String(64), nullable=True))
    op.create_index("ix_images_owner", "images", ["owner", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_images_owner", table_name="images")
    op.drop_column("images", "owner")      # SQLite >= 3.35 drops a column in place (no rebuild)

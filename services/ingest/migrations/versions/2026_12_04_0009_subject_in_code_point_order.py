"""subjects in code-point order on PostgreSQL too, so a period's or a unit's events are a range of the index

`kpi_ingest.adapters.orm.subject_under` reads the events of one scope as a range of subjects. SQLite
compares text by code points already; on PostgreSQL the column takes the "C" collation (its index
is rebuilt in that order; equality is unchanged).

Revision ID: 2026_12_04_0009
Revises: 2026_12_02_0008
Create Date: 2026-12-04
"""

from alembic import op

revision = "2026_12_04_0009"
down_revision = "2026_12_02_0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute('ALTER TABLE events ALTER COLUMN subject TYPE VARCHAR(300) COLLATE "C"')


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute('ALTER TABLE events ALTER COLUMN subject TYPE VARCHAR(300) COLLATE "default"')

"""measurement evidence count: how many evidence documents each measurement carries (the SDMX exports'
EVIDENCE_COUNT); null for a measurement projected before this revision until `kpi-ledger rebuild reporting`

Revision ID: 2026_12_02_0007
Revises: 2026_12_02_0006
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "2026_12_02_0007"
down_revision = "2026_12_02_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("measurement_history") as table:
        table.add_column(sa.Column("evidence_count", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("measurement_history") as table:
        table.drop_column("evidence_count")

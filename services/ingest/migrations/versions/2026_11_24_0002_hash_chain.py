"""hash chain: each event's SHA-256 and the chain over the sequence; existing events are chained in order

Revision ID: 2026_11_24_0002
Revises: 2026_11_24_0001
Create Date: 2026-11-24
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "2026_11_24_0002"
down_revision = "2026_11_24_0001"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    with op.batch_alter_table("event_counter") as batch:
        batch.add_column(sa.Column("last_chain_sha256", sa.String(64), nullable=False, server_default=GENESIS))
    # The append-only triggers guard the log; the one-time backfill of the new columns lifts them briefly.
    if sqlite:
        op.execute("DROP TRIGGER events_append_only_update")
        op.execute("DROP TRIGGER events_append_only_delete")
    else:
        op.execute("ALTER TABLE events DISABLE TRIGGER events_append_only_row")
    op.add_column("events", sa.Column("event_sha256", sa.String(64), nullable=True))
    op.add_column("events", sa.Column("chain_sha256", sa.String(64), nullable=True))
    chain = GENESIS
    rows = bind.execute(sa.text("SELECT sequence, envelope FROM events ORDER BY sequence")).fetchall()
    for sequence, envelope in rows:
        digest = hashlib.sha256(envelope.encode("utf-8")).hexdigest()
        chain = hashlib.sha256(f"{chain}{digest}".encode("ascii")).hexdigest()
        bind.execute(
            sa.text("UPDATE events SET event_sha256 = :digest, chain_sha256 = :chain WHERE sequence = :sequence"),
            {"digest": digest, "chain": chain, "sequence": sequence},
        )
    bind.execute(sa.text("UPDATE event_counter SET last_chain_sha256 = :chain WHERE id = 1"), {"chain": chain})
    if sqlite:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER events_append_only_{action.lower()} BEFORE {action} ON events "
                "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END"
            )
    else:
        op.execute("ALTER TABLE events ENABLE TRIGGER events_append_only_row")


def downgrade() -> None:
    raise NotImplementedError("the event log is never rewritten by a migration")

"""events: `INSERT OR REPLACE` no longer gets past the append-only guard on SQLite

SQLite's REPLACE resolves a conflict by deleting the old row without firing its DELETE triggers, so
the append-only triggers did not stop it. A BEFORE INSERT trigger refuses any insert that would
conflict with a stored event (sequence, event id, or actor and Idempotency-Key), before the conflict
is resolved. PostgreSQL has no REPLACE; `ON CONFLICT DO UPDATE` is an update, which the row trigger
already refuses.

Revision ID: 2026_12_01_0006
Revises: 2026_12_01_0005
Create Date: 2026-12-01
"""

from alembic import op

revision = "2026_12_01_0006"
down_revision = "2026_12_01_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE TRIGGER events_append_only_replace BEFORE INSERT ON events "
            # one EXISTS per unique key, so each is answered from its index
            "WHEN EXISTS (SELECT 1 FROM events WHERE sequence = NEW.sequence) "
            "OR EXISTS (SELECT 1 FROM events WHERE event_id = NEW.event_id) "
            "OR EXISTS (SELECT 1 FROM events WHERE actor = NEW.actor AND idempotency_key = NEW.idempotency_key) "
            "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER events_append_only_replace")

"""Alembic environment: runs on the connection handed over by ``store.db.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

import store.accounts
import store.decisions
import store.effects
import store.engagement
import store.history
import store.journeys
import store.registry
import store.routing_state
import store.sla
from store.schema import Base

# The imports above register every table on Base.metadata for autogenerate.
_TABLE_MODULES = (
    store.accounts,
    store.decisions,
    store.effects,
    store.history,
    store.journeys,
    store.registry,
    store.routing_state,
    store.sla,
)

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    """Migrate on the given connection, or on ``sqlalchemy.url`` from the alembic command."""
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.begin() as conn:
            context.configure(connection=conn, target_metadata=target_metadata)
            with context.begin_transaction():
                context.run_migrations()
        return
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()

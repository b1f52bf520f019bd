"""The migrations build the schema, and they agree with the models (autogenerate finds nothing)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from kyffikus.extensions import db
from kyffikus.models import Base


def test_models_and_migrations_agree(app) -> None:
    connection = db.session.connection()
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "render_as_batch": True}
    )
    diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models and migrations differ on {connection.dialect.name}: {diff}"


def test_every_table_exists(app) -> None:
    import sqlalchemy as sa

    tables = set(sa.inspect(db.session.connection()).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables

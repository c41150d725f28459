"""reelwatch's schema: the SQLAlchemy models (the engine's tables among them, from
``engine.schema``) and the Alembic migrations. The ``Database`` handle they are used
through is ``reelwatch.database``, beneath the engine."""

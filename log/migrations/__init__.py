"""Alembic's migration environment of the decision log; run it through :mod:`arbiter.log.migrate`."""

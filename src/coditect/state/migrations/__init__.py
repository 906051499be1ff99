"""Alembic migration scripts of the CODITECT state database (run by :mod:`coditect.state.migrate`)."""

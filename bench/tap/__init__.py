"""TAP benchmark: pyvo cone searches through the service against the engine and PostgreSQL (``bench.tap.run``)."""

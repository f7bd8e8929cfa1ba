"""Query benchmark: the sharded engine against one unsharded PostgreSQL server (``python -m bench.query.run``)."""

"""dms-db: a sharded PostgreSQL catalog database for LSST-style sky surveys.

The ``dms_db`` package holds what every other layer builds on: configuration,
the exception tree, catalog schemas (Felis), coordinator and worker metadata,
node connections and the local PostgreSQL cluster.
"""

__version__ = "0.1.0"

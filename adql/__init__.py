"""ADQL 2.1 to PostgreSQL + pgSphere translation for dms-db.

The public entry point is :func:`translate`; :class:`TableCatalog` supplies
the table metadata (usually from TAP_SCHEMA) and
:func:`adql.capabilities.language_features` lists what is supported, for
the TAP capabilities document.  See ``adql/translate.py`` for the pipeline.
"""

from adql.capabilities import ADQL_LANGUAGE, language_features
from adql.catalog import ColumnInfo, TableCatalog, TableInfo, TableKindInfo
from adql.description import QueryDescription
from adql.errors import (
    AdqlError,
    AdqlGeometryError,
    AdqlNameError,
    AdqlSyntaxError,
    AdqlTypeError,
    AdqlUnsupportedError,
)
from adql.functions import ALL_FEATURES, Feature
from adql.refs import ResultColumn, TableRef
from adql.translate import TranslatedQuery, translate

__all__ = [
    "ADQL_LANGUAGE",
    "ALL_FEATURES",
    "AdqlError",
    "AdqlGeometryError",
    "AdqlNameError",
    "AdqlSyntaxError",
    "AdqlTypeError",
    "AdqlUnsupportedError",
    "ColumnInfo",
    "Feature",
    "QueryDescription",
    "ResultColumn",
    "TableCatalog",
    "TableInfo",
    "TableKindInfo",
    "TableRef",
    "TranslatedQuery",
    "language_features",
    "translate",
]

"""Translate ADQL 2.1 into PostgreSQL + pgSphere: the public entry point.

:func:`translate` runs the pipeline -- parse, check against ADQL and the
enabled features, resolve names against the catalog, describe the query for
the coordinator, rewrite to PostgreSQL, apply the row limit -- and returns a
:class:`TranslatedQuery`: the result column metadata, the typed
description, the sqlglot tree (so the coordinator can split the query into
worker and merge parts without parsing it again) and, generated when first
asked for, the SQL text.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

from sqlglot import exp

from adql.catalog import TableCatalog
from adql.description import QueryDescription, describe
from adql.dialect import parse_adql
from adql.errors import AdqlSyntaxError
from adql.functions import Feature
from adql.grammar import balance_connectors, check_grammar
from adql.postgres import to_postgres
from adql.refs import ResultColumn
from adql.resolve import resolve

__all__ = ["TranslatedQuery", "apply_row_limit", "finalize", "translate"]


@dataclass(frozen=True)
class TranslatedQuery:
    """An ADQL query translated for PostgreSQL.

    Attributes
    ----------
    columns
        Result column metadata, in order.
    description
        What the coordinator needs to plan the query.
    tree
        The sqlglot tree of :attr:`sql` (generate it with ``dialect="postgres"``); shared, so
        copy it before changing it.
    features
        The optional ADQL features the query uses.
    """

    columns: tuple[ResultColumn, ...]
    description: QueryDescription
    tree: exp.Query
    features: frozenset[Feature] = frozenset()

    @functools.cached_property
    def sql(self) -> str:
        """PostgreSQL text for one unsharded database holding the tables.

        Generated on first use: the query engine plans from :attr:`tree` and never
        needs it, and generating it costs as much as a sixth of the translation.
        """
        try:
            return self.tree.sql(dialect="postgres")
        except RecursionError:
            raise _too_complex() from None


def apply_row_limit(tree: exp.Query, max_rows: int | None, *, in_place: bool = False) -> exp.Query:
    """Return a copy of ``tree`` (or ``tree`` itself, ``in_place``) that returns at most ``max_rows`` rows.

    An existing ``LIMIT`` (from ``TOP``) is kept if it is smaller.

    >>> from sqlglot import parse_one
    >>> apply_row_limit(parse_one("SELECT a FROM t LIMIT 50"), 11).sql()
    'SELECT a FROM t LIMIT 11'
    >>> apply_row_limit(parse_one("SELECT a FROM t UNION SELECT b FROM u"), 11).sql()
    'SELECT a FROM t UNION SELECT b FROM u LIMIT 11'
    """
    copy = tree if in_place else tree.copy()
    if max_rows is None:
        return copy
    if max_rows < 0:
        raise ValueError("max_rows must not be negative")
    limit = copy.args.get("limit")
    current = None
    if isinstance(limit, exp.Limit) and isinstance(limit.expression, exp.Literal):
        current = int(limit.expression.this)
    if current is None or max_rows < current:
        copy.set("limit", exp.Limit(expression=exp.Literal.number(max_rows)))
    return copy


def finalize(tree: exp.Query, *, in_place: bool = False) -> exp.Query:
    """Return a copy of ``tree`` (or ``tree`` itself, ``in_place``) ready to print: identifiers quoted, no comments.

    Comments are dropped because a comment written in the query could
    otherwise close the generated one and inject text.

    >>> from sqlglot import parse_one
    >>> finalize(parse_one("SELECT a /* x */ FROM t")).sql()
    'SELECT "a" FROM "t"'
    """
    copy = tree if in_place else tree.copy()
    for node in copy.walk():
        node.comments = None
        if isinstance(node, exp.Identifier):
            node.set("quoted", True)
    return copy


def translate(
    adql_text: str,
    catalog: TableCatalog,
    *,
    max_rows: int | None = None,
    features: Iterable[Feature] | None = None,
) -> TranslatedQuery:
    """Translate an ADQL query into PostgreSQL with pgSphere.

    Parameters
    ----------
    adql_text
        The ADQL 2.1 query.
    catalog
        Tables and columns the query may use (from TAP_SCHEMA).
    max_rows
        Row limit (TAP MAXREC; pass MAXREC + 1 to detect overflow).  Lowers
        any TOP.
    features
        Optional features to accept; default all that are implemented
        (see :mod:`adql.capabilities`).

    Returns
    -------
    TranslatedQuery

    Raises
    ------
    adql.errors.AdqlError
        Any problem in the query; the error carries type, line, column,
        offending text and a hint.

    Examples
    --------
    >>> from adql.catalog import ColumnInfo, TableCatalog, TableInfo
    >>> table = TableInfo("apdb", "DiaObject", (ColumnInfo("ra", "double", unit="deg"),
    ...                                        ColumnInfo("dec", "double", unit="deg")))
    >>> result = translate("SELECT TOP 3 ra FROM apdb.DiaObject", TableCatalog([table]))
    >>> result.sql
    'SELECT "apdb"."DiaObject"."ra" AS "ra" FROM "apdb"."DiaObject" LIMIT 3'
    >>> result.columns[0].unit
    'deg'
    """
    if max_rows is not None and max_rows < 0:
        raise ValueError("max_rows must not be negative")
    try:
        # Each tree below is this function's own, so the steps work in place: a copy of a
        # wide query's tree (SELECT * of a hundred columns) costs more than its translation.
        tree = balance_connectors(parse_adql(adql_text), in_place=True)
        used = check_grammar(tree, adql_text, features)
        resolution = resolve(tree, catalog, adql_text, in_place=True)
        description = describe(resolution, adql_text, max_rows=max_rows)
        rewritten = to_postgres(resolution.tree, adql_text, in_place=True)  # the description holds values only
        translated = finalize(apply_row_limit(rewritten, max_rows, in_place=True), in_place=True)
    except RecursionError:
        raise _too_complex() from None
    columns = tuple(ResultColumn.from_type(output.name, output.type) for output in resolution.outputs)
    return TranslatedQuery(columns=columns, description=description, tree=translated, features=used)


def _too_complex() -> AdqlSyntaxError:
    # The depth limits make this unlikely; a query that still exhausts the
    # stack is too complex, which is the user's to fix.
    return AdqlSyntaxError(
        "the query is too complex to translate", line=1, column=1, hint="split it or simplify its expressions"
    )

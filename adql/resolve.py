"""Bind table and column names to the catalog, and name the result columns.

:func:`resolve` takes a grammar-checked ADQL tree and returns a copy in
which every table is its physical, quoted PostgreSQL name, every column
reference is qualified and quoted and annotated with its ADQL type and
origin, ``*`` is expanded to the catalog columns (so internal columns of the
physical tables never leak), USING and NATURAL joins are spelled as ON
conditions, and every select item carries the unique, quoted alias that
becomes its result column name.  Unknown names are reported with the
closest real ones, ambiguous ones with the tables that provide them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from sqlglot import exp

from adql.catalog import Name, TableCatalog, suggest
from adql.errors import AdqlError, AdqlNameError, AdqlSyntaxError, AdqlTypeError, node_span
from adql.refs import TableRef
from adql.resolve_from import BINDING_KEY, FromClauseResolver
from adql.scope import OutputColumn, Scope, Source, SourceColumn, did_you_mean, name_of
from adql.types import AdqlType, infer_type, set_type

__all__ = ["Resolution", "resolve"]


_AGGREGATE_CLAUSES = {"select", "having", "order"}


@dataclass
class Resolution:
    """The result of :func:`resolve`.

    Attributes
    ----------
    tree
        The resolved ADQL tree (a copy of the input, or the input itself when resolved ``in_place``).
    outputs
        Result columns of the top-level query.
    table_refs
        Every catalog table occurrence, in order of appearance.
    """

    tree: exp.Query
    outputs: list[OutputColumn]
    table_refs: list[TableRef] = field(default_factory=list)


def _keep_position(new: exp.Expr, old: exp.Expr) -> exp.Expr:
    meta = old._meta
    if meta and "start" in meta:
        new.meta["start"] = meta["start"]
        new.meta["end"] = meta.get("end", meta["start"])
    return new


def _defaultname_of(node: exp.Expr) -> str:
    if isinstance(node, exp.Column):
        binding = node.meta.get(BINDING_KEY)
        if binding is not None:
            return binding[1].name
        return node.name
    if isinstance(node, exp.Anonymous):
        return node.name.lower()
    if isinstance(node, exp.Func):
        return node.key.lower()
    if isinstance(node, exp.Paren):
        return _defaultname_of(node.this)
    return "expr"


def _unique(name: str, taken: set[str]) -> str:
    if name.lower() not in taken:
        taken.add(name.lower())
        return name
    for number in itertools.count(2):
        candidate = f"{name}_{number}"
        if candidate.lower() not in taken:
            taken.add(candidate.lower())
            return candidate
    raise AssertionError("unreachable")


def _contains_aggregate(node: exp.Expr) -> bool:
    for child in node.walk(prune=lambda n: isinstance(n, exp.Query) and n is not node):
        if isinstance(child, exp.AggFunc):
            return True
    return False


class _Resolver(FromClauseResolver):
    def __init__(self, catalog: TableCatalog, text: str) -> None:
        self.catalog = catalog
        self.text = text
        self.table_refs: list[TableRef] = []
        self.derived_counter = itertools.count(1)

    def error(self, error: AdqlError, node: exp.Expr) -> AdqlError:
        return error.with_position(self.text, node_span(node))

    # ----------------------------------------------------------------- queries

    def query(
        self, node: exp.Query, parent: Scope | None, ctes: dict[str, Source]
    ) -> tuple[list[OutputColumn], Scope | None]:
        if isinstance(node, exp.Subquery):
            return self.query(node.this, parent, ctes)
        with_ = node.args.get("with_")
        if with_ is not None:
            ctes = dict(ctes)
            defined: set[str] = set()
            for cte in with_.expressions:
                cte_name = name_of(cte.args["alias"].this)
                assert cte_name is not None
                if cte_name.text.lower() in defined:
                    raise self.error(
                        AdqlNameError(
                            f"WITH defines {cte_name} twice", ambiguous=True, hint="give each query its own name"
                        ),
                        cte,
                    )
                defined.add(cte_name.text.lower())
                self.cte(cte, ctes)
        if isinstance(node, exp.SetOperation):
            return self.set_operation(node, parent, ctes), None
        if isinstance(node, exp.Select):
            return self.select(node, parent, ctes)
        raise self.error(AdqlSyntaxError("expected a query"), node)

    def cte(self, cte: exp.CTE, ctes: dict[str, Source]) -> None:
        alias = cte.args["alias"]
        name = name_of(alias.this)
        assert name is not None
        outputs, _ = self.query(cte.this, None, ctes)
        renames = alias.args.get("columns") or []
        if renames:
            if len(renames) != len(outputs):
                raise self.error(
                    AdqlSyntaxError(f"WITH {name} names {len(renames)} columns but its query returns {len(outputs)}"),
                    alias,
                )
            outputs = self._rename_outputs(cte.this, outputs, [name_of(r) for r in renames])
            alias.set("columns", None)
        key = name.text.lower()
        alias.set("this", exp.to_identifier(name.sql_name, quoted=True))
        ctes[key] = Source(
            kind="cte",
            name=name.sql_name,
            schema=None,
            alias=None,
            qualifier=(name.sql_name,),
            columns=[SourceColumn(o.name, o.name, o.type) for o in outputs],
        )

    def _rename_outputs(
        self, query: exp.Query, outputs: list[OutputColumn], names: list[Name | None]
    ) -> list[OutputColumn]:
        selects = [query] if isinstance(query, exp.Select) else [query.left]
        while selects and isinstance(selects[0], exp.SetOperation):
            selects = [selects[0].left]
        renamed = []
        taken: set[str] = set()
        for output, name in zip(outputs, names, strict=True):
            assert name is not None
            renamed.append(OutputColumn(_unique(name.text, taken), output.type))
        if isinstance(selects[0], exp.Select):
            for projection, output in zip(selects[0].expressions, renamed, strict=True):
                if isinstance(projection, exp.Alias):
                    projection.set("alias", exp.to_identifier(output.name, quoted=True))
        return renamed

    def set_operation(self, node: exp.SetOperation, parent: Scope | None, ctes: dict[str, Source]):
        left, _ = self.query(node.left, parent, ctes)
        right, _ = self.query(node.right, parent, ctes)
        operator = node.key.upper()
        if len(left) != len(right):
            raise self.error(
                AdqlSyntaxError(
                    f"the queries combined by {operator} return {len(left)} and {len(right)} columns",
                    hint="both sides must select the same number of columns",
                ),
                node,
            )
        for position, (a, b) in enumerate(zip(left, right, strict=True), start=1):
            if _incompatible(a.type, b.type):
                raise self.error(
                    AdqlTypeError(
                        f"column {position} of {operator} is {a.type.describe()} on the left "
                        f"and {b.type.describe()} on the right",
                        hint="CAST one side so that both have the same type",
                    ),
                    node,
                )
        order = node.args.get("order")
        if order is not None:
            for ordered in order.expressions:
                self._order_by_output(ordered, left, None)
        return left

    def select(
        self, node: exp.Select, parent: Scope | None, ctes: dict[str, Source]
    ) -> tuple[list[OutputColumn], Scope]:
        scope = Scope(parent=parent)
        self.from_clause(node, scope, ctes)
        where = node.args.get("where")
        if where is not None:
            where.set("this", self.expr(where.this, scope, ctes, "where"))
        outputs = self.projections(node, scope, ctes)
        group = node.args.get("group")
        if group is not None:
            group.set("expressions", [self.group_term(e, node, scope, ctes) for e in group.expressions])
        having = node.args.get("having")
        if having is not None:
            having.set("this", self.expr(having.this, scope, ctes, "having"))
        order = node.args.get("order")
        if order is not None:
            for ordered in order.expressions:
                self._order_by_output(ordered, outputs, (scope, ctes, node))
        self.check_grouping(node, scope)
        return outputs, scope

    # ------------------------------------------------------------- expressions

    def expr(self, node: exp.Expr, scope: Scope, ctes: dict[str, Source], clause: str) -> exp.Expr:
        if isinstance(node, exp.Column):
            if isinstance(node.this, exp.Star):
                raise self.error(AdqlSyntaxError("'t.*' is only allowed in the select list"), node)
            return _keep_position(self.column(node, scope, clause), node)
        if isinstance(node, exp.Query):
            outputs, inner_scope = self.query(node, scope, ctes)
            parent = node.parent
            while isinstance(parent, exp.Subquery):
                parent = parent.parent
            if len(outputs) != 1 and not isinstance(parent, exp.Exists):
                raise self.error(
                    AdqlSyntaxError(
                        f"a subquery used as a value must return one column, this one returns {len(outputs)}"
                    ),
                    node,
                )
            if inner_scope is not None and inner_scope.correlated:
                node.meta["correlated"] = True
            return node
        if isinstance(node, exp.AggFunc):
            if clause not in _AGGREGATE_CLAUSES:
                where = {"where": "WHERE", "on": "JOIN ... ON", "group": "GROUP BY"}.get(clause, clause)
                raise self.error(
                    AdqlSyntaxError(
                        f"aggregate functions are not allowed in {where}",
                        hint="use HAVING to filter on aggregates",
                    ),
                    node,
                )
            for child in node.iter_expressions():
                if _contains_aggregate(child):
                    raise self.error(AdqlSyntaxError("aggregate functions cannot be nested"), node)
        for child in list(node.iter_expressions()):
            resolved = self.expr(child, scope, ctes, clause)
            if resolved is not child:
                child.replace(resolved)
        return node

    def column(self, node: exp.Column, scope: Scope, clause: str) -> exp.Expr:
        name = name_of(node.this)
        table = name_of(node.args.get("table"))
        schema = name_of(node.args.get("db"))
        assert name is not None
        level: Scope | None = scope
        depth = 0
        while level is not None:
            found = self._find(node, name, table, schema, level)
            if found is not None:
                if depth:
                    scope.correlated = True
                    inner: Scope | None = scope
                    for _ in range(depth):
                        assert inner is not None
                        inner.correlated = True
                        inner = inner.parent
                return found
            level = level.parent
            depth += 1
        if table is not None:
            label = f"{schema}.{table}" if schema else str(table)
            raise self.error(
                AdqlNameError(
                    f"no table named {label} in FROM",
                    hint=did_you_mean(suggest(table.text, scope.labels()))
                    or "qualify columns with a table name or alias listed in FROM",
                ),
                node,
            )
        hint = did_you_mean(scope.suggest_columns(name.text))
        if clause == "where":
            hint = (hint + " " if hint else "") + "(select-list aliases cannot be used in WHERE)"
        raise self.error(AdqlNameError(f"unknown column {name}", hint=hint), node)

    def _find(
        self, node: exp.Column, name: Name, table: Name | None, schema: Name | None, scope: Scope
    ) -> exp.Expr | None:
        try:
            if table is not None:
                sources = scope.qualified(table, schema)
                if not sources:
                    return None
                if len(sources) > 1:
                    raise AdqlNameError(f"{table} refers to several tables in FROM", ambiguous=True, hint="use aliases")
                column = sources[0].find(name)
                if column is None:
                    close = suggest(name.text, [c.name for c in sources[0].columns])
                    raise AdqlNameError(
                        f"{sources[0].label()} has no column {name}",
                        hint=did_you_mean(close) or "the columns are listed in TAP_SCHEMA.columns",
                    )
                return self._bound(sources[0], column)
            merged = scope.merged.get(name.text.lower())
            if merged is not None and (not name.quoted or name.text == merged.name):
                return merged.build()
            matches = scope.unqualified(name)
            if len(matches) > 1:
                labels = ", ".join(f"{source.label()}.{column.name}" for source, column in matches)
                raise AdqlNameError(
                    f"column {name} is ambiguous: it could be {labels}",
                    ambiguous=True,
                    hint="qualify it with a table name or alias",
                )
            if matches:
                return self._bound(*matches[0])
            return None
        except AdqlError as error:
            raise self.error(error, node) from None

    # ------------------------------------------------------------- select list

    def projections(self, node: exp.Select, scope: Scope, ctes: dict[str, Source]) -> list[OutputColumn]:
        items: list[tuple[exp.Expr, str | None]] = []
        for projection in node.expressions:
            if isinstance(projection, exp.Star):
                items.extend((item.build(), None) for item in scope.star)
            elif isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
                table = name_of(projection.args.get("table"))
                schema = name_of(projection.args.get("db"))
                assert table is not None
                sources = scope.qualified(table, schema)
                if not sources:
                    raise self.error(
                        AdqlNameError(
                            f"no table named {table} in FROM",
                            hint=did_you_mean(suggest(table.text, scope.labels())),
                        ),
                        projection,
                    )
                for column in sources[0].columns:
                    items.append((self._bound(sources[0], column), None))
            elif isinstance(projection, exp.Alias):
                alias = name_of(projection.args["alias"])
                value = self.expr(projection.this, scope, ctes, "select")
                items.append((value, alias.text if alias else None))
            else:
                items.append((self.expr(projection, scope, ctes, "select"), None))
        taken: set[str] = set()
        outputs = []
        projections = []
        for value, alias in items:
            name = _unique(alias or _defaultname_of(value), taken)
            value_type = infer_type(value)
            outputs.append(OutputColumn(name, value_type))
            aliased = exp.Alias(this=value, alias=exp.to_identifier(name, quoted=True))
            projections.append(_keep_position(aliased, value))
        node.set("expressions", projections)
        return outputs

    def group_term(self, term: exp.Expr, node: exp.Select, scope: Scope, ctes: dict[str, Source]) -> exp.Expr:
        if isinstance(term, exp.Column) and term.args.get("table") is None:
            name = name_of(term.this)
            assert name is not None
            try:
                if self._find(term, name, None, None, scope) is None:
                    for projection in node.expressions:
                        if name.matches(projection.alias):
                            return projection.this.copy()
            except AdqlError:
                pass
        if isinstance(term, exp.Literal) and term.is_int:
            position = int(term.this)
            if not 1 <= position <= len(node.expressions):
                raise self.error(AdqlSyntaxError(f"GROUP BY position {position} is out of range"), term)
            return node.expressions[position - 1].this.copy()
        return self.expr(term, scope, ctes, "group")

    def _order_by_output(
        self,
        ordered: exp.Ordered,
        outputs: list[OutputColumn],
        select_context: tuple[Scope, dict[str, Source], exp.Select] | None,
    ) -> None:
        term = ordered.this
        if isinstance(term, exp.Literal) and term.is_int:
            position = int(term.this)
            if not 1 <= position <= len(outputs):
                raise self.error(
                    AdqlSyntaxError(
                        f"ORDER BY position {position} is out of range (the query returns {len(outputs)} columns)"
                    ),
                    term,
                )
            return
        if isinstance(term, exp.Column) and term.args.get("table") is None:
            name = name_of(term.this)
            assert name is not None
            matches = [o for o in outputs if name.matches(o.name)]
            if len(matches) == 1 or (matches and name.quoted):
                replacement = exp.column(exp.to_identifier(matches[0].name, quoted=True))
                set_type(replacement, matches[0].type)
                replacement.meta["output_ref"] = matches[0].name
                term.replace(_keep_position(replacement, term))
                return
        if select_context is None:
            raise self.error(
                AdqlSyntaxError("ORDER BY of a UNION, INTERSECT or EXCEPT must name a result column or its position"),
                term,
            )
        scope, ctes, select = select_context
        resolved = self.expr(term, scope, ctes, "order")
        if resolved is not term:
            term.replace(resolved)
        if select.args.get("distinct") is not None:
            values = [projection.this for projection in select.expressions]
            if resolved not in values:
                raise self.error(
                    AdqlSyntaxError(
                        "with SELECT DISTINCT, ORDER BY expressions must appear in the select list",
                        hint="add the expression to the select list or order by its position",
                    ),
                    term,
                )

    def check_grouping(self, node: exp.Select, scope: Scope) -> None:
        scope_sources = {id(source) for source in scope.sources}
        group = node.args.get("group")
        group_terms = list(group.expressions) if group is not None else []
        having = node.args.get("having")
        clauses = [p.this for p in node.expressions]
        if having is not None:
            clauses.append(having.this)
        order = node.args.get("order")
        order_terms = [o.this for o in order.expressions] if order is not None else []
        aggregated = bool(group_terms) or any(_contains_aggregate(c) for c in [*clauses, *order_terms])
        if not aggregated:
            return
        for value in [*clauses, *order_terms]:
            offender = _ungrouped_column(value, group_terms, scope_sources)
            if offender is not None:
                binding = offender.meta.get(BINDING_KEY)
                shown = binding[1].name if binding else offender.name
                raise self.error(
                    AdqlSyntaxError(
                        f"column {shown} must appear in GROUP BY or be used in an aggregate function",
                        hint=f"add {shown} to GROUP BY or wrap it in MIN(), MAX(), AVG()...",
                    ),
                    offender,
                )


def _ungrouped_column(value: exp.Expr, group_terms: list[exp.Expr], sources: set[int]) -> exp.Column | None:
    if any(value == term for term in group_terms):
        return None
    if isinstance(value, exp.AggFunc):
        return None
    if isinstance(value, exp.Query):
        # A correlated subquery sees one group at a time: the outer columns
        # it uses must be grouped too.
        for column in value.find_all(exp.Column):
            binding = column.meta.get(BINDING_KEY) if column._meta else None
            grouped = any(column == term for term in group_terms)
            if binding is not None and id(binding[0]) in sources and not grouped:
                return column
        return None
    if isinstance(value, exp.Column):
        if value.meta.get("output_ref") is not None:
            return None
        binding = value.meta.get(BINDING_KEY)
        if binding is not None and id(binding[0]) in sources:
            return value
        return None
    for child in value.iter_expressions():
        offender = _ungrouped_column(child, group_terms, sources)
        if offender is not None:
            return offender
    return None


def _incompatible(left: AdqlType, right: AdqlType) -> bool:
    if left.is_unknown or right.is_unknown:
        return False
    kinds = []
    for value in (left, right):
        if value.geometry:
            kinds.append(value.geometry)
        elif value.is_numeric:
            kinds.append("number")
        elif value.is_timestamp:
            kinds.append("timestamp")
        elif value.is_string:
            kinds.append("string")
        else:
            kinds.append(value.datatype)
    return kinds[0] != kinds[1]


def resolve(tree: exp.Query, catalog: TableCatalog, text: str = "", *, in_place: bool = False) -> Resolution:
    """Bind the names of a grammar-checked ADQL query to the catalog.

    Parameters
    ----------
    tree
        Output of :func:`adql.dialect.parse_adql` (not modified, unless ``in_place``).
    catalog
        The tables the query may use.
    text
        Query text, for error positions.
    in_place
        Resolve ``tree`` itself rather than a copy (for a caller that owns the tree).

    Returns
    -------
    Resolution
        The resolved copy of the tree, its result columns and table occurrences.

    Raises
    ------
    AdqlNameError
        Unknown or ambiguous table or column.
    AdqlSyntaxError
        Misplaced aggregates, bad ORDER BY or GROUP BY references.

    Examples
    --------
    >>> from adql.catalog import ColumnInfo, TableInfo
    >>> from adql.dialect import parse_adql
    >>> table = TableInfo("apdb", "DiaObject", (ColumnInfo("diaObjectId", "long"), ColumnInfo("ra", "double")))
    >>> result = resolve(parse_adql("SELECT * FROM apdb.diaobject AS o"), TableCatalog([table]))
    >>> result.tree.sql(dialect="postgres")
    'SELECT "o"."diaObjectId" AS "diaObjectId", "o"."ra" AS "ra" FROM "apdb"."DiaObject" AS "o"'
    """
    resolver = _Resolver(catalog, text)
    copy = tree if in_place else tree.copy()
    outputs, _ = resolver.query(copy, None, {})
    return Resolution(copy, outputs, resolver.table_refs)

"""A typed description of a query, for the coordinator that plans it.

The coordinator must know which tables a query reads, which sky regions and
director-key values restrict them (and where those restrictions sit in the
boolean tree: a cone inside an OR does not bound the whole query), and what
it must merge: aggregates, grouping, ordering, limits, DISTINCT, set
operations, subqueries.  :func:`describe` reads this from the resolved ADQL
tree (see :mod:`adql.resolve`) into frozen dataclasses; regions are plain
numbers in degrees.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from sqlglot import exp

from adql.description_rules import restriction_tree
from adql.refs import TableRef
from adql.regions import (
    AndNode,
    BoxSpec,
    CircleSpec,
    DirectorKeyRestrictor,
    NotNode,
    OrNode,
    OtherPredicate,
    PolygonSpec,
    RaDecRangeSpec,
    Region,
    RestrictionNode,
    SpatialRestrictor,
    project_restriction,
)
from adql.resolve import Resolution

__all__ = [
    "AggregateSpec",
    "AndNode",
    "BoxSpec",
    "CircleSpec",
    "CteDescription",
    "DirectorKeyRestrictor",
    "HealpixTarget",
    "JoinSpec",
    "NotNode",
    "OrNode",
    "OrderSpec",
    "OtherPredicate",
    "PolygonSpec",
    "QueryDescription",
    "RaDecRangeSpec",
    "Region",
    "RestrictionNode",
    "SetOperationSpec",
    "SpatialRestrictor",
    "SubqueryDescription",
    "describe",
]


@dataclass(frozen=True)
class JoinSpec:
    """One join of a FROM clause.

    Attributes
    ----------
    kind
        ``inner``, ``left``, ``right``, ``full`` or ``cross`` (a comma).
    natural
        True for NATURAL joins.
    using
        Column names of a USING list (or the common columns of a NATURAL join).
    right
        The joined table (None when it is a subquery or a parenthesized join).
    right_alias
        Correlation name of the joined item, if any.
    equalities
        Column pairs compared with ``=`` in the join condition, as
        ``("qualifier.column", "qualifier.column")``.
    spatial
        True if the condition is a positional crossmatch (DISTANCE,
        CONTAINS or INTERSECTS between the two sides).
    """

    kind: Literal["inner", "left", "right", "full", "cross"]
    natural: bool
    using: tuple[str, ...]
    right: TableRef | None
    right_alias: str | None
    equalities: tuple[tuple[str, str], ...]
    spatial: bool


@dataclass(frozen=True)
class AggregateSpec:
    """An aggregate function call: ``COUNT(*)``, ``AVG(x)``, ``COUNT(DISTINCT x)``..."""

    function: Literal["COUNT", "SUM", "AVG", "MIN", "MAX"]
    distinct: bool
    star: bool
    argument: str | None


@dataclass(frozen=True)
class OrderSpec:
    """One ORDER BY term.

    ``output_column`` names the result column it refers to (by name or
    position) when it is one; ``expression`` is its SQL otherwise.
    """

    expression: str
    descending: bool
    output_column: str | None


@dataclass(frozen=True)
class SetOperationSpec:
    """A UNION, INTERSECT or EXCEPT of two queries."""

    kind: Literal["UNION", "INTERSECT", "EXCEPT"]
    distinct: bool
    left: QueryDescription
    right: QueryDescription


@dataclass(frozen=True)
class SubqueryDescription:
    """A nested query.

    ``role`` is where it appears: ``from`` (a derived table, named by
    ``alias``), ``where``, ``having``, ``select``, ``order`` or ``on``.
    """

    role: str
    alias: str | None
    correlated: bool
    description: QueryDescription


@dataclass(frozen=True)
class CteDescription:
    """A named query of a WITH clause."""

    name: str
    description: QueryDescription


@dataclass(frozen=True)
class HealpixTarget:
    """Where the coordinator may add HEALPix index ranges.

    ``table`` is a partitioned table occurrence of this query level (its
    ``sql_qualifier`` names it in the SQL) and ``restriction`` is the part
    of the WHERE/ON condition that bounds its positions (None when nothing
    does).  ANDing ``healpix BETWEEN ...`` predicates for the regions of
    ``restriction`` on that qualifier keeps the query's meaning.
    """

    table: TableRef
    restriction: RestrictionNode | None


@dataclass(frozen=True)
class QueryDescription:
    """Everything the coordinator needs to plan one query level.

    Attributes
    ----------
    tables
        Catalog tables read directly at this level (FROM and joins).
    restrictions
        The WHERE condition and inner-join ON conditions as a boolean tree
        of restrictors (None when there is no condition).
    spatial_restrictors, director_key_restrictors
        Every restrictor of ``restrictions`` (and of outer-join ON
        conditions), flat, each flagged with ``in_and_tree_of_root``.
    joins
        The joins of this level, in order.
    aggregates
        Aggregate calls in the select list, HAVING and ORDER BY.
    group_by
        SQL of the GROUP BY terms.
    having
        SQL of the HAVING condition.
    order_by
        ORDER BY terms.
    distinct
        SELECT DISTINCT.
    top
        The ADQL TOP value of this level.
    limit
        Effective row limit (TOP lowered by max_rows at the top level).
    offset
        OFFSET value.
    set_operation
        For UNION/INTERSECT/EXCEPT, the operation and its two sides.
    subqueries, ctes
        Nested queries (derived tables, IN/EXISTS/scalar subqueries) and
        WITH queries.
    output_columns
        Result column names.
    healpix_targets
        The ``healpix_index`` hook, one per partitioned table occurrence.
    """

    tables: tuple[TableRef, ...] = ()
    restrictions: RestrictionNode | None = None
    spatial_restrictors: tuple[SpatialRestrictor, ...] = ()
    director_key_restrictors: tuple[DirectorKeyRestrictor, ...] = ()
    joins: tuple[JoinSpec, ...] = ()
    aggregates: tuple[AggregateSpec, ...] = ()
    group_by: tuple[str, ...] = ()
    having: str | None = None
    order_by: tuple[OrderSpec, ...] = ()
    distinct: bool = False
    top: int | None = None
    limit: int | None = None
    offset: int | None = None
    set_operation: SetOperationSpec | None = None
    subqueries: tuple[SubqueryDescription, ...] = ()
    ctes: tuple[CteDescription, ...] = ()
    output_columns: tuple[str, ...] = ()
    healpix_targets: tuple[HealpixTarget, ...] = field(default=())

    @property
    def has_aggregates(self) -> bool:
        """True if this level aggregates (aggregate calls or GROUP BY)."""
        return bool(self.aggregates or self.group_by)

    def all_tables(self) -> tuple[TableRef, ...]:
        """Return the tables of this level and of every nested query."""
        found = list(self.tables)
        if self.set_operation is not None:
            found.extend(self.set_operation.left.all_tables())
            found.extend(self.set_operation.right.all_tables())
        for sub in self.subqueries:
            found.extend(sub.description.all_tables())
        for cte in self.ctes:
            found.extend(cte.description.all_tables())
        unique: dict[int, TableRef] = {}
        for ref in found:
            unique.setdefault(ref.occurrence, ref)
        return tuple(unique.values())

    @property
    def is_single_node(self) -> bool:
        """True if no partitioned (director or child) table is read anywhere."""
        return all(ref.table.kind not in ("director", "child") for ref in self.all_tables())


def _int_literal(node: exp.Expr | None) -> int | None:
    value = node.expression if isinstance(node, (exp.Limit, exp.Offset)) else None
    if isinstance(value, exp.Literal) and value.is_int:
        return int(value.this)
    return None


def _sql(node: exp.Expr) -> str:
    return node.sql(dialect="postgres")


class _Describer:
    def __init__(self, text: str) -> None:
        self.text = text

    def query(self, node: exp.Expr, max_rows: int | None) -> QueryDescription:
        ctes = tuple(
            CteDescription(cte.alias_or_name, self.query(cte.this, None))
            for cte in (node.args.get("with_").expressions if node.args.get("with_") else [])
        )
        if isinstance(node, exp.Subquery):
            return self.query(node.this, max_rows)
        if isinstance(node, exp.SetOperation):
            left, right = self.query(node.left, None), self.query(node.right, None)
            kind = node.key.upper()
            operation = SetOperationSpec(kind, bool(node.args.get("distinct")), left, right)  # type: ignore[arg-type]
            return QueryDescription(
                order_by=self.order(node, left.output_columns),
                limit=max_rows,
                offset=_int_literal(node.args.get("offset")),
                set_operation=operation,
                ctes=ctes,
                output_columns=left.output_columns,
            )
        assert isinstance(node, exp.Select)
        return self.select(node, max_rows, ctes)

    def select(self, node: exp.Select, max_rows: int | None, ctes: tuple[CteDescription, ...]) -> QueryDescription:
        tables, joins, subqueries, on_conditions = self.from_items(node)
        where = node.args.get("where")
        conditions = [where.this] if where is not None else []
        conditions.extend(cond for kind, cond in on_conditions if kind in ("inner", "cross"))
        restrictions = _mark(restriction_tree(conditions, self.text), True) if conditions else None
        outer_trees = [
            _mark(restriction_tree([cond], self.text), False)
            for kind, cond in on_conditions
            if kind not in ("inner", "cross")
        ]
        spatial: list[SpatialRestrictor] = []
        director: list[DirectorKeyRestrictor] = []
        if restrictions is not None:
            _collect(restrictions, True, spatial, director)
        for tree in outer_trees:
            _collect(tree, False, spatial, director)
        for clause, role in ((node.args.get("where"), "where"), (node.args.get("having"), "having")):
            if clause is not None:
                subqueries.extend(self.nested(clause.this, role))
        for projection in node.expressions:
            subqueries.extend(self.nested(projection, "select"))
        top = _int_literal(node.args.get("limit"))
        limit = top
        if max_rows is not None:
            limit = max_rows if top is None else min(top, max_rows)
        outputs = tuple(projection.alias_or_name for projection in node.expressions)
        group = node.args.get("group")
        having = node.args.get("having")
        targets = tuple(
            HealpixTarget(ref, project_restriction(restrictions, ref) if restrictions is not None else None)
            for ref in tables
            if ref.table.kind in ("director", "child")
        )
        return QueryDescription(
            tables=tuple(tables),
            restrictions=restrictions,
            spatial_restrictors=tuple(spatial),
            director_key_restrictors=tuple(director),
            joins=tuple(joins),
            aggregates=self.aggregates(node),
            group_by=tuple(_sql(term) for term in group.expressions) if group is not None else (),
            having=_sql(having.this) if having is not None else None,
            order_by=self.order(node, outputs),
            distinct=node.args.get("distinct") is not None,
            top=top,
            limit=limit,
            offset=_int_literal(node.args.get("offset")),
            subqueries=tuple(subqueries),
            ctes=ctes,
            output_columns=outputs,
            healpix_targets=targets,
        )

    def from_items(
        self, node: exp.Select
    ) -> tuple[list[TableRef], list[JoinSpec], list[SubqueryDescription], list[tuple[str, exp.Expr]]]:
        tables: list[TableRef] = []
        joins: list[JoinSpec] = []
        subqueries: list[SubqueryDescription] = []
        on_conditions: list[tuple[str, exp.Expr]] = []

        def visit(relation: exp.Expr, join: exp.Join | None) -> None:
            ref = relation.meta.get("table_ref") if relation._meta else None
            if ref is not None:
                tables.append(ref)
            elif isinstance(relation, exp.Subquery) and isinstance(relation.this, exp.Table):
                visit(relation.this, None)
            elif isinstance(relation, exp.Subquery):
                subqueries.append(
                    SubqueryDescription(
                        "from",
                        relation.alias_or_name,
                        bool(relation.this.meta.get("correlated")),
                        self.query(relation.this, None),
                    )
                )
            for nested in (relation.args.get("joins") or []) if isinstance(relation, exp.Table) else []:
                visit(nested.this, nested)
            if join is not None:
                joins.append(self.join(join, ref))
                on = join.args.get("on")
                kind = joins[-1].kind
                if on is not None:
                    on_conditions.append((kind, on))
                    subqueries.extend(self.nested(on, "on"))

        visit(node.args["from_"].this, None)
        for join in node.args.get("joins") or []:
            visit(join.this, join)
        return tables, joins, subqueries, on_conditions

    def join(self, join: exp.Join, ref: TableRef | None) -> JoinSpec:
        side = (join.args.get("side") or "").lower()
        kind = side or ("cross" if join.meta.get("comma") else "inner")
        equalities = []
        spatial = False
        on = join.args.get("on")
        if on is not None:
            for node in on.walk():
                if (
                    isinstance(node, exp.EQ)
                    and isinstance(node.this, exp.Column)
                    and isinstance(node.expression, exp.Column)
                ):
                    equalities.append((_qualified(node.this), _qualified(node.expression)))
                if isinstance(node, exp.Anonymous) and node.name.upper() in ("DISTANCE", "CONTAINS", "INTERSECTS"):
                    spatial = True
        alias = join.this.alias if isinstance(join.this, (exp.Table, exp.Subquery)) and join.this.alias else None
        return JoinSpec(
            kind=kind,  # type: ignore[arg-type]
            natural=bool(join.meta.get("natural")),
            using=tuple(join.meta.get("using") or ()),
            right=ref,
            right_alias=alias,
            equalities=tuple(equalities),
            spatial=spatial,
        )

    def nested(self, node: exp.Expr, role: str) -> list[SubqueryDescription]:
        found = []
        for query in node.find_all(exp.Select, exp.SetOperation):
            parent = query.parent
            inside_other = False
            while parent is not None and parent is not node:
                if isinstance(parent, (exp.Select, exp.SetOperation)):
                    inside_other = True
                    break
                parent = parent.parent
            if inside_other or query is node:
                continue
            found.append(SubqueryDescription(role, None, bool(query.meta.get("correlated")), self.query(query, None)))
        return found

    def aggregates(self, node: exp.Select) -> tuple[AggregateSpec, ...]:
        roots = [p for p in node.expressions]
        if node.args.get("having") is not None:
            roots.append(node.args["having"])
        if node.args.get("order") is not None:
            roots.append(node.args["order"])
        found = []
        for root in roots:
            for agg in root.walk(prune=lambda n: isinstance(n, exp.Query)):
                if isinstance(agg, exp.AggFunc) and not isinstance(agg, exp.Query):
                    argument = agg.this
                    distinct = isinstance(argument, exp.Distinct)
                    if distinct:
                        argument = argument.expressions[0] if argument.expressions else None
                    star = isinstance(argument, exp.Star)
                    found.append(
                        AggregateSpec(
                            agg.key.upper(),  # type: ignore[arg-type]
                            distinct,
                            star,
                            None if star or argument is None else _sql(argument),
                        )
                    )
        return tuple(found)

    def order(self, node: exp.Query, outputs: tuple[str, ...]) -> tuple[OrderSpec, ...]:
        order = node.args.get("order")
        if order is None:
            return ()
        specs = []
        for ordered in order.expressions:
            term = ordered.this
            output = None
            if isinstance(term, exp.Literal) and term.is_int and 1 <= int(term.this) <= len(outputs):
                output = outputs[int(term.this) - 1]
            elif isinstance(term, exp.Column) and term.meta.get("output_ref"):
                output = term.meta["output_ref"]
            specs.append(OrderSpec(_sql(term), bool(ordered.args.get("desc")), output))
        return tuple(specs)


def _qualified(column: exp.Column) -> str:
    return ".".join(part.name for part in column.parts)


def _mark(node: RestrictionNode, in_and: bool) -> RestrictionNode:
    """Return the tree with each restrictor's ``in_and_tree_of_root`` set from its path."""
    if isinstance(node, AndNode):
        return AndNode(tuple(_mark(child, in_and) for child in node.children))
    if isinstance(node, OrNode):
        return OrNode(tuple(_mark(child, False) for child in node.children))
    if isinstance(node, NotNode):
        return NotNode(_mark(node.child, False))
    if isinstance(node, (SpatialRestrictor, DirectorKeyRestrictor)):
        return replace(node, in_and_tree_of_root=in_and)
    return node


def _collect(
    node: RestrictionNode,
    in_and: bool,
    spatial: list[SpatialRestrictor],
    director: list[DirectorKeyRestrictor],
) -> None:
    if isinstance(node, (AndNode, OrNode)):
        for child in node.children:
            _collect(child, in_and, spatial, director)
    elif isinstance(node, NotNode):
        _collect(node.child, in_and, spatial, director)
    elif isinstance(node, SpatialRestrictor):
        spatial.append(node)
    elif isinstance(node, DirectorKeyRestrictor):
        director.append(node)


def describe(resolution: Resolution, text: str = "", *, max_rows: int | None = None) -> QueryDescription:
    """Describe a resolved query for the coordinator.

    Parameters
    ----------
    resolution
        Output of :func:`adql.resolve.resolve`.
    text
        Query text (for error positions of invalid regions).
    max_rows
        Row limit applied by the caller (MAXREC), merged into ``limit``.

    Examples
    --------
    >>> from adql.catalog import ColumnInfo, TableCatalog, TableInfo
    >>> from adql.dialect import parse_adql
    >>> from adql.resolve import resolve
    >>> t = TableInfo("apdb", "DiaObject", (ColumnInfo("ra", "double"), ColumnInfo("dec", "double")),
    ...               kind="director", ra_column="ra", dec_column="dec")
    >>> adql = "SELECT ra FROM apdb.DiaObject WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE(10, 20, 0.5))"
    >>> d = describe(resolve(parse_adql(adql), TableCatalog([t])))
    >>> d.spatial_restrictors[0].region, d.spatial_restrictors[0].in_and_tree_of_root
    (CircleSpec(ra=10.0, dec=20.0, radius=0.5), True)
    """
    return _Describer(text).query(resolution.tree, max_rows)

"""Split one chunk-local query level into a worker query and a merge query.

Every worker runs the *worker query* over its chunks; the coordinator
gathers the rows into a temporary table and runs the *merge query* over it.
The split keeps the answer equal to the one an unsharded database gives:

* no aggregation, ordering, DISTINCT or limit: no merge, rows stream through;
* ORDER BY with a limit: each worker returns its own top ``limit + offset``
  rows (the global top-N is among them) and the merge sorts and cuts again;
  DISTINCT is applied on both sides;
* a limit or offset without ORDER BY or DISTINCT (``cut``): each worker
  returns at most ``limit + offset`` rows; any of them answer, so the query's
  last level may skip ``skip`` and keep ``take`` rows of the stream instead of
  merging (a nested level still merges, into its temporary table);
* aggregation: each worker groups by the GROUP BY terms (and by the argument
  of every DISTINCT aggregate, so that distinct values survive), computes
  partial aggregates, and the merge combines them: COUNT as a sum of counts,
  SUM as a sum of sums (cast back to the partial's type, since PostgreSQL
  widens ``SUM(bigint)``), MIN/MAX of minima/maxima, AVG as the sum of sums
  over the sum of counts (in double precision, which is what the translator
  returns for AVG);
* anything else a merge cannot rebuild from partials (an ungrouped column
  used outside an aggregate, for instance) is merged from raw rows: the
  worker ships the columns the level uses, the merge runs the level's
  SELECT over them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlglot import exp, parse_one

from sharding.coordinator.locality import level_tables

__all__ = ["SplitQuery", "split_level"]

_PARTIAL_TYPE_CAST = "_DMS_CAST_AS_PARTIAL"
_GATHERED = "_dms_gathered"


def _pg(node: exp.Expr) -> str:
    return node.sql(dialect="postgres")


def _quoted(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


@dataclass
class SplitQuery:
    """The worker query of a level and, unless rows stream through, its merge query.

    ``merge`` is a SELECT over the gathered table ``_dms_gathered``; call
    :meth:`merge_sql` with the gathered table's real name and column types.
    """

    worker: exp.Select
    merge: exp.Select | None
    strategy: str
    partial_columns: set[str] = field(default_factory=set)
    skip: int = 0  # "cut": rows of the workers' stream to skip (OFFSET) ...
    take: int | None = None  # ... and to keep (LIMIT; None: all)

    def merge_sql(self, gathered_table: str, column_types: Mapping[str, str]) -> str:
        """The merge query's text over ``gathered_table`` whose columns have ``column_types``."""
        assert self.merge is not None
        merge = self.merge.copy()
        for node in list(merge.find_all(exp.Anonymous)):
            if node.name == _PARTIAL_TYPE_CAST:
                inner, column = node.expressions
                type_sql = column_types[column.name]
                node.replace(exp.Cast(this=inner, to=exp.DataType.build(type_sql, dialect="postgres")))
        for table in merge.find_all(exp.Table):
            if table.name == _GATHERED:
                table.set("this", exp.to_identifier(gathered_table, quoted=True))
        return _pg(merge)


def _is_level_column(node: exp.Expr, level_occurrences: set[int]) -> bool:
    if not isinstance(node, exp.Column) or not node._meta:
        return False
    binding = node.meta.get("adql_binding")
    ref = getattr(binding[0], "ref", None) if binding else None
    return ref is not None and ref.occurrence in level_occurrences


def _output_reference(term: exp.Expr, outputs: list[str]) -> exp.Expr | None:
    """The merge-side reference of an ORDER BY term that names an output column, if it does."""
    if isinstance(term, exp.Literal) and term.is_int and 1 <= int(term.this) <= len(outputs):
        return term.copy()
    if isinstance(term, exp.Column) and not term.table and term.name in outputs:
        return _quoted(term.name)
    return None


def _gathered_from() -> exp.From:
    return exp.From(this=exp.Table(this=exp.to_identifier(_GATHERED, quoted=True)))


def _base_worker(select: exp.Select) -> exp.Select:
    worker = select.copy()
    for key in ("group", "having", "order", "limit", "offset", "distinct"):
        worker.set(key, None)
    return worker


class _NotDecomposableError(Exception):
    pass


class _AggregateSplitter:
    def __init__(self, select: exp.Select, level_occurrences: set[int]) -> None:
        self.select = select
        self.level = level_occurrences
        self.group_names: dict[str, str] = {}
        self.worker_group: list[tuple[str, exp.Expr]] = []
        self.partials: dict[str, str] = {}
        self.worker_partials: list[tuple[str, exp.Expr]] = []
        self.outputs = [p.alias_or_name for p in select.expressions]

    def group_term(self, term: exp.Expr) -> exp.Expr:
        if isinstance(term, exp.Literal) and term.is_int:
            projection = self.select.expressions[int(term.this) - 1]
            return projection.this if isinstance(projection, exp.Alias) else projection
        if isinstance(term, exp.Column) and not term.table and term.name in self.outputs:
            projection = self.select.expressions[self.outputs.index(term.name)]
            return projection.this if isinstance(projection, exp.Alias) else projection
        return term

    def add_group(self, term: exp.Expr, prefix: str) -> str:
        text = _pg(term)
        if text not in self.group_names:
            name = f"_dms_{prefix}{len(self.worker_group)}"
            self.group_names[text] = name
            self.worker_group.append((name, term.copy()))
        return self.group_names[text]

    def partial(self, expression: exp.Expr) -> exp.Column:
        text = _pg(expression)
        if text not in self.partials:
            name = f"_dms_a{len(self.worker_partials)}"
            self.partials[text] = name
            self.worker_partials.append((name, expression))
        return _quoted(self.partials[text])

    def merged_aggregate(self, agg: exp.AggFunc) -> exp.Expr:
        argument = agg.this
        if isinstance(argument, exp.Distinct):
            distinct_arg = argument.expressions[0]
            name = self.add_group(distinct_arg, "d")
            node = agg.copy()
            node.set("this", exp.Distinct(expressions=[_quoted(name)]))
            return node
        if isinstance(agg, exp.Count):
            partial = self.partial(agg.copy())
            return parse_one(f"CAST(COALESCE(SUM({_pg(partial)}), 0) AS BIGINT)", dialect="postgres")
        if isinstance(agg, exp.Sum):
            partial = self.partial(agg.copy())
            summed = exp.Sum(this=partial)
            return exp.Anonymous(this=_PARTIAL_TYPE_CAST, expressions=[summed, partial.copy()])
        if isinstance(agg, (exp.Min, exp.Max)):
            partial = self.partial(agg.copy())
            return type(agg)(this=partial)
        if isinstance(agg, exp.Avg):
            as_double = exp.Cast(this=argument.copy(), to=exp.DataType.build("DOUBLE PRECISION"))
            total = self.partial(exp.Sum(this=as_double))
            count = self.partial(exp.Count(this=argument.copy()))
            return parse_one(f"SUM({_pg(total)}) / NULLIF(SUM({_pg(count)}), 0)", dialect="postgres")
        raise _NotDecomposableError(agg.key)

    def rewrite(self, node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.AggFunc):
            return self.merged_aggregate(node)
        if isinstance(node, exp.Query):
            return node.copy()
        if not isinstance(node, exp.Literal):
            name = self.group_names.get(_pg(node))
            if name is not None and not name.startswith("_dms_d"):
                return _quoted(name)
        if _is_level_column(node, self.level):
            raise _NotDecomposableError(_pg(node))
        copy = node.copy()
        for key, value in list(copy.args.items()):
            if isinstance(value, exp.Expr):
                copy.set(key, self.rewrite(value))
            elif isinstance(value, list):
                copy.set(key, [self.rewrite(v) if isinstance(v, exp.Expr) else v for v in value])
        return copy

    def split(self) -> SplitQuery:
        group = self.select.args.get("group")
        for term in group.expressions if group is not None else []:
            self.add_group(self.group_term(term), "g")
        grouped = dict(self.group_names)
        merge = exp.Select()
        merge.set("expressions", [self.rewrite(p) for p in self.select.expressions])
        merge.set("from_", _gathered_from())
        if group is not None:
            merge.set("group", exp.Group(expressions=[_quoted(n) for n in grouped.values()]))
        having = self.select.args.get("having")
        if having is not None:
            merge.set("having", exp.Having(this=self.rewrite(having.this)))
        order = self.select.args.get("order")
        if order is not None:
            terms = []
            for ordered in order.expressions:
                copy = ordered.copy()
                reference = _output_reference(ordered.this, self.outputs)
                copy.set("this", reference if reference is not None else self.rewrite(ordered.this))
                terms.append(copy)
            merge.set("order", exp.Order(expressions=terms))
        for key in ("limit", "offset", "distinct"):
            if self.select.args.get(key) is not None:
                merge.set(key, self.select.args[key].copy())
        worker = _base_worker(self.select)
        worker.set(
            "expressions",
            [exp.alias_(e, n, quoted=True) for n, e in self.worker_group + self.worker_partials],
        )
        if self.worker_group:
            worker.set("group", exp.Group(expressions=[e.copy() for _, e in self.worker_group]))
        return SplitQuery(worker, merge, "aggregate", {n for n, _ in self.worker_partials})


def _split_ordered(select: exp.Select) -> SplitQuery:
    outputs = [p.alias_or_name for p in select.expressions]
    worker = select.copy()
    worker.set("offset", None)
    merge_order = []
    hidden = []
    order = select.args.get("order")
    for index, ordered in enumerate(order.expressions if order is not None else []):
        reference = _output_reference(ordered.this, outputs)
        copy = ordered.copy()
        if reference is None:
            name = f"_dms_o{index}"
            hidden.append(exp.alias_(ordered.this.copy(), name, quoted=True))
            reference = _quoted(name)
        copy.set("this", reference)
        merge_order.append(copy)
    worker.set("expressions", [p.copy() for p in select.expressions] + hidden)
    limit = select.args.get("limit")
    offset = select.args.get("offset")
    if limit is not None:
        total = int(limit.expression.this) + (int(offset.expression.this) if offset is not None else 0)
        worker.set("limit", exp.Limit(expression=exp.Literal.number(total)))
    else:
        worker.set("order", None)
    merge = exp.Select()
    merge.set("expressions", [_quoted(name) for name in outputs])
    merge.set("from_", _gathered_from())
    if merge_order:
        merge.set("order", exp.Order(expressions=merge_order))
    for key in ("limit", "offset", "distinct"):
        if select.args.get(key) is not None:
            merge.set(key, select.args[key].copy())
    if order is None and select.args.get("distinct") is None:
        skip = int(offset.expression.this) if offset is not None else 0
        take = int(limit.expression.this) if limit is not None else None
        return SplitQuery(worker, merge, "cut", skip=skip, take=take)
    return SplitQuery(worker, merge, "top-n" if limit is not None and order is not None else "sorted")


def _split_raw(select: exp.Select, level_occurrences: set[int]) -> SplitQuery:
    """Ship every column the level uses; run the level's SELECT over them on the coordinator."""
    names: dict[str, str] = {}
    shipped: list[tuple[str, exp.Expr]] = []
    merge = select.copy()
    merge.set("joins", None)
    merge.set("where", None)
    merge.set("from_", _gathered_from())
    for column in list(merge.find_all(exp.Column)):
        if not _is_level_column(column, level_occurrences):
            continue
        text = _pg(column)
        if text not in names:
            names[text] = f"_dms_c{len(shipped)}"
            shipped.append((names[text], column.copy()))
        column.replace(_quoted(names[text]))
    worker = _base_worker(select)
    worker.set("expressions", [exp.alias_(e, n, quoted=True) for n, e in shipped] or [exp.alias_("1", "_dms_c")])
    return SplitQuery(worker, merge, "raw")


def split_level(select: exp.Select) -> SplitQuery:
    """Split a chunk-local level (its nested queries already replaced by their results)."""
    occurrences = {ref.occurrence for _, ref in level_tables(select)}
    has_aggregates = select.args.get("group") is not None or any(
        isinstance(node, exp.AggFunc)
        for root in [*select.expressions, select.args.get("having"), select.args.get("order")]
        if root is not None
        for node in root.walk(prune=lambda n: isinstance(n, exp.Query))
    )
    if has_aggregates:
        try:
            return _AggregateSplitter(select, occurrences).split()
        except _NotDecomposableError:
            return _split_raw(select, occurrences)
    if not any(select.args.get(key) is not None for key in ("order", "limit", "offset", "distinct")):
        return SplitQuery(select.copy(), None, "stream")
    return _split_ordered(select)

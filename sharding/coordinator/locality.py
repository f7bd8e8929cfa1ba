"""Chunk locality of one query level, and its rewrite into a worker query.

A level that reads several partitioned tables can run as one statement per
worker only when every combination of rows it joins lives in one chunk:

* a director and its children joined on the director key (children are
  stored in their director's chunk), or two children of one director;
* two occurrences of a director table joined by a positional condition
  whose radius is at most the catalog's overlap margin (a near-neighbour
  join): one side, the *overlap side*, then reads the chunk's own rows plus
  its overlap partition, which holds every row within the margin of the
  chunk's edge.  Each pair is found exactly once, in the chunk of the other
  side.

Anything else would silently lose pairs that straddle chunks, so it is
refused with the reason.  Replicated tables are on every worker and never
matter.

The rewrite replaces every partitioned table with a derived table limited to
the chunks given to a worker (``chunk_id IN (...)``), which PostgreSQL
pulls up and uses to prune partitions; it works the same under outer joins,
where a filter in WHERE would not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlglot import exp

from adql.refs import TableRef
from dms_db.physical import CHUNK_COLUMN, overlap_table_name
from sharding.coordinator.failures import unsupported_query
from sharding.coordinator.index_ranges import range_condition
from sharding.coordinator.materialize import PLACEHOLDER_PREFIX
from sharding.healpix import PixelRange

__all__ = [
    "CHUNK_FILTER_SQL",
    "CHUNK_LIST_SENTINEL",
    "LevelLayout",
    "analyse_level",
    "chunk_local_select",
    "level_tables",
    "whole_tables_text",
]

CHUNK_LIST_SENTINEL = "-7262537373019"
"""Stands for a worker's chunk id list in worker SQL text until it is known."""


def _chunk_list_condition() -> exp.In:
    return exp.In(this=exp.column(CHUNK_COLUMN, quoted=True), expressions=[exp.Literal.number(CHUNK_LIST_SENTINEL)])


CHUNK_FILTER_SQL = _chunk_list_condition().sql(dialect="postgres")
"""The chunk filter as it appears in worker SQL text (see :func:`whole_tables_text`)."""

PARTITIONED_KINDS = ("director", "child")


@dataclass
class LevelLayout:
    """The partitioned occurrences of a level and how each is read."""

    partitioned: list[TableRef] = field(default_factory=list)
    overlap_partner: dict[int, TableRef] = field(default_factory=dict)
    """Overlap-side occurrence number -> the occurrence whose chunk it follows."""
    overlap_condition: dict[int, exp.Expr] = field(default_factory=dict)
    """Overlap-side occurrence number -> the conjunct holding its positional join."""

    @property
    def schema_name(self) -> str:
        """The catalog (ADQL schema) of the partitioned tables."""
        return self.partitioned[0].table.schema_name

    def overlap_sides(self) -> list[TableRef]:
        """Occurrences read with their overlap partitions."""
        return [ref for ref in self.partitioned if ref.occurrence in self.overlap_partner]


def level_tables(select: exp.Select) -> list[tuple[exp.Table, TableRef]]:
    """Catalog tables read directly by this level (not by nested queries), in FROM order."""
    found = []
    for table in select.find_all(exp.Table):
        ref = table.meta.get("table_ref") if table._meta else None
        if ref is not None and _owning_select(table) is select:
            found.append((table, ref))
    return found


def _owning_select(node: exp.Expr) -> exp.Expr | None:
    parent = node.parent
    while parent is not None and not isinstance(parent, exp.Select):
        parent = parent.parent
    return parent


def conjuncts(condition: exp.Expr | None) -> list[exp.Expr]:
    if condition is None:
        return []
    node = condition.this if isinstance(condition, exp.Where) else condition
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        return [c for part in (node.this, node.expression) for c in conjuncts(part)]
    return [node]


def _column_ref(node: exp.Expr) -> tuple[TableRef | None, str | None]:
    if not isinstance(node, exp.Column) or not node._meta:
        return None, None
    binding = node.meta.get("adql_binding")
    if not binding:
        return None, None
    source, column = binding
    return getattr(source, "ref", None), getattr(column, "name", None)


def _family(ref: TableRef) -> str:
    info = ref.table
    return info.qualified_name if info.kind == "director" else str(info.director_table)


class _Components:
    def __init__(self, refs: list[TableRef]) -> None:
        self.parent = {ref.occurrence: ref.occurrence for ref in refs}

    def find(self, item: int) -> int:
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def join(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)

    def count(self) -> int:
        return len({self.find(item) for item in self.parent})


def _key_link(conjunct: exp.Expr, partitioned: dict[int, TableRef]) -> tuple[TableRef, TableRef] | None:
    if not isinstance(conjunct, exp.EQ):
        return None
    (left, left_col), (right, right_col) = _column_ref(conjunct.this), _column_ref(conjunct.expression)
    if left is None or right is None or left.occurrence == right.occurrence:
        return None
    if left.occurrence not in partitioned or right.occurrence not in partitioned:
        return None
    if _family(left) != _family(right):
        return None
    if left_col != left.table.director_key or right_col != right.table.director_key:
        return None
    return left, right


def spoint_owner(node: exp.Expr) -> TableRef | None:
    """The occurrence whose position ``SPOINT(RADIANS(t.ra), RADIANS(t.dec))`` is, if it is one."""
    if not (isinstance(node, exp.Anonymous) and node.name.upper() == "SPOINT" and len(node.expressions) == 2):
        return None
    owners = []
    for argument, role in zip(node.expressions, ("ra_column", "dec_column"), strict=True):
        if not (isinstance(argument, exp.Anonymous) and argument.name.upper() == "RADIANS"):
            return None
        ref, column = _column_ref(argument.expressions[0])
        if ref is None or column != getattr(ref.table, role):
            return None
        owners.append(ref)
    return owners[0] if owners[0].occurrence == owners[1].occurrence else None


def constant_number(node: exp.Expr) -> float | None:
    """The value PostgreSQL gives constant arithmetic (``5.0 / 3600``, ``-(1 + 2) * 0.5``), or None.

    Integer operands divide as integers, as in PostgreSQL (``5 / 3600`` is 0).

    >>> from sqlglot import parse_one
    >>> [constant_number(parse_one(text)) for text in ("(5.0 / 3600) * 3600", "7 / 2", "a / 2")]
    [5.0, 3.0, None]
    """
    found = _constant(node)
    return None if found is None else float(found[0])


def _constant(node: exp.Expr) -> tuple[float | int, bool] | None:
    """(value, is_integer) of constant arithmetic."""
    if isinstance(node, exp.Paren):
        return _constant(node.this)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return None
        text = str(node.this)
        is_integer = text.lstrip("-").isdigit()
        return (int(text) if is_integer else float(text)), is_integer
    if isinstance(node, exp.Neg):
        inner = _constant(node.this)
        return None if inner is None else (-inner[0], inner[1])
    if isinstance(node, exp.Cast):
        inner = _constant(node.this)
        return None if inner is None else (float(inner[0]), False)
    if not isinstance(node, exp.Add | exp.Sub | exp.Mul | exp.Div):
        return None
    left, right = _constant(node.this), _constant(node.expression)
    if left is None or right is None:
        return None
    both_integer = left[1] and right[1]
    a, b = left[0], right[0]
    if isinstance(node, exp.Add):
        return a + b, both_integer
    if isinstance(node, exp.Sub):
        return a - b, both_integer
    if isinstance(node, exp.Mul):
        return a * b, both_integer
    if b == 0:
        return None
    if both_integer:
        quotient = abs(int(a)) // abs(int(b))
        return (quotient if (a >= 0) == (b >= 0) else -quotient), True
    return a / b, False


def radius_deg(node: exp.Expr) -> float | None:
    """The radius in degrees of ``RADIANS(r)`` when ``r`` is a constant."""
    if isinstance(node, exp.Anonymous) and node.name.upper() == "RADIANS" and len(node.expressions) == 1:
        return constant_number(node.expressions[0])
    return None


def _near_link(conjunct: exp.Expr, partitioned: dict[int, TableRef], margin_deg: float):
    """``SPOINT(b) <@ SCIRCLE(SPOINT(a), RADIANS(r))`` between two rows of one director table, r <= margin."""
    # Only a conjunct of its own bounds the pair: inside an OR or a NOT it does not.
    for node in [conjunct]:
        if not isinstance(node, exp.ArrayContainedBy):
            continue
        point, circle = node.this, node.expression
        if not (
            isinstance(circle, exp.Anonymous) and circle.name.upper() == "SCIRCLE" and len(circle.expressions) == 2
        ):
            continue
        inner, outer = spoint_owner(point), spoint_owner(circle.expressions[0])
        radius = radius_deg(circle.expressions[1])
        if inner is None or outer is None or radius is None or inner.occurrence == outer.occurrence:
            continue
        if inner.occurrence not in partitioned or outer.occurrence not in partitioned:
            continue
        if inner.table.kind != "director" or inner.table.qualified_name != outer.table.qualified_name:
            continue
        if radius <= margin_deg:
            return outer, inner
    return None


def _join_conditions(select: exp.Select) -> list[tuple[exp.Expr, str, exp.Table | None]]:
    """(conjunct, join side, right-hand table) of WHERE and every ON clause."""
    found = [(c, "", None) for c in conjuncts(select.args.get("where"))]
    for join in select.args.get("joins") or []:
        side = (join.args.get("side") or "").lower()
        right = join.this if isinstance(join.this, exp.Table) else None
        found += [(c, side, right) for c in conjuncts(join.args.get("on"))]
    return found


def analyse_level(select: exp.Select, margin_deg: float) -> LevelLayout:
    """Check that a level is chunk-local and find its overlap sides.

    Raises
    ------
    AdqlUnsupportedError
        When rows the level joins could sit in different chunks.
    """
    layout = LevelLayout()
    for _, ref in level_tables(select):
        if ref.table.kind in PARTITIONED_KINDS:
            layout.partitioned.append(ref)
    _check_outer_joins(select)
    if len(layout.partitioned) <= 1:
        return layout
    schemas = {ref.table.schema_name for ref in layout.partitioned}
    if len(schemas) > 1:
        raise unsupported_query(
            f"tables of the partitioned catalogs {', '.join(sorted(schemas))} are chunked independently",
            "join them through a subquery that returns few rows, or query each catalog on its own",
        )
    partitioned = {ref.occurrence: ref for ref in layout.partitioned}
    components = _Components(layout.partitioned)
    linked: dict[int, int] = {}
    for conjunct, side, right in _join_conditions(select):
        key = _key_link(conjunct, partitioned)
        if key is not None:
            components.join(key[0].occurrence, key[1].occurrence)
            for ref in key:
                linked[ref.occurrence] = linked.get(ref.occurrence, 0) + 1
            continue
        if side == "full":
            continue
        near = _near_link(conjunct, partitioned, margin_deg)
        if near is None:
            continue
        anchor, other = near
        right_ref = right.meta.get("table_ref") if right is not None and right._meta else None
        if side == "left" and right_ref is not None and right_ref.occurrence == anchor.occurrence:
            anchor, other = other, anchor
        if side == "right" and right_ref is not None and right_ref.occurrence == other.occurrence:
            anchor, other = other, anchor
        if other.occurrence in layout.overlap_partner or components.find(anchor.occurrence) == components.find(
            other.occurrence
        ):
            continue
        components.join(anchor.occurrence, other.occurrence)
        layout.overlap_partner[other.occurrence] = anchor
        layout.overlap_condition[other.occurrence] = conjunct
    for occurrence in layout.overlap_partner:
        if linked.get(occurrence):
            raise unsupported_query(
                "a table read with its overlap rows (the second side of a near-neighbour join) is also joined "
                "on its key, and rows joined to it may sit in another chunk",
                "join the children to the first side of the near-neighbour join",
            )
    if components.count() > 1:
        names = ", ".join(
            f"{ref.table.qualified_name}{' AS ' + ref.alias if ref.alias else ''}" for ref in layout.partitioned
        )
        raise unsupported_query(
            f"the partitioned tables {names} are not all joined on their director key or by a distance "
            f"of at most the overlap margin ({margin_deg * 3600:g} arcsec), so matching rows may sit in "
            "different chunks",
            "join a child table to its director with director.id = child.directorId, or bound a "
            "positional self-join by DISTANCE < the overlap margin",
        )
    return layout


def _kinds_in(node: exp.Expr | None) -> set[str]:
    """Kinds of the tables under ``node``; rows of nested queries and uploads count as replicated.

    They are sent whole to every worker, so they repeat on each worker just
    as a replicated table does.
    """
    if node is None:
        return set()
    kinds = set()
    for table in node.find_all(exp.Table):
        ref = table.meta.get("table_ref") if table._meta else None
        if ref is not None:
            kinds.add(ref.table.kind)
        elif table.name.startswith(PLACEHOLDER_PREFIX):
            kinds.add("replicated")
    return kinds


def _check_outer_joins(select: exp.Select) -> None:
    """Refuse an outer join that keeps every row of a replicated table against a partitioned one.

    Each worker would add its own NULL-extended copy of the replicated rows
    that match nothing in its chunks, so the rows would repeat once per worker.
    """
    before = _kinds_in(select.args.get("from_"))
    for join in select.args.get("joins") or []:
        side = (join.args.get("side") or "").lower()
        right = _kinds_in(join.this)
        preserved = {"left": before, "right": right, "full": before | right}.get(side, set())
        other = {"left": right, "right": before, "full": before | right}.get(side, set())
        if "replicated" in preserved and other & set(PARTITIONED_KINDS):
            raise unsupported_query(
                f"a {side.upper()} OUTER JOIN keeps every row of a replicated table (or of a subquery or upload) "
                "while the partitioned table "
                "it is joined to is spread over the workers, so unmatched rows would repeat once per worker",
                "put the partitioned table on the preserved side, or use an inner join",
            )
        before |= right


def _chunk_filter(table: exp.Table, overlap: bool, index_ranges: list[PixelRange] | None = None) -> exp.Select:
    name = table.name
    if overlap:
        name = overlap_table_name(name)
    source = exp.Table(this=exp.to_identifier(name, quoted=True), db=exp.to_identifier(table.db, quoted=True))
    condition: exp.Expr = _chunk_list_condition()
    if index_ranges is not None:
        condition = exp.and_(condition, exp.paren(range_condition(index_ranges)))
    return exp.select(exp.Star()).from_(source).where(condition)


def whole_tables_text(worker_text: str) -> str:
    """Worker SQL reading its partitioned tables whole: every chunk filter becomes ``TRUE``.

    For a worker given every chunk it holds (:meth:`ChunkMap.is_all_held`),
    the filter selects every row anyway, yet PostgreSQL tests it on each one,
    about a tenth of a full-table scan.  Not for levels with an overlap side,
    whose chunk link pairs rows chunk by chunk.
    """
    return worker_text.replace(CHUNK_FILTER_SQL, "TRUE")


def _alias_of(table: exp.Table, ref: TableRef, select: exp.Select) -> str:
    """The table's correlation name; unaliased tables get one and their columns are requalified."""
    if table.alias:
        return table.alias
    alias = f"_dms_t{ref.occurrence}"
    for column in select.find_all(exp.Column):
        owner, _ = _column_ref(column)
        if owner is not None and owner.occurrence == ref.occurrence:
            column.set("catalog", None)
            column.set("db", None)
            column.set("table", exp.to_identifier(alias, quoted=True))
    return alias


def chunk_local_select(
    select: exp.Select,
    layout: LevelLayout,
    index_ranges: Mapping[int, list[PixelRange]] | None = None,
    *,
    in_place: bool = False,
) -> exp.Select:
    """A copy of ``select`` (or ``select`` itself, ``in_place``) whose partitioned tables read only the sentinel chunks.

    The caller replaces :data:`CHUNK_LIST_SENTINEL` in the SQL text with the
    chunk ids given to each worker.  ``index_ranges`` (by table occurrence)
    further restricts those tables to HEALPix index ranges
    (:mod:`sharding.coordinator.index_ranges`).
    """
    index_ranges = index_ranges or {}
    copy = select if in_place else select.copy()
    overlap_occurrences = set(layout.overlap_partner)
    link_clauses = {occ: _clause_index(copy, cond) for occ, cond in layout.overlap_condition.items()}
    aliases: dict[int, str] = {}
    targets = [(table, ref) for table, ref in level_tables(copy) if ref.table.kind in PARTITIONED_KINDS]
    for table, ref in targets:
        aliases[ref.occurrence] = _alias_of(table, ref, copy)
    for table, ref in targets:
        relation: exp.Query = _chunk_filter(table, overlap=False, index_ranges=index_ranges.get(ref.occurrence))
        if ref.occurrence in overlap_occurrences:
            relation = exp.union(relation, _chunk_filter(table, overlap=True), distinct=False)
        table.replace(
            exp.Subquery(
                this=relation, alias=exp.TableAlias(this=exp.to_identifier(aliases[ref.occurrence], quoted=True))
            )
        )
    for occurrence, anchor in layout.overlap_partner.items():
        link = exp.EQ(
            this=exp.column(CHUNK_COLUMN, table=aliases[occurrence], quoted=True),
            expression=exp.column(CHUNK_COLUMN, table=aliases[anchor.occurrence], quoted=True),
        )
        _and_into(copy, link_clauses[occurrence], link)
    return copy


def _clause_index(select: exp.Select, conjunct: exp.Expr) -> int:
    """0 for WHERE, i + 1 for the ON clause of join i: where ``conjunct`` (by its SQL) sits."""
    target_sql = conjunct.sql(dialect="postgres")
    clauses = [select.args.get("where")] + [join.args.get("on") for join in select.args.get("joins") or []]
    for index, clause in enumerate(clauses):
        if clause is not None and any(c.sql(dialect="postgres") == target_sql for c in conjuncts(clause)):
            return index
    raise AssertionError("the positional join condition vanished from the query")


def _and_into(select: exp.Select, clause_index: int, extra: exp.Expr) -> None:
    """AND ``extra`` into WHERE (index 0) or the ON clause of join ``clause_index - 1``."""
    if clause_index == 0:
        select.set("where", exp.Where(this=exp.and_(select.args["where"].this, extra)))
    else:
        join = select.args["joins"][clause_index - 1]
        join.set("on", exp.and_(join.args["on"], extra))

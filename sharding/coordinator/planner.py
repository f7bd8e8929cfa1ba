"""Plan and run one query, level by level, in phases.

A query is a tree of levels: the top SELECT, its WITH queries, derived
tables, subqueries and set-operation sides.  The planner runs every nested
level first, as a query of its own, into a temporary table of the
coordinator session (:mod:`sharding.coordinator.materialize`), and puts a
placeholder in its place.  What is left is one flat level:

* no tables, or only TAP_SCHEMA and earlier results: it runs on the coordinator;
* only replicated tables: it runs on one worker (any live one);
* partitioned tables: it must be chunk-local (:mod:`sharding.coordinator.locality`);
  its chunk set comes from its restrictions (:mod:`sharding.coordinator.pruning`)
  and it is split into a worker query and a merge query
  (:mod:`sharding.coordinator.split`).  A query that needs no merge streams
  straight from the workers; otherwise the workers' rows are gathered into a
  temporary table and the merge query runs over it on the coordinator.

``COUNT(*)`` of a whole partitioned table is answered from the per-chunk row
counts the loader keeps, without asking any worker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from sqlglot import exp, parse_one

from adql.description import QueryDescription
from sharding.coordinator.failures import unsupported_query
from sharding.coordinator.index_ranges import occurrence_ranges
from sharding.coordinator.locality import (
    CHUNK_LIST_SENTINEL,
    PARTITIONED_KINDS,
    LevelLayout,
    analyse_level,
    chunk_local_select,
    level_tables,
    whole_tables_text,
)
from sharding.coordinator.materialize import MaterializedRelation, inline_rows, relation_columns
from sharding.coordinator.pruning import ChunkSet, Lookup, chunk_set, director_lookup
from sharding.coordinator.split import SplitQuery, split_level
from sharding.coordinator.uploads import UploadedTable, crossmatch_chunks, store_upload, use_upload_relations

if TYPE_CHECKING:
    from sharding.coordinator.dispatch import Dispatcher
    from sharding.coordinator.engine import QueryEngine
    from sharding.healpix import PixelRange

__all__ = ["CoordinatorSession", "FinalStep", "LevelShape", "LevelShapeCache", "Planner"]


def _pg(node: exp.Expr, *, owned: bool = False) -> str:
    """PostgreSQL text of ``node``; sqlglot's generator changes the tree it prints, so a tree
    still in use is printed from a copy, and only a throw-away one (``owned``) directly."""
    return node.sql(dialect="postgres", copy=not owned)


@dataclass
class LevelShape:
    """What planning a partitioned level derives from its SQL alone (no data, no placement).

    Either ``count_answer`` (a whole-table ``COUNT(*)`` read from the row
    counts) or, made when first needed (:meth:`Planner._split_texts`,
    :meth:`Planner._whole_text`), the split and the worker SQL with the
    chunk-list sentinel for several chunks, and ``whole_text``, the level
    itself unsplit, for a single chunk: most cones touch one chunk and never
    need the split.
    """

    layout: LevelLayout
    chunk_order: int
    overlap_deg: float
    count_answer: str | None = None
    index_ranges: Mapping[int, list[PixelRange]] = field(default_factory=dict)
    split_texts: tuple[SplitQuery, str] | None = None  # the split and its worker SQL, set at once
    whole_text: str | None = None


class LevelShapeCache:
    """Shapes of recently planned levels, by the identity of their (cached) translated tree.

    An entry keeps its tree alive, so an id is never reused while its entry
    exists; :meth:`QueryEngine.refresh` clears it with the translations.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: dict[int, tuple[exp.Select, LevelShape]] = {}

    def get(self, tree: exp.Select) -> LevelShape | None:
        """The shape planned for ``tree`` itself, if still kept."""
        entry = self._entries.get(id(tree))
        return entry[1] if entry is not None and entry[0] is tree else None

    def put(self, tree: exp.Select, shape: LevelShape) -> None:
        """Keep ``shape`` for ``tree``, dropping the oldest entry when full."""
        if len(self._entries) >= self._size:
            self._entries.pop(next(iter(self._entries)))
        self._entries[id(tree)] = (tree, shape)

    def clear(self) -> None:
        """Forget every shape (the catalog changed)."""
        self._entries.clear()


@dataclass
class FinalStep:
    """The last phase of a level: SQL for the coordinator, or a request to the workers.

    A worker step of the query's last level may be capped: its caller skips
    ``skip`` rows of the stream and stops after ``take`` (None: no cap), which
    answers a LIMIT/OFFSET without ORDER BY (any rows will do) without a merge.
    """

    on_coordinator: bool
    sql: str | None = None
    request: Callable[[Dispatcher], Any] | None = None
    skip: int = 0
    take: int | None = None

    @property
    def capped(self) -> bool:
        """Whether the stream's rows must be cut (see the class docstring)."""
        return self.skip > 0 or self.take is not None

    def stream(self, dispatcher: Dispatcher) -> Any:
        """The (not yet started) row stream of a worker step."""
        assert self.request is not None
        return self.request(dispatcher)

    async def gather(self, dispatcher: Dispatcher, session: psycopg.AsyncConnection, table: str) -> None:
        """Copy a worker step's rows into a new temporary table of the coordinator session."""
        assert not self.capped, "a capped step is only ever the final one, streamed"
        await dispatcher.gather(self.stream(dispatcher), into=session, table=table)


def expression_subqueries(select: exp.Select) -> list[exp.Query]:
    """The queries nested in a level's ON, WHERE, HAVING and select list, in the translator's order.

    :func:`adql.description.describe` lists a level's subqueries in this
    order (ON conditions, WHERE, HAVING, then the select list, each walked
    the same way), so the two lists pair up one to one: each subquery is
    planned with its own description, and so its own chunk set.
    """
    clauses = [join.args.get("on") for join in select.args.get("joins") or []]
    clauses += [select.args["where"].this if select.args.get("where") else None]
    clauses += [select.args["having"].this if select.args.get("having") else None]
    clauses += list(select.expressions)
    found: list[exp.Query] = []
    for clause in clauses:
        if clause is None:
            continue
        for query in clause.find_all(exp.Select, exp.SetOperation):
            if query is not clause and _nearest_query(query, clause) is None:
                found.append(query)
    return found


def _from_items(select: exp.Select) -> list[exp.Expr]:
    """The relations of a level's FROM clause and joins, in order."""
    items = [select.args["from_"].this] if select.args.get("from_") else []
    return items + [join.this for join in select.args.get("joins") or []]


def _has_nested_levels(select: exp.Select, is_placeholder: Callable[[exp.Expr], bool]) -> bool:
    """Whether the level has WITH queries, derived tables or subqueries still to run first."""
    if select.args.get("with_") is not None:
        return True
    if any(isinstance(item, exp.Subquery) and not is_placeholder(item) for item in _from_items(select)):
        return True
    return any(not is_placeholder(query) for query in expression_subqueries(select))


def _select_star_from(table: str) -> exp.Select:
    return exp.select(exp.Star()).from_(exp.Table(this=exp.to_identifier(table, quoted=True)))


def _nearest_query(node: exp.Expr, stop: exp.Expr) -> exp.Expr | None:
    """The query enclosing ``node`` below ``stop``, if any (then ``node`` belongs to that query)."""
    parent = node.parent
    while parent is not None and parent is not stop:
        if isinstance(parent, (exp.Select, exp.SetOperation)):
            return parent
        parent = parent.parent
    return None


class CoordinatorSession:
    """The query's coordinator connection, taken from the pool only when a phase needs one.

    A cone search or an id look-up that streams from the workers never touches
    the coordinator; not taking a connection saves its pool check and reset.
    """

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._stack = AsyncExitStack()
        self._conn: psycopg.AsyncConnection | None = None

    @property
    def opened(self) -> psycopg.AsyncConnection | None:
        """The connection if one was taken."""
        return self._conn

    async def get(self) -> psycopg.AsyncConnection:
        """The session's connection, taken on first use."""
        if self._conn is None:
            self._conn = await self._stack.enter_async_context(self._dispatcher.coordinator_session())
        return self._conn

    async def aclose(self) -> None:
        """Give the connection back to the pool (reset there)."""
        self._conn = None
        await self._stack.aclose()


class Planner:
    """Plans and runs the phases of one query in one coordinator session."""

    def __init__(self, engine: QueryEngine, session: CoordinatorSession) -> None:
        self.engine = engine
        self.session = session
        self._serial = 0  # temp tables and uploads made in the session so far
        self.relations: dict[str, MaterializedRelation] = {}
        self.uploads: dict[str, MaterializedRelation] = {}
        self.lookups: list[Lookup] = []  # the director-index look-ups made, with what they found
        # The final step as one statement on one chunk (its SQL and the chunk's replicas), when it is one.
        self.one_chunk_statement: tuple[str, tuple[str, ...]] | None = None

    # ------------------------------------------------------------ phases

    async def add_uploads(self, uploads: Sequence[UploadedTable], tree: exp.Query) -> None:
        """Store the query's uploaded tables in the session and point ``tree`` at them (in place)."""
        for upload in uploads:
            relation = await store_upload(await self.session.get(), upload, self._next_serial())
            self.relations[relation.placeholder] = relation
            self.uploads[upload.name] = relation
        if self.uploads:
            use_upload_relations(tree, self.uploads)

    async def plan(self, tree: exp.Query, description: QueryDescription | None, *, final: bool = False) -> FinalStep:
        """Run the nested levels of ``tree`` and return its final step.

        ``final``: the step's rows go to the caller (not into a temporary table),
        so a LIMIT without ORDER BY may be applied to the stream.
        """
        if description is not None and description.is_single_node and not self._has_placeholders(tree):
            return self._single_node(tree)
        if isinstance(tree, exp.SetOperation):
            return await self._set_operation(tree, description)
        if isinstance(tree, exp.Subquery):
            return await self.plan(tree.this, description, final=final)
        assert isinstance(tree, exp.Select)
        return await self._select(tree, description, final=final)

    async def materialize(self, tree: exp.Query, description: QueryDescription | None) -> MaterializedRelation:
        """Run a nested level into a temporary table of the session."""
        step = await self.plan(tree, description)
        serial = self._next_serial()
        table = f"_dms_tmp_{serial}"
        session = await self.session.get()
        if step.on_coordinator:
            assert step.sql is not None
            create = sql.SQL("CREATE TEMPORARY TABLE {} AS {}").format(sql.Identifier(table), sql.SQL(step.sql))
            await session.execute(create)
        else:
            await step.gather(self.engine.dispatcher, session, table)
        columns = await relation_columns(session, table)
        cursor = await session.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        row = await cursor.fetchone()
        relation = MaterializedRelation(serial, table, columns, int(row[0]) if row else 0)
        self.relations[relation.placeholder] = relation
        return relation

    def _next_serial(self) -> int:
        self._serial += 1
        return self._serial

    async def cleanup(self) -> None:
        """Drop the temporary tables of this query (if it made any)."""
        session = self.session.opened
        if session is None:
            return
        if session.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
            await session.rollback()
        if self._serial:
            await session.execute("DISCARD TEMP")

    # ------------------------------------------------------------ levels

    async def _set_operation(self, node: exp.SetOperation, description: QueryDescription | None) -> FinalStep:
        operation = description.set_operation if description is not None else None
        left = await self.materialize(node.this, operation.left if operation else None)
        right = await self.materialize(node.expression, operation.right if operation else None)
        combined = node.copy()
        combined.set("this", self._select_all(left))
        combined.set("expression", self._select_all(right))
        return FinalStep(on_coordinator=True, sql=_pg(combined))

    async def _select(self, original: exp.Select, description: QueryDescription | None, *, final: bool) -> FinalStep:
        # A level without nested queries or uploads is planned from its SQL alone, so the
        # shape planned for the same (cached) translation is reused: no tree copies, no
        # SQL generation for a query seen before.
        reusable = description is not None and not self.relations and not self.uploads
        if reusable:
            shape = self.engine.level_shapes.get(original)
            if shape is not None:
                return await self._run_partitioned(original, shape, description, final=final)
        # Nested levels are replaced in place, so only a level that has some needs its own
        # copy; the steps below copy what they change (a copy of a wide tree costs more
        # than planning a simple level).
        select = original.copy() if _has_nested_levels(original, self._is_placeholder) else original
        await self._replace_ctes(select, description)
        await self._replace_derived_tables(select, description)
        await self._replace_expression_subqueries(select, description)
        refs = [ref for _, ref in level_tables(select)]
        kinds = {ref.table.kind for ref in refs}
        if not kinds or kinds <= {"tap_schema"}:
            return FinalStep(on_coordinator=True, sql=await self._render(select, for_workers=False))
        if "tap_schema" in kinds:
            raise unsupported_query(
                "TAP_SCHEMA lives on the coordinator and catalog tables on the workers",
                "query TAP_SCHEMA on its own",
            )
        if not kinds & set(PARTITIONED_KINDS):
            worker_sql = await self._render(select, for_workers=True)
            return self._worker_step(lambda d: d.single(worker_sql))
        shape = await self._level_shape(select, description)
        if reusable and not self.relations:
            self.engine.level_shapes.put(original, shape)
        return await self._run_partitioned(select, shape, description, final=final)

    async def _level_shape(self, select: exp.Select, description: QueryDescription | None) -> LevelShape:
        catalog = self.engine.catalog()
        schema_name = next(ref.table.schema_name for _, ref in level_tables(select) if ref.table.kind != "replicated")
        layout_info = catalog.layout(schema_name)
        layout = analyse_level(select, layout_info.overlap_deg)
        order, margin = layout_info.chunk_order, layout_info.overlap_deg
        count_answer = self._row_count_answer(select, layout)
        if count_answer is not None:
            return LevelShape(layout, order, margin, count_answer=count_answer)
        index_ranges = occurrence_ranges(description.healpix_targets) if description is not None else {}
        return LevelShape(layout, order, margin, index_ranges=index_ranges)

    async def _split_texts(self, select: exp.Select, shape: LevelShape) -> tuple[SplitQuery, str]:
        """The level's split and its worker SQL (sentinel chunk list), made once per shape."""
        if shape.split_texts is None:
            split = split_level(select)
            # split.worker is the split's own copy and is needed only for this text.
            worker = chunk_local_select(split.worker, shape.layout, shape.index_ranges, in_place=True)
            text = await self._render(worker, for_workers=True, owned=True)
            if split.merge is None and shape.whole_text is None:
                shape.whole_text = text  # a level that needs no merge is its own worker query
            shape.split_texts = (split, text)
        return shape.split_texts

    async def _whole_text(self, select: exp.Select, shape: LevelShape) -> str:
        """The level itself, chunk-local but not split (for a single chunk), made once per shape."""
        if shape.whole_text is None:
            whole = chunk_local_select(select, shape.layout, shape.index_ranges)
            shape.whole_text = await self._render(whole, for_workers=True, owned=True)
        return shape.whole_text

    async def _run_partitioned(
        self, select: exp.Select, shape: LevelShape, description: QueryDescription | None, *, final: bool
    ) -> FinalStep:
        if shape.count_answer is not None:
            return FinalStep(on_coordinator=True, sql=shape.count_answer)
        layout = shape.layout
        chunks = await self._chunk_set(layout, description, shape.chunk_order, shape.overlap_deg)
        if self.uploads:
            matched = await crossmatch_chunks(
                await self.session.get(),
                select,
                layout,
                self.uploads,
                chunk_order=shape.chunk_order,
                margin_deg=shape.overlap_deg,
            )
            if matched is not None:
                chunks = matched if chunks is None else chunks & matched
        chunk_map = self.engine.chunk_map(shape.chunk_order)
        placed = chunk_map.placed(chunks)
        if len(placed) <= 1:
            # Every row the level can see is in one chunk, so one statement on one of its
            # replicas runs the whole level (ORDER BY, aggregates and all), with no merge.
            # With no chunk at all, any worker runs it over none, so that an aggregate
            # still returns its one row and the column types are known.
            listed = ", ".join(str(int(c)) for c in placed) or "NULL"
            whole = (await self._whole_text(select, shape)).replace(CHUNK_LIST_SENTINEL, listed)
            if placed and final and not self.relations:
                self.one_chunk_statement = (whole, chunk_map.replicas[placed[0]])
            if placed:
                return self._worker_step(lambda d: d.scatter(lambda _chunk_ids: whole, placed, chunk_map))
            return self._worker_step(lambda d: d.single(whole))
        split, worker_text = await self._split_texts(select, shape)

        def sql_for(chunk_ids: Sequence[int]) -> str:
            if layout.overlap_partner and len(chunk_ids) > 1:
                # One branch per chunk: each joins one partition to one partition plus
                # its overlap, so PostgreSQL probes the GiST index per row instead of
                # joining every row of the worker's chunks on chunk_id.
                return " UNION ALL ".join(f"({sql_for([c])})" for c in chunk_ids)
            if not layout.overlap_partner and chunk_map.is_all_held(chunk_ids):
                # The worker is given every chunk it holds: its tables are read whole.
                whole_tables = whole_tables_text(worker_text)
                if CHUNK_LIST_SENTINEL not in whole_tables:
                    return whole_tables
            listed = ", ".join(str(int(c)) for c in chunk_ids) or "NULL"
            return worker_text.replace(CHUNK_LIST_SENTINEL, listed)

        step = self._worker_step(lambda d: d.scatter(sql_for, placed, chunk_map))
        if split.merge is None:
            return step
        if final and split.strategy == "cut":
            # Every worker returns at most OFFSET + LIMIT rows (the split's worker query);
            # any of them answer, so the caller cuts the stream instead of a merge.
            step.skip, step.take = split.skip, split.take
            return step
        table = f"_dms_tmp_{self._next_serial()}"
        session = await self.session.get()
        await step.gather(self.engine.dispatcher, session, table)
        types = dict(await relation_columns(session, table))
        merge_tree = parse_one(split.merge_sql(table, types), dialect="postgres")
        return FinalStep(on_coordinator=True, sql=await self._render(merge_tree, for_workers=False))

    # ------------------------------------------------------------ nested levels

    async def _replace_ctes(self, select: exp.Select, description: QueryDescription | None) -> None:
        with_clause = select.args.get("with_")
        if with_clause is None:
            return
        descriptions = {cte.name: cte.description for cte in description.ctes} if description else {}
        ctes = list(with_clause.expressions)
        select.set("with_", None)
        for index, cte in enumerate(ctes):
            name = cte.alias_or_name
            relation = await self.materialize(cte.this, descriptions.get(name))
            for target in [select, *(later.this for later in ctes[index + 1 :])]:
                for table in list(target.find_all(exp.Table)):
                    if table.name == name and not table.db and not (table._meta and table.meta.get("table_ref")):
                        alias = table.alias or name
                        table.replace(self._placeholder_subquery(relation, alias))

    async def _replace_derived_tables(self, select: exp.Select, description: QueryDescription | None) -> None:
        subqueries = description.subqueries if description else ()
        descriptions = {s.alias: s.description for s in subqueries if s.role == "from"}
        for item in _from_items(select):
            if isinstance(item, exp.Subquery) and isinstance(item.this, exp.Query) and not self._is_placeholder(item):
                relation = await self.materialize(item.this, descriptions.get(item.alias_or_name))
                item.set("this", self._placeholder_select(relation))

    async def _replace_expression_subqueries(self, select: exp.Select, description: QueryDescription | None) -> None:
        nested = [q for q in expression_subqueries(select) if not self._is_placeholder(q)]
        if not nested:
            return
        described = [s for s in description.subqueries if s.role != "from"] if description else []
        use_descriptions = len(described) == len(nested)
        for index, query in enumerate(nested):
            if query.meta.get("correlated"):
                raise unsupported_query(
                    "a correlated subquery over partitioned tables would need one query per outer row",
                    "rewrite it as a join on the director key, or as an uncorrelated IN/EXISTS subquery",
                )
            relation = await self.materialize(query, described[index].description if use_descriptions else None)
            query.replace(self._placeholder_select(relation))

    # ------------------------------------------------------------ helpers

    def _single_node(self, tree: exp.Query) -> FinalStep:
        kinds = {
            ref.table.kind
            for table in tree.find_all(exp.Table)
            if table._meta and (ref := table.meta.get("table_ref")) is not None
        }
        text = _pg(tree)
        if "replicated" in kinds and "tap_schema" in kinds:
            raise unsupported_query(
                "TAP_SCHEMA lives on the coordinator and catalog tables on the workers",
                "query TAP_SCHEMA on its own",
            )
        if "replicated" in kinds:
            return self._worker_step(lambda d: d.single(text))
        return FinalStep(on_coordinator=True, sql=text)

    @staticmethod
    def _worker_step(request: Callable[[Any], Any]) -> FinalStep:
        return FinalStep(on_coordinator=False, request=request)

    def _row_count_answer(self, select: exp.Select, layout: LevelLayout) -> str | None:
        """SQL answering ``SELECT COUNT(*) FROM partitioned_table`` from the per-chunk row counts."""
        if len(layout.partitioned) != 1 or len(level_tables(select)) != 1:
            return None
        if any(select.args.get(k) for k in ("where", "joins", "group", "having", "distinct", "offset", "with_")):
            return None
        projections = select.expressions
        if not projections or not all(
            isinstance(p, exp.Alias) and isinstance(p.this, exp.Count) and isinstance(p.this.this, exp.Star)
            for p in projections
        ):
            return None
        limit = select.args.get("limit")
        if limit is not None and _pg(limit.expression) == "0":
            return None
        ref = layout.partitioned[0]
        columns = sql.SQL(", ").join(
            sql.SQL("CAST(COALESCE(SUM(row_count), 0) AS BIGINT) AS {}").format(sql.Identifier(p.alias))
            for p in projections
        )
        query = sql.SQL("SELECT {} FROM dms.chunk_row_count WHERE schema_name = {} AND table_name = {}")
        return query.format(columns, sql.Literal(ref.table.schema_name), sql.Literal(ref.table.table_name)).as_string(
            None
        )

    async def _chunk_set(
        self, layout: LevelLayout, description: QueryDescription | None, chunk_order: int, margin_deg: float
    ) -> ChunkSet:
        if description is None:
            return None
        partitioned = {ref.occurrence for ref in layout.partitioned}
        found: dict[object, frozenset[int] | None] = {}
        for restrictor in description.director_key_restrictors:
            info = restrictor.table.table
            if restrictor.table.occurrence not in partitioned or restrictor.column != info.director_key:
                continue
            director = info.table_name if info.kind == "director" else str(info.director_table).split(".")[-1]
            query = director_lookup(info.schema_name, director, restrictor)
            if query is None:
                continue
            rows = await self.engine.dispatcher.coordinator_rows(query[0], query[1])
            found[restrictor] = frozenset(int(r[0]) for r in rows)
            self.lookups.append(Lookup(query[0], tuple(query[1]), found[restrictor]))
        grown = [ref for ref in layout.partitioned if ref.table.kind == "child"] + layout.overlap_sides()
        return chunk_set(
            description.restrictions,
            chunk_order=chunk_order,
            margin_deg=margin_deg,
            partitioned=layout.partitioned,
            grown=grown,
            director_index=lambda _ref, restrictor: found.get(restrictor),
        )

    def _ident(self, name: str) -> str:
        return sql.Identifier(name).as_string(None)

    @staticmethod
    def _select_all(relation: MaterializedRelation) -> exp.Select:
        return _select_star_from(relation.table)

    @staticmethod
    def _placeholder_select(relation: MaterializedRelation) -> exp.Select:
        return _select_star_from(relation.placeholder)

    def _placeholder_subquery(self, relation: MaterializedRelation, alias: str) -> exp.Subquery:
        return exp.Subquery(
            this=self._placeholder_select(relation), alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True))
        )

    def _is_placeholder(self, node: exp.Expr) -> bool:
        inner = node.this if isinstance(node, exp.Subquery) else node
        if not isinstance(inner, exp.Select):
            return False
        source = inner.args.get("from_")
        return source is not None and isinstance(source.this, exp.Table) and source.this.name in self.relations

    def _has_placeholders(self, tree: exp.Expr) -> bool:
        return any(table.name in self.relations for table in tree.find_all(exp.Table))

    async def _render(self, tree: exp.Expr, *, for_workers: bool, owned: bool = False) -> str:
        """The tree's SQL text with placeholders replaced: inline rows for workers, table names here.

        ``owned``: the tree is thrown away afterwards, so it is printed without a copy.
        """
        text = _pg(tree, owned=owned)
        for placeholder, relation in self.relations.items():
            quoted = self._ident(placeholder)
            if quoted not in text:
                continue
            if for_workers:
                replacement = await inline_rows(await self.session.get(), relation, self.engine.inline_row_limit)
            else:
                replacement = self._ident(relation.table)
            text = text.replace(quoted, replacement)
        return text

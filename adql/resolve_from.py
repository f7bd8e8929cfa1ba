"""Resolve the FROM clause: catalog tables, derived tables, CTEs and joins.

Part of name resolution (see :mod:`adql.resolve`): each FROM item becomes a
:class:`~adql.scope.Source` in the query's scope, tables get their physical
quoted names, USING and NATURAL joins are rewritten as ON conditions, and
the list of columns ``SELECT *`` expands to is kept in join order (merged
USING columns first, as SQL requires).
"""

from __future__ import annotations

import itertools
from typing import Any

from sqlglot import exp

from adql.catalog import Name, TableCatalog, suggest
from adql.errors import AdqlError, AdqlNameError, AdqlSyntaxError
from adql.refs import TableRef
from adql.scope import Scope, Source, SourceColumn, StarItem, column_type, name_of
from adql.types import set_type

__all__ = ["BINDING_KEY", "FromClauseResolver"]

BINDING_KEY = "adql_binding"
"""Meta key on resolved column nodes: the (Source, SourceColumn) they refer to."""


class FromClauseResolver:
    """FROM-clause half of the resolver; the other half is :class:`adql.resolve._Resolver`."""

    catalog: TableCatalog
    text: str
    table_refs: list[TableRef]
    derived_counter: itertools.count

    def error(self, error: AdqlError, node: exp.Expr) -> AdqlError:  # pragma: no cover - overridden
        raise NotImplementedError

    def expr(self, node: exp.Expr, scope: Scope, ctes: dict[str, Source], clause: str) -> exp.Expr:  # pragma: no cover
        raise NotImplementedError

    def query(self, node: Any, parent: Scope | None, ctes: dict[str, Source]) -> Any:  # pragma: no cover
        raise NotImplementedError

    def _bound(self, source: Source, column: SourceColumn) -> exp.Expr:
        node = source.column_node(column)
        node.meta[BINDING_KEY] = (source, column)
        return set_type(node, column.type)

    def from_clause(self, node: exp.Select, scope: Scope, ctes: dict[str, Source]) -> None:
        from_ = node.args["from_"]
        self.relation(from_.this, None, scope, ctes)
        for join in node.args.get("joins") or []:
            self.relation(join.this, join, scope, ctes)
        labels = [s.qualifier for s in scope.sources]
        duplicates = {q for q in labels if labels.count(q) > 1}
        if duplicates:
            qualifier = sorted(duplicates)[0]
            raise self.error(
                AdqlNameError(
                    f"{'.'.join(qualifier)} appears more than once in FROM",
                    ambiguous=True,
                    hint="give each occurrence its own alias: FROM t AS a, t AS b",
                ),
                from_,
            )

    def relation(self, relation: exp.Expr, join: exp.Join | None, scope: Scope, ctes: dict[str, Source]) -> None:
        nested = relation.args.get("joins") if isinstance(relation, exp.Table) else None
        if isinstance(relation, exp.Subquery) and isinstance(relation.this, exp.Table):
            # A parenthesized join: resolve its parts in order, keep its shape.
            inner = relation.this
            left_star = list(scope.star)
            scope.star = []
            self.relation(inner, None, scope, ctes)
            group_star = scope.star
            scope.star = left_star
            self._attach(join, scope, group_star, ctes)
            return
        if isinstance(relation, exp.Table):
            source = self.table_source(relation, scope, ctes)
        elif isinstance(relation, exp.Subquery):
            source = self.derived_source(relation, scope, ctes)
        else:
            raise self.error(AdqlSyntaxError("expected a table or a subquery"), relation)
        if nested:
            left_star = list(scope.star)
            scope.star = []
            scope.sources.append(source)
            self._attach(None, scope, self._star_of(source), ctes)
            for inner_join in nested:
                self.relation(inner_join.this, inner_join, scope, ctes)
            group_star = scope.star
            scope.star = left_star
            self._attach(join, scope, group_star, ctes)
            return
        scope.sources.append(source)
        self._attach(join, scope, self._star_of(source), ctes)

    def _star_of(self, source: Source) -> list[StarItem]:
        return [
            StarItem(
                column.name,
                column.type,
                lambda s=source, c=column: self._bound(s, c),
                source,
                column,
            )
            for column in source.columns
        ]

    def _attach(
        self,
        join: exp.Join | None,
        scope: Scope,
        right: list[StarItem],
        ctes: dict[str, Source],
    ) -> None:
        """Join ``right`` (just added to scope) to what is already in the FROM clause."""
        if join is None or join.meta.get("comma"):
            scope.star = [*scope.star, *right]
            return
        using = join.args.get("using") or []
        natural = (join.args.get("method") or "").upper() == "NATURAL"
        on = join.args.get("on")
        if on is not None:
            join.set("on", self.expr(on, scope, ctes, "on"))
            scope.star = [*scope.star, *right]
            return
        left = scope.star
        if natural:
            right_names = {item.name.lower() for item in right}
            names = [Name(item.name) for item in left if item.name.lower() in right_names]
            join.set("method", None)
        else:
            names = [name_of(identifier) for identifier in using]
        side = (join.args.get("side") or "").upper()
        conditions = []
        merged_items = []
        for name in names:
            assert name is not None
            left_item = self._star_lookup(left, name, "left", join)
            right_item = self._star_lookup(right, name, "right", join)
            conditions.append(exp.EQ(this=left_item.build(), expression=right_item.build()))
            merged_items.append(self._merged(left_item, right_item, side))
        join.meta["using"] = tuple(name.text for name in names if name is not None)
        join.meta["natural"] = natural
        join.set("using", None)
        join.set("on", exp.and_(*conditions, copy=False) if conditions else exp.true())
        merged_keys = {item.name.lower() for item in merged_items}
        for item in merged_items:
            scope.merged[item.name.lower()] = item
        scope.star = [
            *merged_items,
            *(item for item in left if item.name.lower() not in merged_keys),
            *(item for item in right if item.name.lower() not in merged_keys),
        ]

    def _star_lookup(self, items: list[StarItem], name: Name, side: str, join: exp.Join) -> StarItem:
        found = [item for item in items if name.matches(item.name)]
        if not found:
            close = suggest(name.text, [item.name for item in items])
            raise self.error(
                AdqlNameError(
                    f"join column {name} is not a column of the {side} side",
                    hint=("did you mean " + " or ".join(close) + "?") if close else None,
                ),
                join,
            )
        if len(found) > 1:
            raise self.error(
                AdqlNameError(
                    f"join column {name} is ambiguous on the {side} side",
                    ambiguous=True,
                    hint="use JOIN ... ON with qualified columns",
                ),
                join,
            )
        return found[0]

    def _merged(self, left: StarItem, right: StarItem, side: str) -> StarItem:
        if side == "FULL":

            def build() -> exp.Expr:
                coalesce = exp.Coalesce(this=left.build(), expressions=[right.build()])
                return set_type(coalesce, left.type)

            return StarItem(left.name, left.type, build, None, None)
        chosen = right if side == "RIGHT" else left
        return StarItem(left.name, chosen.type, chosen.build, chosen.source, chosen.column)

    def table_source(self, node: exp.Table, scope: Scope, ctes: dict[str, Source]) -> Source:
        table_name = name_of(node.this)
        schema_name = name_of(node.args.get("db"))
        alias_node = node.args.get("alias")
        alias = name_of(alias_node.this) if alias_node is not None else None
        assert table_name is not None
        if schema_name is None and table_name.text.lower() in ctes:
            cte = ctes[table_name.text.lower()]
            node.set("this", exp.to_identifier(cte.name, quoted=True))
            qualifier = (alias.sql_name,) if alias else cte.qualifier
            if alias:
                node.set("alias", exp.TableAlias(this=exp.to_identifier(alias.sql_name, quoted=True)))
            return Source("cte", cte.name, None, alias, qualifier, list(cte.columns))
        try:
            table = self.catalog.find_table(schema_name, table_name)
        except AdqlError as error:
            raise self.error(error, node) from None
        node.set("this", exp.to_identifier(table.table_name, quoted=True))
        node.set("db", exp.to_identifier(table.schema_name, quoted=True))
        if alias is not None:
            node.set("alias", exp.TableAlias(this=exp.to_identifier(alias.sql_name, quoted=True)))
            qualifier: tuple[str, ...] = (alias.sql_name,)
        else:
            qualifier = (table.schema_name, table.table_name)
        ref = TableRef(table, alias.sql_name if alias else None, qualifier, len(self.table_refs))
        self.table_refs.append(ref)
        node.meta["table_ref"] = ref
        columns = [SourceColumn(c.name, c.name, column_type(c), c) for c in table.columns]
        return Source("table", table.table_name, table.schema_name, alias, qualifier, columns, table, ref)

    def derived_source(self, node: exp.Subquery, scope: Scope, ctes: dict[str, Source]) -> Source:
        outputs, _ = self.query(node.this, scope.parent, ctes)
        alias_node = node.args.get("alias")
        alias = name_of(alias_node.this) if alias_node is not None else None
        sql_alias = alias.sql_name if alias else f"subquery_{next(self.derived_counter)}"
        node.set("alias", exp.TableAlias(this=exp.to_identifier(sql_alias, quoted=True)))
        columns = [SourceColumn(o.name, o.name, o.type) for o in outputs]
        return Source("derived", None, None, alias, (sql_alias,), columns)

"""Rewrite a resolved ADQL tree into PostgreSQL + pgSphere.

The rewrite is one walk over a copy of the resolved tree.  Function calls
and comparisons are handled before their operands, because their meaning
depends on the operands' ADQL form (``1 = CONTAINS(...)``, ``DISTANCE(...) <
r``, the literal arguments of ``CIRCLE``); everything else is rewritten after
its operands.  Each node's ADQL type, computed before the walk, is carried to
its replacement so later decisions (``MOD`` on integers or doubles) still
see it.  Geometry in the outermost select list becomes DALI degree arrays.
"""

from __future__ import annotations

from sqlglot import exp

from adql.errors import AdqlError, AdqlTypeError, AdqlUnsupportedError, node_span
from adql.folding import constant_string
from adql.geometry import as_double, dali_array
from adql.mathfuncs import translate_function, translate_mod
from adql.spatial import GEO_KEY, GEOMETRY_FUNCTIONS, PREDICATES, SpatialTranslator, is_call, unwrap
from adql.typecheck import check_operands, comparable
from adql.types import TYPE_KEY, AdqlType, cached_type, infer_type, set_type

__all__ = ["to_postgres"]

_COMPARISONS = (exp.EQ, exp.NEQ, exp.LT, exp.LTE, exp.GT, exp.GTE)
_MIRROR = {exp.EQ: exp.EQ, exp.NEQ: exp.NEQ, exp.LT: exp.GT, exp.LTE: exp.GTE, exp.GT: exp.LT, exp.GTE: exp.LTE}
_BITWISE = (exp.BitwiseAnd, exp.BitwiseOr, exp.BitwiseXor, exp.BitwiseNot)
#: Nodes no rule rewrites or checks (and whose children are identifiers): most of a wide
#: select list, skipped without the rules' type tests.
_AS_THEY_ARE = (exp.Identifier, exp.Column, exp.Star)


def _carry(old: exp.Expr, new: exp.Expr) -> exp.Expr:
    """Give ``new`` the ADQL type and source position of ``old``."""
    if new is old:
        return new
    meta = old._meta
    if meta:
        for key in (TYPE_KEY, "start", "end"):
            if key in meta and key not in new.meta:
                new.meta[key] = meta[key]
    return new


def _zero_or_one(node: exp.Expr) -> int | None:
    node = unwrap(node)
    if isinstance(node, exp.Literal) and node.is_int and node.this in ("0", "1"):
        return int(node.this)
    return None


def _annotate(tree: exp.Expr) -> None:
    for node in tree.walk():
        if isinstance(node, (exp.Identifier, exp.DataType, exp.DataTypeParam, exp.TableAlias)):
            continue
        if isinstance(node, (exp.Table, exp.From, exp.Join, exp.Where, exp.Group, exp.Having, exp.Order)):
            continue
        if isinstance(node, (exp.Limit, exp.Offset, exp.With, exp.CTE, exp.Ordered, exp.Query)):
            continue
        infer_type(node)


class _Rewriter:
    def __init__(self, text: str) -> None:
        self.text = text
        self.spatial = SpatialTranslator(text, self.scalar)

    def fail(self, error: AdqlError, node: exp.Expr) -> AdqlError:
        return error.with_position(self.text, node_span(node))

    def scalar(self, node: exp.Expr) -> exp.Expr:
        """Translate a (copy of a) non-geometry ADQL expression."""
        copy = node.copy()
        return _carry(node, self.visit(copy))

    # ------------------------------------------------------------------ walk

    def visit(self, node: exp.Expr) -> exp.Expr:
        if isinstance(node, _AS_THEY_ARE) or (node._meta and node._meta.get("pg_done")):
            return node
        problem = check_operands(node)
        if problem is not None:
            raise self.fail(AdqlTypeError(problem[0], hint=problem[1]), node)
        if isinstance(node, exp.Join) and (node.args.get("side") or "").upper() == "FULL":
            _check_full_join(node, self)
        if isinstance(node, exp.Anonymous):
            return _carry(node, self.call(node))
        if isinstance(node, _COMPARISONS):
            special = self.special_comparison(node)
            if special is not None:
                return _carry(node, special)
        for child in list(node.iter_expressions()):
            # Remember the slot first: a rule may wrap the child in a new
            # node, which moves it.
            key, index = child.arg_key, child.index
            new = self.visit(child)
            if new is not child:
                node.set(key, _carry(child, new), index=index)
        return _carry(node, self.after(node))

    def after(self, node: exp.Expr) -> exp.Expr:
        if isinstance(node, (exp.Where, exp.Having)):
            self.require_condition(node.this, "WHERE" if isinstance(node, exp.Where) else "HAVING")
        elif isinstance(node, exp.Join) and node.args.get("on") is not None:
            self.require_condition(node.args["on"], "ON")
        elif isinstance(node, (exp.And, exp.Or)):
            self.require_condition(node.this, node.key.upper())
            self.require_condition(node.expression, node.key.upper())
        elif isinstance(node, exp.Not):
            self.require_condition(node.this, "NOT")
        elif isinstance(node, exp.Mod):
            left, right = infer_type(node.this), infer_type(node.expression)
            self.require_numeric(node, [left, right], "%")
            return translate_mod(node.this, node.expression, left.is_integer and right.is_integer)
        elif isinstance(node, _BITWISE):
            operands = [node.this] if isinstance(node, exp.BitwiseNot) else [node.this, node.expression]
            for operand in operands:
                operand_type = infer_type(operand)
                if not (operand_type.is_integer or operand_type.is_unknown):
                    raise self.fail(
                        AdqlTypeError(
                            f"bitwise operators need integers but were given {operand_type.describe()}",
                            hint="CAST the operand to BIGINT",
                        ),
                        node,
                    )
        elif isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Neg)):
            operands = [node.this] if isinstance(node, exp.Neg) else [node.this, node.expression]
            self.require_numeric(node, [infer_type(o) for o in operands], node.key)
        elif isinstance(node, (exp.Like, exp.ILike)):
            for operand in (node.this, node.expression):
                operand_type = infer_type(operand)
                if not (operand_type.is_string or operand_type.is_unknown):
                    raise self.fail(
                        AdqlTypeError(
                            f"LIKE compares strings but was given {operand_type.describe()}",
                            hint="CAST the value to VARCHAR first",
                        ),
                        operand,
                    )
            # ADQL patterns have no escape character; PostgreSQL's default is '\'.
            return exp.Escape(this=node, expression=exp.Literal.string(""))
        elif isinstance(node, exp.Avg):
            # PostgreSQL's avg of integers is numeric; ADQL's is a double.
            return as_double(node)
        return node

    def require_numeric(self, node: exp.Expr, types: list[AdqlType], operator: str) -> None:
        for operand_type in types:
            if operand_type.is_numeric or operand_type.is_unknown:
                continue
            raise self.fail(
                AdqlTypeError(
                    f"arithmetic needs numbers but was given {operand_type.describe()}",
                    hint="use || to join strings; CAST strings to numbers",
                ),
                node,
            )

    def require_condition(self, node: exp.Expr, where: str) -> None:
        value_type = cached_type(node) or infer_type(node)
        if value_type.is_boolean or value_type.is_unknown:
            return
        if is_call(node, *PREDICATES) or (isinstance(node, exp.Cast) and node.meta.get("predicate")):
            hint = "compare the result with 1, e.g. 1 = CONTAINS(POINT(ra, dec), CIRCLE(10, 20, 0.5))"
        else:
            hint = "write a comparison such as x > 0"
        raise self.fail(
            AdqlTypeError(f"{where} needs a condition but was given {value_type.describe()}", hint=hint),
            node,
        )

    # ---------------------------------------------------------------- calls

    def call(self, node: exp.Anonymous) -> exp.Expr:
        name = node.name.upper()
        if name in GEOMETRY_FUNCTIONS:
            value = self.spatial.geo(node)
            if value.sql is None:
                raise self.fail(
                    AdqlTypeError(
                        "a compound REGION can only be used inside CONTAINS or INTERSECTS",
                        hint="write 1 = CONTAINS(POINT(ra, dec), REGION('Union ...'))",
                    ),
                    node,
                )
            result = value.sql.copy()
            result.meta[GEO_KEY] = value
            return result
        if name in PREDICATES:
            predicate = self.spatial.predicate(node)
            result = exp.Cast(this=exp.Paren(this=predicate), to=exp.DataType.build("int"))
            result.meta["predicate"] = True
            return result
        if name == "DISTANCE":
            return self.spatial.distance(node)
        if name in ("AREA", "COORD1", "COORD2", "COORDSYS"):
            return self.geometry_scalar(name, node)
        args = list(node.expressions)
        types = [infer_type(arg) for arg in args]
        literal_second = constant_string(args[1]) if len(args) > 1 else None
        translated = [self.scalar(arg) for arg in args]
        try:
            return translate_function(name, translated, types, literal_second)
        except AdqlError as error:
            raise self.fail(error, node) from None

    def geometry_scalar(self, name: str, node: exp.Anonymous) -> exp.Expr:
        from adql.geometry import fn

        value = self.spatial.geo(node.expressions[0])
        if name == "COORDSYS":
            return exp.Literal.string("ICRS")
        if name in ("COORD1", "COORD2"):
            if value.kind != "point":
                raise self.fail(
                    AdqlTypeError(
                        f"{name} needs a POINT but was given a {value.kind.upper()}",
                        hint=f"use {name}(CENTROID(...)) for the centre of a region",
                    ),
                    node,
                )
            return fn("degrees", fn("long" if name == "COORD1" else "lat", value.sql))  # type: ignore[arg-type]
        if value.kind == "point":
            return as_double(exp.Literal.number(0))
        if value.kind == "region":
            raise self.fail(
                AdqlTypeError("AREA of a compound REGION is not supported", hint="add the areas of its parts"),
                node,
            )
        return fn("degrees", fn("degrees", fn("area", value.sql)))  # type: ignore[arg-type]

    # ---------------------------------------------------------- comparisons

    def special_comparison(self, node: exp.Expr) -> exp.Expr | None:
        cls = type(node)
        left, right = node.this, node.expression
        for call, other, op in ((left, right, cls), (right, left, _MIRROR[cls])):
            if is_call(call, *PREDICATES) and op in (exp.EQ, exp.NEQ):
                truth = _zero_or_one(other)
                if truth is None:
                    continue
                predicate = self.spatial.predicate(unwrap(call))
                if (truth == 1) == (op is exp.EQ):
                    return exp.Paren(this=predicate)
                return exp.Not(this=exp.Paren(this=predicate))
            if is_call(call, "DISTANCE") and op in (exp.LT, exp.LTE):
                return self.spatial.distance_within(unwrap(call), other, strict=op is exp.LT)
        for side, other in ((left, right), (right, left)):
            truth = _zero_or_one(other)
            if truth is not None and infer_type(side).is_boolean and cls in (exp.EQ, exp.NEQ):
                translated = self.scalar(side)
                value = exp.Boolean(this=truth == 1)
                return cls(this=translated, expression=value)
        left_type, right_type = infer_type(left), infer_type(right)
        if not comparable(left, right):
            raise self.fail(
                AdqlTypeError(
                    f"cannot compare {left_type.describe()} with {right_type.describe()}",
                    hint="CAST one side so both have the same type",
                ),
                node,
            )
        return None


def _dali_projections(select: exp.Select, rewriter: _Rewriter) -> None:
    for projection in select.expressions:
        value = projection.this
        kind = infer_type(value).geometry
        if kind is None:
            continue
        geo = rewriter.spatial.geo(value)
        if geo.sql is None:
            raise rewriter.fail(
                AdqlTypeError("a compound REGION cannot be returned as a column", hint="select its parts instead"),
                value,
            )
        try:
            array = dali_array(geo)
        except AdqlError as error:
            raise rewriter.fail(error, value) from None
        new = set_type(array, infer_type(value))
        new.meta["pg_done"] = True
        value.replace(new)


def _check_full_join(join: exp.Join, rewriter: _Rewriter) -> None:
    """Refuse FULL joins PostgreSQL cannot execute.

    PostgreSQL runs a FULL JOIN only as a merge or hash join, so its ON
    condition needs an equality between the two sides at the top level.
    """
    on = join.args.get("on")
    conjuncts = list(on.flatten()) if isinstance(on, exp.And) else [on]
    for conjunct in conjuncts:
        conjunct = unwrap(conjunct)
        if isinstance(conjunct, exp.EQ) and all(
            any(isinstance(n, exp.Column) for n in side.walk()) for side in (conjunct.this, conjunct.expression)
        ):
            return
    raise rewriter.fail(
        AdqlUnsupportedError(
            "FULL OUTER JOIN needs an equality between the two tables in its ON condition",
            feature="FULL OUTER JOIN",
            hint="add a condition such as a.id = b.id, or use LEFT JOIN ... UNION ... RIGHT JOIN",
        ),
        join,
    )


def _check_geometry_ordering(tree: exp.Query, rewriter: _Rewriter) -> None:
    """Refuse to sort or compare pgSphere values, which have no ordering.

    Geometry in the outermost select list becomes arrays, which PostgreSQL
    can sort and compare; elsewhere DISTINCT, GROUP BY, ORDER BY and
    UNION/INTERSECT/EXCEPT on a geometry would fail inside the database.
    """
    top = {id(select) for select in _top_selects(tree)}

    def refuse(node: exp.Expr, what: str) -> AdqlError:
        return rewriter.fail(
            AdqlTypeError(
                f"{what} cannot use geometry values here",
                hint="compare coordinates instead, e.g. COORD1(p) and COORD2(p), or use the outermost select list",
            ),
            node,
        )

    for node in tree.walk():
        if isinstance(node, exp.Select) and id(node) not in top:
            if node.args.get("distinct") is not None:
                for projection in node.expressions:
                    if infer_type(projection).geometry:
                        raise refuse(projection, "SELECT DISTINCT")
            parent = node.parent
            while isinstance(parent, exp.Subquery):
                parent = parent.parent
            if isinstance(parent, exp.SetOperation) and parent.args.get("distinct"):
                for projection in node.expressions:
                    if infer_type(projection).geometry:
                        raise refuse(projection, parent.key.upper())
        elif isinstance(node, exp.Group):
            for term in node.expressions:
                if infer_type(term).geometry:
                    raise refuse(term, "GROUP BY")
        elif isinstance(node, exp.Ordered):
            if not node.this.meta.get("output_ref") and infer_type(node.this).geometry:
                raise refuse(node, "ORDER BY")
        elif isinstance(node, exp.Distinct) and isinstance(node.parent, exp.AggFunc):
            for term in node.expressions:
                if infer_type(term).geometry:
                    raise refuse(term, "an aggregate with DISTINCT")
        elif isinstance(node, exp.In) and infer_type(node.this).geometry:
            raise refuse(node, "IN")


def _top_selects(query: exp.Query) -> list[exp.Select]:
    if isinstance(query, exp.Select):
        return [query]
    if isinstance(query, exp.SetOperation):
        return [*_top_selects(query.left), *_top_selects(query.right)]
    if isinstance(query, exp.Subquery):
        return _top_selects(query.this)
    return []


def to_postgres(tree: exp.Query, text: str = "", *, in_place: bool = False) -> exp.Query:
    """Rewrite a resolved ADQL query into PostgreSQL with pgSphere.

    Parameters
    ----------
    tree
        Output of :func:`adql.resolve.resolve` (not modified, unless ``in_place``).
    text
        Query text, for error positions.
    in_place
        Rewrite ``tree`` itself rather than a copy (for a caller that owns the tree).

    Returns
    -------
    sqlglot.exp.Query
        The PostgreSQL tree.

    Examples
    --------
    >>> from adql.catalog import ColumnInfo, TableCatalog, TableInfo
    >>> from adql.dialect import parse_adql
    >>> from adql.resolve import resolve
    >>> t = TableInfo("s", "t", (ColumnInfo("ra", "double"), ColumnInfo("dec", "double")))
    >>> adql = "SELECT LOG(ra) FROM s.t WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE(10, 20, 1))"
    >>> print(to_postgres(resolve(parse_adql(adql), TableCatalog([t])).tree).sql("postgres", pretty=True))
    SELECT
      LN("s"."t"."ra") AS "log"
    FROM "s"."t"
    WHERE
      (
        SPOINT(RADIANS("s"."t"."ra"), RADIANS("s"."t"."dec")) <@ SCIRCLE(SPOINT(RADIANS(10), RADIANS(20)), RADIANS(1))
      )
    """
    copy = tree if in_place else tree.copy()
    _annotate(copy)
    rewriter = _Rewriter(text)
    _check_geometry_ordering(copy, rewriter)
    for select in _top_selects(copy):
        _dali_projections(select, rewriter)
    result = rewriter.visit(copy)
    assert isinstance(result, exp.Query)
    return result

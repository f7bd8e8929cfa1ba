"""Reject what sqlglot parsed but ADQL does not allow.

The dialect's parser is narrower than sqlglot's but still a general SQL
parser; this module walks the parse tree once and checks every node against
ADQL 2.1: only known node types and clause slots, ``TOP`` and ``OFFSET`` with
unsigned integers, functions from :data:`adql.functions.FUNCTIONS` with the
right number of arguments, and optional features only when they are enabled.
It also reports which optional features the query uses.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from sqlglot import exp

from adql.dialect import is_regular_identifier
from adql.errors import AdqlError, AdqlSyntaxError, AdqlUnsupportedError, node_span
from adql.functions import AGGREGATES, ALL_FEATURES, FUNCTIONS, OPERATOR_FEATURES, UDF, Feature

__all__ = ["MAX_DEPTH", "balance_connectors", "check_grammar"]

MAX_DEPTH = 250
"""Deepest expression tree accepted (after AND/OR chains are balanced)."""

_ALLOWED_ARGS: dict[type[exp.Expr], frozenset[str]] = {
    exp.Select: frozenset(
        {"expressions", "distinct", "limit", "from_", "joins", "where", "group", "having", "order"}
        | {"offset", "with_"}
    ),
    exp.Union: frozenset({"this", "expression", "distinct", "order", "offset", "limit", "with_"}),
    exp.Intersect: frozenset({"this", "expression", "distinct", "order", "offset", "limit", "with_"}),
    exp.Except: frozenset({"this", "expression", "distinct", "order", "offset", "limit", "with_"}),
    exp.Subquery: frozenset({"this", "alias", "order", "offset", "limit"}),
    exp.From: frozenset({"this"}),
    exp.Join: frozenset({"this", "on", "side", "kind", "using", "method"}),
    exp.Table: frozenset({"this", "db", "catalog", "alias", "joins"}),
    exp.TableAlias: frozenset({"this", "columns"}),
    exp.Where: frozenset({"this"}),
    exp.Group: frozenset({"expressions"}),
    exp.Having: frozenset({"this"}),
    exp.Order: frozenset({"expressions"}),
    exp.Ordered: frozenset({"this", "desc", "nulls_first"}),
    exp.Limit: frozenset({"expression"}),
    exp.Offset: frozenset({"expression"}),
    exp.With: frozenset({"expressions"}),
    exp.CTE: frozenset({"this", "alias"}),
    exp.Column: frozenset({"this", "table", "db", "catalog"}),
    exp.Identifier: frozenset({"this", "quoted"}),
    exp.Star: frozenset(),
    exp.Alias: frozenset({"this", "alias"}),
    exp.Literal: frozenset({"this", "is_string"}),
    exp.Boolean: frozenset({"this"}),
    exp.Null: frozenset(),
    exp.Paren: frozenset({"this"}),
    exp.Not: frozenset({"this"}),
    exp.Neg: frozenset({"this"}),
    exp.BitwiseNot: frozenset({"this"}),
    exp.Between: frozenset({"this", "low", "high"}),
    exp.In: frozenset({"this", "expressions", "query"}),
    exp.Is: frozenset({"this", "expression"}),
    exp.Like: frozenset({"this", "expression", "negate"}),
    exp.ILike: frozenset({"this", "expression", "negate"}),
    exp.Exists: frozenset({"this"}),
    exp.Count: frozenset({"this", "big_int"}),
    exp.Sum: frozenset({"this"}),
    exp.Avg: frozenset({"this"}),
    exp.Min: frozenset({"this"}),
    exp.Max: frozenset({"this"}),
    exp.Distinct: frozenset({"expressions"}),
    exp.Anonymous: frozenset({"this", "expressions"}),
    exp.Cast: frozenset({"this", "to"}),
    exp.DataType: frozenset({"this", "expressions", "nested"}),
    exp.DataTypeParam: frozenset({"this"}),
    exp.Case: frozenset({"this", "ifs", "default"}),
    exp.If: frozenset({"this", "true"}),
}
_BINARY = (
    exp.And,
    exp.Or,
    exp.EQ,
    exp.NEQ,
    exp.LT,
    exp.LTE,
    exp.GT,
    exp.GTE,
    exp.Add,
    exp.Sub,
    exp.Mul,
    exp.Div,
    exp.Mod,
    exp.DPipe,
    exp.BitwiseAnd,
    exp.BitwiseOr,
    exp.BitwiseXor,
)
for _cls in _BINARY:
    _ALLOWED_ARGS[_cls] = frozenset({"this", "expression"})
_ALLOWED_ARGS[exp.DPipe] = frozenset({"this", "expression", "safe"})
_ALLOWED_ARGS[exp.Div] = frozenset({"this", "expression", "typed", "safe"})

_NOT_ADQL = {
    exp.Bracket: ("array subscripts", "ADQL has no arrays"),
    exp.All: ("quantified comparisons (ALL)", "use MAX/MIN in a subquery or IN"),
    exp.Any: ("quantified comparisons (ANY/SOME)", "use IN or EXISTS"),
    exp.Tuple: ("row values", "compare one value at a time"),
    exp.Window: ("window functions (OVER)", "ADQL has no window functions"),
    exp.Lateral: ("LATERAL", "use a join"),
    exp.Values: ("VALUES lists", "upload the values as a table"),
    exp.Escape: ("LIKE ... ESCAPE", "ADQL patterns have no escape character"),
    exp.Dot: ("dotted expressions", "qualify columns as table.column"),
    exp.Interval: ("INTERVAL", "compare numbers or timestamps"),
}

_CAST_TYPES = {
    exp.DataType.Type.SMALLINT,
    exp.DataType.Type.INT,
    exp.DataType.Type.BIGINT,
    exp.DataType.Type.FLOAT,
    exp.DataType.Type.DOUBLE,
    exp.DataType.Type.CHAR,
    exp.DataType.Type.VARCHAR,
    exp.DataType.Type.TIMESTAMP,
}

_BITWISE_FEATURE = {
    exp.BitwiseAnd: "BIT_AND",
    exp.BitwiseOr: "BIT_OR",
    exp.BitwiseXor: "BIT_XOR",
    exp.BitwiseNot: "BIT_NOT",
}
_SET_FEATURE = {exp.Union: "UNION", exp.Intersect: "INTERSECT", exp.Except: "EXCEPT"}


class _Checker:
    def __init__(self, text: str, features: frozenset[Feature]) -> None:
        self.text = text
        self.features = features
        self.used: set[Feature] = set()

    def fail(self, error_type: type[AdqlError], message: str, node: exp.Expr, hint: str | None = None):
        return error_type(message, query=self.text, span=node_span(node), hint=hint)

    def require(self, feature: Feature, node: exp.Expr) -> None:
        if feature not in self.features:
            raise AdqlUnsupportedError(
                f"{feature.form} ({feature.type}) is not supported by this service",
                feature=feature.key,
                query=self.text,
                span=node_span(node),
                hint="see the service capabilities for the supported ADQL features",
            )
        self.used.add(feature)

    def check(self, tree: exp.Expr) -> None:
        for node in tree.walk():
            self.check_node(node)

    def check_node(self, node: exp.Expr) -> None:
        cls = type(node)
        if cls in _NOT_ADQL:
            what, hint = _NOT_ADQL[cls]
            raise self.fail(AdqlUnsupportedError, f"{what} are not ADQL", node, hint)
        allowed = _ALLOWED_ARGS.get(cls)
        if allowed is None:
            name = node.key.upper()
            raise self.fail(AdqlUnsupportedError, f"{name} is not ADQL", node, None)
        for key, value in node.args.items():
            if key not in allowed and value not in (None, False, []):
                raise self.fail(
                    AdqlUnsupportedError,
                    f"{key.upper().rstrip('_')} in {node.key.upper()} is not ADQL",
                    node,
                    None,
                )
        method = getattr(self, f"check_{cls.__name__.lower()}", None)
        if method is not None:
            method(node)
        if cls in _BITWISE_FEATURE:
            self.require(OPERATOR_FEATURES[_BITWISE_FEATURE[cls]], node)
        if cls in _SET_FEATURE:
            self.require(OPERATOR_FEATURES[_SET_FEATURE[cls]], node)
            for operand in (node.left, node.right):
                if isinstance(operand, exp.Select) and (operand.args.get("order") or operand.args.get("offset")):
                    clause = operand.args.get("order") or operand.args.get("offset")
                    raise self.fail(
                        AdqlSyntaxError,
                        f"ORDER BY or OFFSET inside {node.key.upper()} applies to the whole result",
                        clause,
                        "put the query in parentheses to order it on its own, or move ORDER BY after the last query",
                    )

    def check_select(self, node: exp.Select) -> None:
        if not node.expressions:
            raise self.fail(AdqlSyntaxError, "the select list is empty", node, "name the columns to return")
        if not node.args.get("from_"):
            raise self.fail(
                AdqlSyntaxError,
                "ADQL requires a FROM clause",
                node,
                "add FROM with a table, e.g. FROM TAP_SCHEMA.tables",
            )
        for projection in node.expressions:
            if isinstance(projection, exp.Star) and len(node.expressions) > 1:
                raise self.fail(
                    AdqlSyntaxError, "'*' cannot be combined with other columns", projection, "use t.* instead"
                )
        group = node.args.get("group")
        if group is not None and not any(
            group.args.get(key) for key in ("expressions", "grouping_sets", "cube", "rollup")
        ):
            raise self.fail(
                AdqlSyntaxError, "GROUP BY names no column", group, "list the columns to group by, or drop GROUP BY"
            )
        distinct = node.args.get("distinct")
        if distinct is not None and (distinct.expressions or distinct.args.get("on")):
            raise self.fail(AdqlUnsupportedError, "DISTINCT ON is not ADQL", distinct, "use GROUP BY")

    def check_limit(self, node: exp.Limit) -> None:
        if not node.meta.get("top"):
            raise self.fail(AdqlUnsupportedError, "LIMIT is not ADQL", node, "write SELECT TOP n ...")
        self._unsigned_integer(node.expression, "TOP")

    def check_offset(self, node: exp.Offset) -> None:
        self.require(OPERATOR_FEATURES["OFFSET"], node)
        self._unsigned_integer(node.expression, "OFFSET")

    def _unsigned_integer(self, value: exp.Expr | None, clause: str) -> None:
        if not (isinstance(value, exp.Literal) and value.is_int and int(value.this) >= 0):
            raise self.fail(
                AdqlSyntaxError,
                f"{clause} needs an unsigned integer",
                value if value is not None else exp.Null(),
                f"write {clause} 10",
            )

    def check_with(self, node: exp.With) -> None:
        self.require(OPERATOR_FEATURES["WITH"], node)
        if node.args.get("recursive"):
            raise self.fail(AdqlUnsupportedError, "recursive WITH is not ADQL", node)

    def check_cast(self, node: exp.Cast) -> None:
        self.require(OPERATOR_FEATURES["CAST"], node)
        target = node.args.get("to")
        if not isinstance(target, exp.DataType) or target.this not in _CAST_TYPES:
            shown = target.sql() if isinstance(target, exp.Expr) else "?"
            raise self.fail(
                AdqlUnsupportedError,
                f"CAST to {shown} is not supported",
                node,
                "cast to SMALLINT, INTEGER, BIGINT, REAL, DOUBLE PRECISION, CHAR(n), VARCHAR(n) or TIMESTAMP",
            )

    def check_datatype(self, node: exp.DataType) -> None:
        if not isinstance(node.parent, exp.Cast):
            raise self.fail(AdqlSyntaxError, "a type name is only allowed in CAST", node)

    def check_ilike(self, node: exp.ILike) -> None:
        self.require(OPERATOR_FEATURES["ILIKE"], node)

    def check_is(self, node: exp.Is) -> None:
        if not isinstance(node.expression, exp.Null):
            raise self.fail(AdqlUnsupportedError, "only IS [NOT] NULL is ADQL", node, "compare with = instead")

    def check_star(self, node: exp.Star) -> None:
        parent = node.parent
        if isinstance(parent, exp.Column):
            parent = parent.parent
        if not isinstance(parent, (exp.Select, exp.Count)):
            raise self.fail(AdqlSyntaxError, "'*' is only allowed in the select list and COUNT(*)", node)

    def check_alias(self, node: exp.Alias) -> None:
        if not isinstance(node.parent, exp.Select):
            raise self.fail(AdqlSyntaxError, "AS aliases are only allowed in the select list", node)

    def check_identifier(self, node: exp.Identifier) -> None:
        if not node.quoted and not is_regular_identifier(node.name):
            raise self.fail(
                AdqlSyntaxError,
                f"{node.name!r} is not a valid identifier",
                node,
                'identifiers start with a letter; put other names in double quotes, e.g. "2mass"',
            )

    def check_tablealias(self, node: exp.TableAlias) -> None:
        if node.args.get("columns") and not isinstance(node.parent, exp.CTE):
            raise self.fail(AdqlUnsupportedError, "column aliases for tables are not ADQL", node)

    def _check_parts(self, node: exp.Expr, keys: tuple[str, ...], what: str) -> None:
        for key in keys:
            part = node.args.get(key)
            if part is None:
                continue
            if isinstance(part, exp.Star) and key == "this" and isinstance(node, exp.Column):
                continue
            if not isinstance(part, exp.Identifier) or not part.name:
                raise self.fail(AdqlSyntaxError, f"incomplete {what} name", node, "names look like schema.table.column")

    def check_table(self, node: exp.Table) -> None:
        self._check_parts(node, ("this", "db", "catalog"), "table")
        if node.args.get("catalog"):
            raise self.fail(
                AdqlUnsupportedError,
                "catalog-qualified table names are not supported",
                node,
                "write schema.table",
            )

    def check_column(self, node: exp.Column) -> None:
        self._check_parts(node, ("this", "table", "db", "catalog"), "column")
        if node.args.get("catalog"):
            raise self.fail(
                AdqlUnsupportedError, "column references have at most three parts", node, "write table.column"
            )

    def check_join(self, node: exp.Join) -> None:
        kind = (node.args.get("kind") or "").upper()
        method = (node.args.get("method") or "").upper()
        if node.meta.get("comma"):
            return
        if kind == "CROSS":
            raise self.fail(
                AdqlUnsupportedError,
                "CROSS JOIN is not ADQL",
                node,
                "list the tables separated by commas: FROM a, b",
            )
        if kind not in ("", "INNER", "OUTER"):
            raise self.fail(AdqlUnsupportedError, f"{kind} JOIN is not ADQL", node)
        if method not in ("", "NATURAL"):
            raise self.fail(AdqlUnsupportedError, f"{method} JOIN is not ADQL", node)
        if kind == "OUTER" and not node.args.get("side"):
            raise self.fail(AdqlSyntaxError, "OUTER JOIN needs LEFT, RIGHT or FULL", node)
        has_condition = bool(node.args.get("on") or node.args.get("using"))
        if method == "NATURAL" and has_condition:
            raise self.fail(AdqlSyntaxError, "a NATURAL JOIN cannot have ON or USING", node)
        if method != "NATURAL" and not has_condition and not node.meta.get("comma"):
            raise self.fail(
                AdqlSyntaxError,
                "JOIN needs an ON or USING condition",
                node,
                "write JOIN t2 ON t1.id = t2.id, or use a comma for a cross product",
            )

    def check_anonymous(self, node: exp.Anonymous) -> None:
        name = node.name.upper()
        if isinstance(node.this, exp.Identifier) or not is_regular_identifier(node.name):
            raise self.fail(AdqlSyntaxError, f"{node.name!r} is not a valid function name", node)
        spec = FUNCTIONS.get(name)
        if spec is None:
            candidates = [*FUNCTIONS, *AGGREGATES]
            close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
            hint = f"did you mean {', '.join(close)}?" if close else "see the service capabilities for functions"
            raise AdqlUnsupportedError(
                f"{node.name}() is not an ADQL function supported by this service",
                feature=f"{UDF}!{name}",
                query=self.text,
                span=node_span(node),
                hint=hint,
            )
        if spec.feature is not None:
            self.require(spec.feature, node)
        count = len(node.expressions)
        if not spec.accepts(count):
            raise self.fail(
                AdqlSyntaxError,
                f"{name} takes {_arity(spec)} but was given {count}",
                node,
                f"write {spec.signature}",
            )
        for argument in node.expressions:
            if isinstance(argument, exp.Star):
                raise self.fail(AdqlSyntaxError, f"'*' is not a valid argument of {name}", argument)


def _arity(spec) -> str:
    if spec.arg_counts is not None:
        counts = " or ".join(str(c) for c in spec.arg_counts)
        return f"{counts} arguments"
    if spec.max_args == spec.min_args:
        return f"{spec.min_args} argument{'s' if spec.min_args != 1 else ''}"
    if spec.max_args is None:
        return f"at least {spec.min_args} arguments"
    return f"{spec.min_args} to {spec.max_args} arguments"


def _balanced(cls: type[exp.Connector], operands: list[exp.Expr]) -> exp.Expr:
    if len(operands) == 1:
        return operands[0]
    middle = len(operands) // 2
    return cls(this=_balanced(cls, operands[:middle]), expression=_balanced(cls, operands[middle:]))


def balance_connectors(tree: exp.Expr, *, in_place: bool = False) -> exp.Expr:
    """Return a copy of ``tree`` (or ``tree`` itself, ``in_place``) whose long AND/OR chains are balanced trees.

    The parser builds ``a OR b OR c ...`` as a left-deep tree, as deep as
    the chain is long; a few hundred terms would exhaust Python's recursion
    limit in the rules that walk the tree recursively.  AND and OR are
    associative, so a balanced tree means the same and is only log2(n) deep.

    >>> from adql.dialect import parse_adql
    >>> tree = balance_connectors(parse_adql("SELECT a FROM t WHERE a=1 OR a=2 OR a=3 OR a=4 OR a=5"))
    >>> condition = tree.find(exp.Where).this
    >>> [type(side).__name__ for side in (condition.this, condition.expression)]
    ['Or', 'Or']
    >>> tree.sql()
    'SELECT a FROM t WHERE a = 1 OR a = 2 OR a = 3 OR a = 4 OR a = 5'
    """
    copy = tree if in_place else tree.copy()
    chains = [
        node for node in copy.walk() if isinstance(node, (exp.And, exp.Or)) and not isinstance(node.parent, type(node))
    ]
    for node in chains:
        operands = list(node.flatten())
        if len(operands) <= 4:
            continue
        balanced = _balanced(type(node), operands)
        if node is copy:
            copy = balanced
        else:
            node.replace(balanced)
    return copy


def _check_depth(tree: exp.Expr, text: str) -> None:
    depths: dict[int, int] = {}
    for node in tree.walk():
        depth = depths.get(id(node.parent), 0) + 1 if node.parent is not None else 1
        depths[id(node)] = depth
        if depth > MAX_DEPTH:
            raise AdqlSyntaxError(
                f"the query is nested more than {MAX_DEPTH} levels deep",
                query=text,
                span=node_span(node),
                hint="simplify it: use IN (...) instead of long OR chains, or upload a table of values",
            )


def check_grammar(tree: exp.Expr, text: str, features: Iterable[Feature] | None = None) -> frozenset[Feature]:
    """Check a parsed query against ADQL 2.1 and the enabled features.

    Parameters
    ----------
    tree
        Output of :func:`adql.dialect.parse_adql`.
    text
        The query text, for error positions.
    features
        Enabled optional features; default all that are implemented.

    Returns
    -------
    frozenset of Feature
        The optional features the query uses.

    Raises
    ------
    AdqlSyntaxError, AdqlUnsupportedError
        At the first construct that is not ADQL or not enabled.

    Examples
    --------
    >>> from adql.dialect import parse_adql
    >>> sorted(f.form for f in check_grammar(parse_adql(
    ...     "SELECT a FROM t WHERE 1=CONTAINS(POINT(a,b), CIRCLE(1,2,3)) OFFSET 2"), ""))
    ['CIRCLE', 'CONTAINS', 'OFFSET', 'POINT']
    """
    _check_depth(tree, text)
    checker = _Checker(text, frozenset(ALL_FEATURES if features is None else features))
    checker.check(tree)
    return frozenset(checker.used)

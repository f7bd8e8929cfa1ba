"""ADQL value types: VOTable datatype plus xtype, and their inference.

Result columns need VOTable metadata, the geometry rules need to know whether
an operand is a point or a polygon, and ``MOD`` or ``ROUND`` translate
differently for integers and doubles.  :class:`AdqlType` carries what is known
about a value; :func:`infer_type` computes it bottom-up for an ADQL
expression whose column references the resolver has annotated.  Types are
cached in node meta under ``adql_type`` so that later rules which replace a
node can carry the ADQL type over to its PostgreSQL replacement.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlglot import exp

from adql.functions import FUNCTIONS

__all__ = [
    "BOOLEAN",
    "CIRCLE",
    "DOUBLE",
    "INT",
    "LONG",
    "POINT",
    "POLYGON",
    "REGION",
    "STRING",
    "TIMESTAMP",
    "UNKNOWN",
    "AdqlType",
    "infer_type",
    "set_type",
]

TYPE_KEY = "adql_type"

_INTEGERS = ("unsignedByte", "short", "int", "long")
_NUMBERS = (*_INTEGERS, "float", "double")
_GEOMETRIES = ("point", "circle", "polygon", "box", "region")


@dataclass(frozen=True)
class AdqlType:
    """What is known about a value's type and metadata.

    Attributes
    ----------
    datatype
        VOTable datatype, or None when unknown (a bare NULL).
    arraysize
        VOTable arraysize, None for scalars.
    xtype
        DALI xtype (``point``, ``circle``, ``polygon``, ``timestamp``); ``box``
        and ``region`` are used internally for BOX and STC-S values.
    unit, ucd, description
        Metadata carried from catalog columns.
    """

    datatype: str | None
    arraysize: str | None = None
    xtype: str | None = None
    unit: str | None = None
    ucd: str | None = None
    description: str | None = None

    @property
    def is_numeric(self) -> bool:
        """True for integer and floating-point scalars."""
        return self.datatype in _NUMBERS and self.arraysize is None and self.xtype is None

    @property
    def is_integer(self) -> bool:
        """True for integer scalars."""
        return self.datatype in _INTEGERS and self.arraysize is None

    @property
    def is_string(self) -> bool:
        """True for character strings (not timestamps or regions)."""
        return self.datatype in ("char", "unicodeChar") and self.xtype not in ("timestamp", "region")

    @property
    def is_boolean(self) -> bool:
        """True for booleans."""
        return self.datatype == "boolean"

    @property
    def is_timestamp(self) -> bool:
        """True for timestamps."""
        return self.xtype == "timestamp"

    @property
    def geometry(self) -> str | None:
        """Return the geometry kind (point, circle, polygon, box, region) or None."""
        return self.xtype if self.xtype in _GEOMETRIES else None

    @property
    def is_unknown(self) -> bool:
        """True when nothing is known (NULL literal)."""
        return self.datatype is None

    def bare(self) -> AdqlType:
        """Return the type without unit, UCD and description."""
        return AdqlType(self.datatype, self.arraysize, self.xtype)

    def describe(self) -> str:
        """Return a short name for messages, e.g. ``a number``."""
        if self.geometry:
            return f"a {self.geometry.upper()}"
        if self.is_timestamp:
            return "a TIMESTAMP"
        if self.is_numeric:
            return "a number"
        if self.is_string:
            return "a string"
        if self.is_boolean:
            return "a boolean"
        if self.is_unknown:
            return "NULL"
        return f"a {self.datatype}"

    def __deepcopy__(self, memo: dict) -> AdqlType:
        # Shared by reference: parse-tree copies (sqlglot deep-copies node
        # meta) must neither pay for copying it nor lose its identity.
        return self


DOUBLE = AdqlType("double")
FLOAT = AdqlType("float")
INT = AdqlType("int")
LONG = AdqlType("long")
SHORT = AdqlType("short")
BOOLEAN = AdqlType("boolean")
STRING = AdqlType("char", "*")
TIMESTAMP = AdqlType("char", "*", "timestamp")
POINT = AdqlType("double", "2", "point")
CIRCLE = AdqlType("double", "3", "circle")
POLYGON = AdqlType("double", "*", "polygon")
BOX = AdqlType("double", "*", "box")
REGION = AdqlType("char", "*", "region")
UNKNOWN = AdqlType(None)

_GEOMETRY_TYPES = {"point": POINT, "circle": CIRCLE, "polygon": POLYGON, "box": BOX, "region": REGION}
_RANK = {"unsignedByte": 0, "short": 1, "int": 2, "long": 3, "float": 4, "double": 5}


def geometry_type(kind: str) -> AdqlType:
    """Return the type of a geometry kind (``point``, ``circle``...)."""
    return _GEOMETRY_TYPES[kind]


def set_type(node: exp.Expr, value: AdqlType) -> exp.Expr:
    """Record ``value`` as the ADQL type of ``node`` and return the node."""
    node.meta[TYPE_KEY] = value
    return node


def cached_type(node: exp.Expr) -> AdqlType | None:
    """Return the recorded ADQL type of ``node``, if any."""
    meta = node._meta
    return meta.get(TYPE_KEY) if meta else None


def _wider(left: AdqlType, right: AdqlType) -> AdqlType:
    if not left.is_numeric:
        return right.bare() if right.is_numeric else DOUBLE
    if not right.is_numeric:
        return left.bare()
    rank = max(_RANK[left.datatype or "double"], _RANK[right.datatype or "double"])
    name = next(key for key, value in _RANK.items() if value == rank)
    if name == "unsignedByte":
        name = "short"
    return AdqlType(name)


def _cast_type(target: exp.DataType) -> AdqlType:
    kind = target.this
    size = None
    if target.expressions:
        size = target.expressions[0].name
    if kind == exp.DataType.Type.SMALLINT:
        return SHORT
    if kind == exp.DataType.Type.INT:
        return INT
    if kind == exp.DataType.Type.BIGINT:
        return LONG
    if kind == exp.DataType.Type.FLOAT:
        return FLOAT
    if kind == exp.DataType.Type.DOUBLE:
        return DOUBLE
    if kind == exp.DataType.Type.CHAR:
        return AdqlType("char", size or "1")
    if kind == exp.DataType.Type.VARCHAR:
        return AdqlType("char", f"{size}*" if size else "*")
    if kind == exp.DataType.Type.TIMESTAMP:
        return TIMESTAMP
    return UNKNOWN


def _literal_type(node: exp.Literal) -> AdqlType:
    if node.is_string:
        return STRING
    text = node.this
    if node.is_int:
        return INT if abs(int(text)) < 2**31 else LONG
    return DOUBLE


def _region_type(node: exp.Anonymous) -> AdqlType:
    from adql.stcs import StcsError, parse_stcs

    argument = node.expressions[0] if node.expressions else None
    if not (isinstance(argument, exp.Literal) and argument.is_string):
        return REGION
    try:
        shape = parse_stcs(argument.this)
    except StcsError:
        return REGION
    return _GEOMETRY_TYPES.get({"box": "polygon"}.get(shape.kind, shape.kind), REGION)


def _function_type(node: exp.Anonymous) -> AdqlType:
    spec = FUNCTIONS.get(node.name.upper())
    if spec is None:
        return UNKNOWN
    args = [infer_type(arg) for arg in node.expressions]
    returns = spec.returns
    if returns == "double":
        return DOUBLE
    if returns == "string":
        return STRING
    if returns == "timestamp":
        return TIMESTAMP
    if returns == "predicate":
        return INT
    if returns in _GEOMETRY_TYPES:
        if spec.name == "REGION":
            return _region_type(node)
        return _GEOMETRY_TYPES[returns]
    if returns == "mod":
        if args and all(a.is_integer for a in args):
            return _wider(args[0], args[1])
        return DOUBLE
    if returns == "in_unit":
        unit = node.expressions[1].name if len(node.expressions) > 1 else None
        return AdqlType("double", unit=unit)
    if returns == "same":
        for arg in args:
            if not arg.is_unknown:
                return replace(arg, description=None)
        return UNKNOWN
    return UNKNOWN


def infer_type(node: exp.Expr) -> AdqlType:
    """Return the ADQL type of an expression, caching it on the node.

    Column references must have been annotated by the resolver (their meta
    holds ``adql_type``); everything else is derived from the operands.

    Examples
    --------
    >>> from adql.dialect import parse_adql
    >>> select = parse_adql("SELECT 1 + 2.5, 'a' || 'b', POINT(1, 2), COUNT(*) FROM t")
    >>> [infer_type(e).describe() for e in select.expressions]
    ['a number', 'a string', 'a POINT', 'a number']
    """
    known = cached_type(node)
    if known is not None:
        return known
    result = _compute(node)
    set_type(node, result)
    return result


def _compute(node: exp.Expr) -> AdqlType:
    if isinstance(node, exp.Literal):
        return _literal_type(node)
    if isinstance(node, exp.Boolean):
        return BOOLEAN
    if isinstance(node, exp.Null):
        return UNKNOWN
    if isinstance(node, (exp.Paren, exp.Alias)):
        return infer_type(node.this)
    if isinstance(node, exp.Neg):
        inner = infer_type(node.this)
        return inner.bare() if inner.is_numeric else inner
    if isinstance(node, exp.Predicate | exp.Connector | exp.Not | exp.Exists):
        return BOOLEAN
    if isinstance(node, exp.DPipe):
        return STRING
    if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Div)):
        return _wider(infer_type(node.this), infer_type(node.expression))
    if isinstance(node, exp.Mod):
        left, right = infer_type(node.this), infer_type(node.expression)
        return _wider(left, right) if left.is_integer and right.is_integer else DOUBLE
    if isinstance(node, (exp.BitwiseAnd, exp.BitwiseOr, exp.BitwiseXor)):
        return _wider(infer_type(node.this), infer_type(node.expression))
    if isinstance(node, exp.BitwiseNot):
        return infer_type(node.this).bare()
    if isinstance(node, exp.Count):
        return LONG
    if isinstance(node, exp.Sum):
        inner = infer_type(node.this)
        return LONG if inner.is_integer else DOUBLE
    if isinstance(node, exp.Avg):
        return DOUBLE
    if isinstance(node, (exp.Min, exp.Max)):
        return replace(infer_type(node.this), description=None)
    if isinstance(node, exp.Distinct):
        return infer_type(node.expressions[0]) if node.expressions else UNKNOWN
    if isinstance(node, exp.Cast):
        return _cast_type(node.args["to"])
    if isinstance(node, exp.Case):
        for branch in node.args.get("ifs") or []:
            branch_type = infer_type(branch.args["true"])
            if not branch_type.is_unknown:
                return branch_type.bare()
        default = node.args.get("default")
        return infer_type(default).bare() if default is not None else UNKNOWN
    if isinstance(node, exp.Anonymous):
        return _function_type(node)
    if isinstance(node, exp.Subquery):
        query = node.this
        if isinstance(query, exp.Select) and len(query.expressions) == 1:
            return infer_type(query.expressions[0])
        return UNKNOWN
    if isinstance(node, exp.Select) and len(node.expressions) == 1:
        return infer_type(node.expressions[0])
    return UNKNOWN

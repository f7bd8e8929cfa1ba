"""Hypothesis strategies for ADQL fuzzing: generated queries and mutated ones.

Generated queries follow ADQL's shape (select lists, joins, conditions,
grouping, set operations, subqueries, every function with any number of
arguments) over the reference catalog, so most reach name resolution and
translation; many are wrong on purpose (types, arities, unknown names).
Mutations take corpus queries and damage them at the character and token
level to reach the tokenizer and parser's error paths.
"""

from __future__ import annotations

import random

from hypothesis import strategies as st

from adql.functions import AGGREGATES, FUNCTIONS
from tests.adql.reference_data import ALPHA_SOURCE, DIA_OBJECT, DIA_SOURCE, FOOTPRINTS, VISIT

TABLES = {
    "o": (DIA_OBJECT, "apdb.DiaObject"),
    "s": (DIA_SOURCE, "apdb.DiaSource"),
    "v": (VISIT, "apdb.Visit"),
    "a": (ALPHA_SOURCE, "doc.alpha_source"),
    "f": (FOOTPRINTS, "doc.footprints"),
}
FUNCTION_NAMES = sorted([*FUNCTIONS, *AGGREGATES, "NOW", "SUBSTRING", "pg_sleep"])
BINARY = ["+", "-", "*", "/", "%", "&", "|", "^", "||"]
COMPARISONS = ["=", "<>", "!=", "<", "<=", ">", ">="]
TYPES = ["INTEGER", "SMALLINT", "BIGINT", "REAL", "DOUBLE PRECISION", "VARCHAR(8)", "CHAR(3)", "TIMESTAMP"]
STCS = [
    "'Circle ICRS 10 20 1'",
    "'Polygon 1 2 3 4 5 6'",
    "'Box ICRS 0 0 2 2'",
    "'Union ICRS (Circle 1 2 3 Position 4 5)'",
    "'Not (Circle 1 2 3)'",
    "'Intersection (Circle 1 2 3 Circle 1 2 4)'",
    "'Circle GALACTIC 1 2 3'",
    "'nonsense'",
    "''",
]


class QueryGenerator:
    """Writes random ADQL-shaped queries from a seeded ``random.Random``.

    Drawing a single seed per example keeps hypothesis' overhead low enough
    for thousands of examples; the generator itself is plain Python.
    """

    def __init__(self, rng: random.Random, strict: bool = False) -> None:
        self.rng = rng
        self.strict = strict

    def pick(self, items):  # type: ignore[no-untyped-def]
        return self.rng.choice(items)

    def chance(self, one_in: int) -> bool:
        return self.rng.randrange(one_in) == 0

    def literal(self) -> str:
        kind = self.rng.randrange(5)
        if kind == 0:
            return str(self.rng.randint(-1000, 10**12))
        if kind == 1:
            return f"{self.rng.uniform(-400, 400):.4g}"
        if kind == 2:
            return self.pick(["0", "1", "90", "180", "0.5", "-0.5", "1e3", ".5", "0x1F", "360", "95"])
        if kind == 3:
            text = "".join(self.pick("abc %_'x") for _ in range(self.rng.randrange(5)))
            return "'" + text.replace("'", "''") + "'"
        return self.pick(["NULL", "TRUE", "FALSE", "''"])

    def column(self, aliases: list[str], numeric: bool = False) -> str:
        alias = self.pick(aliases)
        table, _ = TABLES[alias]
        if self.strict or numeric:
            names = [
                c.name
                for c in table.columns
                if c.datatype in ("short", "int", "long", "double", "float") and not c.xtype
            ]
            return f'{alias}."{self.pick(names)}"'
        name = self.pick([c.name for c in table.columns] + ["nosuch"])
        return self.pick([name, f"{alias}.{name}", f'{alias}."{name}"', name.upper()])

    def number(self, aliases: list[str], depth: int = 2) -> str:
        """A numeric expression that is valid ADQL (used in strict mode)."""
        if depth <= 0 or self.chance(3):
            return self.column(aliases, True) if self.chance(2) else self.pick(["0", "1", "2.5", "-3", "90", "0x0F"])
        inner = lambda: self.number(aliases, depth - 1)  # noqa: E731
        kind = self.rng.randrange(7)
        if kind == 0:
            return f"{inner()} {self.pick(['+', '-', '*', '/'])} {inner()}"
        if kind == 1:
            name = self.pick(["ABS", "CEILING", "FLOOR", "SIN", "COS", "DEGREES", "RADIANS", "SQRT", "EXP"])
            argument = f"ABS({inner()})" if name == "SQRT" else inner()
            return f"{name}({argument})"
        if kind == 2:
            return (
                f"{self.pick(['ROUND', 'TRUNCATE', 'MOD', 'POWER', 'ATAN2'])}({inner()}, {self.pick(['1', '2', '-1'])})"
            )
        if kind == 3:
            return f"DISTANCE({inner()}, {inner()} / 1000, 10, 20)"
        if kind == 4:
            return f"COALESCE({inner()}, {inner()})"
        if kind == 5:
            return f"CASE WHEN {inner()} > {inner()} THEN {inner()} ELSE {inner()} END"
        return f"CAST({inner()} AS DOUBLE PRECISION)"

    def expression(self, aliases: list[str], depth: int = 2) -> str:
        if self.strict:
            return self.number(aliases, depth)
        if depth <= 0 or self.chance(3):
            return self.literal() if self.chance(2) else self.column(aliases)
        inner = lambda: self.expression(aliases, depth - 1)  # noqa: E731
        kind = self.rng.randrange(9)
        if kind <= 1:
            name = self.pick(FUNCTION_NAMES)
            spec = FUNCTIONS.get(name)
            count = self.rng.randrange(6)
            if spec is not None and not self.chance(5):
                count = spec.min_args + self.rng.randrange(1 + min(spec.max_args or 6, 6) - spec.min_args)
            elif name in AGGREGATES and not self.chance(5):
                count = 1
            args = [inner() for _ in range(count)]
            if name == "REGION" and self.chance(2):
                args = [self.pick(STCS)]
            if name == "COUNT" and self.chance(2):
                args = ["*"]
            distinct = "DISTINCT " if name in AGGREGATES and self.chance(3) else ""
            return f"{name}({distinct}{', '.join(args)})"
        if kind == 2:
            return f"{inner()} {self.pick(BINARY)} {inner()}"
        if kind == 3:
            return f"{self.pick(['-', '~', '+'])}{inner()}"
        if kind == 4:
            return f"CAST({inner()} AS {self.pick(TYPES)})"
        if kind == 5:
            return f"CASE WHEN {self.condition(aliases, 0)} THEN {inner()} ELSE {inner()} END"
        if kind == 6:
            return f"({inner()})"
        if kind == 7:
            return f"POINT({inner()}, {inner()})"
        return f"CIRCLE({inner()}, {inner()}, {inner()})"

    def condition(self, aliases: list[str], depth: int = 1) -> str:
        if depth > 0 and self.chance(3):
            kind = self.rng.randrange(3)
            if kind == 0:
                op = self.pick(["AND", "OR"])
                return f"{self.condition(aliases, depth - 1)} {op} {self.condition(aliases, depth - 1)}"
            if kind == 1:
                return f"NOT ({self.condition(aliases, depth - 1)})"
            return f"({self.condition(aliases, depth - 1)})"
        value = lambda: self.expression(aliases, 1)  # noqa: E731
        kind = self.rng.randrange(9)
        if self.strict and kind in (3, 5, 8):
            radius = self.pick(["0.5", "1", "10", "90"])
            return f"1 = CONTAINS(POINT({self.column(aliases, True)}, 0), CIRCLE(10, 20, {radius}))"
        if kind == 0:
            return f"{value()} {self.pick(COMPARISONS)} {value()}"
        if kind == 1:
            return f"{value()} {self.pick(['', 'NOT '])}BETWEEN {value()} AND {value()}"
        if kind == 2:
            items = ", ".join(value() for _ in range(1 + self.rng.randrange(4)))
            return f"{value()} IN ({items})"
        if kind == 3:
            return f"{value()} {self.pick(['LIKE', 'NOT LIKE', 'ILIKE'])} {value()}"
        if kind == 4:
            return f"{value()} IS {self.pick(['', 'NOT '])}NULL"
        if kind == 5:
            function = self.pick(["CONTAINS", "INTERSECTS"])
            args = ", ".join(value() for _ in range(1 + self.rng.randrange(3)))
            return f"{self.pick(['1', '0', '2'])} = {function}(POINT({value()}, {value()}), CIRCLE({args}))"
        if kind == 6:
            return f"DISTANCE({value()}, {value()}, 10, 20) {self.pick(['<', '<=', '>'])} {value()}"
        if kind == 7:
            alias = self.pick(list(TABLES))
            return f"EXISTS (SELECT 1 FROM {TABLES[alias][1]} AS {alias}2 WHERE {value()} = {alias}2.ra)"
        return value()

    def select(self, depth: int = 1) -> str:
        if self.strict:
            # Small tables only, at most two: executed queries must stay fast.
            aliases = self.rng.sample(["a", "f", "v"], 1 + self.rng.randrange(2))
        else:
            aliases = self.rng.sample(list(TABLES), 1 + self.rng.randrange(3))
        parts = [f"{TABLES[aliases[0]][1]} AS {aliases[0]}"]
        for alias in aliases[1:]:
            how = self.rng.randrange(5)
            table = f"{TABLES[alias][1]} AS {alias}"
            if how == 0:
                parts.append(f", {table}")
            elif how == 1:
                parts.append(f" JOIN {table} ON {self.condition(aliases, 0)}")
            elif how == 2:
                side = self.pick(["LEFT OUTER", "RIGHT OUTER", "FULL OUTER", "INNER", "LEFT", "FULL"])
                parts.append(f" {side} JOIN {table} ON {self.condition(aliases, 0)}")
            elif how == 3:
                parts.append(f" NATURAL JOIN {table}")
            else:
                parts.append(f" JOIN {table} USING ({self.column([alias])})")
        grouped = self.chance(4)
        groups = [self.column(aliases) for _ in range(1 + self.rng.randrange(2))]
        items = [self.expression(aliases) for _ in range(1 + self.rng.randrange(4))]
        if grouped and not self.chance(5):
            aggregates = [f"{self.pick(AGGREGATES)}({self.column(aliases)})" for _ in range(self.rng.randrange(3))]
            items = groups + aggregates
        elif self.chance(10):
            items = ["*"]
        aliased = [f"{item} AS c{i}" if self.chance(2) else item for i, item in enumerate(items)]
        head = "SELECT " + ("DISTINCT " if self.chance(3) else "")
        if self.chance(2):
            head += f"TOP {self.rng.randrange(100)} "
        query = head + ", ".join(aliased) + " FROM " + "".join(parts)
        if depth > 0 and self.chance(5):
            query += f", ({self.select(depth - 1)}) AS sub"
        if self.chance(2):
            query += " WHERE " + self.condition(aliases, 1)
        if grouped:
            query += " GROUP BY " + ", ".join(groups)
            if self.chance(2):
                query += " HAVING " + self.condition(aliases, 0)
        if self.chance(3):
            terms = [self.pick([self.column(aliases), "1", "2", "c0"]) for _ in range(1 + self.rng.randrange(2))]
            query += " ORDER BY " + ", ".join(f"{t} {self.pick(['', 'ASC', 'DESC'])}" for t in terms)
        if self.chance(5):
            query += f" OFFSET {self.rng.randrange(50)}"
        return query

    def query(self) -> str:
        query = self.select()
        kind = self.rng.randrange(6)
        if kind == 0:
            operator = self.pick(["UNION", "UNION ALL", "EXCEPT", "INTERSECT"])
            query = f"({query}) {operator} ({self.select(0)})"
        elif kind == 1:
            query = f"WITH w AS ({self.select(0)}) SELECT * FROM w"
        return query


def adql_query() -> st.SearchStrategy[str]:
    """A generated ADQL query (often wrong on purpose)."""
    return st.integers(min_value=0, max_value=2**48).map(lambda seed: QueryGenerator(random.Random(seed)).query())


def valid_query(seed: int) -> str:
    """A generated query that is usually valid ADQL (numeric expressions only)."""
    return QueryGenerator(random.Random(seed), strict=True).query()


VOCABULARY = [
    "SELECT", "FROM", "WHERE", "TOP", "JOIN", "ON", "USING", "(", ")", ",", ".", "*", "'", '"', "--", "/*", "*/",
    ";", "::", "[", "]", "{", "}", "$", "?", ":", "@", "#", "=", "<", ">", "<>", "!=", "||", "+", "-", "/", "%",
    "&", "|", "^", "~", "AND", "OR", "NOT", "NULL", "IN", "LIKE", "BETWEEN", "GROUP BY", "ORDER BY", "HAVING",
    "UNION", "WITH", "AS", "CAST", "LIMIT 1", "OFFSET", "0x", "1e", "é", "\\", "\n", "\t", "\x00", "POINT(",
    "CIRCLE(", "CONTAINS(", "DISTANCE(", "REGION(", "1 = ", "ra", "dec", "apdb.DiaObject", "\u202e", "😀",
]  # fmt: skip


@st.composite
def mutated(draw, seeds: list[str]) -> str:  # type: ignore[no-untyped-def]
    """A corpus query damaged by one to four random edits."""
    text = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(1, 4))):
        if not text:
            text = draw(st.sampled_from(VOCABULARY))
        position = draw(st.integers(0, len(text)))
        kind = draw(st.integers(0, 6))
        if kind == 0:
            end = draw(st.integers(position, min(len(text), position + 12)))
            text = text[:position] + text[end:]
        elif kind == 1:
            text = text[:position] + " " + draw(st.sampled_from(VOCABULARY)) + " " + text[position:]
        elif kind == 2:
            text = text[:position] + draw(st.text(max_size=3)) + text[position:]
        elif kind == 3:
            end = draw(st.integers(position, min(len(text), position + 20)))
            text = text[:end] + text[position:end] + text[end:]
        elif kind == 4:
            text = text[:position]
        elif kind == 5:
            text = text.swapcase() if draw(st.booleans()) else text.lower()
        else:
            words = text.split(" ")
            if len(words) > 1:
                i, j = draw(st.integers(0, len(words) - 1)), draw(st.integers(0, len(words) - 1))
                words[i], words[j] = words[j], words[i]
            text = " ".join(words)
    return text

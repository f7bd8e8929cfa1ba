"""The ADQL 2.1 dialect of sqlglot: tokenizer, parser and generator.

sqlglot's parser accepts the union of many SQL dialects.  This dialect narrows
it to ADQL: the tokenizer knows only ADQL's keywords (everything else is an
identifier), functions parse as plain calls (their meaning is decided later by
:mod:`adql.functions`), PostgreSQL-only syntax such as ``::`` casts or
``LIMIT`` is reported with a pointed message, and every node the parser builds
remembers the span of text it came from so that later errors can say where
they are.  What the parser still lets through that is not ADQL is rejected by
:mod:`adql.grammar`.

:func:`parse_adql` is the entry point: text in, one ``exp.Query`` out, or an
:class:`~adql.errors.AdqlSyntaxError` / :class:`~adql.errors.AdqlUnsupportedError`
with line and column.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from sqlglot import exp, tokens
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError
from sqlglot.generator import Generator
from sqlglot.parser import Parser
from sqlglot.tokens import Token, TokenType

from adql.errors import AdqlError, AdqlSyntaxError, locate
from adql.lexical import check_quotes, check_tokens

__all__ = ["MAX_QUERY_LENGTH", "Adql", "parse_adql", "tokenize_adql"]

MAX_QUERY_LENGTH = 200_000
"""Longest query text accepted; longer ones are refused before parsing."""

_BASE = tokens.Tokenizer.KEYWORDS

# ADQL's keywords that the parser needs as keyword tokens.  Every other word,
# including PostgreSQL's, is tokenized as an identifier, which keeps
# non-ADQL constructs out of the grammar.
_ADQL_KEYWORDS = {
    word: _BASE[word]
    for word in (
        "||",
        ">=",
        "<=",
        "<>",
        "!=",
        "ALL",
        "AND",
        "AS",
        "ASC",
        "BETWEEN",
        "CASE",
        "CROSS",
        "DESC",
        "DISTINCT",
        "ELSE",
        "END",
        "EXCEPT",
        "EXISTS",
        "FALSE",
        "FROM",
        "FULL",
        "GROUP BY",
        "HAVING",
        "ILIKE",
        "IN",
        "INNER",
        "INTERSECT",
        "IS",
        "JOIN",
        "LEFT",
        "LIKE",
        "NATURAL",
        "NOT",
        "NULL",
        "OFFSET",
        "ON",
        "OR",
        "ORDER BY",
        "OUTER",
        "RIGHT",
        "SELECT",
        "THEN",
        "TRUE",
        "UNION",
        "USING",
        "WHEN",
        "WHERE",
        "WITH",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "REAL",
        "DOUBLE PRECISION",
        "DOUBLE",
        "CHAR",
        "VARCHAR",
        "TIMESTAMP",
    )
}
_ADQL_KEYWORDS["TOP"] = TokenType.TOP

_REGULAR_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def _positioned(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a parser method so the node it returns remembers where it began.

    sqlglot positions only the nodes built directly from one token
    (identifiers, literals, function names).  Recording the first token of
    every construct lets errors about a ``LIMIT`` clause or a ``JOIN`` point
    at the keyword rather than at some operand inside it.
    """

    @functools.wraps(method)
    def wrapper(self: AdqlParser, *args: Any, **kwargs: Any) -> Any:
        start_token = self._curr
        result = method(self, *args, **kwargs)
        if isinstance(result, exp.Expr) and start_token is not None:
            meta = result._meta
            if meta is None or "start" not in meta:
                end_token = self._prev or start_token
                result.meta["start"] = start_token.start
                result.meta["end"] = max(end_token.end, start_token.end)
        return result

    return wrapper


class AdqlTokenizer(tokens.Tokenizer):
    """Tokenizer for ADQL 2.1.

    Strings use single quotes (``''`` escapes a quote, backslash is an
    ordinary character), delimited identifiers use double quotes, comments
    are ``--`` and ``/* */``, and ``0x2F`` is a hexadecimal integer.
    """

    QUOTES = ["'"]
    IDENTIFIERS = ['"']
    STRING_ESCAPES = ["'"]
    IDENTIFIER_ESCAPES = ['"']
    # Needed so that 0x... is scanned as one token; the parser refuses the
    # X'..' form, which is not ADQL.
    HEX_STRINGS = [("x'", "'"), ("X'", "'")]
    BIT_STRINGS: list[str | tuple[str, str]] = []
    BYTE_STRINGS: list[str | tuple[str, str]] = []
    RAW_STRINGS: list[str | tuple[str, str]] = []
    HEREDOC_STRINGS: list[str | tuple[str, str]] = []
    UNICODE_STRINGS: list[str | tuple[str, str]] = []
    KEYWORDS = _ADQL_KEYWORDS
    COMMANDS: set[TokenType] = set()
    COMMAND_PREFIX_TOKENS: set[TokenType] = set()


class AdqlParser(Parser):
    """Parser for ADQL 2.1 built on sqlglot's SQL parser.

    Only aggregate functions and CAST keep sqlglot's special parsing; every
    other function call becomes ``exp.Anonymous`` and is interpreted by the
    translation rules, so that ADQL meanings (``LOG`` is the natural
    logarithm, ``TRUNCATE`` takes a precision) are never confused with
    another dialect's.
    """

    FUNCTIONS = {name: Parser.FUNCTIONS[name] for name in ("COUNT", "SUM", "AVG", "MIN", "MAX")}
    FUNCTION_PARSERS = {"CAST": Parser.FUNCTION_PARSERS["CAST"]}
    NO_PAREN_FUNCTIONS: dict = {}
    NO_PAREN_FUNCTION_PARSERS = {"CASE": Parser.NO_PAREN_FUNCTION_PARSERS["CASE"]}
    PLACEHOLDER_PARSERS: dict = {}
    PRIMARY_PARSERS = {
        **Parser.PRIMARY_PARSERS,
        TokenType.HEX_STRING: lambda self, token: self._parse_hex_literal(token),
    }
    NUMERIC_PARSERS = {
        **Parser.NUMERIC_PARSERS,
        TokenType.HEX_STRING: lambda self, token: self._parse_hex_literal(token),
    }
    LOG_DEFAULTS_TO_LN = True
    STRICT_CAST = True

    def _parse_hex_literal(self, token: Token) -> exp.Expr:
        """Turn ``0x2F`` into the integer literal 47 (ADQL hexadecimal literal)."""
        prefix = self.sql[token.start : token.start + 2].lower() if self.sql else ""
        if prefix != "0x":
            raise _syntax_at(
                self.sql,
                token,
                "X'...' byte strings are not ADQL",
                "write hexadecimal integers as 0x2F",
            )
        literal = exp.Literal.number(int(token.text, 16))
        literal.meta.update(start=token.start, end=token.end)
        return literal

    def _parse_join(self, *args: Any, **kwargs: Any) -> exp.Join | None:
        # A comma in FROM is a cross product, which ADQL allows; a JOIN
        # keyword without ON/USING is not.  Remember which one it was.
        comma = self._curr is not None and self._curr.token_type == TokenType.COMMA
        join = super()._parse_join(*args, **kwargs)
        if join is not None and comma:
            join.meta["comma"] = True
        return join

    def _parse_set_operations(self, this: exp.Expr | None) -> exp.Expr | None:
        # The operator token is the best position for a set operation; the
        # generic wrapper would record the token after the whole query.
        token = self._curr
        result = super()._parse_set_operations(this)
        if result is not this and isinstance(result, exp.Expr) and token is not None:
            result.meta.setdefault("start", token.start)
            result.meta.setdefault("end", token.end)
        return result

    def raise_error(self, message: str, token: Token | None = None) -> None:
        token = token or self._curr or self._prev or Token.string("")
        error = ParseError.new(message, description=message, line=token.line, col=token.col)
        error.errors[0]["start"] = token.start
        error.errors[0]["end"] = token.end
        # At the end of the text the parser reports the last token; say "end".
        error.errors[0]["token_text"] = token.text if self._curr is not None else None
        if self.error_level == ErrorLevel.IMMEDIATE:
            raise error
        self.errors.append(error)


# Methods whose results should carry their starting position.
_POSITIONED_METHODS = (
    "_parse_select",
    "_parse_table",
    "_parse_join",
    "_parse_limit",
    "_parse_offset",
    "_parse_order",
    "_parse_ordered",
    "_parse_group",
    "_parse_having",
    "_parse_where",
    "_parse_with",
    "_parse_cte",
    "_parse_disjunction",
    "_parse_conjunction",
    "_parse_equality",
    "_parse_comparison",
    "_parse_range",
    "_parse_bitwise",
    "_parse_term",
    "_parse_factor",
    "_parse_unary",
    "_parse_type",
    "_parse_column",
    "_parse_primary",
    "_parse_function",
    "_parse_case",
    "_parse_star_ops",
    "_parse_expression",
    "_parse_projections",
)
for _name in _POSITIONED_METHODS:
    setattr(AdqlParser, _name, _positioned(getattr(AdqlParser, _name)))


class AdqlGenerator(Generator):
    """Writes a parsed ADQL tree back as ADQL-like SQL (for messages and tests)."""

    LIMIT_IS_TOP = True


class Adql(Dialect):
    """The ADQL 2.1 dialect (regular identifiers are case-insensitive)."""

    NORMALIZATION_STRATEGY = Dialect.NORMALIZATION_STRATEGY.CASE_INSENSITIVE
    # ADQL leaves both unspecified; matching PostgreSQL keeps the generated
    # SQL free of NULLS FIRST/LAST clauses and casts in divisions.
    NULL_ORDERING = "nulls_are_large"
    TYPED_DIVISION = True
    Tokenizer = AdqlTokenizer
    Parser = AdqlParser
    Generator = AdqlGenerator


_DIALECT = Adql()


def _syntax_at(text: str | None, token: Token, message: str, hint: str | None) -> AdqlSyntaxError:
    return AdqlSyntaxError(message, query=text or "", span=(token.start, token.end + 1), hint=hint)


def tokenize_adql(text: str) -> list[Token]:
    """Tokenize ADQL text, turning tokenizer failures into positioned errors.

    Parameters
    ----------
    text
        The ADQL query.

    Returns
    -------
    list of Token
        sqlglot tokens; each has ``start``/``end`` character offsets.
    """
    check_quotes(text)
    try:
        return _DIALECT.tokenize(text)
    except SqlglotError as error:
        start = getattr(error, "start", None) or 0
        raise AdqlSyntaxError(
            "the query could not be split into words",
            query=text,
            span=(start, start + 1),
            hint="check quotes and special characters",
        ) from None


def _translate_parse_error(text: str, error: ParseError) -> AdqlError:
    details = error.errors[0] if error.errors else {}
    description = str(details.get("description") or "syntax error")
    start = details.get("start")
    token_text = details.get("token_text")
    if start is None:
        line = details.get("line") or 1
        column = details.get("col") or 1
        return AdqlSyntaxError(_friendly(description, None), line=line, column=column, hint=None)
    end = int(details.get("end", start)) + 1
    hint = None
    if description.startswith("Expecting )"):
        hint = "a parenthesis is missing or an argument list is malformed"
    elif description.startswith("Invalid expression / Unexpected token"):
        hint = "check for a missing comma, operator or keyword before this point"
    return AdqlSyntaxError(_friendly(description, token_text), query=text, span=(int(start), end), hint=hint)


def _friendly(description: str, token_text: str | None) -> str:
    shown = f" {token_text!r}" if token_text else ""
    if description.startswith("Invalid expression / Unexpected token"):
        return f"unexpected{shown or ' end of query'}"
    if description.startswith("The number of provided arguments"):
        return f"wrong number of arguments for{shown or ' a function'}"
    if description.startswith("Required keyword") or description.startswith("Expected"):
        return f"incomplete expression before{shown or ' the end of the query'}"
    if description.startswith("Expecting"):
        wanted = description[len("Expecting") :].strip()
        return f"expected {wanted!r} but found{shown or ' the end of the query'}"
    return description.rstrip(".") + (f" at{shown}" if shown else "")


def parse_adql(text: str) -> exp.Query:
    """Parse one ADQL query.

    Parameters
    ----------
    text
        The ADQL query text.

    Returns
    -------
    sqlglot.exp.Query
        The parse tree (a ``Select`` or a set operation).  It is ADQL-shaped
        and not yet checked against the grammar or the catalog.

    Raises
    ------
    AdqlSyntaxError
        The text is not well-formed.
    AdqlUnsupportedError
        The text is a statement other than a query, several statements, or
        uses PostgreSQL syntax such as ``LIMIT`` or ``::``.

    Examples
    --------
    >>> parse_adql("SELECT TOP 5 ra FROM apdb.DiaObject").sql(dialect="postgres")
    'SELECT ra FROM apdb.DiaObject LIMIT 5'
    """
    if not isinstance(text, str):
        raise AdqlSyntaxError("the query must be text", line=1, column=1)
    if len(text) > MAX_QUERY_LENGTH:
        raise AdqlSyntaxError(
            f"the query is longer than {MAX_QUERY_LENGTH} characters",
            line=1,
            column=1,
            hint="upload large lists of values as a table instead of inlining them",
        )
    token_list = check_tokens(text, tokenize_adql(text))
    parser = AdqlParser(error_level=ErrorLevel.IMMEDIATE, dialect=_DIALECT)
    try:
        trees = parser.parse(token_list, text)
    except ParseError as error:
        raise _translate_parse_error(text, error) from None
    except AdqlError:
        raise
    except RecursionError:
        raise AdqlSyntaxError(
            "the query is nested too deeply", line=1, column=1, hint="simplify the expression"
        ) from None
    trees = [tree for tree in trees if tree is not None]
    if len(trees) != 1:
        raise AdqlSyntaxError("expected exactly one query", line=1, column=1)
    tree = trees[0]
    if not isinstance(tree, exp.Query):
        span = (token_list[0].start, token_list[0].end + 1)
        raise AdqlSyntaxError("a query must start with SELECT or WITH", query=text, span=span)
    return tree


def is_regular_identifier(name: str) -> bool:
    """Return True if ``name`` is a valid ADQL regular (undelimited) identifier.

    >>> is_regular_identifier("ra"), is_regular_identifier("2mass"), is_regular_identifier("a$b")
    (True, False, False)
    """
    return bool(_REGULAR_IDENTIFIER.match(name))


def position(text: str, node: exp.Expr) -> tuple[int, int] | None:
    """Return the 1-based line and column where ``node`` starts, if known."""
    meta = node._meta
    if meta and "start" in meta:
        return locate(text, int(meta["start"]))
    return None

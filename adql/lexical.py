"""Lexical checks that run on the token list before the ADQL parser.

Some mistakes are best caught and explained before parsing: an unterminated
string (reported where it starts, not at the end of the text), several
statements, statements other than queries (DDL, DML, SET...), and
PostgreSQL syntax that users often try in ADQL (``LIMIT``, ``::`` casts,
``NULLS FIRST``, ``DISTINCT ON``, ``FETCH FIRST``).  Each gets a pointed
message and hint instead of a generic "unexpected token".
"""

from __future__ import annotations

from sqlglot.tokens import Token, TokenType

from adql.errors import AdqlSyntaxError, AdqlUnsupportedError

__all__ = ["MAX_NESTING", "check_quotes", "check_tokens"]

MAX_NESTING = 64
"""Deepest parenthesis nesting accepted (guards against recursion limits)."""


_STATEMENT_STARTS = {TokenType.SELECT, TokenType.WITH, TokenType.L_PAREN}


_NON_ADQL_STATEMENTS = {
    "INSERT",
    "UPDATE",
    "DELETE",
    "MERGE",
    "CREATE",
    "DROP",
    "ALTER",
    "TRUNCATE",
    "GRANT",
    "REVOKE",
    "COPY",
    "SET",
    "RESET",
    "SHOW",
    "BEGIN",
    "START",
    "COMMIT",
    "ROLLBACK",
    "VACUUM",
    "ANALYZE",
    "EXPLAIN",
    "CALL",
    "DO",
    "LOCK",
    "PREPARE",
    "EXECUTE",
    "DECLARE",
    "LISTEN",
    "NOTIFY",
    "VALUES",
    "TABLE",
    "COMMENT",
    "REINDEX",
    "CLUSTER",
    "DISCARD",
    "LOAD",
    "FETCH",
    "MOVE",
    "CLOSE",
    "CHECKPOINT",
    "REFRESH",
    "IMPORT",
}


def check_quotes(text: str) -> None:
    """Report an unterminated string, identifier or comment where it begins."""
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if char in "'\"":
            close = text.find(char, i + 1)
            while close != -1 and close + 1 < n and text[close + 1] == char:
                close = text.find(char, close + 2)
            if close == -1:
                what = "string" if char == "'" else "delimited identifier"
                raise AdqlSyntaxError(
                    f"unterminated {what}",
                    query=text,
                    span=(i, min(n, i + 20)),
                    hint=f"close it with a matching {char}",
                )
            i = close + 1
        elif text.startswith("--", i):
            newline = text.find("\n", i)
            i = n if newline == -1 else newline + 1
        elif text.startswith("/*", i):
            close = text.find("*/", i + 2)
            if close == -1:
                raise AdqlSyntaxError("unterminated comment", query=text, span=(i, i + 2), hint="close it with */")
            i = close + 2
        else:
            i += 1


def check_tokens(text: str, token_list: list[Token]) -> list[Token]:
    """Reject what is plainly not one ADQL query before parsing.

    Returns the tokens without one optional trailing semicolon.
    """
    if not token_list:
        raise AdqlSyntaxError(
            "the query is empty",
            line=1,
            column=1,
            hint="write a query such as SELECT TOP 10 * FROM TAP_SCHEMA.tables",
        )
    first = token_list[0]
    if first.token_type not in _STATEMENT_STARTS:
        word = first.text.upper()
        if word in _NON_ADQL_STATEMENTS:
            raise AdqlUnsupportedError(
                f"{word} statements are not ADQL; only queries (SELECT) are allowed",
                feature=word,
                query=text,
                span=(first.start, first.end + 1),
                hint="TAP services are read-only: write a SELECT query",
            )
        raise AdqlSyntaxError("a query must start with SELECT or WITH", query=text, span=(first.start, first.end + 1))

    depth = 0
    for index, token in enumerate(token_list):
        kind = token.token_type
        if kind == TokenType.L_PAREN:
            depth += 1
            if depth > MAX_NESTING:
                raise AdqlSyntaxError(
                    f"parentheses nested deeper than {MAX_NESTING} levels",
                    query=text,
                    span=(token.start, token.end + 1),
                    hint="simplify the expression",
                )
        elif kind == TokenType.R_PAREN:
            depth -= 1
        elif kind == TokenType.SEMICOLON:
            if index != len(token_list) - 1:
                raise AdqlUnsupportedError(
                    "several statements were given; a query is one SELECT statement",
                    feature="multiple statements",
                    query=text,
                    span=(token.start, token.end + 1),
                    hint="send one query per request and remove the ';'",
                )
        elif kind == TokenType.COLON and index + 1 < len(token_list):
            if token_list[index + 1].token_type == TokenType.COLON:
                raise AdqlUnsupportedError(
                    "'::' casts are PostgreSQL syntax, not ADQL",
                    feature="::",
                    query=text,
                    span=(token.start, token_list[index + 1].end + 1),
                    hint="write CAST(x AS DOUBLE PRECISION)",
                )
        elif kind == TokenType.VAR and token.text.upper() == "LIMIT" and index + 1 < len(token_list):
            following = token_list[index + 1]
            if following.token_type == TokenType.NUMBER or following.text.upper() == "ALL":
                raise AdqlUnsupportedError(
                    "LIMIT is not ADQL",
                    feature="LIMIT",
                    query=text,
                    span=(token.start, following.end + 1),
                    hint="write SELECT TOP n ... instead of LIMIT n",
                )
        elif kind == TokenType.VAR and token.text.upper() == "NULLS" and index + 1 < len(token_list):
            following = token_list[index + 1]
            if following.text.upper() in ("FIRST", "LAST"):
                raise AdqlUnsupportedError(
                    "NULLS FIRST/LAST is not ADQL",
                    feature="NULLS FIRST",
                    query=text,
                    span=(token.start, following.end + 1),
                    hint="order by COALESCE(x, value) to place NULLs",
                )
        elif kind == TokenType.DISTINCT and index + 1 < len(token_list):
            if token_list[index + 1].token_type == TokenType.ON:
                raise AdqlUnsupportedError(
                    "DISTINCT ON is not ADQL",
                    feature="DISTINCT ON",
                    query=text,
                    span=(token.start, token_list[index + 1].end + 1),
                    hint="use GROUP BY with aggregates",
                )
        elif kind == TokenType.VAR and token.text.upper() == "FETCH" and index > 0:
            raise AdqlUnsupportedError(
                "FETCH FIRST is not ADQL",
                feature="FETCH",
                query=text,
                span=(token.start, token.end + 1),
                hint="write SELECT TOP n ...",
            )
    if token_list[-1].token_type == TokenType.SEMICOLON:
        return token_list[:-1]
    return token_list

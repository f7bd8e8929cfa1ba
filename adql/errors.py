"""The ADQL errors: what went wrong, where in the query, and how to fix it.

Every problem the translator finds in a query is raised as a subclass of
:class:`AdqlError`, itself a :class:`dms_db.errors.UserError`, so the service
layer can turn it into a TAP error document without knowing about ADQL.  Each
subclass has a stable ``error_type`` that clients may rely on, and every error
carries the 1-based ``line`` and ``column`` of the offending text, the text
itself and a hint.

Positions come from the character offsets sqlglot stores on tokens and on the
nodes built from them; :func:`locate` turns an offset into a line and column
and :func:`node_span` finds the span of a parse-tree node.
"""

from __future__ import annotations

from typing import Any

from dms_db.errors import UserError

__all__ = [
    "AdqlError",
    "AdqlGeometryError",
    "AdqlNameError",
    "AdqlSyntaxError",
    "AdqlTypeError",
    "AdqlUnsupportedError",
    "Span",
    "locate",
    "node_span",
]

Span = tuple[int, int]
"""Half-open character range ``[start, end)`` in the query text."""


def locate(text: str, offset: int) -> tuple[int, int]:
    """Return the 1-based line and column of a character offset.

    >>> locate("SELECT a\\nFROM b", 9)
    (2, 1)
    """
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def node_span(node: Any) -> Span | None:
    """Return the character span of a parse-tree node, or None if unknown.

    Nodes built from a token carry ``start``/``end`` offsets in their meta;
    for other nodes the span covers their positioned descendants.  The ADQL
    parser also records the first token of each construct it builds (see
    :mod:`adql.dialect`), so most nodes have a position of their own.
    """
    if node is None:
        return None
    meta = getattr(node, "_meta", None)
    if meta and "start" in meta:
        return int(meta["start"]), int(meta.get("end", meta["start"])) + 1
    start: int | None = None
    end: int | None = None
    walk = getattr(node, "walk", None)
    if walk is None:
        return None
    for descendant in walk():
        dmeta = getattr(descendant, "_meta", None)
        if dmeta and "start" in dmeta:
            s = int(dmeta["start"])
            e = int(dmeta.get("end", s)) + 1
            start = s if start is None else min(start, s)
            end = e if end is None else max(end, e)
    if start is None or end is None:
        return None
    return start, end


class AdqlError(UserError):
    """A problem in an ADQL query, with its position and a hint.

    Attributes
    ----------
    line, column
        1-based position of the offending text (None if unknown).
    text
        The offending fragment of the query.
    hint
        How to fix it.
    detail
        The message without position.

    Parameters
    ----------
    message
        What is wrong, in one sentence, without the position (it is added).
    query
        The query text; used to compute line and column from ``span``.
    span
        Character range of the offending fragment in ``query``.
    hint
        How to fix it.
    line, column
        Explicit 1-based position, when no span is available.
    """

    error_type = "AdqlError"

    def __init__(
        self,
        message: str,
        *,
        query: str | None = None,
        span: Span | None = None,
        hint: str | None = None,
        line: int | None = None,
        column: int | None = None,
        fragment: str | None = None,
    ) -> None:
        self.line = line
        self.column = column
        self.text = fragment
        if query is not None and span is not None:
            start, end = span
            self.line, self.column = locate(query, start)
            if fragment is None:
                self.text = query[start:end]
        self.detail = message
        where = f" at line {self.line}, column {self.column}" if self.line is not None else ""
        near = f" near {_quote_fragment(self.text)}" if self.text else ""
        super().__init__(f"{message}{where}{near}.", hint=hint)

    def with_position(self, text: str, span: Span | None) -> AdqlError:
        """Return a copy of this error placed at ``span`` of the query ``text``.

        Used when an error is raised deep inside a rule that does not know
        the query text; the caller that does know it places the error.
        """
        if span is None or self.line is not None:
            return self
        return type(self)(self.detail, query=text, span=span, hint=self.hint)

    def to_dict(self) -> dict[str, Any]:
        """Return the error as a plain mapping for JSON or VOTable output."""
        return {
            "error_type": self.error_type,
            "message": self.message,
            "line": self.line,
            "column": self.column,
            "text": self.text,
            "hint": self.hint,
        }


def _quote_fragment(fragment: str) -> str:
    fragment = " ".join(fragment.split())
    if len(fragment) > 60:
        fragment = fragment[:57] + "..."
    return repr(fragment)


class AdqlSyntaxError(AdqlError):
    """The query is not well-formed ADQL."""

    error_type = "AdqlSyntaxError"


class AdqlNameError(AdqlError):
    """A table or column name is unknown or ambiguous.

    ``error_type`` is ``"UnknownName"`` for names that do not exist (the hint
    lists the closest real ones) and ``"AmbiguousName"`` for column names that
    several tables of the query provide.
    """

    error_type = "UnknownName"

    def __init__(self, message: str, *, ambiguous: bool = False, **kwargs: Any) -> None:
        self.ambiguous = ambiguous
        super().__init__(message, **kwargs)
        if ambiguous:
            self.error_type = "AmbiguousName"

    def with_position(self, text: str, span: Span | None) -> AdqlError:
        if span is None or self.line is not None:
            return self
        return AdqlNameError(self.detail, ambiguous=self.ambiguous, query=text, span=span, hint=self.hint)


class AdqlUnsupportedError(AdqlError):
    """The query uses a feature this service does not implement.

    The message names the feature, e.g. ``LIMIT`` or the TAPRegExt feature
    ``ivo://ivoa.net/std/TAPRegExt#features-adql-sets``.
    """

    error_type = "Unsupported"

    def __init__(self, message: str, *, feature: str | None = None, **kwargs: Any) -> None:
        self.feature = feature
        super().__init__(message, **kwargs)

    def with_position(self, text: str, span: Span | None) -> AdqlError:
        if span is None or self.line is not None:
            return self
        return AdqlUnsupportedError(self.detail, feature=self.feature, query=text, span=span, hint=self.hint)


class AdqlTypeError(AdqlError):
    """An operand has the wrong type, e.g. a string where a number is needed."""

    error_type = "AdqlTypeError"


class AdqlGeometryError(AdqlError):
    """A geometry is invalid: radius out of range, degenerate polygon, bad STC-S."""

    error_type = "AdqlGeometryError"

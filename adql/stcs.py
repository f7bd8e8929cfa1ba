"""Parse the STC-S strings of ADQL's ``REGION()`` into simple shapes.

Only the spatial subset that pgSphere can evaluate on the ICRS sphere is
understood: ``Position``, ``Circle``, ``Box``, ``Polygon`` and the compound
``Union``, ``Intersection`` and ``Not``.  Frames other than ICRS (or an
unspecified one) and cartesian flavours are refused, because translating
them would silently give wrong answers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["StcsError", "StcsShape", "parse_stcs"]

_FRAMES = {"ICRS", "UNKNOWNFRAME", "J2000"}
_REFUSED_FRAMES = {"FK4", "FK5", "GALACTIC", "ECLIPTIC", "SUPER_GALACTIC", "GEO_C", "GEO_D", "B1950"}
_REFPOS = {
    "GEOCENTER",
    "BARYCENTER",
    "HELIOCENTER",
    "TOPOCENTER",
    "LSR",
    "LSRK",
    "LSRD",
    "GALACTIC_CENTER",
    "LOCAL_GROUP_CENTER",
    "EMBARYCENTER",
    "RELOCATABLE",
    "UNKNOWNREFPOS",
}
_FLAVORS = {"SPHERICAL2"}
_SIMPLE = {"POSITION": 2, "CIRCLE": 3, "BOX": 4}


class StcsError(ValueError):
    """The STC-S text is malformed or uses something that cannot be evaluated."""


@dataclass(frozen=True)
class StcsShape:
    """One STC-S region.

    Attributes
    ----------
    kind
        ``point``, ``circle``, ``box``, ``polygon``, ``union``,
        ``intersection`` or ``not``.
    numbers
        Degrees: (ra, dec) for points, (ra, dec, radius) for circles,
        (ra, dec, width, height) for boxes, (ra1, dec1, ra2, dec2...) for
        polygons; empty for compounds.
    children
        Operands of compound regions.
    """

    kind: str
    numbers: tuple[float, ...] = ()
    children: tuple[StcsShape, ...] = ()

    @property
    def is_compound(self) -> bool:
        """True for Union, Intersection and Not."""
        return self.kind in ("union", "intersection", "not")

    def __deepcopy__(self, memo: dict) -> StcsShape:
        # Shared by reference: parse-tree copies (sqlglot deep-copies node
        # meta) must neither pay for copying it nor lose its identity.
        return self


def _tokens(text: str) -> list[str]:
    return text.replace("(", " ( ").replace(")", " ) ").split()


class _Reader:
    def __init__(self, words: list[str]) -> None:
        self.words = words
        self.index = 0

    def peek(self) -> str | None:
        return self.words[self.index] if self.index < len(self.words) else None

    def take(self) -> str:
        word = self.peek()
        if word is None:
            raise StcsError("the region text ends too early")
        self.index += 1
        return word

    def skip_qualifiers(self) -> None:
        while True:
            word = self.peek()
            if word is None:
                return
            upper = word.upper()
            if upper in _FRAMES or upper in _REFPOS or upper in _FLAVORS:
                self.index += 1
            elif upper in _REFUSED_FRAMES:
                raise StcsError(f"coordinate frame {word} is not supported; only ICRS is")
            elif upper.startswith("CARTESIAN"):
                raise StcsError("cartesian regions are not supported")
            else:
                return

    def numbers(self) -> list[float]:
        values = []
        while True:
            word = self.peek()
            if word is None or word in ("(", ")"):
                return values
            try:
                value = float(word)
            except ValueError:
                return values
            if not math.isfinite(value):
                raise StcsError(f"{word} is not a finite number")
            values.append(value)
            self.index += 1

    def shape(self) -> StcsShape:
        word = self.take()
        kind = word.upper()
        if kind in ("UNION", "INTERSECTION"):
            self.skip_qualifiers()
            children = self.operands()
            if len(children) < 2:
                raise StcsError(f"{word} needs at least two regions")
            return StcsShape(kind.lower(), (), tuple(children))
        if kind == "NOT":
            children = self.operands()
            if len(children) != 1:
                raise StcsError("Not takes exactly one region")
            return StcsShape("not", (), tuple(children))
        if kind in _SIMPLE or kind == "POLYGON":
            self.skip_qualifiers()
            values = self.numbers()
            word_after = self.peek()
            if word_after is not None and word_after not in ("(", ")"):
                upper = word_after.upper()
                if upper in ("UNIT", "SIZE", "ERROR", "RESOLUTION", "PIXSIZE", "VELOCITY"):
                    if upper == "UNIT":
                        self.index += 1
                        unit = self.take()
                        if unit.lower() != "deg":
                            raise StcsError(f"unit {unit} is not supported; use deg")
                    else:
                        raise StcsError(f"{word_after} is not supported in regions")
            if kind == "POLYGON":
                if len(values) < 6 or len(values) % 2:
                    raise StcsError("Polygon needs at least three (ra, dec) pairs")
                return StcsShape("polygon", tuple(values))
            expected = _SIMPLE[kind]
            if len(values) != expected:
                raise StcsError(f"{word} takes {expected} numbers, found {len(values)}")
            return StcsShape({"POSITION": "point"}.get(kind, kind.lower()), tuple(values))
        raise StcsError(f"{word} is not an STC-S region (Position, Circle, Box, Polygon, Union...)")

    def operands(self) -> list[StcsShape]:
        if self.take() != "(":
            raise StcsError("expected '(' after a compound region")
        children = []
        while self.peek() not in (")", None):
            children.append(self.shape())
        if self.take() != ")":
            raise StcsError("expected ')'")
        return children


def parse_stcs(text: str) -> StcsShape:
    """Parse an STC-S region string.

    Parameters
    ----------
    text
        The STC-S text, e.g. ``"Circle ICRS 10 20 0.5"``.

    Returns
    -------
    StcsShape

    Raises
    ------
    StcsError
        Malformed text, or a frame or feature that cannot be evaluated.

    Examples
    --------
    >>> parse_stcs("Circle ICRS GEOCENTER 10 20 0.5")
    StcsShape(kind='circle', numbers=(10.0, 20.0, 0.5), children=())
    >>> parse_stcs("Union ICRS (Circle 1 2 3 Position 4 5)").kind
    'union'
    """
    reader = _Reader(_tokens(text))
    if reader.peek() is None:
        raise StcsError("the region text is empty")
    shape = reader.shape()
    if reader.peek() is not None:
        raise StcsError(f"unexpected {reader.peek()!r} after the region")
    return shape

"""What the translator supports, for the TAP capabilities document.

Derived from :mod:`adql.functions` -- the same tables the grammar check and
the translation rules use -- so the service can never advertise a feature
that is not implemented.  The API layer turns :func:`language_features`
into TAPRegExt ``<languageFeatures>`` elements.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from adql.functions import ALL_FEATURES, Feature

__all__ = ["ADQL_LANGUAGE", "FeatureGroup", "LanguageInfo", "language_features"]


@dataclass(frozen=True)
class FeatureGroup:
    """All supported features of one TAPRegExt feature type."""

    type: str
    features: tuple[Feature, ...]


@dataclass(frozen=True)
class LanguageInfo:
    """The query language as TAPRegExt describes it (``<language>``)."""

    name: str
    version: str
    ivo_id: str
    description: str


ADQL_LANGUAGE = LanguageInfo(
    name="ADQL",
    version="2.1",
    ivo_id="ivo://ivoa.net/std/ADQL#v2.1",
    description="ADQL 2.1, translated to PostgreSQL with pgSphere; geometry in ICRS degrees.",
)


def language_features(enabled: Iterable[Feature] | None = None) -> tuple[FeatureGroup, ...]:
    """Return the supported optional features grouped by TAPRegExt type.

    Parameters
    ----------
    enabled
        Restrict to these features (e.g. a service that disables some);
        default every implemented feature.

    Examples
    --------
    >>> groups = {g.type.split("#")[1]: [f.form for f in g.features] for g in language_features()}
    >>> groups["features-adql-sets"]
    ['EXCEPT', 'INTERSECT', 'UNION']
    >>> "CONTAINS" in groups["features-adqlgeo"]
    True
    """
    chosen = set(ALL_FEATURES if enabled is None else enabled)
    groups: dict[str, list[Feature]] = {}
    for feature in ALL_FEATURES:
        if feature in chosen:
            groups.setdefault(feature.type, []).append(feature)
    return tuple(FeatureGroup(type_, tuple(features)) for type_, features in sorted(groups.items()))

"""DALI examples (``/tap/examples``): real queries on the shipped schemas, as an XHTML document.

Clients such as TOPCAT list these in their example menus.  Each example is
shown only when every table it reads is deployed (listed in TAP_SCHEMA), so
every query on the page runs on this service.  The markup follows DALI 1.1
section 2.3: RDFa ``typeof="example"`` blocks with ``name``, ``query`` and
``table`` properties.  The queries keep to ADQL 2.0 syntax (ORDER BY names
result columns unqualified, as 2.0's grammar requires), so that clients
checking them with a 2.0 parser, such as taplint, accept them too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

__all__ = ["EXAMPLES", "Example", "examples_document"]


@dataclass(frozen=True)
class Example:
    """One example query and the tables it reads."""

    id: str
    name: str
    description: str
    query: str
    tables: tuple[str, ...]


EXAMPLES = (
    Example(
        "cone-diaobject",
        "Cone search on DiaObject",
        "DiaObjects within 6 arcmin of a position, nearest first.",
        "SELECT TOP 100 diaObjectId, ra, dec, nDiaSources,\n"
        "       DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 60.0, -30.0)) AS dist\n"
        "FROM apdb.DiaObject\n"
        "WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 60.0, -30.0, 0.1))\n"
        "ORDER BY dist",
        ("apdb.DiaObject",),
    ),
    Example(
        "light-curve",
        "Light curve of the brightest variable DiaObjects",
        "Every DiaSource of the DiaObjects with the most detections, in time order.",
        "SELECT s.diaObjectId, s.midpointMjdTai, s.band, s.psfFlux, s.psfFluxErr\n"
        "FROM apdb.DiaSource AS s\n"
        "WHERE s.diaObjectId IN (SELECT TOP 3 diaObjectId FROM apdb.DiaObject ORDER BY nDiaSources DESC)\n"
        "ORDER BY diaObjectId, midpointMjdTai",
        ("apdb.DiaSource", "apdb.DiaObject"),
    ),
    Example(
        "sources-per-band",
        "Detections per band",
        "A full-table aggregate, merged from every worker.",
        "SELECT band, COUNT(*) AS n, AVG(psfFlux) AS mean_flux\nFROM apdb.DiaSource\nGROUP BY band\nORDER BY band",
        ("apdb.DiaSource",),
    ),
    Example(
        "object-with-sources",
        "A DiaObject joined with its DiaSources",
        "The director-child join runs inside each chunk.",
        "SELECT TOP 50 o.diaObjectId, o.ra, o.dec, s.diaSourceId, s.band, s.psfFlux\n"
        "FROM apdb.DiaObject AS o JOIN apdb.DiaSource AS s ON s.diaObjectId = o.diaObjectId\n"
        "WHERE 1 = CONTAINS(POINT('ICRS', o.ra, o.dec), CIRCLE('ICRS', 60.0, -30.0, 0.5))",
        ("apdb.DiaObject", "apdb.DiaSource"),
    ),
    Example(
        "close-pairs",
        "Close pairs of data-release Objects",
        "A near-neighbour self-join within 5 arcsec, through the overlap partitions.",
        "SELECT TOP 100 a.objectId AS first_id, b.objectId AS second_id,\n"
        "       DISTANCE(POINT('ICRS', a.ra, a.dec), POINT('ICRS', b.ra, b.dec)) * 3600 AS sep_arcsec\n"
        "FROM dr.Object AS a JOIN dr.Object AS b\n"
        "  ON 1 = CONTAINS(POINT('ICRS', b.ra, b.dec), CIRCLE('ICRS', a.ra, a.dec, 5.0 / 3600))\n"
        "WHERE a.objectId < b.objectId",
        ("dr.Object",),
    ),
    Example(
        "object-count",
        "Objects in the data release",
        "COUNT(*) of a whole table comes from per-chunk row counts.",
        "SELECT COUNT(*) AS n FROM dr.Object",
        ("dr.Object",),
    ),
    Example(
        "tap-schema-tables",
        "Tables of this service",
        "TAP_SCHEMA lists every table and its description.",
        "SELECT schema_name, table_name, description FROM TAP_SCHEMA.tables ORDER BY schema_name, table_name",
        ("TAP_SCHEMA.tables",),
    ),
)


def examples_document(deployed: Iterable[str], *, title: str = "dms-db TAP examples") -> bytes:
    """The examples whose tables are all in ``deployed`` (qualified names, case-insensitive)."""
    present = {name.lower() for name in deployed}
    blocks = []
    for example in EXAMPLES:
        if not all(table.lower() in present for table in example.tables):
            continue
        tables = "".join(
            f'<span property="table" class="dali-table">{escape(table)}</span> ' for table in example.tables
        )
        blocks.append(
            f'<div typeof="example" id={quoteattr(example.id)} resource={quoteattr("#" + example.id)}>'
            f'<h2 property="name">{escape(example.name)}</h2>'
            f"<p>{escape(example.description)} Tables: {tables}</p>"
            f'<pre class="dali-query" property="query">{escape(example.query)}</pre>'
            "</div>"
        )
    document = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML+RDFa 1.1//EN" "http://www.w3.org/MarkUp/DTD/xhtml-rdfa-2.dtd">\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" version="XHTML+RDFa 1.1">'
        f"<head><title>{escape(title)}</title></head>"
        f'<body vocab="http://www.ivoa.net/rdf/examples#"><h1>{escape(title)}</h1>'
        + "".join(blocks)
        + "</body></html>\n"
    )
    return document.encode()

"""The translated cone searches use the GiST index on spoint(radians(ra), radians(dec)).

Every ADQL spelling of a cone search -- CONTAINS/CIRCLE with or without
``1 =``, in both orders, DISTANCE below a radius in both argument orders and
both signatures -- must become a form PostgreSQL answers with an index scan,
never a table scan.  The planner decides on its own (nothing is disabled):
the reference table has enough rows for a small cone to favour the index.
"""

from __future__ import annotations

import json

import psycopg
import pytest

from adql import TableCatalog, translate

INDEX = "DiaSource_spatial_idx"

CONE_SEARCHES = [
    "1 = CONTAINS(POINT(ra, dec), CIRCLE(10, 20, 0.1))",
    "CONTAINS(POINT(ra, dec), CIRCLE(10, 20, 0.1)) = 1",
    "1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 10, 20, 0.1))",
    "CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', POINT('ICRS', 10, 20), 0.1)) = 1",
    "1 = INTERSECTS(CIRCLE(10, 20, 0.1), POINT(ra, dec))",
    "DISTANCE(POINT(ra, dec), POINT(10, 20)) < 0.1",
    "DISTANCE(POINT(10, 20), POINT(ra, dec)) < 0.1",
    "DISTANCE(ra, dec, 10, 20) < 0.1",
    "DISTANCE(10, 20, ra, dec) <= 0.1",
    "0.1 > DISTANCE(POINT(ra, dec), POINT(10, 20))",
    "0.1 >= DISTANCE(10, 20, ra, dec)",
    "1 = CONTAINS(POINT(ra, dec), POLYGON(9.9, 19.9, 10.1, 19.9, 10.1, 20.1))",
    "1 = CONTAINS(POINT(ra, dec), BOX(10, 20, 0.2, 0.2))",
    "1 = CONTAINS(POINT(ra, dec), REGION('Circle ICRS 10 20 0.1'))",
]


def _index_names(plan: dict) -> set[str]:
    names = set()
    if "Index Name" in plan:
        names.add(plan["Index Name"])
    for child in plan.get("Plans", []):
        names |= _index_names(child)
    return names


def _node_types(plan: dict) -> set[str]:
    types = {plan["Node Type"]}
    for child in plan.get("Plans", []):
        types |= _node_types(child)
    return types


def _plan(conn: psycopg.Connection, sql: str) -> dict:
    row = conn.execute("EXPLAIN (FORMAT JSON) " + sql).fetchone()
    assert row is not None
    document = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    return document[0]["Plan"]


@pytest.mark.parametrize("condition", CONE_SEARCHES)
def test_cone_search_uses_spatial_index(
    condition: str, db_catalog: TableCatalog, adql_connection: psycopg.Connection
) -> None:
    sql = translate(f"SELECT diaSourceId FROM apdb.DiaSource WHERE {condition}", db_catalog).sql
    plan = _plan(adql_connection, sql)
    assert INDEX in _index_names(plan), f"no index scan for {condition}:\n{sql}\n{plan}"
    assert "Seq Scan" not in _node_types(plan)


def test_crossmatch_join_uses_spatial_index(db_catalog: TableCatalog, adql_connection: psycopg.Connection) -> None:
    adql = (
        "SELECT o.diaObjectId, s.diaSourceId FROM apdb.DiaObject AS o "
        "JOIN apdb.DiaSource AS s ON DISTANCE(o.ra, o.dec, s.ra, s.dec) < 1.0 / 3600 "
        "WHERE o.diaObjectId = 1000007"
    )
    plan = _plan(adql_connection, translate(adql, db_catalog).sql)
    assert INDEX in _index_names(plan)


def test_cone_search_with_other_conditions(db_catalog: TableCatalog, adql_connection: psycopg.Connection) -> None:
    adql = (
        "SELECT diaSourceId FROM apdb.DiaSource WHERE band = 'r' AND psfFlux > 10 "
        "AND 1 = CONTAINS(POINT(ra, dec), CIRCLE(10, 20, 0.1))"
    )
    plan = _plan(adql_connection, translate(adql, db_catalog).sql)
    assert INDEX in _index_names(plan)


@pytest.mark.parametrize(
    "condition",
    [
        "DISTANCE(s.ra, s.dec, o.ra, o.dec) < 1.0 / 3600",
        "DISTANCE(POINT(o.ra, o.dec), POINT(s.ra, s.dec)) <= 1.0 / 3600",
        "1 = CONTAINS(POINT(o.ra, o.dec), CIRCLE(s.ra, s.dec, 1.0 / 3600))",
    ],
)
def test_crossmatch_uses_index_whichever_side_is_inner(
    condition: str, db_catalog: TableCatalog, adql_connection: psycopg.Connection
) -> None:
    adql = (
        "SELECT o.diaObjectId, s.diaSourceId FROM apdb.DiaObject AS o, apdb.DiaSource AS s "
        f"WHERE {condition} AND o.diaObjectId = 1000007"
    )
    plan = _plan(adql_connection, translate(adql, db_catalog).sql)
    assert INDEX in _index_names(plan)

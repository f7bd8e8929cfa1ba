"""The reference catalog of the ADQL tests: tables, TAP_SCHEMA rows and seeded data.

One definition serves two purposes: :func:`reference_catalog` gives the
translator's view of it without a database (unit, fuzz and benchmark code),
and :func:`build_reference_database` creates the same tables in a real
PostgreSQL + pgSphere database, fills them with seeded random rows (including
positions near both poles and across RA 0/360), creates the deploy code's
GiST index on ``spoint(radians(ra), radians(dec))`` and writes TAP_SCHEMA
1.1 rows describing everything, TAP_SCHEMA included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql

from adql.catalog import ColumnInfo, TableCatalog, TableInfo, TableKindInfo

SEED = 20240607


@dataclass(frozen=True)
class Col:
    """A column: PostgreSQL type plus its TAP_SCHEMA description."""

    name: str
    pg_type: str
    datatype: str
    arraysize: str | None = None
    xtype: str | None = None
    unit: str | None = None
    ucd: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Tab:
    """A table of the reference catalog."""

    schema: str
    name: str
    columns: tuple[Col, ...]
    kind: TableKindInfo
    description: str = ""


def _pos(prefix: str = "") -> tuple[Col, Col]:
    return (
        Col("ra", "double precision", "double", unit="deg", ucd="pos.eq.ra;meta.main", description=f"{prefix}RA"),
        Col("dec", "double precision", "double", unit="deg", ucd="pos.eq.dec;meta.main", description=f"{prefix}Dec"),
    )


DIA_OBJECT = Tab(
    "apdb",
    "DiaObject",
    (
        Col("diaObjectId", "bigint", "long", ucd="meta.id;src", description="Unique id."),
        *_pos(),
        Col("raErr", "real", "float", unit="deg", description="Uncertainty of ra."),
        Col("decErr", "real", "float", unit="deg", description="Uncertainty of dec."),
        Col("nDiaSources", "integer", "int", description="Number of associated DiaSources."),
        Col("g_psfFluxMean", "double precision", "double", unit="nJy", ucd="phot.flux"),
        Col("r_psfFluxMean", "double precision", "double", unit="nJy", ucd="phot.flux"),
        Col("lastDiaSourceMjdTai", "double precision", "double", unit="d", ucd="time.epoch"),
        Col("validityStart", "timestamp", "char", "*", "timestamp", description="Start of validity."),
        Col("flags", "bigint", "long", description="Bit flags."),
        Col("isVariable", "boolean", "boolean", description="Variability flag."),
        Col("name", "varchar(32)", "char", "32*", description="Nickname (may be NULL)."),
    ),
    TableKindInfo("director", "diaObjectId", None, "ra", "dec"),
    "Objects found by difference imaging.",
)

DIA_SOURCE = Tab(
    "apdb",
    "DiaSource",
    (
        Col("diaSourceId", "bigint", "long", ucd="meta.id;obs.image"),
        Col("diaObjectId", "bigint", "long", ucd="meta.id.parent"),
        Col("visit", "bigint", "long", ucd="obs.image;meta.id"),
        Col("detector", "smallint", "short"),
        *_pos(),
        Col("midpointMjdTai", "double precision", "double", unit="d", ucd="time.epoch"),
        Col("band", "char(1)", "char", "1", ucd="meta.id;instr.filter"),
        Col("psfFlux", "double precision", "double", unit="nJy", ucd="phot.flux"),
        Col("psfFluxErr", "double precision", "double", unit="nJy", ucd="stat.error;phot.flux"),
        Col("snr", "real", "float"),
        Col("flags", "bigint", "long"),
    ),
    TableKindInfo("child", "diaObjectId", "apdb.DiaObject", "ra", "dec"),
    "Detections on difference images.",
)

VISIT = Tab(
    "apdb",
    "Visit",
    (
        Col("visit", "bigint", "long", ucd="obs.image;meta.id"),
        Col("band", "char(1)", "char", "1"),
        Col("physicalFilter", "varchar(32)", "char", "32*"),
        Col("expMidptMJD", "double precision", "double", unit="d"),
        Col("exposureTime", "real", "float", unit="s"),
        Col("airmass", "real", "float"),
        Col("obsStart", "timestamp", "char", "*", "timestamp"),
        *_pos("Boresight "),
    ),
    TableKindInfo("replicated", None, None, "ra", "dec"),
    "Visits (replicated on every worker).",
)

ALPHA_SOURCE = Tab(
    "doc",
    "alpha_source",
    (
        Col("id", "integer", "int", ucd="meta.id"),
        *_pos(),
        Col("flux", "double precision", "double", unit="mJy"),
        Col("name", "varchar(16)", "char", "16*"),
    ),
    TableKindInfo("replicated", None, None, "ra", "dec"),
    "The example table of the ADQL 2.1 document.",
)

FOOTPRINTS = Tab(
    "doc",
    "footprints",
    (
        Col("id", "integer", "int", ucd="meta.id"),
        Col("center", "spoint", "double", "2", "point", unit="deg"),
        Col("cone", "scircle", "double", "3", "circle", unit="deg"),
        Col("footprint", "spoly", "double", "*", "polygon", unit="deg"),
        Col("radius", "double precision", "double", unit="deg"),
    ),
    TableKindInfo("replicated"),
    "Geometry-valued columns (POINT, CIRCLE, POLYGON).",
)

_TAP = "TAP_SCHEMA"
TAP_TABLES = (
    Tab(
        _TAP,
        "schemas",
        tuple(
            Col(n, t, d)
            for n, t, d in (
                ("schema_name", "varchar", "char"),
                ("utype", "varchar", "char"),
                ("description", "varchar", "char"),
                ("schema_index", "integer", "int"),
            )
        ),
        TableKindInfo("tap_schema"),
    ),
    Tab(
        _TAP,
        "tables",
        tuple(
            Col(n, t, d)
            for n, t, d in (
                ("schema_name", "varchar", "char"),
                ("table_name", "varchar", "char"),
                ("table_type", "varchar", "char"),
                ("utype", "varchar", "char"),
                ("description", "varchar", "char"),
                ("table_index", "integer", "int"),
            )
        ),
        TableKindInfo("tap_schema"),
    ),
    Tab(
        _TAP,
        "columns",
        tuple(
            Col(n, t, d)
            for n, t, d in (
                ("table_name", "varchar", "char"),
                ("column_name", "varchar", "char"),
                ("datatype", "varchar", "char"),
                ("arraysize", "varchar", "char"),
                ("xtype", "varchar", "char"),
                ("size", "integer", "int"),
                ("description", "varchar", "char"),
                ("utype", "varchar", "char"),
                ("unit", "varchar", "char"),
                ("ucd", "varchar", "char"),
                ("indexed", "integer", "int"),
                ("principal", "integer", "int"),
                ("std", "integer", "int"),
                ("column_index", "integer", "int"),
            )
        ),
        TableKindInfo("tap_schema"),
    ),
    Tab(
        _TAP,
        "keys",
        tuple(Col(n, "varchar", "char") for n in ("key_id", "from_table", "target_table", "utype", "description")),
        TableKindInfo("tap_schema"),
    ),
    Tab(
        _TAP,
        "key_columns",
        tuple(Col(n, "varchar", "char") for n in ("key_id", "from_column", "target_column")),
        TableKindInfo("tap_schema"),
    ),
)

TABLES: tuple[Tab, ...] = (DIA_OBJECT, DIA_SOURCE, VISIT, ALPHA_SOURCE, FOOTPRINTS, *TAP_TABLES)


def _arraysize(col: Col) -> str | None:
    return col.arraysize if col.arraysize else ("*" if col.datatype == "char" else None)


def table_info(tab: Tab) -> TableInfo:
    """Return the translator's view of a reference table."""
    return TableInfo(
        schema_name=tab.schema,
        table_name=tab.name,
        columns=tuple(
            ColumnInfo(c.name, c.datatype, _arraysize(c), c.xtype, c.unit, c.ucd, c.description) for c in tab.columns
        ),
        kind=tab.kind.kind,
        director_key=tab.kind.director_key,
        director_table=tab.kind.director_table,
        ra_column=tab.kind.ra_column,
        dec_column=tab.kind.dec_column,
        description=tab.description or None,
    )


def reference_catalog() -> TableCatalog:
    """Return the reference catalog without a database."""
    return TableCatalog([table_info(tab) for tab in TABLES])


def table_kinds() -> dict[str, TableKindInfo]:
    """Return the partitioning of the reference tables, keyed by qualified name."""
    return {f"{tab.schema}.{tab.name}": tab.kind for tab in TABLES}


# ---------------------------------------------------------------- the data


def _sphere(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    ra = rng.uniform(0.0, 360.0, count)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, count)))
    return ra, dec


def _objects(rng: np.random.Generator) -> list[tuple]:
    parts = [
        _sphere(rng, 1500),
        (rng.uniform(0, 360, 150), rng.uniform(88.0, 90.0, 150)),
        (rng.uniform(0, 360, 150), rng.uniform(-90.0, -88.0, 150)),
        (np.mod(rng.uniform(-1.0, 1.0, 200), 360.0), rng.uniform(-5.0, 5.0, 200)),
        (10.0 + rng.uniform(-1.0, 1.0, 300), 20.0 + rng.uniform(-1.0, 1.0, 300)),
        (25.4 + rng.uniform(-6, 6, 200), -20.0 + rng.uniform(-6, 6, 200)),
    ]
    ra = np.concatenate([p[0] for p in parts])
    dec = np.concatenate([p[1] for p in parts])
    rows = []
    names = ["alpha", "Beta", "gamma_1", "DELTA", "eps%ilon", "zeta_x"]
    for index, (a, d) in enumerate(zip(ra, dec, strict=True)):
        object_id = 1_000_000 + index * 7
        g = float(rng.normal(1000.0, 300.0))
        r = None if index % 10 == 3 else float(rng.normal(1200.0, 250.0))
        day = int(rng.integers(0, 365))
        name = None if index % 7 == 0 else f"{names[index % len(names)]}-{index:04d}"
        rows.append(
            (
                object_id,
                float(a),
                float(d),
                float(abs(rng.normal(1e-5, 3e-6))),
                float(abs(rng.normal(1e-5, 3e-6))),
                int(rng.integers(0, 12)),
                g,
                r,
                float(60000.0 + rng.uniform(0, 1000)),
                f"2024-{1 + day // 31 % 12:02d}-{1 + day % 28:02d} {day % 24:02d}:30:00",
                int(rng.integers(0, 256)),
                bool(index % 3 == 0),
                name,
            )
        )
    return rows


def _sources(rng: np.random.Generator, objects: list[tuple], visits: list[tuple]) -> list[tuple]:
    rows = []
    source_id = 5_000_000_000
    visit_ids = [v[0] for v in visits]
    for obj in objects:
        for _ in range(int(rng.integers(0, 11))):
            source_id += 3
            cos_dec = max(math.cos(math.radians(obj[2])), 1e-3)
            ra = (obj[1] + rng.normal(0, 1.5e-4) / cos_dec) % 360.0
            dec = max(-90.0, min(90.0, obj[2] + rng.normal(0, 1.5e-4)))
            flux = float(rng.normal(obj[6], 100.0))
            err = float(abs(rng.normal(50.0, 10.0)) + 1.0)
            rows.append(
                (
                    source_id,
                    obj[0],
                    int(rng.choice(visit_ids)),
                    int(rng.integers(0, 189)),
                    float(ra),
                    float(dec),
                    float(60000.0 + rng.uniform(0, 1000)),
                    "ugrizy"[int(rng.integers(0, 6))],
                    flux,
                    err,
                    float(flux / err),
                    int(rng.integers(0, 1 << 20)),
                )
            )
    return rows


def _visits(rng: np.random.Generator) -> list[tuple]:
    rows = []
    ra, dec = _sphere(rng, 400)
    for index in range(400):
        band = "ugrizy"[index % 6]
        rows.append(
            (
                7000 + index,
                band,
                f"{band}_{index % 3:02d}",
                float(60000.0 + index * 2.5),
                float(rng.choice([15.0, 30.0])),
                float(rng.uniform(1.0, 2.2)),
                f"2024-{1 + index % 12:02d}-{1 + index % 28:02d} 0{index % 10}:00:00",
                float(ra[index]),
                float(dec[index]),
            )
        )
    return rows


def _alpha(rng: np.random.Generator) -> list[tuple]:
    ra, dec = _sphere(rng, 100)
    return [
        (i + 1, float(ra[i]), float(dec[i]), float(rng.uniform(0, 10)), None if i % 9 == 0 else f"src{i + 1}")
        for i in range(100)
    ]


def _footprints(rng: np.random.Generator) -> list[tuple]:
    rows = []
    for i in range(30):
        ra = float(rng.uniform(0, 360))
        dec = float(rng.uniform(-70, 70))
        radius = float(rng.uniform(0.5, 5.0))
        half = radius / 2
        corners = [(ra - half, dec - half), (ra + half, dec - half), (ra + half, dec + half), (ra - half, dec + half)]
        poly = "{" + ",".join(f"({a % 360.0!r}d,{d!r}d)" for a, d in corners) + "}"
        rows.append((i + 1, f"({ra!r}d,{dec!r}d)", f"<({ra!r}d,{dec!r}d),{radius!r}d>", poly, radius))
    return rows


def _create_table(conn: psycopg.Connection, tab: Tab) -> None:
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(tab.schema)))
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(col.name), sql.SQL(col.pg_type)) for col in tab.columns
    )
    conn.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(tab.schema, tab.name), columns))


def _copy(conn: psycopg.Connection, tab: Tab, rows: list[tuple]) -> None:
    names = sql.SQL(", ").join(sql.Identifier(col.name) for col in tab.columns)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(tab.schema, tab.name), names)
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def _spatial_index(conn: psycopg.Connection, tab: Tab) -> None:
    conn.execute(
        sql.SQL("CREATE INDEX {} ON {} USING gist (spoint(radians({}), radians({})))").format(
            sql.Identifier(f"{tab.name}_spatial_idx"),
            sql.Identifier(tab.schema, tab.name),
            sql.Identifier(tab.kind.ra_column or "ra"),
            sql.Identifier(tab.kind.dec_column or "dec"),
        )
    )


def _tap_schema_rows(conn: psycopg.Connection) -> None:
    schemas = list(dict.fromkeys(tab.schema for tab in TABLES))
    for index, schema in enumerate(schemas):
        conn.execute('INSERT INTO "TAP_SCHEMA".schemas VALUES (%s, NULL, %s, %s)', (schema, f"Schema {schema}", index))
    for t_index, tab in enumerate(TABLES):
        qualified = f"{tab.schema}.{tab.name}"
        conn.execute(
            'INSERT INTO "TAP_SCHEMA".tables VALUES (%s, %s, %s, NULL, %s, %s)',
            (tab.schema, qualified, "table", tab.description or None, t_index),
        )
        for c_index, col in enumerate(tab.columns):
            conn.execute(
                'INSERT INTO "TAP_SCHEMA".columns VALUES (%s, %s, %s, %s, %s, NULL, %s, NULL, %s, %s, %s, 1, 0, %s)',
                (
                    qualified,
                    col.name,
                    col.datatype,
                    _arraysize(col),
                    col.xtype,
                    col.description,
                    col.unit,
                    col.ucd,
                    int(col.name in ("ra", "dec")),
                    c_index,
                ),
            )
    conn.execute(
        'INSERT INTO "TAP_SCHEMA".keys VALUES (%s, %s, %s, NULL, %s)',
        ("dia_fk", "apdb.DiaSource", "apdb.DiaObject", "DiaSource to DiaObject"),
    )
    conn.execute('INSERT INTO "TAP_SCHEMA".key_columns VALUES (%s, %s, %s)', ("dia_fk", "diaObjectId", "diaObjectId"))


def build_reference_database(dsn: str) -> None:
    """Create and fill the reference catalog in the (empty, pgSphere-enabled) database ``dsn``."""
    rng = np.random.default_rng(SEED)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_sphere")
        for tab in TABLES:
            _create_table(conn, tab)
        visits = _visits(rng)
        objects = _objects(rng)
        sources = _sources(rng, objects, visits)
        _copy(conn, VISIT, visits)
        _copy(conn, DIA_OBJECT, objects)
        _copy(conn, DIA_SOURCE, sources)
        _copy(conn, ALPHA_SOURCE, _alpha(rng))
        footprints = _footprints(rng)
        for row in footprints:
            conn.execute("INSERT INTO doc.footprints VALUES (%s, %s::spoint, %s::scircle, %s::spoly, %s)", row)
        for tab in (DIA_OBJECT, DIA_SOURCE, VISIT, ALPHA_SOURCE):
            _spatial_index(conn, tab)
        conn.execute('CREATE INDEX "DiaSource_object_idx" ON apdb."DiaSource" ("diaObjectId")')
        conn.execute('ALTER TABLE apdb."DiaObject" ADD PRIMARY KEY ("diaObjectId")')
        _tap_schema_rows(conn)
        conn.execute("ANALYZE")

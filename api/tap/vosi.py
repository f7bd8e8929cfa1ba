"""The VOSI documents of the service: capabilities, availability and tables.

They are XML documents of fixed IVOA schemas (VOSICapabilities 1.0 with
TAPRegExt 1.0, VOSIAvailability 1.0, VOSITables 1.1 with VODataService
1.1), small enough to be written as text.  The capabilities list exactly
what this service implements: the ADQL features the translator declares
(:func:`adql.language_features`), the output formats of
:mod:`api.tap.formats` and the limits of the configuration.  The tables come
from TAP_SCHEMA, so ``/tables`` and ADQL on TAP_SCHEMA always agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

import psycopg

from adql import ADQL_LANGUAGE, language_features
from api.tap.formats import FORMATS
from dms_db.config import ServiceConfig

__all__ = [
    "TableDescription",
    "availability_document",
    "capabilities_document",
    "read_table_descriptions",
    "table_document",
    "tables_document",
]

XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
_XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
_VS = 'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1"'

UNDECLARED_FEATURE_TYPES = frozenset({"ivo://ivoa.net/std/TAPRegExt#features-adql-conditional"})
"""Feature groups the translator implements but the capabilities leave out.

ADQL 2.1 puts COALESCE under ``features-adql-conditional``; the TAP
validators in use (stilts taplint 3.4) predate that key and report it as an
error, which some clients treat as a broken capabilities document.  COALESCE
still works: the translator accepts it whether or not it is declared.
"""

_STANDARD_FORMAT_IDS = {
    "votable": "ivo://ivoa.net/std/TAPRegExt#output-votable-td",
    "votable-binary2": "ivo://ivoa.net/std/TAPRegExt#output-votable-binary2",
}


def _text(tag: str, value: object | None) -> str:
    return "" if value is None or value == "" else f"<{tag}>{escape(str(value))}</{tag}>"


def _interface(url: str, *, role: str | None = None, version: str | None = None, params: Sequence[str] = ()) -> str:
    role_attr = f" role={quoteattr(role)}" if role else ""
    version_attr = f" version={quoteattr(version)}" if version else ""
    return (
        f'<interface xsi:type="vs:ParamHTTP"{role_attr}{version_attr}>'
        f'<accessURL use="base">{escape(url)}</accessURL>' + "".join(params) + "</interface>"
    )


def capabilities_document(base_url: str, config: ServiceConfig) -> bytes:
    """The VOSI capabilities of the TAP service at ``base_url`` (ending in ``/tap``)."""
    languages = []
    for version, ivo_id in (("2.0", "ivo://ivoa.net/std/ADQL#v2.0"), (ADQL_LANGUAGE.version, ADQL_LANGUAGE.ivo_id)):
        languages.append(f'<version ivo-id="{ivo_id}">{version}</version>')
    features = "".join(
        f"<languageFeatures type={quoteattr(group.type)}>"
        + "".join(
            f"<feature><form>{escape(feature.form)}</form>{_text('description', feature.description)}</feature>"
            for feature in group.features
        )
        + "</languageFeatures>"
        for group in language_features()
        if group.type not in UNDECLARED_FEATURE_TYPES
    )
    outputs = []
    for result_format in FORMATS:
        ivo_id = _STANDARD_FORMAT_IDS.get(result_format.name)
        attribute = f" ivo-id={quoteattr(ivo_id)}" if ivo_id else ""
        aliases = "".join(_text("alias", alias) for alias in result_format.aliases)
        outputs.append(
            f"<outputFormat{attribute}><mime>{escape(result_format.media_type)}</mime>{aliases}</outputFormat>"
        )
    retention = int(config.destruction_days * 86400)
    tap = (
        '<capability standardID="ivo://ivoa.net/std/TAP" xsi:type="tr:TableAccess">'
        # TAP 1.1 section 2: version="1.1" on the standard interface tells clients (and validators) which TAP
        # they talk to; without it they assume 1.0 (and, for instance, send REQUEST=doQuery).
        + _interface(base_url, role="std", version="1.1")
        + "<language><name>ADQL</name>"
        + "".join(languages)
        + _text("description", ADQL_LANGUAGE.description)
        + features
        + "</language>"
        + "".join(outputs)
        + '<uploadMethod ivo-id="ivo://ivoa.net/std/TAPRegExt#upload-inline"/>'
        + ('<uploadMethod ivo-id="ivo://ivoa.net/std/TAPRegExt#upload-http"/>' if config.upload_from_urls else "")
        + f"<retentionPeriod><default>{retention}</default><hard>{retention}</hard></retentionPeriod>"
        + f"<executionDuration><default>{config.execution_duration_s}</default>"
        + f"<hard>{config.execution_duration_max_s}</hard></executionDuration>"
        + f'<outputLimit><default unit="row">{config.maxrec_default}</default>'
        + f'<hard unit="row">{config.maxrec_limit}</hard></outputLimit>'
        + f'<uploadLimit><default unit="byte">{config.upload_max_bytes}</default>'
        + f'<hard unit="byte">{config.upload_max_bytes}</hard></uploadLimit>'
        + "</capability>"
    )
    vosi = "".join(
        f'<capability standardID="ivo://ivoa.net/std/VOSI#{name}">{_interface(f"{base_url}/{name}")}</capability>'
        for name in ("capabilities", "availability", "tables")
    )
    examples = (
        f'<capability standardID="ivo://ivoa.net/std/DALI#examples">{_interface(f"{base_url}/examples")}</capability>'
    )
    document = (
        XML_DECLARATION
        + '<vosi:capabilities xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0" '
        + f'{_XSI} {_VS} xmlns:tr="http://www.ivoa.net/xml/TAPRegExt/v1.0">'
        + tap
        + vosi
        + examples
        + "</vosi:capabilities>\n"
    )
    return document.encode()


def availability_document(available: bool, note: str, *, up_since: datetime | None = None) -> bytes:
    """The VOSI availability document."""
    since = (
        f"<vosi:upSince>{up_since.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}</vosi:upSince>" if up_since else ""
    )
    return (
        XML_DECLARATION
        + '<vosi:availability xmlns:vosi="http://www.ivoa.net/xml/VOSIAvailability/v1.0">'
        + f"<vosi:available>{'true' if available else 'false'}</vosi:available>"
        + since
        + f"<vosi:note>{escape(note)}</vosi:note>"
        + "</vosi:availability>\n"
    ).encode()


@dataclass(frozen=True)
class ColumnDescription:
    """One row of TAP_SCHEMA.columns."""

    name: str
    description: str | None
    unit: str | None
    ucd: str | None
    utype: str | None
    datatype: str
    arraysize: str | None
    xtype: str | None
    principal: bool
    indexed: bool
    std: bool


@dataclass(frozen=True)
class ForeignKeyDescription:
    """One foreign key of TAP_SCHEMA.keys with its column pairs."""

    target_table: str
    description: str | None
    utype: str | None
    columns: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class TableDescription:
    """One table of TAP_SCHEMA.tables with its columns and foreign keys."""

    schema_name: str
    schema_description: str | None
    name: str
    table_type: str
    description: str | None
    utype: str | None
    columns: tuple[ColumnDescription, ...]
    foreign_keys: tuple[ForeignKeyDescription, ...]


async def read_table_descriptions(conn: psycopg.AsyncConnection) -> list[TableDescription]:
    """Every table TAP_SCHEMA lists, in its recommended order."""
    schemas = {
        name: description
        for name, description in await (
            await conn.execute('SELECT schema_name, description FROM "TAP_SCHEMA".schemas')
        ).fetchall()
    }
    columns: dict[str, list[ColumnDescription]] = {}
    rows = await (
        await conn.execute(
            "SELECT table_name, column_name, description, unit, ucd, utype, datatype, arraysize, xtype, "
            'principal, indexed, std FROM "TAP_SCHEMA".columns ORDER BY table_name, column_index, column_name'
        )
    ).fetchall()
    for table_name, *values in rows:
        columns.setdefault(table_name, []).append(
            ColumnDescription(*values[:8], bool(values[8]), bool(values[9]), bool(values[10]))
        )
    pairs: dict[str, list[tuple[str, str]]] = {}
    # No ORDER BY: the column pairs of a key stay in stored order (the order of the Felis constraint), which is
    # also the order an ADQL query on TAP_SCHEMA.key_columns returns them in; sorting by key_id alone would
    # shuffle the pairs of a multi-column key and make /tables disagree with TAP_SCHEMA.
    for key_id, from_column, target_column in await (
        await conn.execute('SELECT key_id, from_column, target_column FROM "TAP_SCHEMA".key_columns')
    ).fetchall():
        pairs.setdefault(key_id, []).append((from_column, target_column))
    keys: dict[str, list[ForeignKeyDescription]] = {}
    for key_id, from_table, target_table, description, utype in await (
        await conn.execute(
            'SELECT key_id, from_table, target_table, description, utype FROM "TAP_SCHEMA".keys ORDER BY key_id'
        )
    ).fetchall():
        keys.setdefault(from_table, []).append(
            ForeignKeyDescription(target_table, description, utype, tuple(pairs.get(key_id, ())))
        )
    tables = await (
        await conn.execute(
            'SELECT t.schema_name, t.table_name, t.table_type, t.description, t.utype FROM "TAP_SCHEMA".tables t '
            'LEFT JOIN "TAP_SCHEMA".schemas s USING (schema_name) '
            "ORDER BY s.schema_index, t.schema_name, t.table_index, t.table_name"
        )
    ).fetchall()
    return [
        TableDescription(
            schema_name,
            schemas.get(schema_name),
            table_name,
            table_type,
            description,
            utype,
            tuple(columns.get(table_name, ())),
            tuple(keys.get(table_name, ())),
        )
        for schema_name, table_name, table_type, description, utype in tables
    ]


def _column_xml(column: ColumnDescription) -> str:
    arraysize = f" arraysize={quoteattr(column.arraysize)}" if column.arraysize else ""
    xtype = f" extendedType={quoteattr(column.xtype)}" if column.xtype else ""
    flags = "".join(
        f"<flag>{name}</flag>"
        for name, on in (("indexed", column.indexed), ("primary", column.principal), ("std", column.std))
        if on
    )
    return (
        "<column>"
        + _text("name", column.name)
        + _text("description", column.description)
        + _text("unit", column.unit)
        + _text("ucd", column.ucd)
        + _text("utype", column.utype)
        + f'<dataType xsi:type="vs:VOTableType"{arraysize}{xtype}>{escape(column.datatype)}</dataType>'
        + flags
        + "</column>"
    )


def _table_type(table: TableDescription) -> str:
    return "view" if table.table_type == "view" else "output"


def _table_xml(table: TableDescription, *, detail: bool = True) -> str:
    return f'<table type="{_table_type(table)}">{_table_body(table, detail=detail)}</table>'


def _table_body(table: TableDescription, *, detail: bool) -> str:
    body = _text("name", table.name) + _text("description", table.description) + _text("utype", table.utype)
    if detail:
        body += "".join(_column_xml(column) for column in table.columns)
        for key in table.foreign_keys:
            body += (
                "<foreignKey>"
                + _text("targetTable", key.target_table)
                + "".join(
                    f"<fkColumn>{_text('fromColumn', a)}{_text('targetColumn', b)}</fkColumn>" for a, b in key.columns
                )
                + _text("description", key.description)
                + _text("utype", key.utype)
                + "</foreignKey>"
            )
    return body


def tables_document(tables: Iterable[TableDescription], *, detail: bool = True) -> bytes:
    """The VOSI tableset: every schema with its tables (and, in detail, their columns)."""
    by_schema: dict[str, list[TableDescription]] = {}
    descriptions: dict[str, str | None] = {}
    for table in tables:
        by_schema.setdefault(table.schema_name, []).append(table)
        descriptions[table.schema_name] = table.schema_description
    schemas = "".join(
        "<schema>"
        + _text("name", name)
        + _text("description", descriptions[name])
        + "".join(_table_xml(table, detail=detail) for table in members)
        + "</schema>"
        for name, members in by_schema.items()
    )
    return (
        XML_DECLARATION
        + f'<vosi:tableset xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0" {_XSI} {_VS}>'
        + schemas
        + "</vosi:tableset>\n"
    ).encode()


def table_document(table: TableDescription) -> bytes:
    """The VOSI description of one table (``/tables/<name>``)."""
    return (
        XML_DECLARATION
        + f'<vosi:table xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0" {_XSI} {_VS} '
        + f'type="{_table_type(table)}">'
        + _table_body(table, detail=True)
        + "</vosi:table>\n"
    ).encode()

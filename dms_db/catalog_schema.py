"""Load a Felis YAML catalog schema and decide how dms-db partitions each of its tables.

The Felis file is the single source of truth for a catalog (DESIGN.md section 3). Felis
rejects keys it does not know, so dms-db keeps its own table annotations in a ``dms:``
namespace, strips them here before Felis validates the rest, and checks them itself:

``dms:kind``
    ``director`` | ``child`` | ``replicated`` (Qserv's table kinds).
``dms:directorTable``
    For a child: the director whose chunk holds each of its rows.
``dms:directorKey``
    For a director its own id column; for a child the column holding the director's id.
``dms:ra``, ``dms:dec``
    Position columns; required for directors, optional for children and replicated tables.

A file without annotations (for instance one of Rubin's sdm_schemas) gets defaults, and in
a partially annotated file the annotations win and the rest is defaulted:

1. A table with main position columns and a single-column primary key is a director
   candidate. Main positions are the columns whose UCDs hold ``pos.eq.ra``/``pos.eq.dec``
   together with ``meta.main``; only if no table of the file marks any column that way are
   well-known names (``ra``/``dec``, ``coord_ra``/``coord_dec``...) used instead, because
   a file that uses ``meta.main`` also has boresight ``ra``/``dec`` columns (Visit,
   CcdVisit) that are no catalog positions.
2. A table with a Felis ForeignKey whose single column refers to a director's key is a
   child of that director, even if it has positions of its own.
3. A remaining candidate is a director; everything else is replicated.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from felis.datamodel import Column, DataType, ForeignKeyConstraint, Schema, SchemaVersion, Table, UniqueConstraint
from felis.types import FelisType
from pydantic import ValidationError

from dms_db.errors import SchemaError

__all__ = [
    "RESERVED_COLUMN_NAMES",
    "RESERVED_COLUMN_PREFIX",
    "CatalogSchema",
    "CatalogTable",
    "TableKind",
    "load_catalog_schema",
    "shipped_schema_names",
    "shipped_schema_path",
]

RESERVED_COLUMN_NAMES = frozenset({"chunk_id", "healpix_index"})
"""Columns dms-db adds to every partitioned table; a catalog may not define them."""

RESERVED_COLUMN_PREFIX = "dms_"
"""Prefix of the names dms-db keeps for its own bookkeeping columns."""

_RESERVED_SCHEMA_NAMES = frozenset({"tap_schema", "tap_upload", "dms", "dms_worker", "public", "information_schema"})
_TABLE_KEYS = ("dms:kind", "dms:directorTable", "dms:directorKey", "dms:ra", "dms:dec")
_MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1; longer names are silently truncated
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")  # also a regular ADQL identifier
# Fallback position column names, tried in this order (case-insensitively) when no UCD says meta.main.
_POSITION_NAMES = (
    ("ra", "dec"), ("coord_ra", "coord_dec"), ("ra_deg", "dec_deg"), ("raj2000", "dej2000"), ("ra_icrs", "de_icrs"),
    ("ra", "decl"),
)  # fmt: skip
_SCHEMAS_DIR = Path(__file__).parent / "schemas"


class TableKind(StrEnum):
    """How a table is stored across the cluster (Qserv's table kinds)."""

    DIRECTOR = "director"
    CHILD = "child"
    REPLICATED = "replicated"


def _close_names(name: str, candidates: Iterable[str]) -> str:
    """Say which known names resemble ``name``, so that error messages can suggest a fix."""
    candidates = list(candidates)
    folded = [c for c in candidates if c.lower() == name.lower()]
    close = folded + [c for c in difflib.get_close_matches(name, candidates, n=5, cutoff=0.6) if c not in folded]
    if close:
        return "did you mean " + ", ".join(repr(c) for c in close) + "?"
    return "known names: " + ", ".join(repr(c) for c in candidates[:20])


@dataclass(frozen=True)
class CatalogTable:
    """One table of a catalog with its Felis definition and its place in the cluster."""

    name: str
    kind: TableKind
    felis: Table = field(compare=False, repr=False)
    primary_key: tuple[str, ...]
    director_table: str | None
    """A child's director; a director names itself; None for replicated tables."""
    director_key: str | None
    """The column holding the director id (a director's own id column)."""
    ra_column: str | None
    dec_column: str | None
    description: str | None

    @property
    def is_partitioned(self) -> bool:
        """Whether rows live in HEALPix chunks (directors and children) rather than on every worker."""
        return self.kind is not TableKind.REPLICATED

    @property
    def column_names(self) -> tuple[str, ...]:
        """Column names in declaration order."""
        return tuple(column.name for column in self.felis.columns)

    def column(self, name: str) -> Column:
        """Return the Felis column called exactly ``name``.

        Raises
        ------
        SchemaError
            If there is no such column; the message lists the closest names.
        """
        for column in self.felis.columns:
            if column.name == name:
                return column
        raise SchemaError(f"Table {self.name!r} has no column {name!r}", hint=_close_names(name, self.column_names))


@dataclass(frozen=True)
class CatalogSchema:
    """A validated catalog: its Felis schema, the dms-db view of each table, and its source text."""

    name: str
    """The deployed name (ADQL and PostgreSQL schema name); the Felis name unless renamed."""
    felis_name: str
    version: str | None
    description: str | None
    felis: Schema = field(compare=False, repr=False)
    tables: tuple[CatalogTable, ...]
    source_text: str = field(repr=False)
    """The YAML exactly as given, kept so the coordinator registry can store and re-read it."""

    def table(self, name: str) -> CatalogTable:
        """Return the table called exactly ``name``; SchemaError naming the closest ones if unknown."""
        for table in self.tables:
            if table.name == name:
                return table
        raise SchemaError(
            f"Catalog {self.name!r} has no table {name!r}",
            hint=_close_names(name, (t.name for t in self.tables)),
        )

    def directors(self) -> tuple[CatalogTable, ...]:
        """Return the director tables in file order."""
        return tuple(t for t in self.tables if t.kind is TableKind.DIRECTOR)

    def children_of(self, director_name: str) -> tuple[CatalogTable, ...]:
        """Return the children stored in the chunks of ``director_name``, in file order."""
        director = self.table(director_name)
        return tuple(t for t in self.tables if t.kind is TableKind.CHILD and t.director_table == director.name)

    def replicated(self) -> tuple[CatalogTable, ...]:
        """Return the tables copied to every worker, in file order."""
        return tuple(t for t in self.tables if t.kind is TableKind.REPLICATED)


def shipped_schema_names() -> tuple[str, ...]:
    """Names of the Felis schemas shipped with dms-db (``apdb``, ``dr``)."""
    return tuple(sorted(path.stem for path in _SCHEMAS_DIR.glob("*.yaml")))


def shipped_schema_path(name: str) -> Path:
    """Path of a shipped Felis schema, so that the CLI can deploy one by name."""
    names = shipped_schema_names()
    if name not in names:
        raise SchemaError(f"No shipped schema called {name!r}", hint="shipped schemas: " + ", ".join(names))
    return _SCHEMAS_DIR / f"{name}.yaml"


def load_catalog_schema(source: str | Path, *, name: str | None = None) -> CatalogSchema:
    """Load, validate and annotate a Felis schema.

    Parameters
    ----------
    source
        A path to a YAML file, or the YAML text itself: a string is read as YAML text
        unless it is one line naming an existing file or ending in ``.yaml``/``.yml``.
    name
        Deployed name of the catalog (``--as NAME``); defaults to the Felis schema name.

    Raises
    ------
    SchemaError
        If the YAML, the Felis content or a ``dms:`` annotation is invalid; the message
        names the file and the table, column or key at fault.
    """
    text, origin = _read_source(source)
    data = _parse_yaml(text, origin)
    annotations = _strip_annotations(data, origin)
    felis_schema = _validate_with_felis(data, origin)
    deployed = felis_schema.name if name is None else name
    _check_schema_name(deployed, origin, renamed=name is not None)
    _check_identifiers(felis_schema, origin)
    tables = _Resolver(felis_schema, annotations, origin).resolve()
    version = felis_schema.version
    return CatalogSchema(
        name=deployed,
        felis_name=felis_schema.name,
        version=version.current if isinstance(version, SchemaVersion) else version,
        description=felis_schema.description,
        felis=felis_schema,
        tables=tables,
        source_text=text,
    )


def _read_source(source: str | Path) -> tuple[str, str]:
    """Return the YAML text and a label for messages (the file name, or ``<text>``)."""
    if isinstance(source, str):
        try:
            is_path = "\n" not in source and (
                Path(source).is_file() or (source.endswith((".yaml", ".yml")) and ": " not in source)
            )
        except OSError:  # a one-line YAML text can be longer than any file name
            is_path = False
        if not is_path:
            return source, "<text>"
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8"), path.name
    except FileNotFoundError:
        raise SchemaError(f"Schema file {str(path)!r} does not exist", hint="check the path") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SchemaError(f"Cannot read schema file {str(path)!r}: {error}") from None


def _parse_yaml(text: str, origin: str) -> dict[str, Any]:
    """Parse YAML, turning syntax errors into a SchemaError that gives the line and column."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise SchemaError(f"{origin}: invalid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise SchemaError(
            f"{origin}: a Felis schema must be a YAML mapping with 'name' and 'tables'",
            hint="see https://felis.lsst.io; for a shipped schema use shipped_schema_path(name)",
        )
    return data


def _label(item: Any, index: int) -> str:
    """Name of a raw YAML table or column, or its position if it has no usable name."""
    name = item.get("name") if isinstance(item, dict) else None
    return repr(name) if isinstance(name, str) else f"#{index + 1}"


def _raw_items(parent: dict[str, Any], key: str) -> list[tuple[str, dict[str, Any]]]:
    """The (label, mapping) pairs of a raw YAML list such as ``tables``; Felis reports malformed ones."""
    items = parent.get(key)
    items = items if isinstance(items, list) else []
    return [(_label(item, i), item) for i, item in enumerate(items) if isinstance(item, dict)]


def _strip_annotations(data: dict[str, Any], origin: str) -> dict[str, dict[str, str]]:
    """Remove every ``dms:`` key in place, check them and return each table's annotations.

    Felis must never see these keys (its models forbid unknown keys, so a ``dms:`` key on the schema
    or on a column is reported by Felis). Unknown table keys are rejected here so that a typo is not
    silently ignored. Datatypes are checked here too: Felis raises a bare TypeError for an unknown one.
    """
    result: dict[str, dict[str, str]] = {}
    for label, table in _raw_items(data, "tables"):
        found = {key: table.pop(key) for key in list(table) if str(key).startswith("dms:")}
        for key, value in found.items():
            if key not in _TABLE_KEYS:
                hint = _close_names(key, _TABLE_KEYS)
                raise SchemaError(f"{origin}: table {label} has unknown key {key!r}", hint=hint)
            if not isinstance(value, str) or not value:
                raise SchemaError(f"{origin}: table {label}: {key} must be a non-empty string, not {value!r}")
        if found.get("dms:kind", "director") not in TableKind.__members__.values():
            hint = "allowed values: " + ", ".join(TableKind)
            raise SchemaError(f"{origin}: table {label} has dms:kind {found['dms:kind']!r}", hint=hint)
        for c_label, column in _raw_items(table, "columns"):
            if (datatype := column.get("datatype")) is not None and datatype not in DataType.__members__.values():
                raise SchemaError(
                    f"{origin}: table {label}, column {c_label}: unknown datatype {datatype!r}",
                    hint="Felis datatypes: " + ", ".join(DataType),
                )
        if isinstance(table.get("name"), str):
            result[table["name"]] = found
    return result


def _validate_with_felis(data: dict[str, Any], origin: str) -> Schema:
    """Validate with Felis and report its errors with a readable path to each problem."""
    if "resources" in data or any("columnRefs" in table for _, table in _raw_items(data, "tables")):
        raise SchemaError(
            f"{origin}: external Felis resources (resources/columnRefs) are not supported",
            hint="dms-db stores the YAML in its registry and needs it self-contained; inline the columns",
        )
    try:
        return Schema.model_validate(copy.deepcopy(data), context={"id_generation": True})
    except ValidationError as error:
        problems = []
        for problem in error.errors():
            message = str(problem["msg"]).removeprefix("Value error, ")
            if str(problem["loc"][-1]).startswith("dms:"):
                message += " (dms: annotations belong on tables: " + ", ".join(_TABLE_KEYS) + ")"
            problems.append(f"{_error_location(data, problem['loc'])}: {message}")
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise SchemaError(f"{origin}: invalid Felis schema: " + "; ".join(problems[:5]) + more) from None
    except (TypeError, ValueError, KeyError) as error:  # Felis validators that escape pydantic
        raise SchemaError(f"{origin}: invalid Felis schema: {error}") from None


def _error_location(data: Any, loc: tuple[Any, ...]) -> str:
    """Turn a pydantic location such as ``('tables', 1, 'columns', 3, 'ivoa:ucd')`` into names."""
    parts: list[str] = []
    node, index = data, 0
    while index < len(loc):
        key = loc[index]
        nxt = loc[index + 1] if index + 1 < len(loc) else None
        if key in ("tables", "columns", "constraints", "indexes") and isinstance(nxt, int):
            items = node.get(key) if isinstance(node, dict) else None
            item = items[nxt] if isinstance(items, list) and nxt < len(items) else None
            parts.append(f"{key[:-1] if key != 'indexes' else 'index'} {_label(item, nxt)}")
            node, index = item, index + 2
            if key == "constraints" and index < len(loc) and loc[index] in ("ForeignKey", "Unique", "Check"):
                index += 1  # pydantic inserts the union tag; it means nothing to the user
        else:
            parts.append(f"field {'.'.join(str(k) for k in loc[index:])!r}")
            break
    return ", ".join(parts) or "schema"


def _identifier_problem(name: str) -> str | None:
    """Why ``name`` cannot be used unquoted in ADQL and as a PostgreSQL identifier, or None if it can."""
    if not _IDENTIFIER.match(name):
        return "must start with a letter and hold only letters, digits and '_'"
    if len(name.encode()) > _MAX_IDENTIFIER_BYTES:
        return f"is longer than PostgreSQL's {_MAX_IDENTIFIER_BYTES} bytes"
    return None


def _check_schema_name(name: str, origin: str, *, renamed: bool) -> None:
    """A catalog is both a PostgreSQL schema and an ADQL schema; its name must suit both."""
    problem = _identifier_problem(name)
    if problem is None and (name.lower() in _RESERVED_SCHEMA_NAMES or name.lower().startswith("pg_")):
        problem = "is reserved by TAP, PostgreSQL or dms-db"
    if problem:
        hint = "choose another name" if renamed else "deploy the catalog under another name (--as NAME)"
        raise SchemaError(f"{origin}: schema name {name!r} {problem}", hint=hint)


def _check_identifiers(schema: Schema, origin: str) -> None:
    """Check table and column names, including clashes that only differ in case.

    ADQL folds unquoted identifiers, so ``ra`` and ``RA`` in one table could not both be named.
    """
    seen_tables: dict[str, str] = {}
    for table in schema.tables:
        if problem := _identifier_problem(table.name):
            raise SchemaError(f"{origin}: table name {table.name!r} {problem}")
        if (other := seen_tables.setdefault(table.name.lower(), table.name)) != table.name:
            raise SchemaError(f"{origin}: tables {other!r} and {table.name!r} differ only in case")
        if not table.columns:
            raise SchemaError(f"{origin}: table {table.name!r} has no columns")
        seen_columns: dict[str, str] = {}
        for column in table.columns:
            if problem := _identifier_problem(column.name):
                raise SchemaError(f"{origin}: column name {column.name!r} of table {table.name!r} {problem}")
            lowered = column.name.lower()
            if lowered in RESERVED_COLUMN_NAMES or lowered.startswith(RESERVED_COLUMN_PREFIX):
                raise SchemaError(
                    f"{origin}: table {table.name!r} defines column {column.name!r}, a name dms-db reserves",
                    hint="rename it; dms-db adds chunk_id, healpix_index and dms_* columns itself",
                )
            if (other := seen_columns.setdefault(lowered, column.name)) != column.name:
                raise SchemaError(
                    f"{origin}: table {table.name!r} has columns {other!r} and {column.name!r}, "
                    "which differ only in case"
                )


def _ucd_words(column: Column) -> set[str]:
    return {word.strip().lower() for word in (column.ivoa_ucd or "").split(";")}


def _is_numeric(column: Column) -> bool:
    return FelisType.felis_type(column.datatype.value).is_numeric


class _Resolver:
    """Work out each table's kind, keys and positions from its annotations, else the defaults."""

    def __init__(self, schema: Schema, annotations: dict[str, dict[str, str]], origin: str) -> None:
        self.schema, self.annotations, self.origin = schema, annotations, origin
        self.tables = {table.name: table for table in schema.tables}
        self.owner = {column.id: (table.name, column.name) for table in schema.tables for column in table.columns}
        self.use_names = not any(
            "meta.main" in words and {"pos.eq.ra", "pos.eq.dec"} & words
            for table in schema.tables
            for words in map(_ucd_words, table.columns)
        )
        self.pk = {table.name: self.primary_key(table) for table in schema.tables}
        self.kinds: dict[str, tuple[TableKind, str | None]] = {}
        self.links: dict[str, list[tuple[str, str]]] = {}

    def fail(self, table: str, message: str, hint: str | None = None) -> SchemaError:
        return SchemaError(f"{self.origin}: table {table!r}: {message}", hint=hint)

    def ann(self, table: str, key: str) -> str | None:
        return self.annotations.get(table, {}).get(key)

    def primary_key(self, table: Table) -> tuple[str, ...]:
        """Column names of the primary key; Felis itself does not check that its ids exist."""
        pk = table.primary_key
        names = []
        for column_id in [] if pk is None else [pk] if isinstance(pk, str) else pk:
            owner, column = self.owner.get(column_id, (None, None))
            if owner != table.name or column is None:
                raise self.fail(table.name, f"primaryKey refers to {column_id!r}, which is not one of its columns")
            names.append(column)
        return tuple(names)

    def column(self, table: Table, name: str, key: str) -> Column:
        """The column ``name`` that annotation ``key`` refers to."""
        for column in table.columns:
            if column.name == name:
                return column
        hint = _close_names(name, (c.name for c in table.columns))
        raise self.fail(table.name, f"{key} names {name!r}, which is not a column", hint=hint)

    def default_positions(self, table: Table) -> tuple[str, str] | None:
        """Main position columns by UCD, else by well-known names (see the module docstring)."""
        found = []
        for axis in ("pos.eq.ra", "pos.eq.dec"):
            matches = [c.name for c in table.columns if {axis, "meta.main"} <= _ucd_words(c) and _is_numeric(c)]
            if len(matches) > 1:
                hint = "name the position with dms:ra and dms:dec"
                raise self.fail(table.name, f"several columns are {axis};meta.main: {', '.join(matches)}", hint=hint)
            found.append(matches[0] if matches else None)
        if found[0] and found[1]:
            return found[0], found[1]
        by_lower = {c.name.lower(): c for c in table.columns if _is_numeric(c)} if self.use_names else {}
        for ra, dec in _POSITION_NAMES:
            if ra in by_lower and dec in by_lower:
                return by_lower[ra].name, by_lower[dec].name
        return None

    def director_links(self, table: Table, keys: Mapping[str, str | None]) -> list[tuple[str, str]]:
        """(director, local column) for each one-column ForeignKey to the key of a table in ``keys``."""
        links = []
        for constraint in table.constraints:
            if isinstance(constraint, ForeignKeyConstraint) and len(constraint.columns) == 1:
                target, target_column = self.owner[constraint.referenced_columns[0]]
                if target != table.name and keys.get(target) == target_column:
                    links.append((target, self.owner[constraint.columns[0]][1]))
        return links

    def infer_kinds(self) -> None:
        """Fill ``self.kinds``: explicit kinds first, then rules 1-3 of the module docstring."""
        candidates: dict[str, str | None] = {}  # possible director -> its key column, if it has one
        for name, table in self.tables.items():
            single_pk = self.pk[name][0] if len(self.pk[name]) == 1 else None
            kind = self.ann(name, "dms:kind") or ("child" if self.ann(name, "dms:directorTable") else None)
            if kind is not None:
                self.kinds[name] = (TableKind(kind), self.ann(name, "dms:directorTable"))
                if kind == TableKind.DIRECTOR:
                    candidates[name] = self.ann(name, "dms:directorKey") or single_pk
            elif self.default_positions(table) is not None:
                candidates[name] = single_pk
        self.links = {name: self.director_links(table, candidates) for name, table in self.tables.items()}

        def resolve(name: str, stack: tuple[str, ...]) -> TableKind:
            if name in self.kinds:
                return self.kinds[name][0]
            if name in stack:
                cycle = " -> ".join((*stack[stack.index(name) :], name))
                raise self.fail(name, f"foreign keys form a cycle ({cycle})", hint="add dms:kind annotations")
            for director, _ in self.links[name]:
                if resolve(director, (*stack, name)) is TableKind.DIRECTOR:
                    self.kinds[name] = (TableKind.CHILD, director)
                    return TableKind.CHILD
            self.kinds[name] = (TableKind.DIRECTOR if name in candidates else TableKind.REPLICATED, None)
            return self.kinds[name][0]

        for name in self.tables:
            resolve(name, ())
        for name, (kind, director) in list(self.kinds.items()):
            if kind is TableKind.CHILD and director is None:  # explicit child without dms:directorTable
                found = [d for d, _ in self.links[name] if self.kinds[d][0] is TableKind.DIRECTOR]
                if not found:
                    hint = "add dms:directorTable, or a ForeignKey to the director's id column"
                    raise self.fail(name, "is a child but names no director", hint=hint)
                self.kinds[name] = (kind, found[0])

    def positions(self, table: Table, kind: TableKind) -> tuple[str | None, str | None]:
        """Annotated positions, else (for partitioned tables) the default ones; checked to be numeric."""
        ra, dec = self.ann(table.name, "dms:ra"), self.ann(table.name, "dms:dec")
        if (ra is None) != (dec is None):
            raise self.fail(table.name, "dms:ra and dms:dec must be given together")
        if ra is None and kind is not TableKind.REPLICATED:
            ra, dec = self.default_positions(table) or (None, None)
        for key, name in (("dms:ra", ra), ("dms:dec", dec)):
            if name is not None and not _is_numeric(column := self.column(table, name, key)):
                hint = "position columns must be numeric (double, in degrees)"
                raise self.fail(table.name, f"{key} column {name!r} is {column.datatype.value}", hint=hint)
        return ra, dec

    def director_key(self, table: Table, ra: str | None, dec: str | None) -> str:
        """A director's key: annotated or its single-column primary key, unique either way."""
        name, pk = table.name, self.pk[table.name]
        if ra is None:
            raise self.fail(name, "is a director but has no position columns", hint="add dms:ra and dms:dec")
        key = self.ann(name, "dms:directorKey") or (pk[0] if len(pk) == 1 else None)
        if key is None:
            explicit = self.ann(name, "dms:kind") is not None
            hint = f"add primaryKey: '#{name}.<id column>', or dms:kind: replicated if it is no director"
            hint = "add dms:directorKey naming its unique id column" if explicit else hint
            raise self.fail(name, f"has position columns ({ra}, {dec}) but no single-column primary key", hint)
        self.column(table, key, "dms:directorKey")
        singles = [c.columns[0] for c in table.constraints if isinstance(c, UniqueConstraint) and len(c.columns) == 1]
        unique = {self.owner[column_id][1] for column_id in singles} | ({pk[0]} if len(pk) == 1 else set())
        if key not in unique:
            hint = "it must be the single-column primaryKey or have a Unique constraint"
            raise self.fail(name, f"director key {key!r} is not unique", hint=hint)
        return key

    def child_key(self, table: Table, director: str, directors: Mapping[str, CatalogTable]) -> str:
        """A child's director key: annotated, else its ForeignKey column, else the director's key name."""
        name = table.name
        if director not in self.tables:
            hint = _close_names(director, self.tables)
            raise self.fail(name, f"dms:directorTable names {director!r}, which is not a table", hint=hint)
        if director not in directors:
            kind = self.kinds[director][0]
            raise self.fail(name, f"dms:directorTable {director!r} is a {kind} table, not a director")
        parent = directors[director].column(str(directors[director].director_key))
        linked = [column for target, column in self.links[name] if target == director]
        key = self.ann(name, "dms:directorKey") or (linked[0] if linked else parent.name)
        column = self.column(table, key, "dms:directorKey")
        integers = {DataType.byte, DataType.short, DataType.int, DataType.long}
        if column.datatype != parent.datatype and not {column.datatype, parent.datatype} <= integers:
            types = f"{column.datatype.value}, but {director}.{parent.name} is {parent.datatype.value}"
            raise self.fail(name, f"director key {key!r} is {types}")
        return key

    def build(self, table: Table, directors: Mapping[str, CatalogTable]) -> CatalogTable:
        """Check one table's annotations and describe it."""
        name = table.name
        kind, director = self.kinds[name]
        if kind is not TableKind.CHILD and self.ann(name, "dms:directorTable"):
            raise self.fail(name, f"dms:directorTable is only for child tables, and this one is a {kind}")
        if kind is TableKind.REPLICATED and self.ann(name, "dms:directorKey"):
            raise self.fail(name, "dms:directorKey is only for directors and children; this table is replicated")
        ra, dec = self.positions(table, kind)
        key = None
        if kind is TableKind.DIRECTOR:
            key, director = self.director_key(table, ra, dec), name
        elif kind is TableKind.CHILD:
            key = self.child_key(table, str(director), directors)
        return CatalogTable(
            name=name,
            kind=kind,
            felis=table,
            primary_key=self.pk[name],
            director_table=director,
            director_key=key,
            ra_column=ra,
            dec_column=dec,
            description=table.description,
        )

    def resolve(self) -> tuple[CatalogTable, ...]:
        """Return the tables in file order; directors are built first because children refer to them."""
        self.infer_kinds()
        wanted = [name for name, (kind, _) in self.kinds.items() if kind is TableKind.DIRECTOR]
        directors = {name: self.build(self.tables[name], {}) for name in wanted}
        return tuple(directors.get(t.name) or self.build(t, directors) for t in self.schema.tables)

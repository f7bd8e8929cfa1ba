"""Tests of loading Felis catalog schemas: shipped files, dms: annotations, foreign-file defaults, errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from dms_db.catalog_schema import (
    CatalogSchema,
    TableKind,
    load_catalog_schema,
    shipped_schema_names,
    shipped_schema_path,
)
from dms_db.errors import SchemaError, UserError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "felis"

# A minimal annotated catalog that the error tests below break in one place each.
MINIMAL: dict[str, Any] = {
    "name": "mini",
    "version": "1.0.0",
    "tables": [
        {
            "name": "DiaObject",
            "dms:kind": "director",
            "dms:directorKey": "diaObjectId",
            "dms:ra": "ra",
            "dms:dec": "dec",
            "primaryKey": "#DiaObject.diaObjectId",
            "columns": [
                {"name": "diaObjectId", "datatype": "long", "nullable": False},
                {"name": "ra", "datatype": "double", "ivoa:unit": "deg"},
                {"name": "dec", "datatype": "double", "ivoa:unit": "deg"},
            ],
        },
        {
            "name": "DiaSource",
            "dms:kind": "child",
            "dms:directorTable": "DiaObject",
            "dms:directorKey": "diaObjectId",
            "primaryKey": "#DiaSource.diaSourceId",
            "columns": [
                {"name": "diaSourceId", "datatype": "long", "nullable": False},
                {"name": "diaObjectId", "datatype": "long", "nullable": False},
                {"name": "psfFlux", "datatype": "float", "ivoa:unit": "nJy"},
            ],
        },
        {
            "name": "Visit",
            "dms:kind": "replicated",
            "primaryKey": "#Visit.visit",
            "columns": [{"name": "visit", "datatype": "long"}, {"name": "band", "datatype": "char", "length": 1}],
        },
    ],
}


def minimal(**changes: Any) -> dict[str, Any]:
    """A deep copy of MINIMAL; ``changes`` maps a table name to keys to set on it."""
    data = copy.deepcopy(MINIMAL)
    for table in data["tables"]:
        table.update(changes.get(table["name"], {}))
    return data


def load(data: dict[str, Any], **kwargs: Any) -> CatalogSchema:
    return load_catalog_schema(yaml.safe_dump(data, sort_keys=False), **kwargs)


def error_of(data: dict[str, Any] | str, **kwargs: Any) -> str:
    """Load, expect a SchemaError (a UserError) and return its full text."""
    with pytest.raises(SchemaError) as caught:
        if isinstance(data, str):
            load_catalog_schema(data, **kwargs)
        else:
            load(data, **kwargs)
    assert isinstance(caught.value, UserError)
    return str(caught.value)


# --------------------------------------------------------------------------- shipped schemas


@pytest.fixture(scope="module")
def apdb() -> CatalogSchema:
    return load_catalog_schema(shipped_schema_path("apdb"))


@pytest.fixture(scope="module")
def dr() -> CatalogSchema:
    return load_catalog_schema(shipped_schema_path("dr"))


def test_shipped_names_and_paths() -> None:
    assert shipped_schema_names() == ("apdb", "dr")
    assert shipped_schema_path("dr").name == "dr.yaml"
    with pytest.raises(SchemaError, match="apdb, dr"):
        shipped_schema_path("dp02")


def test_apdb_tables_and_kinds(apdb: CatalogSchema) -> None:
    assert (apdb.name, apdb.felis_name, apdb.version) == ("apdb", "apdb", "1.0.0")
    kinds = {t.name: t.kind for t in apdb.tables}
    assert kinds == {
        "DiaObject": TableKind.DIRECTOR,
        "DiaSource": TableKind.CHILD,
        "DiaForcedSource": TableKind.CHILD,
        "SSObject": TableKind.REPLICATED,
    }
    assert [t.name for t in apdb.directors()] == ["DiaObject"]
    assert [t.name for t in apdb.children_of("DiaObject")] == ["DiaSource", "DiaForcedSource"]
    assert [t.name for t in apdb.replicated()] == ["SSObject"]
    dia_object = apdb.table("DiaObject")
    assert (dia_object.director_table, dia_object.director_key) == ("DiaObject", "diaObjectId")
    assert (dia_object.ra_column, dia_object.dec_column, dia_object.primary_key) == ("ra", "dec", ("diaObjectId",))
    assert apdb.table("DiaForcedSource").primary_key == ("diaObjectId", "visit", "detector")
    assert apdb.table("SSObject").director_key is None and not apdb.table("SSObject").is_partitioned


def test_dr_tables_and_kinds(dr: CatalogSchema) -> None:
    assert [(t.name, t.kind.value, t.director_table, t.director_key) for t in dr.tables] == [
        ("Object", "director", "Object", "objectId"),
        ("Source", "child", "Object", "objectId"),
        ("ForcedSource", "child", "Object", "objectId"),
        ("Visit", "replicated", None, None),
        ("CcdVisit", "replicated", None, None),
    ]
    assert all(t.is_partitioned == (t.kind is not TableKind.REPLICATED) for t in dr.tables)


@pytest.mark.parametrize("schema", ["apdb", "dr"])
def test_shipped_columns_are_documented(schema: str) -> None:
    """Every column has a description, a UCD and a column index; every table a TAP index and a key."""
    catalog = load_catalog_schema(shipped_schema_path(schema))
    for table in catalog.tables:
        assert table.description and table.felis.tap_table_index is not None and table.primary_key
        assert any(column.tap_principal for column in table.felis.columns)
        for column in table.felis.columns:
            where = f"{table.name}.{column.name}"
            assert column.description and column.ivoa_ucd and column.tap_column_index, where
            assert column.fits_tunit is None, f"{where}: use ivoa:unit"
    big = [t for t in catalog.tables if t.name in ("DiaObject", "DiaSource", "Object", "Source")]
    assert all(20 <= len(t.felis.columns) <= 40 for t in big)


def test_shipped_units_and_ucds(apdb: CatalogSchema, dr: CatalogSchema) -> None:
    dia_source = apdb.table("DiaSource")
    assert len(dia_source.felis.columns) >= 20
    for name in ("psfFlux", "psfFluxErr", "apFlux", "scienceFlux"):
        assert dia_source.column(name).ivoa_unit == "nJy"
    assert dia_source.column("psfFlux").ivoa_ucd == "phot.flux.density"
    assert dia_source.column("psfFluxErr").ivoa_ucd == "stat.error;phot.flux.density"
    assert dia_source.column("ra").ivoa_unit == "deg" and dia_source.column("ra").ivoa_ucd.startswith("pos.eq.ra")
    assert dia_source.column("midpointMjdTai").ivoa_unit == "d"
    for band in "ugrizy":
        assert apdb.table("DiaObject").column(f"{band}_psfFluxMean").ivoa_unit == "nJy"
        assert dr.table("Object").column(f"{band}_psfFlux").ivoa_unit == "nJy"
    for table in (apdb.table("DiaObject"), dr.table("Object")):
        assert table.column("ra").ivoa_ucd == "pos.eq.ra;meta.main"
        assert table.column("dec").ivoa_ucd == "pos.eq.dec;meta.main"
        assert table.column("raErr").ivoa_unit == "deg"


def test_ids_positions_time_and_band_are_not_null(apdb: CatalogSchema, dr: CatalogSchema) -> None:
    for table, names in [
        (apdb.table("DiaSource"), ["diaSourceId", "diaObjectId", "ra", "dec", "midpointMjdTai", "band", "visit"]),
        (apdb.table("DiaForcedSource"), ["diaObjectId", "visit", "detector", "midpointMjdTai", "band"]),
        (dr.table("Source"), ["sourceId", "objectId", "ra", "dec", "midpointMjdTai", "band"]),
    ]:
        assert [n for n in names if table.column(n).nullable] == []
    # A DiaSource may have an SSObject, but always has a DiaObject (written in its description).
    assert apdb.table("DiaSource").column("ssObjectId").nullable
    assert "Never NULL" in (apdb.table("DiaSource").column("diaObjectId").description or "")


def test_children_have_foreign_keys_to_their_director(apdb: CatalogSchema, dr: CatalogSchema) -> None:
    for catalog in (apdb, dr):
        for child in (t for t in catalog.tables if t.kind is TableKind.CHILD):
            targets = {c.referenced_columns[0] for c in child.felis.constraints if c.type == "ForeignKey"}
            assert f"#{child.director_table}.{child.director_key}" in targets, child.name


def test_source_text_name_override_and_lookups(apdb: CatalogSchema) -> None:
    text = shipped_schema_path("apdb").read_text()
    assert apdb.source_text == text
    renamed = load_catalog_schema(text, name="apdb_nightly")
    assert (renamed.name, renamed.felis_name) == ("apdb_nightly", "apdb")
    assert renamed.tables == apdb.tables  # Felis models are left out of the comparison
    with pytest.raises(SchemaError, match="did you mean 'DiaSource'"):
        apdb.table("DiaSources")
    with pytest.raises(SchemaError, match="did you mean 'DiaObject'"):
        apdb.children_of("diaobject")
    with pytest.raises(SchemaError, match="did you mean 'psfFlux'"):
        apdb.table("DiaSource").column("psfflux")
    assert apdb.table("DiaSource").column_names[:2] == ("diaSourceId", "visit")
    assert hash(apdb.table("DiaObject")) == hash(renamed.table("DiaObject"))


# --------------------------------------------------------------------------- foreign files


def test_foreign_rubin_file_gets_defaults() -> None:
    catalog = load_catalog_schema(FIXTURES / "dp02_dc2_trimmed.yaml")
    assert catalog.name == "dp02_dc2_catalogs"
    got = {t.name: (t.kind, t.director_table, t.director_key, t.ra_column, t.dec_column) for t in catalog.tables}
    assert got == {
        "Object": (TableKind.DIRECTOR, "Object", "objectId", "coord_ra", "coord_dec"),
        # Source has its own main position and id and no foreign key to a director.
        "Source": (TableKind.DIRECTOR, "Source", "sourceId", "coord_ra", "coord_dec"),
        # The foreign key to Object wins over ForcedSource's own position.
        "ForcedSource": (TableKind.CHILD, "Object", "objectId", "coord_ra", "coord_dec"),
        # ra/decl are boresight columns without meta.main: no name fallback in a file that uses meta.main.
        "CcdVisit": (TableKind.REPLICATED, None, None, None, None),
    }


def test_foreign_file_found_by_column_names() -> None:
    catalog = load_catalog_schema(str(FIXTURES / "names_only.yaml"))
    got = {t.name: (t.kind, t.director_table, t.director_key, t.ra_column) for t in catalog.tables}
    assert got == {
        "gaia_source": (TableKind.DIRECTOR, "gaia_source", "source_id", "ra"),
        "epoch_photometry": (TableKind.CHILD, "gaia_source", "source_id", None),
        "band_lookup": (TableKind.REPLICATED, None, None, None),
    }


def test_foreign_positional_table_without_primary_key_fails_clearly() -> None:
    message = error_of(str((FIXTURES / "positions_without_primary_key.yaml").read_text()))
    assert "'detections'" in message and "(ra, dec)" in message
    assert "primaryKey" in message and "dms:kind: replicated" in message


def test_child_without_primary_key_is_fine() -> None:
    """Like Rubin's DP1 ForcedSource: positions, no primary key, a foreign key to the director."""
    data = minimal()
    for table in data["tables"]:
        table.pop("dms:kind", None), table.pop("dms:directorTable", None), table.pop("dms:directorKey", None)
    data["tables"][1].pop("primaryKey")
    data["tables"][1]["constraints"] = [
        {
            "name": "fk",
            "@type": "ForeignKey",
            "columns": ["#DiaSource.diaObjectId"],
            "referencedColumns": ["#DiaObject.diaObjectId"],
        }
    ]
    catalog = load(data)
    assert catalog.table("DiaSource").kind is TableKind.CHILD
    assert catalog.table("DiaSource").primary_key == ()


def test_partial_annotations_win_and_the_rest_is_defaulted() -> None:
    data = yaml.safe_load((FIXTURES / "dp02_dc2_trimmed.yaml").read_text())
    data["tables"][1]["dms:kind"] = "replicated"  # Source
    data["tables"][2]["dms:ra"], data["tables"][2]["dms:dec"] = "coord_dec", "coord_ra"  # ForcedSource
    catalog = load(data)
    assert catalog.table("Source").kind is TableKind.REPLICATED and catalog.table("Source").ra_column is None
    forced = catalog.table("ForcedSource")
    assert (forced.kind, forced.director_table, forced.ra_column) == (TableKind.CHILD, "Object", "coord_dec")
    assert catalog.table("Object").kind is TableKind.DIRECTOR


def test_explicit_child_finds_its_director_and_key_by_foreign_key() -> None:
    data = yaml.safe_load((FIXTURES / "dp02_dc2_trimmed.yaml").read_text())
    data["tables"][2]["dms:kind"] = "child"
    forced = load(data).table("ForcedSource")
    assert (forced.director_table, forced.director_key) == ("Object", "objectId")


def test_foreign_key_cycle_between_positional_tables_is_reported() -> None:
    data = yaml.safe_load((FIXTURES / "dp02_dc2_trimmed.yaml").read_text())
    data["tables"][0]["columns"].append({"name": "forcedSourceId", "datatype": "long"})
    data["tables"][0]["constraints"] = [
        {
            "name": "fk_back",
            "@type": "ForeignKey",
            "columns": ["#Object.forcedSourceId"],
            "referencedColumns": ["#ForcedSource.forcedSourceId"],
        }
    ]
    assert "cycle" in error_of(data) and "dms:kind" in error_of(data)


# --------------------------------------------------------------------------- annotation errors


def test_unknown_dms_key_names_key_table_and_allowed_keys() -> None:
    message = error_of(minimal(DiaSource={"dms:directorTabel": "DiaObject"}))
    assert "'DiaSource'" in message and "'dms:directorTabel'" in message and "'dms:directorTable'" in message


def test_dms_key_on_a_column_is_rejected() -> None:
    data = minimal()
    data["tables"][0]["columns"][1]["dms:ra"] = True
    message = error_of(data)
    assert "'DiaObject'" in message and "'ra'" in message and "dms:ra" in message


def test_bad_kind_lists_allowed_values() -> None:
    message = error_of(minimal(Visit={"dms:kind": "partitioned"}))
    assert "'Visit'" in message and "'partitioned'" in message
    assert "director, child, replicated" in message


def test_non_string_annotation_is_rejected() -> None:
    assert "dms:ra must be a non-empty string" in error_of(minimal(DiaObject={"dms:ra": 12}))


def test_child_pointing_at_missing_director() -> None:
    message = error_of(minimal(DiaSource={"dms:directorTable": "DiaObjekt"}))
    assert "'DiaSource'" in message and "'DiaObjekt'" in message and "did you mean 'DiaObject'" in message


def test_child_pointing_at_a_replicated_table() -> None:
    message = error_of(minimal(DiaSource={"dms:directorTable": "Visit"}))
    assert "'DiaSource'" in message and "not a director" in message


def test_child_director_key_must_be_a_column_of_matching_type() -> None:
    assert "'diaObjectID'" in error_of(minimal(DiaSource={"dms:directorKey": "diaObjectID"}))
    data = minimal()
    data["tables"][1]["columns"][1]["datatype"] = "double"
    assert "director key 'diaObjectId' is double" in error_of(data)


def test_director_without_position() -> None:
    data = minimal()
    for key in ("dms:ra", "dms:dec"):
        del data["tables"][0][key]
    data["tables"][0]["columns"][1:] = [{"name": "alpha", "datatype": "double"}]
    message = error_of(data)
    assert "'DiaObject'" in message and "no position columns" in message and "dms:ra" in message


def test_position_annotations_are_checked() -> None:
    assert "given together" in error_of(minimal(DiaSource={"dms:ra": "psfFlux"}))
    assert "'raa'" in error_of(minimal(DiaObject={"dms:ra": "raa"}))
    data = minimal(Visit={"dms:ra": "band", "dms:dec": "visit"})
    assert "dms:ra column 'band' is char" in error_of(data)


def test_director_key_must_be_unique() -> None:
    message = error_of(minimal(DiaObject={"dms:directorKey": "ra"}))
    assert "director key 'ra' is not unique" in message


def test_misplaced_director_annotations() -> None:
    assert "only for child tables" in error_of(
        minimal(Visit={"dms:directorTable": "DiaObject", "dms:kind": "replicated"})
    )
    assert "replicated" in error_of(minimal(Visit={"dms:directorKey": "visit"}))


@pytest.mark.parametrize("column", ["chunk_id", "healpix_index", "dms_loaded_at", "CHUNK_ID"])
def test_reserved_column_names(column: str) -> None:
    data = minimal()
    data["tables"][1]["columns"].append({"name": column, "datatype": "long"})
    message = error_of(data)
    assert "'DiaSource'" in message and repr(column) in message and "reserve" in message


# --------------------------------------------------------------------------- YAML, Felis and name errors


def test_invalid_yaml_gives_line() -> None:
    message = error_of("name: broken\ntables:\n  - name: [unclosed\n")
    assert "invalid YAML" in message and "line" in message


def test_yaml_that_is_not_a_mapping() -> None:
    assert "YAML mapping" in error_of("- just\n- a list\n")


def test_missing_file() -> None:
    for missing in (Path("/nonexistent/schema.yaml"), "/nonexistent/schema.yml"):
        with pytest.raises(SchemaError, match="does not exist"):
            load_catalog_schema(missing)


def test_one_line_json_text_is_read_as_yaml() -> None:
    """JSON is YAML; a long one-line text must not be mistaken for a file name."""
    data = minimal()
    data["description"] = "x" * 5000
    assert load_catalog_schema(json.dumps(data)).description == "x" * 5000


def test_unknown_datatype_names_table_and_column() -> None:
    data = minimal()
    data["tables"][1]["columns"][2]["datatype"] = "float32"
    message = error_of(data)
    assert "'DiaSource'" in message and "'psfFlux'" in message and "'float32'" in message and "double" in message


def test_felis_validation_error_has_a_readable_path() -> None:
    data = minimal()
    data["tables"][1]["columns"][2]["ivoa:ucd"] = "phot.fluxx"
    message = error_of(data)
    assert "table 'DiaSource', column 'psfFlux', field 'ivoa:ucd'" in message and "phot.fluxx" in message
    data = minimal()
    data["tables"][2]["columns"].append({"name": "filter", "datatype": "string"})
    assert "column 'filter'" in error_of(data) and "Length must be provided" in error_of(data)


def test_felis_constraint_error_has_a_readable_path() -> None:
    data = minimal()
    data["tables"][1]["constraints"] = [
        {"name": "fk", "@type": "ForeignKey", "columns": ["#DiaSource.nope"], "referencedColumns": ["#DiaObject.ra"]}
    ]
    assert "table 'DiaSource', constraint 'fk'" in error_of(data)


def test_primary_key_must_name_a_column_of_the_table() -> None:
    message = error_of(minimal(Visit={"primaryKey": "#DiaObject.diaObjectId"}))
    assert "'Visit'" in message and "primaryKey" in message


def test_external_resources_are_refused() -> None:
    data = minimal()
    data["resources"] = {"base": {"uri": "https://example.org/base.yaml"}}
    assert "self-contained" in error_of(data)


@pytest.mark.parametrize("bad", ["tap_schema", "TAP_SCHEMA", "pg_temp", "public", "dms", "9lives", "my-cat", "x" * 64])
def test_bad_deployed_names(bad: str) -> None:
    assert repr(bad) in error_of(minimal(), name=bad)


def test_felis_name_that_is_no_identifier_suggests_renaming() -> None:
    data = minimal()
    data["name"] = "dp02-dc2"
    assert "--as NAME" in error_of(data)
    assert load(data, name="dp02").name == "dp02"


def test_table_and_column_names_must_be_identifiers() -> None:
    data = minimal()
    data["tables"][2]["name"] = "Visit Info"
    data["tables"][2]["primaryKey"] = "#Visit Info.visit"
    assert "table name 'Visit Info'" in error_of(data)
    data = minimal()
    data["tables"][2]["columns"].append({"name": "n" * 64, "datatype": "int"})
    assert "63 bytes" in error_of(data)


def test_names_differing_only_in_case_are_rejected() -> None:
    data = minimal()
    data["tables"][1]["columns"].append({"name": "PSFFLUX", "datatype": "float"})
    assert "differ only in case" in error_of(data)

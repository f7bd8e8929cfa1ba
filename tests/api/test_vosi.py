"""The VOSI and DALI documents of the service, fetched over HTTP and read as clients read them."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx
import pyvo

from tests.api.conftest import TapCluster

NS = {
    "vosi": "http://www.ivoa.net/xml/VOSICapabilities/v1.0",
    "avail": "http://www.ivoa.net/xml/VOSIAvailability/v1.0",
    "tables": "http://www.ivoa.net/xml/VOSITables/v1.0",
    "xhtml": "http://www.w3.org/1999/xhtml",
}


def test_capabilities_list_tap_vosi_and_examples_with_formats_and_limits(tap_url: str) -> None:
    response = httpx.get(f"{tap_url}/capabilities")
    assert response.status_code == 200
    root = ET.fromstring(response.content)
    standards = {c.get("standardID") for c in root.findall("capability")}
    assert {
        "ivo://ivoa.net/std/TAP",
        "ivo://ivoa.net/std/VOSI#capabilities",
        "ivo://ivoa.net/std/VOSI#availability",
        "ivo://ivoa.net/std/VOSI#tables",
        "ivo://ivoa.net/std/DALI#examples",
    } <= standards
    tap_interface = root.find("capability[@standardID='ivo://ivoa.net/std/TAP']/interface")
    assert (tap_interface.get("role"), tap_interface.get("version")) == ("std", "1.1"), "clients assume 1.0 without it"
    service = pyvo.dal.TAPService(tap_url)
    tap = next(c for c in service.capabilities if c.standardid == "ivo://ivoa.net/std/TAP")
    mimes = {f.mime for f in tap.outputformats}
    assert any("votable" in m for m in mimes) and "text/csv;header=present" in {m.lower() for m in mimes}
    assert tap.outputlimit.hard.content > tap.outputlimit.default.content > 0
    assert [v.ivo_id for v in tap.languages[0].versions] == [
        "ivo://ivoa.net/std/ADQL#v2.0",
        "ivo://ivoa.net/std/ADQL#v2.1",
    ]
    geometry = tap.get_adql().get_feature_list("ivo://ivoa.net/std/TAPRegExt#features-adqlgeo")
    assert "CONTAINS" in {f.form for f in geometry}


def test_availability_says_available(tap_url: str) -> None:
    response = httpx.get(f"{tap_url}/availability")
    root = ET.fromstring(response.content)
    assert root.find("avail:available", NS).text == "true"


def test_tables_match_tap_schema(tap_url: str, tap_cluster: TapCluster) -> None:
    service = pyvo.dal.TAPService(tap_url)
    tables = {t.name: t for t in service.tables}
    assert {"apdb.DiaObject", "apdb.DiaSource", "dr.Object", "TAP_SCHEMA.columns"} <= set(tables)
    columns = {c.name: c for c in tables["apdb.DiaObject"].columns}
    assert columns["ra"].unit == "deg" and columns["ra"].ucd.startswith("pos.eq.ra")
    in_schema = service.run_sync(
        "SELECT column_name FROM TAP_SCHEMA.columns WHERE table_name = 'apdb.DiaObject'"
    ).to_table()
    assert set(columns) == {str(name) for name in in_schema["column_name"]}
    one = httpx.get(f"{tap_url}/tables/apdb.DiaObject")
    assert one.status_code == 200 and b"diaObjectId" in one.content
    assert httpx.get(f"{tap_url}/tables/no.such").status_code == 404


def test_examples_are_xhtml_and_each_query_runs(tap_url: str) -> None:
    response = httpx.get(f"{tap_url}/examples")
    root = ET.fromstring(response.content)
    queries = [element.text for element in root.iter() if element.get("property") == "query" and element.text]
    assert len(queries) >= 5
    service = pyvo.dal.TAPService(tap_url)
    for query in queries:
        service.run_sync(query)  # raises on an error document

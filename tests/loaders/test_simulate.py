"""Tests of the survey simulator: schema conformance, integrity, geometry, determinism and physics.

No database: these check the frames ``dms-db simulate`` would load.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dms_db.catalog_schema import load_catalog_schema, shipped_schema_path
from dms_db.errors import ConfigError
from loaders.simulate import TABLE_NAMES, SimulatedSurvey, SimulationConfig, simulate_survey
from loaders.simulation.truth import ObjectKind, simulate_true_sky

SCHEMAS = {name: load_catalog_schema(shipped_schema_path(name)) for name in ("apdb", "dr")}
SMALL = SimulationConfig(seed=7, n_objects=4_000, n_visits=24, days=120.0, n_ss_objects=5)

# Felis datatype -> dtype of a NOT NULL column, and of a nullable one (see loaders/simulation/frames.py).
EXPECTED_DTYPES = {
    "long": ("int64", "Int64"),
    "int": ("int32", "Int32"),
    "short": ("int16", "Int16"),
    "double": ("float64", "float64"),
    "float": ("float32", "float32"),
    "boolean": ("bool", "boolean"),
    "char": ("object", "object"),
    "string": ("object", "object"),
    "timestamp": ("datetime64[ns]", "datetime64[ns]"),
}


def felis_table(key: str):
    schema, table = key.split(".")
    return SCHEMAS[schema].table(table)


@pytest.fixture(scope="module")
def survey() -> SimulatedSurvey:
    return simulate_survey(SimulationConfig())


@pytest.fixture(scope="module")
def small() -> SimulatedSurvey:
    return simulate_survey(SMALL)


def test_every_table_is_present_and_nonempty(survey: SimulatedSurvey) -> None:
    assert tuple(survey.tables) == TABLE_NAMES
    for key, frame in survey.tables.items():
        assert len(frame) > 0, key
    assert survey.row_counts["apdb.DiaSource"] == len(survey.tables["apdb.DiaSource"])


@pytest.mark.parametrize("key", TABLE_NAMES)
def test_columns_and_dtypes_match_the_schema(survey: SimulatedSurvey, key: str) -> None:
    frame = survey.tables[key]
    columns = felis_table(key).felis.columns
    assert list(frame.columns) == [c.name for c in columns]
    for column in columns:
        not_null, nullable = EXPECTED_DTYPES[column.datatype.value]
        expected = nullable if column.nullable is not False else not_null
        assert str(frame[column.name].dtype) == expected, f"{key}.{column.name}"


@pytest.mark.parametrize("key", TABLE_NAMES)
def test_not_null_columns_have_no_nulls_and_strings_fit(survey: SimulatedSurvey, key: str) -> None:
    frame = survey.tables[key]
    for column in felis_table(key).felis.columns:
        values = frame[column.name]
        if column.nullable is False:
            assert not values.isna().any(), f"{key}.{column.name}"
        if column.datatype.value in ("char", "string"):
            present = values.dropna()
            assert present.map(type).eq(str).all(), f"{key}.{column.name}"
            assert present.str.len().max() <= column.length, f"{key}.{column.name}"


def test_nullable_columns_hold_nulls_where_realistic(survey: SimulatedSurvey) -> None:
    dia = survey.tables["apdb.DiaSource"]
    ss_share = dia["ssObjectId"].notna().mean()
    assert 0.0 < ss_share < 0.1  # a few asteroid detections, mostly null
    assert dia["parentDiaSourceId"].isna().all()
    objects = survey.tables["apdb.DiaObject"]
    assert (objects["u_psfFluxNdata"] == 0).any() and objects["u_psfFluxMean"].isna().any()


@pytest.mark.parametrize(
    ("key", "columns"),
    [
        ("apdb.DiaObject", ["diaObjectId"]),
        ("apdb.DiaSource", ["diaSourceId"]),
        ("apdb.DiaForcedSource", ["diaObjectId", "visit", "detector"]),
        ("apdb.SSObject", ["ssObjectId"]),
        ("dr.Visit", ["visit"]),
        ("dr.CcdVisit", ["ccdVisitId"]),
        ("dr.Object", ["objectId"]),
        ("dr.Source", ["sourceId"]),
        ("dr.ForcedSource", ["forcedSourceId"]),
    ],
)
def test_primary_keys_are_unique(survey: SimulatedSurvey, key: str, columns: list[str]) -> None:
    assert list(felis_table(key).primary_key) == columns
    assert not survey.tables[key].duplicated(subset=columns).any()


def test_children_reference_existing_rows(survey: SimulatedSurvey) -> None:
    t = survey.tables
    dia_objects = set(t["apdb.DiaObject"]["diaObjectId"])
    assert set(t["apdb.DiaSource"]["diaObjectId"]) == dia_objects  # every DiaObject has a DiaSource
    assert set(t["apdb.DiaForcedSource"]["diaObjectId"]) <= dia_objects
    assert set(t["apdb.DiaSource"]["ssObjectId"].dropna()) <= set(t["apdb.SSObject"]["ssObjectId"])
    objects = set(t["dr.Object"]["objectId"])
    assert set(t["dr.Source"]["objectId"]) <= objects
    assert set(t["dr.ForcedSource"]["objectId"]) <= objects
    visits = set(t["dr.Visit"]["visit"])
    for key in ("apdb.DiaSource", "apdb.DiaForcedSource", "dr.Source", "dr.ForcedSource"):
        assert set(t[key]["visit"]) <= visits, key
    ccds = set(zip(t["dr.CcdVisit"]["visitId"], t["dr.CcdVisit"]["detector"], strict=True))
    assert len(ccds) == len(t["dr.CcdVisit"])
    for key in ("apdb.DiaSource", "dr.Source", "dr.ForcedSource"):
        pairs = set(zip(t[key]["visit"], t[key]["detector"].astype(np.int64), strict=True))
        assert pairs <= ccds, key


def test_rows_agree_with_their_visit(survey: SimulatedSurvey) -> None:
    visits = survey.tables["dr.Visit"].set_index("visit")
    for key in ("apdb.DiaSource", "dr.Source", "apdb.DiaForcedSource"):
        frame = survey.tables[key]
        assert (frame["band"].to_numpy() == visits.loc[frame["visit"], "band"].to_numpy()).all(), key
        assert np.array_equal(frame["midpointMjdTai"].to_numpy(), visits.loc[frame["visit"], "expMidptMJD"].to_numpy())


def test_positions_are_in_range(survey: SimulatedSurvey) -> None:
    for key, frame in survey.tables.items():
        if "ra" in frame and "dec" in frame:
            ra, dec = frame["ra"].dropna(), frame["dec"].dropna()
            assert ((ra >= 0.0) & (ra < 360.0)).all(), key
            assert ((dec >= -90.0) & (dec <= 90.0)).all(), key


def test_detections_are_above_the_threshold(survey: SimulatedSurvey) -> None:
    dia = survey.tables["apdb.DiaSource"]
    assert (dia["psfFlux"].abs() / dia["psfFluxErr"] >= 5.0 - 1e-3).all()
    assert (dia["psfFlux"] < 0).any()  # difference images also show objects fainter than the template
    source = survey.tables["dr.Source"]
    assert (source["psfFlux"] / source["psfFluxErr"] >= 5.0 - 1e-6).all()


def test_visits_follow_a_nightly_cadence(survey: SimulatedSurvey) -> None:
    config = SimulationConfig()
    visits = survey.tables["dr.Visit"]
    mjd = visits["expMidptMJD"].to_numpy()
    assert (mjd >= config.mjd_start).all() and (mjd <= config.mjd_start + config.days).all()
    assert np.all(np.diff(mjd) > 0.0)
    nights = np.floor(mjd - 0.5)
    assert 1 < len(np.unique(nights)) < len(mjd)  # several nights, several visits on some
    assert (visits["airmass"] >= 1.0).all() and (visits["altitude"] >= config.min_altitude_deg - 3.0).all()
    assert set(visits["band"]) <= set(config.bands)
    assert (survey.tables["dr.CcdVisit"].groupby("visitId").size() == 193).all()


def test_dia_object_summaries_agree_with_their_dia_sources(survey: SimulatedSurvey) -> None:
    sources = survey.tables["apdb.DiaSource"]
    objects = survey.tables["apdb.DiaObject"].set_index("diaObjectId")
    grouped = sources.groupby("diaObjectId")
    assert (grouped.size() == objects.loc[grouped.size().index, "nDiaSources"]).all()
    assert np.allclose(grouped["midpointMjdTai"].min(), objects.loc[grouped.size().index, "firstDiaSourceMjdTai"])
    assert np.allclose(grouped["midpointMjdTai"].max(), objects.loc[grouped.size().index, "lastDiaSourceMjdTai"])
    r = sources[sources["band"] == "r"].astype({"psfFlux": float, "psfFluxErr": float})
    weight = 1.0 / r["psfFluxErr"] ** 2
    mean = (r["psfFlux"] * weight).groupby(r["diaObjectId"]).sum() / weight.groupby(r["diaObjectId"]).sum()
    assert np.allclose(mean, objects.loc[mean.index, "r_psfFluxMean"], rtol=1e-5)
    assert (r.groupby("diaObjectId").size() == objects.loc[mean.index, "r_psfFluxNdata"]).all()
    assert (objects.drop(index=mean.index)["r_psfFluxNdata"] == 0).all()
    # Each DiaObject sits among its DiaSources.
    joined = sources.merge(objects[["ra", "dec"]], left_on="diaObjectId", right_index=True, suffixes=("", "_object"))
    assert separation_arcsec(joined["ra"], joined["dec"], joined["ra_object"], joined["dec_object"]).max() < 1.0


def test_dia_forced_sources_start_at_the_first_detection(survey: SimulatedSurvey) -> None:
    forced = survey.tables["apdb.DiaForcedSource"]
    first = survey.tables["apdb.DiaObject"].set_index("diaObjectId")["firstDiaSourceMjdTai"]
    assert (forced["midpointMjdTai"].to_numpy() >= first.loc[forced["diaObjectId"]].to_numpy()).all()
    # On a detection visit the forced measurement is the detection itself.
    dia = survey.tables["apdb.DiaSource"]
    both = dia.merge(forced, on=["diaObjectId", "visit", "detector"], suffixes=("", "_forced"))
    assert len(both) > 0.9 * len(dia)
    assert np.array_equal(both["psfFlux"], both["psfFlux_forced"])


def test_forced_sources_are_capped_per_object(survey: SimulatedSurvey) -> None:
    cap = SimulationConfig().max_forced_sources_per_object
    counts = survey.tables["dr.ForcedSource"].groupby("objectId").size()
    assert counts.max() == cap
    assert len(counts) > 0.9 * len(survey.tables["dr.Object"])


def test_objects_are_coadd_detections(survey: SimulatedSurvey) -> None:
    objects = survey.tables["dr.Object"]
    snr = np.sqrt(
        sum(np.nan_to_num((objects[f"{b}_psfFlux"] / objects[f"{b}_psfFluxErr"]).clip(lower=0)) ** 2 for b in "ugrizy")
    )
    with_source = objects["objectId"].isin(survey.tables["dr.Source"]["objectId"])
    assert ((snr >= 5.0 - 1e-3) | with_source).all()
    assert with_source.mean() > 0.3


def test_same_seed_gives_identical_frames(small: SimulatedSurvey) -> None:
    again = simulate_survey(SMALL)
    for key in TABLE_NAMES:
        pd.testing.assert_frame_equal(small.tables[key], again.tables[key], check_exact=True)


def test_another_seed_gives_another_survey(small: SimulatedSurvey) -> None:
    other = simulate_survey(dataclasses.replace(SMALL, seed=8))
    for key in ("dr.Visit", "dr.Object", "apdb.DiaSource"):
        assert not small.tables[key].equals(other.tables[key]), key


def separation_arcsec(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Great-circle distance (haversine), right across RA 0."""
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(a, dtype=float)) for a in (ra1, dec1, ra2, dec2))
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(h))) * 3600.0


def assert_inside_area(survey: SimulatedSurvey, config: SimulationConfig) -> None:
    """True objects lie in the area; asteroids and visit pointings only near it."""
    t = survey.tables
    stationary = t["apdb.DiaSource"]["ssObjectId"].isna()
    in_area = {
        "dr.Object": t["dr.Object"],
        "dr.Source": t["dr.Source"],
        "apdb.DiaSource": t["apdb.DiaSource"][stationary],
        "dr.Visit": t["dr.Visit"],
    }
    for key, frame in in_area.items():
        distance = separation_arcsec(frame["ra"], frame["dec"], config.ra_center, config.dec_center) / 3600.0
        assert distance.max() < config.radius_deg + 0.001, key
    for key in ("apdb.DiaObject", "apdb.DiaSource", "apdb.DiaForcedSource", "dr.CcdVisit"):
        frame = t[key]
        assert frame["ra"].between(0.0, 360.0, inclusive="left").all(), key
        assert frame["dec"].between(-90.0, 90.0).all(), key
        distance = separation_arcsec(frame["ra"], frame["dec"], config.ra_center, config.dec_center) / 3600.0
        assert distance.max() < config.radius_deg + config.fov_radius_deg, key


def test_objects_are_uniform_on_the_sphere_around_the_south_pole() -> None:
    config = dataclasses.replace(SMALL, ra_center=123.0, dec_center=-90.0, radius_deg=2.0, n_objects=20_000)
    survey = simulate_survey(config)
    sky = simulate_true_sky(config)
    distance = 90.0 + sky.dec
    assert distance.max() <= 2.0 + 1e-9
    # Equal area per unit solid angle: the inner half radius holds (1 - cos r/2) / (1 - cos r) of the objects.
    inner = (distance < 1.0).mean()
    expected = (1 - np.cos(np.radians(1.0))) / (1 - np.cos(np.radians(2.0)))
    assert abs(inner - expected) < 4 * np.sqrt(expected * (1 - expected) / config.n_objects)
    assert np.histogram(sky.ra, bins=8, range=(0, 360))[0].min() > 0.8 * config.n_objects / 8
    assert len(survey.tables["dr.Object"]) > 1000 and len(survey.tables["apdb.DiaSource"]) > 100
    assert_inside_area(survey, config)


def test_a_north_pole_area_needs_a_northern_site() -> None:
    north = dataclasses.replace(SMALL, dec_center=90.0, radius_deg=1.0, n_objects=2_000)
    with pytest.raises(ConfigError, match="never rises"):
        simulate_survey(north)
    config = dataclasses.replace(north, observatory_latitude_deg=40.0, observatory_longitude_deg=-110.0)
    survey = simulate_survey(config)
    assert_inside_area(survey, config)
    assert (survey.tables["dr.Visit"]["airmass"] < 1.7).all()


def test_an_area_across_ra_zero_stays_whole() -> None:
    config = dataclasses.replace(SMALL, ra_center=0.5, dec_center=10.0, radius_deg=1.5)
    survey = simulate_survey(config)
    assert_inside_area(survey, config)  # a mean across RA 0 would land on the far side of the sky
    for key in ("dr.Object", "apdb.DiaObject", "dr.Source"):
        ra = survey.tables[key]["ra"]
        assert (ra < 1.0).any() and (ra > 359.0).any(), key
    objects = survey.tables["apdb.DiaObject"].set_index("diaObjectId")
    dia = survey.tables["apdb.DiaSource"].merge(
        objects[["ra", "dec"]], left_on="diaObjectId", right_index=True, suffixes=("", "_object")
    )
    assert separation_arcsec(dia["ra"], dia["dec"], dia["ra_object"], dia["dec_object"]).max() < 1.0


def test_variables_make_more_dia_sources_than_static_stars() -> None:
    config = dataclasses.replace(SMALL, n_objects=10_000, n_visits=40, variable_fraction=0.2, n_ss_objects=0)
    survey = simulate_survey(config)
    sky = simulate_true_sky(config)
    objects = survey.tables["apdb.DiaObject"]
    # Match each DiaObject to the nearest true object (its true position is within an arcsecond).
    dia_vectors = unit(objects["ra"], objects["dec"])
    true_vectors = unit(sky.ra, sky.dec)
    nearest = np.argmax(dia_vectors @ true_vectors.T, axis=1)
    assert separation_arcsec(objects["ra"], objects["dec"], sky.ra[nearest], sky.dec[nearest]).max() < 1.0
    n_sources = np.zeros(sky.size)
    n_sources[nearest] = objects["nDiaSources"]
    per_variable = n_sources[sky.kind == ObjectKind.VARIABLE].mean()
    per_star = n_sources[sky.kind == ObjectKind.STAR].mean()
    assert per_variable > 20 * per_star
    assert per_variable > 0.5


def unit(ra, dec) -> np.ndarray:
    ra, dec = np.radians(np.asarray(ra, dtype=float)), np.radians(np.asarray(dec, dtype=float))
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def test_a_prompt_only_survey_keeps_empty_release_tables() -> None:
    survey = simulate_survey(dataclasses.replace(SMALL, include_data_release=False))
    for key in ("dr.Object", "dr.Source", "dr.ForcedSource"):
        frame = survey.tables[key]
        assert len(frame) == 0
        assert list(frame.columns) == [c.name for c in felis_table(key).felis.columns]
    assert len(survey.tables["apdb.DiaForcedSource"]) > 0


def test_write_parquet_writes_one_file_per_table(small: SimulatedSurvey, tmp_path: Path) -> None:
    paths = small.write_parquet(tmp_path / "out")
    assert [p.name for p in paths] == [f"{key}.parquet" for key in TABLE_NAMES]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths)
    back = pd.read_parquet(paths[TABLE_NAMES.index("apdb.DiaSource")])
    original = small.tables["apdb.DiaSource"]
    assert list(back.columns) == list(original.columns)
    assert back["ssObjectId"].isna().sum() == original["ssObjectId"].isna().sum()
    assert np.array_equal(back["diaSourceId"], original["diaSourceId"])


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"bands": "grx"}, "bands"),
        ({"variable_fraction": 0.8, "galaxy_fraction": 0.5}, "fractions"),
        ({"dec_center": 95.0}, "dec_center"),
        ({"n_visits": 0}, "n_visits"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_settings_are_refused_with_the_setting_named(change: dict, word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        SimulationConfig(**change)


def test_the_bulk_loader_accepts_every_frame(small: SimulatedSurvey) -> None:
    from loaders.conform import ProblemCollector, conform_batch  # the loader's own validation, not ours

    for key, frame in small.tables.items():
        problems = ProblemCollector()
        batch = pa.Table.from_pandas(frame, preserve_index=False)
        conformed = conform_batch(batch, felis_table(key), key, 0, problems)
        assert problems.total == 0, (key, problems.problems[:3])
        assert conformed.num_rows == len(frame)

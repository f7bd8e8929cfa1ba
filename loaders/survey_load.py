"""Load a simulated survey into the cluster, directors before their children."""

from __future__ import annotations

from collections.abc import Callable

from dms_db.topology import Topology
from loaders.bulk_load import LoadReport, load_inputs
from loaders.simulate import TABLE_NAMES, SimulatedSurvey

# A child needs its director's rows in the director index; the simulator lists
# its tables in that order already (directors first, replicated tables anywhere).
LOAD_ORDER = TABLE_NAMES


def load_survey(
    topology: Topology,
    survey: SimulatedSurvey,
    schema_names: dict[str, str] | None = None,
    replication: int = 1,
    on_table: Callable[[LoadReport], None] | None = None,
) -> list[LoadReport]:
    """Load every table of ``survey``; ``schema_names`` maps ``apdb``/``dr`` to deployed names."""
    names = {"apdb": "apdb", "dr": "dr", **(schema_names or {})}
    reports = []
    for key in LOAD_ORDER:
        frame = survey.tables.get(key)
        if frame is None or frame.empty:
            continue
        family, table = key.split(".")
        report = load_inputs(topology, f"{names[family]}.{table}", [frame], replication=replication)
        reports.append(report)
        if on_table is not None:
            on_table(report)
    return reports

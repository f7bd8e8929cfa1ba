"""The service as the IVOA's TAP validator sees it: ``stilts taplint`` runs every stage and must report no problem.

taplint (in Debian's ``stilts`` package, which ``scripts/bootstrap.sh``
installs) checks the VOSI documents against their schemas and against
TAP_SCHEMA, runs sync and async queries (good and deliberately bad ones),
compares result columns with the declared metadata, uploads a table, drives
UWS jobs through their phases and runs the DALI examples.  It exits 0 whatever
it finds, so the test reads its report: every error (E), warning (W) and
failure (F) line counts, and the ``Totals:`` line must agree with them.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

TIMEOUT_S = 900
"""taplint takes seconds here; the margin is for a loaded CI machine (it waits on async jobs)."""

_REPORT = re.compile(r"^(?P<type>[EWF])-(?P<stage>[A-Z]{3})-(?P<code>[A-Z0-9]{4})-\d+ (?P<text>.*)$")
_TOTALS = re.compile(r"^Totals: (?P<counts>.*)$", re.MULTILINE)

NOT_APPLICABLE = (
    # The ObsLocTAP stage fails (F) on any service without an ivoa.obsplan table: this service offers no
    # observation plans, just as the ObsCore stage skips itself when there is no ivoa.obscore.
    ("F", "LOC", "NOTP", "No table with name ivoa.obsplan"),
)
"""Reports about things this service does not claim, or that the validator gets wrong: (type, stage, code, text)."""


def _not_applicable(match: re.Match[str]) -> bool:
    return any(
        (match["type"], match["stage"], match["code"]) == (kind, stage, code) and text in match["text"]
        for kind, stage, code, text in NOT_APPLICABLE
    )


def run_taplint(tap_url: str) -> str:
    """taplint's text report on the service at ``tap_url``: all stages, every report written out in full."""
    command = ["stilts", "taplint", f"tapurl={tap_url}", "maxrepeat=100000", "truncate=100000"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert done.returncode == 0, f"taplint did not run (exit {done.returncode}):\n{done.stderr}\n{done.stdout}"
    return done.stdout


def totals(report: str) -> dict[str, int]:
    """The counts of taplint's ``Totals:`` line, e.g. ``{"Errors": 0, "Warnings": 0, ...}``.

    Examples
    --------
    >>> totals("...\\nTotals: Errors: 2; Warnings: 0; Infos: 5; Summaries: 3; Failures: 1\\n")
    {'Errors': 2, 'Warnings': 0, 'Infos': 5, 'Summaries': 3, 'Failures': 1}
    """
    found = _TOTALS.findall(report)
    assert len(found) == 1, f"taplint's report has {len(found)} Totals lines, expected one:\n{report[-2000:]}"
    counts = {}
    for item in found[0].split(";"):
        name, _, number = item.partition(":")
        counts[name.strip()] = int(number)
    return counts


@pytest.mark.skipif(shutil.which("stilts") is None, reason="stilts is not installed (scripts/bootstrap.sh installs it)")
def test_taplint_reports_no_error_warning_or_failure(tap_url: str) -> None:
    report = run_taplint(tap_url)
    counts = totals(report)
    matches = [m for m in map(_REPORT.match, report.splitlines()) if m]
    listed = {kind: sum(m["type"] == kind for m in matches) for kind in "EWF"}
    # Every report is written out (maxrepeat), so the lines must add up to the totals; otherwise some
    # were summarised or the report format changed, and the check below would miss them.
    assert (listed["E"], listed["W"], listed["F"]) == (counts["Errors"], counts["Warnings"], counts["Failures"]), (
        f"the E/W/F lines {listed} do not add up to taplint's totals {counts}"
    )
    problems = [m.string for m in matches if not _not_applicable(m)]
    summary = ", ".join(f"{name} {counts[name]}" for name in ("Errors", "Warnings", "Failures"))
    skipped = len(matches) - len(problems)
    assert not problems, f"taplint on {tap_url}: {summary} ({skipped} not applicable):\n" + "\n".join(problems)

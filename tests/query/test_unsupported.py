"""Queries that cannot be answered chunk by chunk are refused with a reason, never answered wrongly.

Every case in ``tests/fixtures/query/unsupported.yaml`` is valid ADQL that a
single server answers (``test_corpus.py`` checks that); on a cluster the
engine must raise :class:`adql.AdqlUnsupportedError` whose message says
why ("unsupported because ...").
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from adql import AdqlUnsupportedError
from sharding.coordinator import QueryEngine
from tests.query.conftest import LoadedCluster
from tests.query.corpus import QueryCase, unsupported_cases
from tests.query.dataset import QueryDataset
from tests.query.test_corpus import require_catalogs

# A guard against a hung query taking the whole suite with it; no test asserts a duration.
pytestmark = pytest.mark.timeout(300)

CASES = unsupported_cases()
REASON = re.compile(r"unsupported because", re.IGNORECASE)


@pytest.fixture(scope="session")
def refusing_engine(loaded_cluster: LoadedCluster) -> Iterator[QueryEngine]:
    """The engine of one configuration's cluster."""
    engine = QueryEngine(loaded_cluster.cluster.topology)
    yield engine
    engine.close()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_query_is_refused_with_a_reason(
    case: QueryCase, query_dataset: QueryDataset, loaded_cluster: LoadedCluster, refusing_engine: QueryEngine
) -> None:
    require_catalogs(case, query_dataset)
    with pytest.raises(AdqlUnsupportedError) as refused, refusing_engine.query(case.adql) as result:
        rows = list(result)
        pytest.fail(f"answered with {len(rows)} rows instead of refusing: {case.note}\nADQL:\n{case.adql}")
    message = str(refused.value)
    assert REASON.search(message), f"the refusal does not say why (want 'unsupported because ...'): {message}"

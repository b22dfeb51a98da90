"""The bench's read stage measures the page read projections use, and hands its rate on as their ceiling."""

from archive.application import open_event_store
from bench.append import run_read
from bench.measure import Results
from projections.rebuild import PAGE_SIZE
from tests.factories import message


def test_the_read_stage_measures_the_pages_projections_read_and_returns_that_rate(store_url):
    events = PAGE_SIZE + 7  # more than a page: the loop goes on past a full one and stops at the end
    with open_event_store(store_url) as store:
        store.append([message(t=i, stanza_id=f"s{i}", body=f"m{i}") for i in range(events)])
    results = Results(size="test", corpus="test")
    rate = run_read(store_url, results, "test")
    paged, = [f for f in results.figures if f.name.startswith("log pages as projections read them")]
    assert paged.value == rate > 0
    assert {f.name.split(",")[0] for f in results.figures} == {
        "read_log", "log pages as projections read them (read_log_page)"}

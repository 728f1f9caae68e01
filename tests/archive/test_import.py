"""Import of the 106 published ASI-Arch programs (reference data read from ../shared, never copied)."""
import pytest

from services.archive import queries
from services.archive.importer import imported_event, imported_events, load_records
from services.archive.projection import apply
from services.archive.storage.sqlite import SQLiteStore
from tests.conftest import shared_dir

REFERENCE = shared_dir() / "reference" / "asi-arch" / "106.json"


@pytest.fixture(scope="module")
def records():
    if not REFERENCE.exists():
        pytest.skip(f"ASI-Arch reference data absent ({REFERENCE}); set ARCHLAB_SHARED_DIR")
    return load_records(REFERENCE)


def test_import_yields_106_experiments_with_lineage(records, tmp_path):
    events = imported_events(records)
    assert len(events) == 106 and len({e.experiment_id for e in events}) == 106
    store = SQLiteStore(tmp_path / "a.sqlite")
    for e in events:
        apply(store, e)
    store.commit()
    docs = store.experiments("asi-arch")
    assert len(docs) == 106
    assert all(d["status"] == "done" and d["role"] == "imported" and d["code"] for d in docs)
    ids = {d["experiment_id"] for d in docs}
    by_index = {r["index"]: r for r in records}
    inside = [d for d in docs if d["parent_id"] in ids]
    assert len(inside) == sum(1 for r in records if r["parent"] in by_index) > 0
    for d in inside:
        assert d["experiment_id"] in {c["experiment_id"] for c in store.children(d["parent_id"])}
    deepest = max(docs, key=lambda d: len(queries.ancestry(store, d["experiment_id"])))
    chain = queries.ancestry(store, deepest["experiment_id"])
    assert len(chain) >= 3 and chain[-1]["experiment_id"] == deepest["experiment_id"]
    assert chain[0].get("missing") is True   # the oldest ancestors were not published


def test_imported_fields_come_from_the_record(records):
    rec = records[0]
    e = imported_event(rec)
    assert e.experiment_id == f"asi-arch-{rec['index']}" and e.parent_id == f"asi-arch-{rec['parent']}"
    assert e.name == rec["name"] and e.code == rec["program"] and e.fitness == rec["score"]
    last_train = float(rec["result"]["train"].splitlines()[1].split(",")[-1])
    assert e.final_loss == last_train
    assert e.benchmark is not None and 0 < e.benchmark < 1 and "average" not in e.metrics
    assert imported_event(rec).event_id == e.event_id   # importing twice adds nothing


def test_parsing_without_reference_data():
    rec = {"index": 5, "parent": 2, "name": "n", "program": "code", "motivation": "m", "score": 1.5,
           "summary": "s", "result": {"train": ",1,100,200\nn,9.0,4.5,3.25", "test": ",a,b,average\nn,0.5,nan,0.5"}}
    e = imported_event(rec, campaign_id="imp")
    assert (e.final_loss, e.benchmark, e.metrics, e.parent_id) == (3.25, 0.5, {"a": 0.5}, "asi-arch-2")

"""Parsing the ASI-Arch corpus format: counts, ids, and all-or-nothing files."""
import json

from services.cognition.corpus import CORPUS_KEYS, paper_key_of, parse_corpus_dir
from services.common.cognition_model import from_event, to_event
from services.cognition.seed import load_seed


def write_corpus_file(path, entries):
    inverse = {v: k for k, v in CORPUS_KEYS.items()}
    path.write_text(json.dumps([{inverse[f]: getattr(e, f) for f in inverse} for e in entries]))


def test_reference_corpus_has_230_cognitions(corpus_dir):
    entries, errors = parse_corpus_dir(corpus_dir)
    assert errors == []
    assert len(entries) == 230
    assert len({e.cognition_id for e in entries}) == 230
    assert len({e.cognition_id.split("#")[0] for e in entries}) == 98
    deltanet = [e for e in entries if e.paper_key == "arxiv:2406.06484"]
    assert deltanet and "Delta Rule" in deltanet[0].title
    assert all(len(e.trigger_patterns) > 20 and e.design_insight for e in entries)


def test_broken_files_are_reported_by_name_and_the_rest_imported(tmp_path):
    seed = load_seed()
    write_corpus_file(tmp_path / "arxiv.org_abs_2406.06484.json", seed[:2])
    write_corpus_file(tmp_path / "good_blog.json", seed[2:5])
    (tmp_path / "not_json.json").write_text("[{\"DESIGN_INSIGHT\": ")
    half = json.loads((tmp_path / "good_blog.json").read_text())
    del half[1]["EXPERIMENTAL_TRIGGER_PATTERNS"]          # entry 1 of 3 broken: nothing of the file
    (tmp_path / "half_broken.json").write_text(json.dumps(half))
    (tmp_path / "empty.json").write_text("[]")

    entries, errors = parse_corpus_dir(tmp_path)
    assert len(entries) == 5
    assert {e.cognition_id.split("#")[0] for e in entries} == {"arxiv.org_abs_2406.06484", "good_blog"}
    assert [e.split(":")[0] for e in errors] == ["empty.json", "half_broken.json", "not_json.json"]
    assert "entry 1 lacks EXPERIMENTAL_TRIGGER_PATTERNS" in errors[1]
    assert entries[0].paper_key == "arxiv:2406.06484" and entries[2].paper_key == "good_blog"


def test_events_round_trip_with_deterministic_ids():
    entry = load_seed()[0]
    event = to_event(entry)
    assert event.experiment_id == entry.cognition_id and event.campaign_id == "global"
    assert to_event(entry).event_id == event.event_id              # re-import: same fact
    changed = entry.model_copy(update={"design_insight": entry.design_insight + " More."})
    assert to_event(changed).event_id != event.event_id           # new content: new fact
    assert from_event(event) == entry


def test_paper_keys():
    assert paper_key_of("arxiv.org_abs_2006.16236") == "arxiv:2006.16236"
    assert paper_key_of("arxiv.org_pdf_2505.23884_") == "arxiv:2505.23884"
    assert paper_key_of("sustcsonglin.github.io_blog_2024_deltanet-2_") == "sustcsonglin.github.io_blog_2024_deltanet-2_"


def test_seed_is_our_own_and_complete():
    seed = load_seed()
    assert 10 <= len(seed) <= 16
    keys = {e.paper_key for e in seed}
    for paper in ("arxiv:2006.16236", "arxiv:2307.08621", "arxiv:2312.06635", "arxiv:2406.06484",
                  "arxiv:2412.06464", "arxiv:2405.21060", "arxiv:2212.14052"):
        assert paper in keys
    assert all(e.origin == "seed" and e.cognition_id.startswith("seed:") for e in seed)

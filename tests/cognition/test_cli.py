"""`archlab cognition import/add/search --direct` through the real CLI (typer), on a milvus-lite file."""

import pytest
from typer.testing import CliRunner

from services.cli.main import app
from services.cognition.paper import PaperError, read_paper_text
from services.cognition.seed import load_seed
from tests.cognition.test_corpus import write_corpus_file
from tests.support.scripted_llm import scripted_llm  # noqa: F401  (fixture)

runner = CliRunner()


@pytest.fixture
def stack_env(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ARCHLAB_MILVUS_URI", str(tmp_path / "milvus.db"))
    monkeypatch.delenv("ARCHLAB_LLM_BASE_URL", raising=False)
    monkeypatch.delenv("ARCHLAB_LLM_API_KEY", raising=False)
    return tmp_path


def test_import_reports_broken_files_and_imports_the_rest(stack_env):
    corpus = stack_env / "corpus"
    corpus.mkdir()
    seed = load_seed()
    write_corpus_file(corpus / "arxiv.org_abs_2406.06484.json", seed[:3])
    write_corpus_file(corpus / "arxiv.org_abs_2312.04927.json", seed[3:6])
    (corpus / "broken_paper.json").write_text('{"DESIGN_INSIGHT": "unterminated')
    res = runner.invoke(app, ["cognition", "import", str(corpus), "--direct"])
    assert res.exit_code == 0, res.output
    assert "skipped broken_paper.json" in res.output
    assert "6 cognition(s) from 2 file(s); 1 file(s) skipped" in res.output
    assert "the base holds 6" in res.output
    res = runner.invoke(app, ["cognition", "count"])
    assert res.output.strip() == "6"
    res = runner.invoke(app, ["cognition", "search", "fails associative recall", "-k", "2"])
    assert res.exit_code == 0 and "arxiv.org_abs_" in res.output


def test_add_paper_with_the_llm(stack_env, scripted_llm, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ARCHLAB_LLM_BASE_URL", scripted_llm.base_url)
    monkeypatch.setenv("ARCHLAB_LLM_API_KEY", "test")
    paper = stack_env / "my_paper.txt"
    paper.write_text("We study a new gated recurrence for linear attention. " * 20)
    scripted_llm.reply_json({"paper_title": "A Gated Recurrence", "cognitions": [
        {"title": "Gate the state", "trigger_patterns": "the model cannot forget stale context on long sequences",
         "design_insight": "multiply the state by a data-dependent gate", "background": "b", "algorithm": "a",
         "implementation": "i"}]})
    res = runner.invoke(app, ["cognition", "add", str(paper), "--direct"])
    assert res.exit_code == 0, res.output
    assert "llm:my_paper#0" in res.output and "the base holds 1" in res.output
    assert "new gated recurrence" in scripted_llm.prompt(-1)


def test_add_without_llm_or_with_a_pdf_is_a_clear_error(stack_env):
    paper = stack_env / "p.txt"
    paper.write_text("x" * 500)
    res = runner.invoke(app, ["cognition", "add", str(paper)])
    assert res.exit_code == 2 and "no LLM configured" in res.output
    pdf = stack_env / "p.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    try:
        import pypdf  # noqa: F401
    except ImportError:
        with pytest.raises(PaperError, match="pypdf"):
            read_paper_text(pdf)
    with pytest.raises(PaperError, match="does not exist"):
        read_paper_text(stack_env / "missing.txt")

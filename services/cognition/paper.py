"""`archlab cognition add PAPER`: 1-3 cognitions extracted from a paper's text by the LLM.

The answer is validated against `Extraction` (the same field constraints as CognitionEntry), so an
LLM cognition is as complete as a corpus one or is not ingested at all. PDF text needs `pypdf`
(optional: `pip install pypdf`); without it a .pdf is refused with that instruction.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from schemas import events as ev
from services.cognition.corpus import paper_key_of
from services.common.cognition_model import CognitionEntry

MAX_PAPER_CHARS = 40_000   # abstract, introduction and method fit; appendices rarely matter here


class PaperError(ValueError):
    pass


class ExtractedCognition(BaseModel):
    title: str = Field(min_length=1, description="short name of the idea")
    trigger_patterns: str = Field(min_length=20, description=(
        "when to apply it, phrased as the symptoms an experiment would show (metrics, failures, curves)"))
    design_insight: str = Field(min_length=10, description="the idea and why it works")
    background: str = Field("", description="the problem the paper addresses and its context")
    algorithm: str = Field("", description="the mechanism, with the key equations in words or plain math")
    implementation: str = Field("", description="how to implement it in a linear-attention layer; pitfalls")


class Extraction(BaseModel):
    paper_title: str = ""
    cognitions: list[ExtractedCognition] = Field(min_length=1, max_length=3)


SYSTEM = (
    "You distil research papers into reusable design knowledge for an architecture-search lab that "
    "designs linear-attention layers. From the paper below extract between 1 and 3 distinct cognitions. "
    "Each cognition's trigger_patterns must describe the experimental symptoms that call for the idea "
    "(e.g. 'fails associative recall as the number of key-value pairs grows'), because it is matched "
    "against analyses of failed experiments. Write in your own words; do not copy long passages."
)


def read_paper_text(path: Path | str) -> str:
    path = Path(path)
    if not path.exists():
        raise PaperError(f"{path} does not exist")
    if path.suffix.lower() == ".pdf":
        try:
            from pypdf import PdfReader
        except ImportError as e:
            raise PaperError(f"{path.name} is a PDF and the optional package `pypdf` is not installed: "
                             "`pip install pypdf`, or give the paper as .txt") from e
        text = "\n".join(page.extract_text() or "" for page in PdfReader(str(path)).pages)
    else:
        text = path.read_text(encoding="utf-8", errors="replace")
    if len(text.strip()) < 200:
        raise PaperError(f"{path.name}: too little text ({len(text.strip())} characters) to extract from")
    return text


def extract_cognitions(text: str, llm, paper_key: str, id_prefix: str | None = None) -> tuple[list[CognitionEntry], ev.Usage]:
    """Ask the LLM (role "analyst") for 1-3 cognitions. Raises the client's LLMError on failure."""
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"Paper ({paper_key}):\n\n{text[:MAX_PAPER_CHARS]}"}]
    extraction, usage = llm.complete_json(role="analyst", messages=messages, schema=Extraction)
    prefix = id_prefix or f"llm:{paper_key}"
    entries = [CognitionEntry(cognition_id=f"{prefix}#{i}", paper_key=paper_key, origin="llm",
                              title=(f"{extraction.paper_title}: {c.title}" if extraction.paper_title else c.title),
                              **c.model_dump(exclude={"title"}))
               for i, c in enumerate(extraction.cognitions)]
    return entries, usage


def cognitions_from_paper(path: Path | str, llm) -> tuple[list[CognitionEntry], ev.Usage]:
    path = Path(path)
    return extract_cognitions(read_paper_text(path), llm, paper_key_of(path.stem))

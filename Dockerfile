# syntax=docker/dockerfile:1
# Switchboard's image: `docker build -t switchboard .` (see docs/deploy.md and compose.yaml).
# Not built on the machine this was written on (no Docker there); tests/test_deploy.py checks
# its structure and compose.yaml against the Compose schema.

ARG PYTHON_VERSION=3.11

# Wheels of Switchboard and of every dependency, built where a compiler is at hand.
FROM python:${PYTHON_VERSION}-slim-bookworm AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY api ./api
COPY graphs ./graphs
COPY storage ./storage
COPY tools ./tools
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# The runtime: the wheels installed, nothing to build with, run as a user without privileges.
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 switchboard \
    && useradd --system --uid 10001 --gid switchboard --home-dir /app --shell /usr/sbin/nologin switchboard
COPY --from=builder /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels switchboard \
    && rm -rf /wheels
WORKDIR /app
# No secret here: SWITCHBOARD_JWT_SECRET, DATABASE_URL and the rest come from the deployment.
# SWITCHBOARD_REQUIRE_DATABASE_URL: without DATABASE_URL the server refuses to start (exit 2)
# instead of running the embedded Postgres inside the container, whose data would die with it.
# PYTHONMALLOC=malloc: what `switchboard serve` would otherwise re-exec itself with.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONMALLOC=malloc \
    SWITCHBOARD_ENV=production \
    SWITCHBOARD_REQUIRE_DATABASE_URL=true \
    SWITCHBOARD_GRAPHS_CONFIG=
USER 10001:10001
EXPOSE 8000
# /healthz answers 200 while the process serves and reaches Postgres (503 otherwise). No curl
# in a slim image: Python asks.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
CMD ["switchboard", "serve", "--host", "0.0.0.0", "--port", "8000"]

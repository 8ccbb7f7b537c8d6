# GraphiQL's files, pinned in tools/graphiql, so that GraphiQL works without internet access
# (README, "GraphiQL without internet access").
FROM node:20-slim AS graphiql-npm
WORKDIR /src/tools/graphiql
COPY tools/graphiql/package.json tools/graphiql/package-lock.json ./
RUN npm ci --no-audit --no-fund

# Copies the files GraphiQL's page loads, with their licences, into api/static/graphiql
# (npm ci is skipped: node_modules holds the pinned versions).
FROM python:3.11-slim AS graphiql-assets
WORKDIR /src
COPY api/__init__.py api/graphiql_assets.py ./api/
COPY --from=graphiql-npm /src/tools/graphiql ./tools/graphiql
RUN python -m api.graphiql_assets

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 imbrace \
    && mkdir -p /data \
    && chown imbrace:imbrace /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY api ./api
COPY --from=graphiql-assets /src/api/static/graphiql ./api/static/graphiql
COPY domain ./domain
RUN pip install --no-cache-dir .

USER imbrace
ENV IMBRACE_DATA_DIR=/data
VOLUME /data
EXPOSE 8000

# /healthz answers 200 while the database answers a ping, 503 otherwise (urlopen raises on 503).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["imbrace", "serve", "--host", "0.0.0.0"]

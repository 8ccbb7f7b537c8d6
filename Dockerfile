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

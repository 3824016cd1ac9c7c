# convzoo serve on the shipped store: KServe v2 / Open Inference Protocol on port 8080, no torch, non-root.
#   make image      # = docker build -t ghcr.io/convzoo/convzoo:0.1.0 -f Dockerfile .  (the tag deploy/kserve/ names)
#   docker run --rm -p 8080:8080 ghcr.io/convzoo/convzoo:0.1.0
#   docker run --rm -p 8080:8080 -v "$PWD/store:/mnt/models:ro" ghcr.io/convzoo/convzoo:0.1.0   # your models first
# The GPU variant is Dockerfile.gpu; the KServe manifests in deploy/ run either.
ARG BASE=python:3.12-slim

FROM ${BASE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY convzoo ./convzoo
COPY models ./models
# The wheel carries the shipped models (convzoo/_shipped); the image holds only it and what serving needs.
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip wheel --no-cache-dir --no-deps -w /wheels . \
    && /opt/venv/bin/pip install --no-cache-dir "$(ls /wheels/convzoo-*.whl)[cpu,serve]"

FROM ${BASE}
RUN useradd --uid 10001 --create-home --home-dir /home/convzoo --shell /usr/sbin/nologin convzoo
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    CONVZOO_HOME=/mnt/models HOME=/home/convzoo
USER 10001
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/v2/health/ready', timeout=2)"]
ENTRYPOINT ["convzoo"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]

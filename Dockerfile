# syntax=docker/dockerfile:1
# One image for every zipscore process; the command picks the role:
#   worker (default), worker-batch, beat, flower, migrate, gateway — see docker-compose.yml.
# The Python that CI runs the whole suite on besides 3.11 (.ci/run: one run on 3.13), so the
# image runs an interpreter the tests have run; celery, kombu and billiard support it.
# For a reproducible production build, pin the base by digest as well, e.g.
#   ARG PYTHON_IMAGE=python:3.13-alpine@sha256:<digest>
# with the digest from `docker buildx imagetools inspect python:3.13-alpine` on the day of the
# release (this repository's machines have no registry access to look it up).
ARG PYTHON_VERSION=3.13

# --- build: resolve the locked dependencies into a virtualenv --------------------------
FROM python:${PYTHON_VERSION}-alpine AS build
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir "uv==0.13.9"
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
# Dependencies first (a layer that changes only with uv.lock), then the project itself.
RUN uv sync --frozen --no-dev --all-extras --no-install-project
COPY worker ./worker
COPY producer ./producer
RUN uv sync --frozen --no-dev --all-extras

# --- runtime: the virtualenv and the source, no build tools, a fixed non-root user ------
FROM python:${PYTHON_VERSION}-alpine AS runtime
ARG UID=10001
RUN addgroup -S -g "${UID}" zipscore \
    && adduser -S -D -H -u "${UID}" -G zipscore zipscore \
    && mkdir -p /app/var \
    && chown zipscore:zipscore /app/var
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY --from=build /app/worker /app/worker
COPY --from=build /app/producer /app/producer
COPY flowerconfig.py /app/flowerconfig.py
COPY ops/sample_data /app/ops/sample_data
COPY ops/docker/healthcheck.sh /app/ops/docker/healthcheck.sh
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ZIPSCORE_ROLE=worker
USER ${UID}:${UID}
VOLUME ["/app/var"]
# Talks to the broker: the worker answers a ping addressed to its own node name.
HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 \
    CMD ["/bin/sh", "/app/ops/docker/healthcheck.sh"]
CMD ["celery", "-A", "worker", "worker", "-Q", "lookups,index", "-n", "worker@%h", "--loglevel", "INFO"]

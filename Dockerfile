# syntax=docker/dockerfile:1
# logship container image: a slim Python runtime with a virtualenv of hash-pinned dependencies.
#
#   docker build -t logship .
#   docker run --read-only --tmpfs /tmp -v logship-state:/var/lib/logship \
#     -v /var/log/app:/var/log/app:ro -v ./my.yaml:/etc/logship/logship.yaml:ro logship
#
# The root filesystem can be read-only: the agent writes only its checkpoints, under
# /var/lib/logship (a volume). Bytecode is compiled at build time and never written at run time.

# The tag is pinned by version; the Python minor must match `python3 dev.py lock` (3.11).
ARG PYTHON_IMAGE=python:3.11.15-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Dependencies first: this layer is rebuilt only when a lock changes, not on every code edit.
COPY requirements.lock requirements-build.lock ./
RUN python -m venv /opt/build \
 && /opt/build/bin/pip install --no-cache-dir --require-hashes -r requirements-build.lock \
 && python -m venv /opt/logship \
 && /opt/logship/bin/pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY logship ./logship
# The wheel is built with the pinned backend; --no-deps: every dependency came from the lock.
RUN /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels . \
 && /opt/logship/bin/pip install --no-cache-dir --no-deps /wheels/logship-*.whl \
 && /opt/logship/bin/logship --version

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="logship" \
      org.opencontainers.image.description="Log-forwarding sidecar: tails files, ships batches to Loki without losing a line." \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/logship/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A fixed numeric user, so Kubernetes can check runAsNonRoot; the state folder is its own.
RUN groupadd --system --gid 10001 logship \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin logship \
 && mkdir -p /var/lib/logship /etc/logship \
 && chown 10001:10001 /var/lib/logship
COPY --from=build /opt/logship /opt/logship
COPY configs/sidecar-loki.yaml /etc/logship/logship.yaml
USER 10001:10001
WORKDIR /var/lib/logship
VOLUME ["/var/lib/logship"]
# /metrics, /healthz and /ready.
EXPOSE 8686
# No curl in a slim image: the standard library's urllib fails (exit 1) on an error or non-2xx.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8686/healthz', timeout=4)"]
# logship drains on SIGTERM (drain_timeout, default 30s): give `docker stop` a longer -t.
STOPSIGNAL SIGTERM
ENTRYPOINT ["logship"]
CMD ["run", "--config", "/etc/logship/logship.yaml"]

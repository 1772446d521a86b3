# syntax=docker/dockerfile:1.7
# The dispatcher image: the HTTP service that starts one machine per session (ECS service behind an
# ALB, or Cloud Run). Only the project's own dependencies: no Pipecat, no audio libraries.
#
#   docker build -f images/dispatcher.Dockerfile .

# Same pinned base as the bot image; build and runtime must match (the venv points at its python).
ARG PYTHON_IMAGE=python:3.11.14-slim-trixie
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/opt/venv
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,target=/var/lib/apt,sharing=locked \
    rm -f /etc/apt/apt.conf.d/docker-clean && \
    apt-get update && \
    apt-get install -y --no-install-recommends tini
WORKDIR /src
# `--no-default-groups`: the project's `dependencies` are exactly the dispatcher's closure; the
# default groups (bot, infra, dev) are not.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=pyproject.toml,target=/src/pyproject.toml \
    --mount=type=bind,source=uv.lock,target=/src/uv.lock \
    uv sync --frozen --no-default-groups --no-install-project
# botocore carries the API models of every AWS service (about 25 MB of its 26 MB); the dispatcher
# calls ECS, and S3 where calls are kept in a bucket (credentials come from the task role's
# endpoint; STS and SSO where a developer runs it with a profile). Keeping only those models took
# the closure from 86.2 to 64.9 MB (budget in images/budgets.py; tests/images/closure.py replays
# this step on the closures it measures, images/ci/build.sh builds ECS and S3 clients in the image).
RUN cd /opt/venv/lib/python3.11/site-packages/botocore/data && \
    find . -mindepth 1 -maxdepth 1 -type d ! -name ecs ! -name s3 ! -name sts ! -name sso ! -name sso-oidc \
        -exec rm -rf {} +

FROM ${PYTHON_IMAGE} AS runtime
# No revision label or build arg: the image content alone decides the digest, so a commit that
# does not change what is built (docs, stacks) deploys nothing. The revision is an extra tag.
ARG SOURCE_URL=unknown
LABEL org.opencontainers.image.title="voicefleet-dispatcher" \
      org.opencontainers.image.description="Starts one machine per Pipecat voice session" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 dispatcher && \
    useradd --system --uid 10001 --gid dispatcher --no-create-home --home-dir /nonexistent dispatcher
COPY --from=build /usr/bin/tini /usr/bin/tini
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY dispatcher/ /app/dispatcher/
COPY botchannel/ /app/botchannel/
COPY voicefleet_settings/ /app/voicefleet_settings/
# The SIP edge's code (no PJSIP: the edge's host adds its wheel, stacks/shared/sip_edge_host.py), so a
# stack's edge runs the deploy's own code and closure, pulled with the dispatcher's image.
COPY sipedge/ /app/sipedge/
# In a container the dispatcher must listen on all interfaces; 8080 is what Cloud Run sends by
# default (it overrides PORT) and what the ALB target group uses.
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8080
EXPOSE 8080
USER 10001:10001
# No HEALTHCHECK: neither ECS nor Cloud Run reads the Dockerfile's (ECS uses the ALB target group's
# check and the task definition's healthCheck, Cloud Run its startup/liveness probes), both are
# pointed at GET /healthz by the Pulumi stack, and an in-image check would need curl or a second
# Python process every interval.
# tini as PID 1 so SIGTERM during start-up (before uvicorn installs its handler) is not ignored.
# `-e 143`: uvicorn shuts down gracefully on SIGTERM and then re-raises the signal, so the process
# dies "by SIGTERM" (143) after a clean shutdown; ECS and Cloud Run should see a clean exit (0).
ENTRYPOINT ["/usr/bin/tini", "-e", "143", "--", "python", "-m", "dispatcher"]

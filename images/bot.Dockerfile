# syntax=docker/dockerfile:1.7
# The bot image: one container per voice session runs `python -m bot` (Daily transport) and exits
# with the session.
# Fargate pulls the whole image for every task, so every megabyte here is cold-start time; see
# docs/images.md for the measured sizes and `uv run python bench/image_size.py` to re-measure.
#
#   docker build -f images/bot.Dockerfile .
#
# Stages: build (locked deps into /opt/venv) → bake (models/data, proves Silero loads; torch only here)
# → runtime (python slim + /opt/venv + baked data + bot/, non-root, tini as PID 1).

# Pinned by tag; the Pulumi stack pins the built image by digest. Build and runtime must use the same
# base: the venv's interpreter is the base image's /usr/local/bin/python3.11.
ARG PYTHON_IMAGE=python:3.11.14-slim-trixie
# The uv that wrote uv.lock. A multi-arch image, so no per-architecture download URL.
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
# Bytecode is compiled once here instead of on every cold start (runtime sets PYTHONDONTWRITEBYTECODE
# and the venv is read-only for the bot user anyway). Copy mode: the cache is a mount, not in the image.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/opt/venv
# tini comes from Debian (any architecture); the runtime stage copies the binary, so no apt there.
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,target=/var/lib/apt,sharing=locked \
    rm -f /etc/apt/apt.conf.d/docker-clean && \
    apt-get update && \
    apt-get install -y --no-install-recommends tini
WORKDIR /src
# The dispatcher's dependencies (the project's own) plus group `bot`; `--no-default-groups` because
# the default groups include infra and dev. Packages in that closure that no code path of the bot
# *in this image* imports are not installed (sizes measured by bench/image_size.py, docs/images.md;
# tests/images runs this exact command, then `python -m bot --check` offline and an import check):
#   numba, llvmlite, resampy: only pipecat's optional ResampyResampler imports resampy (~190 MB);
#   opencv-python-headless: SmallWebRTC imports cv2 only to convert incoming video (~160 MB);
#   aiortc, av, aioice, pylibsrtp, pyopenssl, cryptography, google-crc32c, dnspython, ifaddr: the
#     SmallWebRTC transport (~130 MB). This image is Daily-only: cloud sessions join Daily rooms, and
#     `--transport webrtc` runs bots as host processes (aiortc in a container needs host networking);
#   boto3, botocore, s3transfer, jmespath, python-dateutil, six, urllib3, google-auth, pyasn1,
#     pyasn1-modules: the dispatcher's cloud SDKs, which the bot never imports.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=pyproject.toml,target=/src/pyproject.toml \
    --mount=type=bind,source=uv.lock,target=/src/uv.lock \
    uv sync --frozen --no-default-groups --group bot --no-install-project \
        --no-install-package numba --no-install-package llvmlite --no-install-package resampy \
        --no-install-package opencv-python-headless \
        --no-install-package aiortc --no-install-package av --no-install-package aioice \
        --no-install-package pylibsrtp --no-install-package pyopenssl --no-install-package cryptography \
        --no-install-package google-crc32c --no-install-package dnspython --no-install-package ifaddr \
        --no-install-package boto3 --no-install-package botocore --no-install-package s3transfer \
        --no-install-package jmespath --no-install-package python-dateutil --no-install-package six \
        --no-install-package urllib3 --no-install-package google-auth --no-install-package pyasn1 \
        --no-install-package pyasn1-modules

# The SmallWebRTC variant's closure: from the Daily one, aiortc's stack in and daily-python out (uv
# sync is exact, so it also removes). Measured with images/ci (runtime /opt/venv): Daily-only
# 321.3 MB, SmallWebRTC-only 412.0 MB, both transports in one image 455.8 MB — over both budgets
# (400 Daily, 450 WebRTC), hence two images from this one Dockerfile (target runtime-webrtc).
FROM build AS build-webrtc
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=pyproject.toml,target=/src/pyproject.toml \
    --mount=type=bind,source=uv.lock,target=/src/uv.lock \
    uv sync --frozen --no-default-groups --group bot --no-install-project \
        --no-install-package daily-python \
        --no-install-package numba --no-install-package llvmlite --no-install-package resampy \
        --no-install-package opencv-python-headless \
        --no-install-package boto3 --no-install-package botocore --no-install-package s3transfer \
        --no-install-package jmespath --no-install-package python-dateutil --no-install-package six \
        --no-install-package urllib3 --no-install-package google-auth --no-install-package pyasn1 \
        --no-install-package pyasn1-modules

FROM build AS bake
# Hub models to cache, `owner/name[:ref]=entrypoint`, space separated. Empty by default: Silero VAD
# comes from the pipecat-ai wheel, and no pipeline of ours loads a torch.hub model.
ARG TORCH_HUB_MODELS=""
ARG TORCH_VERSION=2.13.0
COPY images/bake_models.py /opt/bake/bake_models.py
# With the runtime venv's interpreter: prove Silero loads on this platform, and bake NLTK data if
# (and only if) the runtime closure has NLTK (pipecat-ai 1.14 has none; see bake_models.py).
RUN /opt/venv/bin/python /opt/bake/bake_models.py verify-vad && \
    /opt/venv/bin/python /opt/bake/bake_models.py nltk --dest /opt/models/nltk_data && \
    mkdir -p /opt/models/torch/hub
# torch lives in a separate bake-only venv (CPU wheel index: the default PyPI wheel pulls CUDA);
# only the cache directory is copied on, so torch never reaches the runtime stage.
RUN --mount=type=cache,target=/root/.cache/uv \
    if [ -n "$TORCH_HUB_MODELS" ]; then \
        uv venv /opt/torch-venv && \
        uv pip install --python /opt/torch-venv/bin/python --index-url https://download.pytorch.org/whl/cpu \
            "torch==${TORCH_VERSION}" && \
        /opt/torch-venv/bin/python /opt/bake/bake_models.py torch-hub --dest /opt/models/torch/hub \
            $TORCH_HUB_MODELS; \
    fi

# The bot's code with its bytecode, one stage per variant: a `--check` run with that variant's venv
# and transport compiles bot/ and botchannel/ and fills the cache of the methods Pipecat's ~900
# dataclasses generate (bot/dataclass_code.py; ~100 ms of every cold start otherwise), which the
# runtime (PYTHONDONTWRITEBYTECODE, read-only for the bot user) could never write itself.
FROM build AS code
WORKDIR /app
COPY bot/ /app/bot/
COPY botchannel/ /app/botchannel/
# The default bot (BOT_FILE unset): voicefleet's parrot, which talks with no API keys.
COPY examples/parrot/ /app/examples/parrot/
RUN BOT_TRANSPORT=daily /opt/venv/bin/python -m bot --check

FROM build-webrtc AS code-webrtc
WORKDIR /app
COPY bot/ /app/bot/
COPY botchannel/ /app/botchannel/
# The default bot (BOT_FILE unset): voicefleet's parrot, which talks with no API keys.
COPY examples/parrot/ /app/examples/parrot/
RUN BOT_TRANSPORT=webrtc /opt/venv/bin/python -m bot --check

# What both bot images share; each variant below adds its venv and the code (venv first: the code
# changes more often, and a code change should not re-push the venv layer).
FROM ${PYTHON_IMAGE} AS runtime-base
# No revision label or build arg: the image content alone decides the digest, so a commit that
# does not change what is built (docs, stacks) deploys nothing. The revision is an extra tag.
ARG SOURCE_URL=unknown
LABEL org.opencontainers.image.title="voicefleet-bot" \
      org.opencontainers.image.description="Pipecat voice bot, one container per session" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric uid so orchestrators can check runAsNonRoot without reading /etc/passwd.
RUN groupadd --system --gid 10001 bot && \
    useradd --system --uid 10001 --gid bot --create-home --home-dir /home/bot bot
COPY --from=build /usr/bin/tini /usr/bin/tini
COPY --from=bake /opt/models /opt/models
WORKDIR /app
# Offline at run time: anything that would reach a model hub fails fast instead of stalling a call.
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NLTK_DATA=/opt/models/nltk_data \
    TORCH_HOME=/opt/models/torch \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_DATASETS_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    BOT_TRANSPORT=daily
USER 10001:10001
# tini as PID 1 forwards SIGTERM to the bot from the first instant (a Python PID 1 ignores SIGTERM
# until it installs a handler, so a stop during import waited for SIGKILL) and reaps children.
# `-e 143`: a bot killed by that SIGTERM before its handler exists counts as a clean exit (0), like
# the graceful SIGTERM path of the bot contract. Session flags (--room-url …) are appended as CMD.
# BOT_TRANSPORT: the one transport an image carries is its default, so a bare
# `python -m bot --check` (CI runs exactly that in each built image) checks it.
ENTRYPOINT ["/usr/bin/tini", "-e", "143", "--", "python", "-m", "bot"]

# SmallWebRTC through a TURN relay (cloud sessions without Daily): `--target runtime-webrtc`.
FROM runtime-base AS runtime-webrtc
LABEL org.opencontainers.image.title="voicefleet-bot-webrtc"
COPY --from=build-webrtc /opt/venv /opt/venv
COPY --from=code-webrtc /app/bot /app/bot
COPY --from=code-webrtc /app/botchannel /app/botchannel
COPY --from=code-webrtc /app/examples/parrot /app/examples/parrot
ENV BOT_TRANSPORT=webrtc

# The default target: the Daily bot.
FROM runtime-base AS runtime
COPY --from=build /opt/venv /opt/venv
COPY --from=code /app/bot /app/bot
COPY --from=code /app/botchannel /app/botchannel
COPY --from=code /app/examples/parrot /app/examples/parrot

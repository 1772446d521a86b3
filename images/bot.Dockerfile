# syntax=docker/dockerfile:1.7
# The bot image: one container per voice session runs voicefleet's host (`python -m bot`, Daily
# transport), which runs the user's bot.py (Pipecat's `async def bot(runner_args)`), and exits with
# the session. Built from a bot project folder (docs/bring-your-bot.md) plus this repository.
# Fargate pulls the whole image for every task, so every megabyte here is cold-start time; see
# docs/images.md for the measured sizes and `uv run python bench/image_size.py` to re-measure.
#
#   docker build -f images/bot.Dockerfile --build-context bot-project=examples/parrot .
#
# Stages: build (the project's locked deps into /opt/venv) → bake (models/data, proves Silero loads,
# the project's bake.py; torch only here) → code (project + host, compiled, --check) → runtime
# (python slim + /opt/venv + baked data + code, non-root, tini as PID 1).

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
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_CACHE_DIR=/root/.cache/uv
# Where baked models live, at build and at run time (the runtime stage sets the same variables):
# the project's bake.py writes under BOT_MODELS_DIR; libraries that cache by HF_HOME, TORCH_HOME
# or XDG_CACHE_HOME find at run time what they fetched in the bake stage. Set here, so the code
# stages' --check (a bot.py may load its models at import) sees them too. UV_CACHE_DIR above pins
# uv's cache to the cache mount: under XDG_CACHE_HOME it would land in /opt/models, in the image.
ENV BOT_MODELS_DIR=/opt/models/bot \
    HF_HOME=/opt/models/huggingface \
    XDG_CACHE_HOME=/opt/models/cache \
    TORCH_HOME=/opt/models/torch
# tini comes from Debian (any architecture); the runtime stage copies the binary, so no apt there.
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,target=/var/lib/apt,sharing=locked \
    rm -f /etc/apt/apt.conf.d/docker-clean && \
    apt-get update && \
    apt-get install -y --no-install-recommends tini
# The bot project: the user's folder (bot.py + pyproject.toml/uv.lock or requirements.txt), a second
# build context named `bot-project` (`--build-context bot-project=examples/parrot`; the Pulumi
# program passes the stack's voicefleet:botProject). The project's locked dependencies are the
# image's: its Pipecat (in the supported range, checked at preview by images/bot_project.py), its
# services, its transports. BOT_EXCLUDE_PACKAGES: the project's [tool.voicefleet] exclude-packages,
# locked packages its bot never imports (the parrot example leaves out numba/llvmlite/resampy and
# opencv, ~385 MB that only optional Pipecat paths import).
ARG BOT_EXCLUDE_PACKAGES=""
COPY images/install_project.sh images/host_requirements.txt /opt/build/
WORKDIR /project
# Daily variant: also leave out aiortc's own stack (only Pipecat's SmallWebRTC transport imports
# aiortc, av, aioice, pylibsrtp), if the project locks it; the generic libraries it pulls stay.
# BOT_DAILY_LEAVES_OUT is empty when bot.py imports the SmallWebRTC transport at module level: that
# import runs in this image too (images/bot_transports.py; the plan sizes the image the same way).
ARG BOT_DAILY_LEAVES_OUT="aiortc av aioice pylibsrtp"
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,from=bot-project,target=/project \
    /opt/build/install_project.sh $BOT_EXCLUDE_PACKAGES $BOT_DAILY_LEAVES_OUT
# The host's code (/opt/voicefleet, copied in later) is on the venv's path through a .pth file, not
# PYTHONPATH: the entrypoint runs Python isolated (`-I`), which ignores every PYTHON* variable.
RUN echo /opt/voicefleet > "$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/voicefleet.pth"

# The SmallWebRTC variant's closure: the project's, with daily-python left out instead (uv sync is
# exact, so it also removes). Measured with images/ci for voicefleet's own bot: Daily-only 321.3 MB,
# SmallWebRTC-only 412.0 MB, both transports 455.8 MB, over both budgets (400 Daily, 450 WebRTC),
# hence two images from this one Dockerfile (target runtime-webrtc).
# BOT_WEBRTC_LEAVES_OUT is empty when bot.py imports the Daily transport at module level (as
# pipecat-examples' bots that offer both do: `DailyParams` at the top): daily-python stays then.
FROM build AS build-webrtc
ARG BOT_EXCLUDE_PACKAGES=""
ARG BOT_WEBRTC_LEAVES_OUT="daily-python"
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,from=bot-project,target=/project \
    rm -rf /opt/venv && /opt/build/install_project.sh $BOT_EXCLUDE_PACKAGES $BOT_WEBRTC_LEAVES_OUT
RUN echo /opt/voicefleet > "$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/voicefleet.pth"

FROM build AS bake
# Hub models to cache, `owner/name[:ref]=entrypoint`, space separated. Empty by default: Silero VAD
# comes from the pipecat-ai wheel.
ARG TORCH_HUB_MODELS=""
ARG TORCH_VERSION=2.13.0
COPY images/bake_models.py /opt/bake/bake_models.py
# With the runtime venv's interpreter: prove Silero loads on this platform, and bake NLTK data if
# (and only if) the runtime closure has NLTK (pipecat-ai 1.14 has none; see bake_models.py).
RUN /opt/venv/bin/python /opt/bake/bake_models.py verify-vad && \
    /opt/venv/bin/python /opt/bake/bake_models.py nltk --dest /opt/models/nltk_data && \
    mkdir -p /opt/models/torch/hub "$BOT_MODELS_DIR" "$HF_HOME" "$XDG_CACHE_HOME"
# The model-baking hook (docs/bring-your-bot.md): the project's bake.py, if it has one, runs once
# here with the project's own dependencies, network allowed, from BOT_MODELS_DIR (so a library
# that downloads into the working directory, like Piper's voices, lands there too).
RUN --mount=type=bind,from=bot-project,target=/project \
    if [ -f /project/bake.py ]; then \
        cd "$BOT_MODELS_DIR" && /opt/venv/bin/python /project/bake.py; \
    fi
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

# The code, with its bytecode, one stage per variant: voicefleet's host (bot/, botchannel/,
# voicefleet_settings/) in /opt/voicefleet, the user's project in /app (where Pipecat Cloud's images
# keep it), without what never belongs in an image (.venv, .git, caches, .env files with keys).
# `compileall` compiles the project; the host's `--check` with the variant's venv and transport
# compiles the host's three packages and fills the cache of the methods Pipecat's ~900 dataclasses generate (bot/dataclass_code.py;
# ~100 ms of every cold start otherwise), which the runtime (PYTHONDONTWRITEBYTECODE, read-only for
# the bot user) could never write itself. The project's files become root's, readable by all and
# writable by none else (a 0600 file in the user's folder would otherwise be unreadable by uid 10001).
FROM build AS code
COPY --from=bake /opt/models /opt/models
COPY bot/ /opt/voicefleet/bot/
COPY botchannel/ /opt/voicefleet/botchannel/
COPY voicefleet_settings/ /opt/voicefleet/voicefleet_settings/
RUN --mount=type=bind,from=bot-project,target=/project \
    mkdir -p /app && \
    tar -C /project --exclude=./.venv --exclude=./.git --exclude='__pycache__' --exclude='*.pyc' \
        --exclude='./.env' --exclude='./.env.*' -cf - . | tar -C /app --no-same-owner -xf - && \
    chmod -R a+rX,go-w /app && \
    /opt/venv/bin/python -m compileall -q /app
WORKDIR /app
RUN BOT_TRANSPORT=daily BOT_FILE=/app/bot.py PYTHONPATH=/opt/voicefleet /opt/venv/bin/python -P -m bot --check

FROM build-webrtc AS code-webrtc
COPY --from=bake /opt/models /opt/models
COPY --from=code /app /app
COPY bot/ /opt/voicefleet/bot/
COPY botchannel/ /opt/voicefleet/botchannel/
COPY voicefleet_settings/ /opt/voicefleet/voicefleet_settings/
WORKDIR /app
RUN BOT_TRANSPORT=webrtc BOT_FILE=/app/bot.py PYTHONPATH=/opt/voicefleet /opt/venv/bin/python -P -m bot --check

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
# The host (`python -I -m bot`, found through the venv's voicefleet.pth) runs the project's bot.py
# (BOT_FILE). `-I` (isolated) keeps the working directory off sys.path, so /app/bot.py never
# shadows the host's `bot`, and ignores PYTHON* variables and the user site: whoever may set a
# task's environment (run-with-overrides) cannot make Python load code of theirs, and the host
# refuses to start with such variables set at all (bot/environment_check.py). Hence `-u` and `-B`
# on the command line: -I ignores PYTHONUNBUFFERED and PYTHONDONTWRITEBYTECODE (kept below for
# the processes a bot starts).
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BOT_FILE=/app/bot.py \
    BOT_MODELS_DIR=/opt/models/bot \
    HF_HOME=/opt/models/huggingface \
    XDG_CACHE_HOME=/opt/models/cache \
    NLTK_DATA=/opt/models/nltk_data \
    TORCH_HOME=/opt/models/torch \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_DATASETS_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    BOT_TRANSPORT=daily
# tini as PID 1 forwards SIGTERM to the bot from the first instant (a Python PID 1 ignores SIGTERM
# until it installs a handler, so a stop during import waited for SIGKILL) and reaps children.
# `-e 143`: a bot killed by that SIGTERM before its handler exists counts as a clean exit (0), like
# the graceful SIGTERM path of the bot contract. Session flags (--room-url …) are appended as CMD.
# BOT_TRANSPORT: the one transport an image carries is its default, so a bare
# `python -m bot --check` (CI runs exactly that in each built image) checks it.
ENTRYPOINT ["/usr/bin/tini", "-e", "143", "--", "python", "-I", "-u", "-B", "-m", "bot"]

# SmallWebRTC through a TURN relay (cloud sessions without Daily): `--target runtime-webrtc`.
FROM runtime-base AS runtime-webrtc
LABEL org.opencontainers.image.title="voicefleet-bot-webrtc"
COPY --from=build-webrtc /opt/venv /opt/venv
COPY --from=code-webrtc --chown=0:0 /opt/voicefleet /opt/voicefleet
COPY --from=code-webrtc --chown=0:0 /app /app
ENV BOT_TRANSPORT=webrtc
RUN chown 0:10001 /app && chmod 1775 /app
USER 10001:10001

# The default target: the Daily bot. USER comes last in each variant, after the code is copied as
# root's: with USER set first, buildah hands the existing WORKDIR /app to that user, and the bot
# must not be able to write its own code. Its folder, though, is the bot's working directory, and
# Pipecat's examples write files next to themselves by a relative name (the Twilio bots'
# recording_*.wav): /app is root's with the bot's group and mode 1775, so the bot creates files
# there while the sticky bit keeps it from deleting or replacing root's, which stay read-only to it.
# Set after the COPY in each variant (a COPY of a folder's contents leaves the folder's own mode to
# the stage). images/ci/run_image.py checks both as the bot's uid.
FROM runtime-base AS runtime
COPY --from=build /opt/venv /opt/venv
COPY --from=code --chown=0:0 /opt/voicefleet /opt/voicefleet
COPY --from=code --chown=0:0 /app /app
RUN chown 0:10001 /app && chmod 1775 /app
USER 10001:10001

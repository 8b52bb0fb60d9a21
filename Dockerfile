# nogil-bench on a source-built free-threaded CPython 3.14 ("3.14t": the GIL compiled out).
#
#   builder     CPython 3.14t from scripts/build_python.sh, PGO + LTO unless OPTIMIZED=0
#   base        slim Debian + the interpreter + only the shared libraries it loads
#   deps        + uv and the locked runtime dependencies in /opt/venv (no project code yet)
#   test        + dev dependencies and the code; runs `make check` (the README's checks), so
#               building this target fails when a test fails
#   app         the project itself installed into /opt/venv
#   production  base + /opt/venv, non-root, HEALTHCHECK, the default target
#
# ./build_docker.sh [TARGET] builds it (docker, podman or buildah); ./run_docker.sh runs it.
# Build arguments:
#   BASE_IMAGE        debian:trixie-slim; build_docker.sh can make it locally with debootstrap
#   OPTIMIZED         1 (default): PGO + LTO, a ~20-minute build; 0: a ~3-minute plain build
#   CPYTHON_TARBALL   a path in the build context, under docker/cpython/, to build from
#                     instead of downloading from python.org; the pinned SHA-256 is checked
#                     either way
# Build secret (optional): `ca-certificates`, a CA bundle to trust when fetching packages, for
# builds behind a TLS-inspecting proxy; build_docker.sh passes the host's bundle.

ARG BASE_IMAGE=debian:trixie-slim

# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS builder
ARG OPTIMIZED=1
ARG CPYTHON_TARBALL=
ARG UV_VERSION=0.13.9
WORKDIR /build
COPY scripts/build_python.sh scripts/
RUN apt-get update \
    && apt-get install -y --no-install-recommends $(scripts/build_python.sh --deps) \
    && rm -rf /var/lib/apt/lists/*
COPY docker/cpython/ docker/cpython/
RUN CPYTHON_TARBALL="${CPYTHON_TARBALL:+/build/$CPYTHON_TARBALL}" \
    scripts/build_python.sh --prefix /opt/python $([ "$OPTIMIZED" = 1 ] && echo --optimized) \
    && rm -rf /root/.cache/nogil-bench
# uv itself, for the stages that install dependencies (never copied into production).
RUN --mount=type=secret,id=ca-certificates \
    if [ -s /run/secrets/ca-certificates ]; then export PIP_CERT=/run/secrets/ca-certificates; fi \
    && /opt/python/bin/python3.14t -m venv /opt/uv-tool \
    && /opt/uv-tool/bin/python -m pip install --no-cache-dir --disable-pip-version-check \
       "uv==${UV_VERSION}"
# Trim what a server never uses (the test suite alone is 160 MB, its C modules _testcapi, xx*
# and the like 1.2 MB; headers are only for building extensions, and every dependency is a
# wheel), strip debug symbols, and keep only the unoptimized bytecode (make install writes
# three levels of .pyc). python3.14 is a hard link to python3.14t that strip would turn into
# a second, unstripped 40 MB copy: make it a symlink.
RUN cd /opt/python \
    && rm -rf include share lib/pkgconfig bin/idle3* bin/pip3* \
    && cd lib/python3.14t \
    && rm -rf test idlelib tkinter turtledemo turtle.py ensurepip pydoc_data site-packages/pip* \
       lib-dynload/_test*.so lib-dynload/_ctypes_test.*.so lib-dynload/_xxtestfuzz.*.so \
       lib-dynload/xx*.so \
    && find . -name '*.opt-[12].pyc' -delete \
    && find /opt/python -type f \( -name '*.so' -o -name 'python3.14t' \) \
       -exec strip --strip-unneeded {} + \
    && ln -sf python3.14t /opt/python/bin/python3.14
# The runtime stage installs exactly the Debian packages whose libraries the interpreter loads.
RUN find /opt/python -type f \( -name '*.so' -o -name 'python3.14t' \) -exec ldd {} + \
    | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u | xargs -r realpath \
    | xargs -r dpkg -S | cut -d: -f1 | sort -u | grep -vx 'libc6' > /opt/runtime-packages.txt \
    && cat /opt/runtime-packages.txt

# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS base
COPY --from=builder /opt/runtime-packages.txt /tmp/runtime-packages.txt
# libpq5 too: psycopg (pure Python, for NOGIL_BENCH_DATABASE_URL=postgresql+psycopg://...)
# loads it at run time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends $(cat /tmp/runtime-packages.txt) libpq5 \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
       /tmp/runtime-packages.txt
COPY --from=builder /opt/python /opt/python
ENV PATH=/opt/venv/bin:/opt/python/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHON_GIL=0

# ---------------------------------------------------------------------------------------------
FROM base AS deps
COPY --from=builder /opt/uv-tool/bin/uv /usr/local/bin/uv
ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON=/opt/python/bin/python3.14t \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
WORKDIR /app
# Only the lock files: a code change does not invalidate this layer.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=secret,id=ca-certificates \
    if [ -s /run/secrets/ca-certificates ]; then export SSL_CERT_FILE=/run/secrets/ca-certificates; fi \
    && uv sync --frozen --no-dev --no-install-project

# ---------------------------------------------------------------------------------------------
FROM deps AS test
RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*
# The example workloads are a dev dependency installed from this folder (editable).
COPY examples/ examples/
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=secret,id=ca-certificates \
    if [ -s /run/secrets/ca-certificates ]; then export SSL_CERT_FILE=/run/secrets/ca-certificates; fi \
    && uv sync --frozen --no-install-project
COPY Makefile README.md build_docker.sh run_docker.sh compose.yaml compose.distributed.yaml ./
COPY scripts/ scripts/
COPY src/ src/
COPY tests/ tests/
COPY deploy/ deploy/
# The image has no PostgreSQL, MariaDB, Redis, RabbitMQ or Prometheus server: their tests are
# skipped here (CI runs
# them outside).
ENV NOGIL_BENCH_TEST_POSTGRES=0 NOGIL_BENCH_TEST_MARIADB=0 NOGIL_BENCH_TEST_REDIS=0 \
    NOGIL_BENCH_TEST_RABBITMQ=0 NOGIL_BENCH_TEST_PROMETHEUS=0
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=secret,id=ca-certificates \
    if [ -s /run/secrets/ca-certificates ]; then export SSL_CERT_FILE=/run/secrets/ca-certificates; fi \
    && uv sync --frozen \
    && make check VENV_BIN=/opt/venv/bin

# ---------------------------------------------------------------------------------------------
FROM deps AS app
# strip, for the extension modules below (this stage only: production copies just /opt/venv).
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/*
COPY README.md ./
COPY src/ src/
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=secret,id=ca-certificates \
    if [ -s /run/secrets/ca-certificates ]; then export SSL_CERT_FILE=/run/secrets/ca-certificates; fi \
    && uv sync --frozen --no-dev --no-editable
# What production ships of /opt/venv, less what neither `nogil-bench serve` nor `nogil-bench
# worker` ever loads (the test stage keeps everything; scripts/smoke_image.sh runs both roles
# from the production image). Sizes as measured, bytecode included:
# - click-repl, prompt_toolkit, wcwidth (9.7 MB): only the `celery` command line imports them,
#   for `celery shell` and `celery amqp`; `nogil-bench worker` goes through Celery's worker
#   command alone (distributed/worker.py; a test runs the worker with them refused).
# - debug symbols of the extension modules (*.so: 13.2 MB, of which SQLAlchemy's Cython
#   modules 9.9 MB and Pillow's 3.4 MB). The libraries Pillow bundles (pillow.libs/*.so.N)
#   are left as they are.
# - SQLAlchemy's SQL Server and Oracle dialects and its test harness (about 3 MB): the
#   service connects to SQLite, PostgreSQL or MySQL/MariaDB only (core/db.py); Alembic's DDL
#   modules for those databases import them only for type checking. The MySQL dialect (0.8
#   MB) stays since MariaDB became a store: the models name its column types (core/models.py)
#   and NOGIL_BENCH_DATABASE_URL=mysql+pymysql://... connects through it (PyMySQL: 0.4 MB).
# - dnspython (2.9 MB): only email-validator's deliverability check and psycopg's SRV lookup
#   import it; pydantic's EmailStr validates with check_deliverability=False, and nothing
#   calls psycopg's resolve_srv.
# - Pillow's AVIF codec (_avif and its libavif, 5 MB): uploads are PNG, JPEG or WebP
#   (workloads/images.py ACCEPTED_FORMATS); AvifImagePlugin then reports AVIF unsupported.
#   Pillow's colour management (_imagingcms and its liblcms2, 0.6 MB): only ImageCms loads
#   it, which Pillow imports for conversions to or from LAB; decoded uploads and charts are
#   RGB.
# - the test suites that packages ship (pyperf/tests, alembic/testing, mako/testing,
#   celery/contrib/testing: 1.1 MB): only pytest loads them.
# - kombu's transports other than Redis and RabbitMQ's pyamqp (SQS, MongoDB, librabbitmq...:
#   0.9 MB): kombu imports a transport by the broker URL's scheme, and NOGIL_BENCH_BROKER_URL
#   is redis:// or amqp:// (core/config.py, BROKER_SCHEMES).
# - the Redis client's commands for server modules (RediSearch, JSON, TimeSeries, Bloom,
#   vector sets: 1.0 MB): redis-py imports them only when those methods are called; kombu
#   uses only core commands.
# - cffi's Python package and pycparser (1.4 MB): they generate and compile bindings;
#   argon2-cffi's compiled bindings need only the _cffi_backend extension at run time.
# - Pygments, markdown-it-py and mdurl (10.3 MB): rich's dependencies for its Syntax, Markdown
#   and traceback renderers; `nogil-bench measure` draws its progress with rich's Console,
#   Live, ProgressBar, Table and Text only (benchmarks/progress_bar.py). Mako and Celery try
#   Pygments only to colour their own error pages and banners, and fall back to plain text
#   without it (`except ImportError` in mako/exceptions.py and celery/bin/base.py), as they did
#   before rich came.
# - Flower's extras (`nogil-bench flower`; Flower, Tornado, humanize and pytz are 6.4 MB, 3.0 MB
#   after this): Tornado's test suite (tornado/test, 1.0 MB), the source maps of its pages'
#   scripts and styles (flower/static/*/*.map, 0.5 MB: only a browser's developer tools ask
#   for them), humanize's translations (humanize/locale, 0.5 MB: Flower activates no locale)
#   and pytz's time zones (pytz/zoneinfo, 1.4 MB: Flower formats times in UTC, pytz.utc, which
#   needs no file; nothing else depends on pytz).
RUN cd /opt/venv/lib/python3.14t/site-packages \
    && rm -rf click_repl click_repl-*.dist-info prompt_toolkit prompt_toolkit-*.dist-info \
       wcwidth wcwidth-*.dist-info \
    && find /opt/venv -type f -name '*.so' -exec strip --strip-unneeded {} + \
    && rm -rf sqlalchemy/dialects/mssql sqlalchemy/dialects/oracle sqlalchemy/testing \
    && rm -rf dns dnspython-*.dist-info \
    && rm -f PIL/_avif.*.so pillow.libs/libavif-*.so* \
       PIL/_imagingcms.*.so pillow.libs/liblcms2-*.so* \
    && rm -rf pyperf/tests alembic/testing mako/testing celery/contrib/testing \
    && (cd kombu/transport && for module in *; do \
      case $module in \
        __init__.py | __pycache__ | base.py | virtual | redis.py | pyamqp.py \
        | native_delayed_delivery.py) ;; \
        *) rm -rf "$module" __pycache__/"${module%.py}".*.pyc ;; \
      esac; \
    done) \
    && rm -rf redis/commands/search redis/commands/json redis/commands/timeseries \
       redis/commands/bf redis/commands/vectorset \
    && rm -rf cffi cffi-*.dist-info pycparser pycparser-*.dist-info \
    && rm -rf pygments pygments-*.dist-info markdown_it markdown_it_py-*.dist-info \
       mdurl mdurl-*.dist-info /opt/venv/bin/pygmentize /opt/venv/bin/markdown-it \
    && rm -rf tornado/test humanize/locale pytz/zoneinfo \
    && rm -f flower/static/css/*.map flower/static/js/*.map
# Bytecode (__pycache__/*.pyc) only for what the short-lived processes import: the command line
# (`nogil-bench healthcheck` runs every 30 s), the benchmark engine's workers (a fresh
# `python -m nogil_bench.bench.worker` per block) and what pool workers and subinterpreters
# load to run a workload (nogil_bench.runners, nogil_bench.workloads). Every other .pyc goes
# (32 MB; the sources stay, so nothing is missing and tracebacks keep their lines): the
# long-lived roles compile the rest in memory when they start (PYTHONDONTWRITEBYTECODE: nothing
# is written back), measured on 2 CPUs: importing the app and create_app() 2.0 -> 4.5 s,
# `serve` healthy 2.3 -> 6.9 s, `worker` ready 1.8 -> 5.3 s. Gunicorn's workers fork from a
# master that has imported the app, Celery's prefork children from their worker: neither
# compiles again.
RUN python -c 'import importlib, pkgutil, sys; \
import nogil_bench.bench.worker, nogil_bench.cli, nogil_bench.runners, nogil_bench.workloads; \
[importlib.import_module(found.name) for package in (nogil_bench.runners, nogil_bench.workloads) \
 for found in pkgutil.iter_modules(package.__path__, package.__name__ + ".")]; \
print(*sorted({module.__cached__ for module in list(sys.modules.values()) \
 if getattr(module, "__cached__", None)}), sep="\n")' > /tmp/bytecode-kept \
    && grep -q '^/opt/venv/' /tmp/bytecode-kept \
    && find /opt/venv -name '*.pyc' | grep -vxFf /tmp/bytecode-kept | xargs -r rm -f \
    && echo "bytecode kept: $(find /opt/venv -name '*.pyc' | wc -l) files" \
    && rm /tmp/bytecode-kept \
    && du -sh /opt/venv

# ---------------------------------------------------------------------------------------------
FROM base AS production
RUN groupadd --gid 10001 nogil \
    && useradd --uid 10001 --gid nogil --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin nogil \
    && mkdir /data \
    && chown nogil:nogil /data
COPY --from=app /opt/venv /opt/venv
ENV NOGIL_BENCH_ENVIRONMENT=production \
    NOGIL_BENCH_DATA_DIR=/data \
    NOGIL_BENCH_HOST=0.0.0.0 \
    NOGIL_BENCH_PORT=8000 \
    NOGIL_BENCH_SHUTDOWN_GRACE_SECONDS=20
USER nogil:nogil
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
# The service drains in-flight work for NOGIL_BENCH_SHUTDOWN_GRACE_SECONDS after SIGTERM; give
# the container longer than that to stop (compose.yaml and run_docker.sh use 30 s).
STOPSIGNAL SIGTERM
# The console script probes /health/live with the standard library: no curl in the image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["nogil-bench", "healthcheck"]
# `nogil-bench serve` is, with the GIL off, one Granian worker thread: the serving mode
# docs/serving.md measured fastest on 3.14t. With PYTHON_GIL=1 it is uvicorn (h11 and asyncio:
# httptools and uvloop would turn the GIL back on). Both log through loguru.
CMD ["nogil-bench", "serve"]

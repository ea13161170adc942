# syntax=docker/dockerfile:1
# The fleetscope worker image: `fleetscope worker` by default; the schema Job runs `fleetscope schema` from it.
#   docker build -f deploy/docker/worker.Dockerfile -t fleetscope-worker:TAG .      (from the repository root)
# Never built here: these machines have no Docker daemon. tests/deploy/test_kubernetes.py checks offline that
# every COPY source exists and is not dockerignored, and that the command is a real fleetscope command.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS wheels
# The package depends on torch (training; Triton's models) though the worker never imports it: take the CPU
# wheels, PyPI's default torch pulls several GB of CUDA libraries.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
WORKDIR /src
COPY pyproject.toml README.md ./
# One line per package of pyproject's [tool.setuptools.packages.find] (a directory COPY copies its contents).
COPY alerts/ alerts/
COPY core/ core/
COPY evaluation/ evaluation/
COPY fleetscope/ fleetscope/
COPY fusion/ fusion/
COPY infra/ infra/
COPY kinematics/ kinematics/
COPY models/ models/
COPY records/ records/
COPY roads/ roads/
COPY sim/ sim/
COPY streams/ streams/
COPY training/ training/
RUN pip wheel --no-cache-dir --wheel-dir /wheels --extra-index-url "${TORCH_INDEX_URL}" .

FROM ${PYTHON_IMAGE}
RUN groupadd --gid 10001 fleetscope \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/fleetscope --shell /usr/sbin/nologin fleetscope \
    && mkdir -p /var/lib/fleetscope && chown 10001:10001 /var/lib/fleetscope
# Installed from the wheels of the first stage only: the sources and the build cache stay out of this image.
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels fleetscope
# A container's metrics and probe endpoint must listen beyond loopback (the default is 127.0.0.1), and the run
# directory (Faust's data folder) must be writable by the non-root user.
ENV PYTHONUNBUFFERED=1 \
    FLEETSCOPE_WORKER__METRICS_HOST=0.0.0.0 \
    FLEETSCOPE_STACK__RUN_DIR=/var/lib/fleetscope
WORKDIR /var/lib/fleetscope
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
# Prometheus /metrics and the probes /ready and /live (FLEETSCOPE_WORKER__METRICS_PORT).
EXPOSE 9108
ENTRYPOINT ["fleetscope"]
CMD ["worker"]

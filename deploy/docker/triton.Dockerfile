# syntax=docker/dockerfile:1
# Triton Inference Server serving triton_repo/ (python backend) with fleetscope installed for the models.
#   docker build -f deploy/docker/triton.Dockerfile -t fleetscope-triton:TAG .      (from the repository root)
# Never built here: these machines have no Docker daemon. tests/deploy/test_kubernetes.py checks offline that
# every COPY source exists and is not dockerignored, and that tritonserver knows every flag given below.
#
# Why 24.10: it is Triton 2.51.0, the server nvidia-pytriton 0.7.0 bundles, which the embedded stack and the
# tests run (infra/triton.py). Its Python is 3.10 while fleetscope needs 3.11, and a python backend stub must
# match both the Python and the backend's release: pytriton's stub for 3.11 was built for this one.
ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:24.10-py3
FROM ${TRITON_IMAGE}

# Python 3.11 beside the image's 3.10, from Ubuntu 22.04's universe; libpython3.11 is what the stub links.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv libpython3.11 \
    && rm -rf /var/lib/apt/lists/*

# CPU torch: the models are served KIND_CPU (triton_repo/*/config.pbtxt). For CUDA builds pass another index.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV VENV=/opt/fleetscope/venv
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
# The stub runs the Python first on PATH with its own site-packages (PYTHONPATH is ignored: INFRA-NOTES);
# the 3.11 stub replaces the image's 3.10 one as a symlink, because it finds its bundled libraries relative
# to its real location (as infra/triton.py links it).
RUN python3.11 -m venv "${VENV}" \
    && "${VENV}/bin/pip" install --no-cache-dir --extra-index-url "${TORCH_INDEX_URL}" . \
    && ln -sf "$("${VENV}/bin/python" -c 'import pytriton, pathlib; print(pathlib.Path(pytriton.__file__).parent)')/tritonserver/python_backend_stubs/3.11/triton_python_backend_stub" \
        /opt/tritonserver/backends/python/triton_python_backend_stub \
    && rm -rf /src

COPY triton_repo/ /opt/fleetscope/triton_repo/
COPY models/weights/ /opt/fleetscope/checkpoints/

RUN groupadd --gid 10001 fleetscope \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin fleetscope
# What infra/triton.py's triton_env sets: the venv first on PATH, the checkpoints, one torch thread per model
# instance. libpython3.11 is in /usr/lib/x86_64-linux-gnu, on the loader's default path, so LD_LIBRARY_PATH stays.
ENV PATH="${VENV}/bin:${PATH}" \
    FLEETSCOPE_TRITON__CHECKPOINT_DIR=/opt/fleetscope/checkpoints \
    FLEETSCOPE_TRITON__TORCH_THREADS=1 \
    OMP_NUM_THREADS=1
WORKDIR /opt/fleetscope
USER 10001:10001
EXPOSE 8000 8001 8002
# The embedded stack's flags (infra/triton.py) less its loopback addresses and ports: Triton's defaults
# 8000 (HTTP), 8001 (gRPC) and 8002 (metrics) on every interface.
ENTRYPOINT ["/opt/tritonserver/bin/tritonserver", "--model-repository=/opt/fleetscope/triton_repo", "--model-control-mode=explicit", "--load-model=st_clip", "--load-model=sa_clip", "--load-model=scene_graph", "--disable-auto-complete-config", "--exit-timeout-secs=30"]
# CPU only: no pinned or CUDA memory pools, no GPU metrics. A GPU deployment replaces these arguments.
CMD ["--pinned-memory-pool-byte-size=0", "--cuda-memory-pool-byte-size=0:0", "--allow-gpu-metrics=false"]

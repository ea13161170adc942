"""Triton Inference Server: the real ``tritonserver`` binary bundled by nvidia-pytriton, serving
``triton_repo/`` with the python backend, on CPU."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import sysconfig
import urllib.request
from pathlib import Path

from core.errors import ServiceError
from core.settings import Settings
from infra.process import ManagedProcess, require_free_port

log = logging.getLogger(__name__)

MODELS = ("st_clip", "sa_clip", "scene_graph")


def _triton_home() -> Path:
    import pytriton

    return Path(pytriton.__file__).parent / "tritonserver"


def _backend_dir(run_dir: Path) -> Path:
    """A backend directory whose python backend has the stub for this Python.

    The wheel ships stubs per Python version beside the backend rather than in it; we assemble
    the backend in the run directory instead of modifying site-packages.
    """
    home = _triton_home()
    target = run_dir / "triton_backends" / "python"
    target.mkdir(parents=True, exist_ok=True)
    stub = (
        home
        / "python_backend_stubs"
        / f"{sys.version_info.major}.{sys.version_info.minor}"
        / "triton_python_backend_stub"
    )
    if not stub.exists():
        raise ServiceError("triton", f"no python backend stub for Python {sys.version_info[:2]} at {stub}")
    # Symlinks, not copies: the stub finds its bundled libcudart relative to its real location.
    for source in (
        home / "backends" / "python" / "libtriton_python.so",
        home / "backends" / "python" / "triton_python_backend_utils.py",
        stub,
    ):
        link = target / source.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source)
    return target.parent


def triton_env(settings: Settings) -> dict[str, str]:
    """Environment for tritonserver: the stub runs this venv's Python and reads fleetscope settings."""
    env = dict(os.environ)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, env.get("LD_LIBRARY_PATH", "")) if p)
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    env["FLEETSCOPE_TRITON__CHECKPOINT_DIR"] = str(settings.triton.checkpoint_dir)
    env["FLEETSCOPE_TRITON__TORCH_THREADS"] = str(settings.triton.torch_threads)
    env["FLEETSCOPE_TRITON__RUNTIME"] = settings.triton.runtime
    env["OMP_NUM_THREADS"] = str(settings.triton.torch_threads)
    return env


def ensure_checkpoints(settings: Settings) -> None:
    """Install the shipped checkpoints, or seeded *untrained* ones, for any model that has none, and refresh
    untouched copies of older shipped ones (embedded stack only).

    Runs in a subprocess so that the stack process never imports torch.
    """
    from models.shipped import pending

    ckpt = settings.triton.checkpoint_dir
    missing = [m for m in MODELS if not (ckpt / f"{m}.pt").exists()]
    refresh = [f for group in pending(ckpt) for f in group if (ckpt / f).exists()]
    if not missing and not refresh:
        return
    if refresh:
        log.info("shipped checkpoints changed since %s got them: refreshing %s", ckpt, ", ".join(refresh))
    if missing:
        log.info(
            "no checkpoint for %s in %s: installing the shipped ones (untrained for the rest)", ", ".join(missing), ckpt
        )
    out = subprocess.run(
        [sys.executable, "-m", "models.checkpoints", "init", "--dir", str(ckpt), "--seed", "0"],
        capture_output=True,
        text=True,
        timeout=settings.stack.startup_timeout_s,
    )
    if out.returncode != 0:
        raise ServiceError("triton", "could not install checkpoints", (out.stdout + out.stderr)[-3000:])


class EmbeddedTriton:
    """tritonserver on 127.0.0.1 with explicit model control: all three models loaded at start."""

    name = "triton"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.t = settings.triton
        self.process = ManagedProcess(self.name, settings.stack.run_dir / "logs" / "triton.log")

    def start(self) -> None:
        for port, setting in (
            (self.t.embedded_http_port, "FLEETSCOPE_TRITON__EMBEDDED_HTTP_PORT"),
            (self.t.embedded_grpc_port, "FLEETSCOPE_TRITON__EMBEDDED_GRPC_PORT"),
            (self.t.embedded_metrics_port, "FLEETSCOPE_TRITON__EMBEDDED_METRICS_PORT"),
        ):
            require_free_port(self.name, port, setting)
        if not (self.t.model_repository / MODELS[0] / "config.pbtxt").exists():
            raise ServiceError(
                self.name,
                f"{self.t.model_repository} is not a model repository; set FLEETSCOPE_TRITON__MODEL_REPOSITORY",
            )
        ensure_checkpoints(self.settings)
        cmd: list[str | os.PathLike[str]] = [
            _triton_home() / "bin" / "tritonserver",
            f"--model-repository={self.t.model_repository}",
            f"--backend-directory={_backend_dir(self.settings.stack.run_dir)}",
            "--model-control-mode=explicit",
            *[f"--load-model={m}" for m in MODELS],
            "--disable-auto-complete-config",
            "--pinned-memory-pool-byte-size=0",
            "--cuda-memory-pool-byte-size=0:0",
            "--allow-gpu-metrics=false",
            "--http-address=127.0.0.1",
            "--grpc-address=127.0.0.1",
            "--metrics-address=127.0.0.1",
            f"--http-port={self.t.embedded_http_port}",
            f"--grpc-port={self.t.embedded_grpc_port}",
            f"--metrics-port={self.t.embedded_metrics_port}",
            "--exit-timeout-secs=10",
        ]
        self.process.start(cmd, env=triton_env(self.settings))
        # A python stub that cannot load its libraries leaves a model "loading" forever: the bound matters.
        self.process.wait_ready(self._ready, self.settings.stack.startup_timeout_s, "ready with all models")

    def _ready(self) -> bool:
        url = f"http://127.0.0.1:{self.t.embedded_http_port}/v2/health/ready"
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)

    def stop(self) -> None:
        self.process.stop(self.settings.stack.shutdown_timeout_s)

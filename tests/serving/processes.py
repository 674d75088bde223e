"""Real programs around the inference server, on loopback ports: ``modelseal serve`` as a
subprocess, Prometheus scraping it, nginx in front of replicas. Each program is a Debian
package; without it a test skips with the reason, and fails under CI=true (as PostgreSQL)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serving.live import free_port


def require_program(name: str, package: str) -> str:
    """The path of ``name``; skip (fail under CI=true) when its Debian package is missing."""
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )
    if found is None:
        message = f"{name} is not installed (Debian package {package}: make system-deps)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI requires it)")
        pytest.skip(message)
    return found


def wait_until(check: Any, *, what: str, timeout: float = 60.0, process: Any = None) -> None:
    """Poll ``check()`` until true; fail with ``what`` (and the process's output) at the
    deadline or when ``process`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.TransportError):
            if check():
                return
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the process exited ({process.returncode})")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.1)


@contextlib.contextmanager
def serve_process(
    args: Sequence[str], log: Path, *, port: int | None = None, ready: bool = True
) -> Iterator[str]:
    """``modelseal serve ARGS --port P`` until the block ends; yields ``http://127.0.0.1:P``
    once ``/v2/health/ready`` (or ``live`` when not ``ready``) answers 200."""
    with serve_processes(args, [log], ports=[port or free_port()], ready=ready) as bases:
        yield bases[0]


@contextlib.contextmanager
def serve_processes(
    args: Sequence[str], logs: Sequence[Path], *, ports: Sequence[int] = (), ready: bool = True
) -> Iterator[list[str]]:
    """One ``modelseal serve ARGS`` per log file, started together (replicas); yields their
    base URLs once each answers on ``/v2/health/ready`` (or ``live``)."""
    ports = list(ports) or [free_port() for _ in logs]
    started: list[tuple[subprocess.Popen[Any], str, Path]] = []
    route = "/v2/health/ready" if ready else "/v2/health/live"
    try:
        for port, log in zip(ports, logs, strict=True):
            argv = [sys.executable, "-m", "modelseal", "serve", *args, "--host", "127.0.0.1",
                    "--port", str(port)]  # fmt: skip
            env = {**os.environ, "MODELSEAL_HOME": str(log.parent / f"home-{port}")}
            with log.open("w") as out:
                process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
            started.append((process, f"http://127.0.0.1:{port}", log))
        for process, base, log in started:
            try:
                wait_until(lambda b=base: httpx.get(b + route).status_code == 200,
                           what=f"modelseal serve at {base}", process=process)  # fmt: skip
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{log.read_text()[-3000:]}") from None
        yield [base for _, base, _ in started]
    finally:
        for process, _, _ in started:
            stop(process)


def stop(process: subprocess.Popen[Any]) -> None:
    """Terminate ``process`` (kill it if it lingers)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def prometheus(targets: Sequence[str], root: Path, *, interval: str = "1s") -> Iterator[str]:
    """A real Prometheus scraping ``targets`` (``host:port``) every ``interval``; yields its
    base URL."""
    binary = require_program("prometheus", "prometheus")
    root.mkdir(parents=True, exist_ok=True)
    listed = ", ".join(f"'{t}'" for t in targets)
    config = root / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\n"
        "scrape_configs:\n"
        "  - job_name: modelseal\n"
        f"    scrape_interval: {interval}\n"
        "    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: [{listed}]\n"
    )
    port = free_port()
    argv = [binary, f"--config.file={config}", f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]  # fmt: skip
    log = root / "prometheus.log"
    with log.open("w") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until(lambda: httpx.get(f"{base}/-/ready").status_code == 200,
                       what="prometheus", process=process, timeout=30)  # fmt: skip
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{log.read_text()[-3000:]}") from None
        yield base
    finally:
        stop(process)


@contextlib.contextmanager
def nginx(upstreams: Sequence[str], root: Path) -> Iterator[str]:
    """nginx on a loopback port balancing over ``upstreams`` (``host:port``), run as the
    current user with its pid, logs and temp files under ``root``; yields its base URL."""
    binary = require_program("nginx", "nginx")
    root.mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(exist_ok=True)
    port = free_port()
    servers = "".join(f"    server {u} max_fails=0;\n" for u in upstreams)
    temp = "".join(
        f"  {kind}_temp_path {root / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "" if os.geteuid() != 0 else "user root;\n"  # workers as the current user
    config = root / "nginx.conf"
    config.write_text(
        f"{user}worker_processes 1;\npid {root / 'nginx.pid'};\n"
        f"error_log {root / 'logs' / 'error.log'} warn;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"  access_log off;\n{temp}"
        "  upstream modelseal {\n"
        f"{servers}    keepalive 16;\n  }}\n"
        "  server {\n"
        f"    listen 127.0.0.1:{port};\n"
        "    location / {\n"
        "      proxy_pass http://modelseal;\n"
        "      proxy_http_version 1.1;\n"
        '      proxy_set_header Connection "";\n'
        "      proxy_next_upstream error timeout;\n"
        "    }\n"
        "  }\n"
        "}\n"
    )
    argv = [binary, "-p", str(root), "-c", str(config), "-g", "daemon off;"]
    log = root / "nginx.log"
    with log.open("w") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until(lambda: httpx.get(f"{base}/v2/health/live").status_code == 200,
                       what="nginx", process=process, timeout=30)  # fmt: skip
        except AssertionError as exc:
            errors = (root / "logs" / "error.log").read_text() if (root / "logs").exists() else ""
            raise AssertionError(f"{exc}\n{log.read_text()[-2000:]}\n{errors[-2000:]}") from None
        yield base
    finally:
        stop(process)

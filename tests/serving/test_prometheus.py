"""The server's metrics as Prometheus sees them: a real Prometheus (Debian package) scrapes a
real ``modelseal serve`` every second, and its HTTP API answers with the request counts by
model, version and code, the latency histogram, the served version's digest and the process
metrics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.serving.conftest import SKLEARN_ALLOW, Signed
from tests.serving.live import free_port
from tests.serving.processes import prometheus, serve_process, wait_until

ROW = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                   "data": [0.1, 0.2, 0.3, 0.4]}]}  # fmt: skip
BAD = {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{base}/api/v1/query", params={"query": expr})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _value(base: str, expr: str) -> float | None:
    result = _query(base, expr)
    return float(result[0]["value"][1]) if result else None


def test_a_real_prometheus_scrapes_the_served_metrics(
    models: Callable[[str], Signed], tmp_path: Path
) -> None:
    model = models("sklearn")
    args = ["--model", f"iris={model.path}", "--signature", str(model.signature),
            "--public-key", str(model.public_key), "--no-auth", "--reverify-interval", "0",
            *(a for g in SKLEARN_ALLOW for a in ("--allow", g))]  # fmt: skip
    port = free_port()  # Prometheus starts while the server loads
    with (
        prometheus([f"127.0.0.1:{port}"], tmp_path / "prometheus") as prom,
        serve_process(args, tmp_path / "serve.log", port=port) as base,
    ):
        digest = httpx.get(f"{base}/v2/models/iris").json()["parameters"]["digest"]
        for _ in range(7):
            answer = httpx.post(f"{base}/v2/models/iris/infer", json=ROW)
            assert answer.status_code == 200, answer.text
        for _ in range(3):
            assert httpx.post(f"{base}/v2/models/iris/infer", json=BAD).status_code == 400
        ok = 'modelseal_inference_requests_total{model="iris",version="1",code="200"}'
        wait_until(lambda: _value(prom, ok) == 7.0, what="7 answered requests scraped",
                   timeout=25)  # fmt: skip

        targets = httpx.get(f"{prom}/api/v1/targets").json()["data"]["activeTargets"]
        assert [(t["health"], t["scrapeUrl"]) for t in targets] == [("up", f"{base}/metrics")]
        assert _value(prom, 'up{job="modelseal"}') == 1.0

        bad = 'modelseal_inference_requests_total{model="iris",code="400"}'
        bad_series = _query(prom, bad)
        assert [s["metric"]["version"] for s in bad_series] == ["1"]
        assert float(bad_series[0]["value"][1]) == 3.0

        # The histogram: ten observations, every bucket present and cumulative.
        hist = "modelseal_inference_request_duration_seconds"
        assert _value(prom, f'{hist}_count{{model="iris"}}') == 10.0
        total = _value(prom, f'{hist}_sum{{model="iris"}}')
        assert total is not None and 0 < total < 60
        buckets = _query(prom, f'{hist}_bucket{{model="iris"}}')
        counts = sorted((float(b["metric"]["le"]), float(b["value"][1])) for b in buckets)
        assert counts[-1] == (float("inf"), 10.0)
        assert [c for _, c in counts] == sorted(c for _, c in counts)
        assert len(counts) == 15
        quantile = _value(prom, f"histogram_quantile(0.99, {hist}_bucket)")
        assert quantile is not None and 0 < quantile <= 10

        info = _query(prom, "modelseal_model_info")
        labels = [(i["metric"]["model"], i["metric"]["version"], i["metric"]["digest"],
                   i["value"][1]) for i in info]  # fmt: skip
        assert labels == [("iris", "1", digest.removeprefix("sha256:"), "1")]
        assert _value(prom, "modelseal_model_verification_failures_total") is None

        for process_metric in (
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ):
            value = _value(prom, f'{process_metric}{{job="modelseal"}}')
            assert value is not None and value > 0, process_metric
        platform = _query(prom, "python_info")
        assert platform and platform[0]["metric"]["implementation"] == "CPython"


def test_names_and_versions_from_the_url_never_become_metric_labels(
    models: Callable[[str], Signed], serve_app: Callable[..., Any]
) -> None:
    from tests.serving.conftest import source_for

    client = serve_app([source_for(models("sklearn"), "iris")])
    for i in range(40):
        assert client.post(f"/v2/models/nope-{i}/infer", json=ROW).status_code == 404
        assert client.post(f"/v2/models/iris/versions/{i + 7}/infer", json=ROW).status_code == 404
    assert client.post("/v2/models/iris/infer", json=ROW).status_code == 200
    text = client.get("/metrics").text
    series = [line for line in text.splitlines()
              if line.startswith("modelseal_inference_requests_total{")]  # fmt: skip
    assert sorted(series) == sorted([
        'modelseal_inference_requests_total{code="404",model="-",version="-"} 40.0',
        'modelseal_inference_requests_total{code="404",model="iris",version="-"} 40.0',
        'modelseal_inference_requests_total{code="200",model="iris",version="1"} 1.0',
    ])  # fmt: skip
    assert "nope-" not in text

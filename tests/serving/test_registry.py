"""Serving registry models: follow an alias (hot swap with no failed request), keep serving
the old version when a new one fails a check, require a gate decision, tokens with
model.infer, and an audit record of every load, swap and refusal (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelseal.registry.backend import LocalBackend, push
from modelseal.registry.trusted_keys import AddTrustedKey
from modelseal.registry.versions import SetAlias
from modelseal.serving.access import ServeAccess
from modelseal.serving.repository import Repository
from modelseal.serving.source import ModelSource
from tests.registry.fixtures import Env
from tests.serving.conftest import SKLEARN_ALLOW, Signed, make_model

ROW = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [0.1, 0.2, 0.3, 0.4]}]}


def _push(env: Env, model: Signed, name: str = "clf") -> int:
    backend = LocalBackend(env.registry, env.admin)
    view = push(backend, model.path, name=name, signature=model.signature,
                public_key=model.public_key)  # fmt: skip
    return int(view.version)


def _trust(env: Env, public: Path) -> None:
    env.registry.run(env.admin, AddTrustedKey(pem=public.read_text(), name="ci"))


def _events(env: Env) -> list[tuple[str, str]]:
    """(action, outcome) of every audit record."""
    from sqlalchemy import select

    from modelseal.store.schema import audit_records

    with env.registry.engine.connect() as conn:
        rows = conn.execute(select(audit_records.c.action, audit_records.c.outcome)).all()
    return [(str(a), str(o)) for a, o in rows]


@pytest.fixture
def two_versions(
    registry: Env,
    tmp_path: Path,
    key_pair: tuple[Path, Path],
) -> tuple[Env, Signed, Signed]:
    first = make_model("xgboost", tmp_path / "v1", key_pair)
    second = make_model("lightgbm", tmp_path / "v2", key_pair)
    _trust(registry, key_pair[1])
    assert _push(registry, first) == 1
    assert _push(registry, second) == 2
    registry.registry.run(registry.admin, SetAlias(name="clf", alias="live", version=1))
    return registry, first, second


def _repository(env: Env, **source: Any) -> tuple[Repository, ServeAccess]:
    access = ServeAccess(env.registry, required=False)
    backend = LocalBackend(env.registry, env.admin)
    spec = ModelSource("clf", ref="clf@live", allow=SKLEARN_ALLOW, **source)
    repository = Repository([spec], backend=lambda: backend, record=access.record)
    repository.load_all()
    return repository, access


def _predict(repository: Repository) -> tuple[str, Any]:
    import numpy as np

    loaded = repository.get("clf")
    x = np.array([[0.1, 0.2, 0.3, 0.4]])
    checked = loaded.signature.check({"x": x}, max_batch=10)
    return loaded.version, loaded.runtime.predict(checked, [])


def test_the_alias_is_followed_and_the_swap_loses_no_request(
    two_versions: tuple[Env, Signed, Signed],
) -> None:
    env, _, _ = two_versions
    repository, _access = _repository(env)
    assert repository.get("clf").version == "1"
    failures: list[BaseException] = []
    versions: set[str] = set()
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                versions.add(_predict(repository)[0])
            except BaseException as exc:  # any failure is the finding
                failures.append(exc)

    workers = [threading.Thread(target=hammer) for _ in range(3)]
    for w in workers:
        w.start()
    env.registry.run(env.admin, SetAlias(name="clf", alias="live", version=2))
    repository.refresh()
    stop.set()
    for w in workers:
        w.join()
    assert failures == []
    assert repository.get("clf").version == "2"
    assert repository.get("clf").runtime.framework == "lightgbm"
    assert versions <= {"1", "2"}
    assert repository.metrics.swaps.labels("clf")._value.get() == 1
    assert ("serve.load", "allowed") in _events(env)
    assert ("serve.swap", "allowed") in _events(env)


def test_a_new_version_that_fails_verification_is_not_swapped_in(
    two_versions: tuple[Env, Signed, Signed], tmp_path: Path
) -> None:
    env, _, _ = two_versions
    repository, _access = _repository(env)
    blobs = sorted(p for p in (env.config.home / "blobs").rglob("*") if p.is_file())
    # Corrupt every stored blob of version 2 (flip a bit; the registry keeps blobs by digest).
    from modelseal.registry.versions import ResolveVersion

    v2 = env.registry.run(env.admin, ResolveVersion(name="clf", version=2))
    digests = {f.sha256 for f in v2.files}
    touched = 0
    for blob in blobs:
        if any(d and d in str(blob) for d in digests):
            data = bytearray(blob.read_bytes())
            data[len(data) // 2] ^= 0x01
            blob.chmod(0o600)
            blob.write_bytes(bytes(data))
            touched += 1
    assert touched, blobs
    env.registry.run(env.admin, SetAlias(name="clf", alias="live", version=2))
    repository.refresh()
    assert repository.get("clf").version == "1"  # still serving the verified one
    entry = repository.entries["clf"]
    assert "still serving the previous version" in entry.reason
    failures = repository.metrics.verification_failures
    assert sum(s.value for m in failures.collect() for s in m.samples
               if s.name.endswith("_total")) >= 1  # fmt: skip
    assert ("serve.refused", "denied") in _events(env)


def test_a_gate_decision_is_required_when_gate_keys_are_given(
    two_versions: tuple[Env, Signed, Signed],
) -> None:
    from modelseal.signing.keys import load_public_key
    from tests.policy.fixtures import admit, gate_key

    env, first, _ = two_versions
    private, public = gate_key(first.path.parent / "gate-key")
    repository, _ = _repository(env, gate_keys=(load_public_key(public),))
    entry = repository.entries["clf"]
    assert entry.current is None and "no passing gate decision" in entry.reason
    assert repository.problems()["clf"].startswith("clf:1 has no passing gate decision")
    admit(env.registry, env.admin, first, "clf", 1)
    repository.load("clf")
    assert repository.get("clf").version == "1"
    del private


def test_tokens_need_model_infer_on_the_model(registry: Env) -> None:
    from modelseal.access.principals import CreateToken, CreateUser, GrantRole
    from modelseal.errors import AuthenticationError, PermissionDeniedError, RateLimitedError

    env = registry
    env.registry.run(env.admin, CreateUser(name="app"))
    env.registry.run(env.admin, GrantRole(name="app", role="inference-client", scope="clf*"))
    token = env.registry.run(env.admin, CreateToken(name="app")).token
    access = ServeAccess(env.registry, required=True, rate=1.0, burst=2)
    bearer = {"authorization": f"Bearer {token}"}
    who = access.authorize(bearer, "127.0.0.1", "clf")
    assert who is not None and who.name == "app"
    with pytest.raises(PermissionDeniedError, match="may not run model 'other'"):
        access.authorize(bearer, "127.0.0.1", "other")
    with pytest.raises(AuthenticationError):
        access.authorize({}, "127.0.0.1", "clf")
    with pytest.raises(AuthenticationError):
        access.authorize({"authorization": "Bearer msk_nope"}, "127.0.0.1", "clf")
    with pytest.raises(RateLimitedError):
        for _ in range(5):
            access.authorize(bearer, "127.0.0.1", "clf")
    events = _events(env)
    assert ("model.infer", "denied") in events


def test_serving_over_http_with_a_token(
    two_versions: tuple[Env, Signed, Signed],
    serve_app: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    from fastapi.testclient import TestClient

    from modelseal.access.principals import CreateToken, CreateUser, GrantRole
    from modelseal.serving.run import ServeSettings, build

    env, _, _ = two_versions
    env.registry.run(env.admin, CreateUser(name="app"))
    env.registry.run(env.admin, GrantRole(name="app", role="inference-client", scope="clf"))
    token = env.registry.run(env.admin, CreateToken(name="app")).token
    backend = LocalBackend(env.registry, env.admin)
    source = ModelSource("clf", ref="clf@live", allow=SKLEARN_ALLOW)
    settings = ServeSettings(auth=True, poll_interval=0, reverify_interval=0)
    app = build([source], settings, registry=env.registry, backend=backend)
    with TestClient(app) as client:
        assert client.post("/v2/models/clf/infer", json=ROW).status_code == 401
        assert client.get("/v2/models/clf").status_code == 401  # metadata needs a token too
        assert client.get("/v2/health/ready").status_code == 200  # probes do not
        bearer = {"Authorization": f"Bearer {token}"}
        assert client.get("/v2/models/clf", headers=bearer).json()["versions"] == ["1"]
        answer = client.post("/v2/models/clf/infer", json=ROW,
                             headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == "1"
        metrics = client.get("/metrics").text
        assert (
            'modelseal_inference_requests_total{code="200",model="clf",version="1"} 1.0' in metrics
        )
        assert "modelseal_model_info{digest=" in metrics
        assert "process_cpu_seconds_total" in metrics
    # Neither the payload nor the token is ever logged.
    assert "0.3" not in caplog.text and token not in caplog.text


def test_the_signature_recorded_at_push_is_enforced(
    registry: Env, tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    import json

    from click.testing import CliRunner

    from modelseal.cli.main import cli

    model = make_model("xgboost", tmp_path / "m", key_pair)
    _trust(registry, key_pair[1])
    declared = {"inputs": [{"name": "row", "datatype": "FP32", "shape": [-1, 4], "maximum": 5}]}
    (tmp_path / "sig.json").write_text(json.dumps(declared))
    result = CliRunner().invoke(cli, [
        "push", str(model.path), "--name", "clf", "--signature", str(model.signature),
        "--public-key", str(model.public_key), "--input-signature", str(tmp_path / "sig.json"),
        "--db-url", registry.config.db_url, "--blob-url", str(registry.config.blob_url),
        "--home", str(registry.config.home),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    registry.registry.run(registry.admin, SetAlias(name="clf", alias="live", version=1))
    repository, _ = _repository(registry)
    loaded = repository.get("clf")
    assert [t.name for t in loaded.signature.inputs] == ["row"]
    assert loaded.signature.inputs[0].maximum == 5.0


def test_shadow_mode_mirrors_traffic_and_never_answers_with_the_candidate(
    two_versions: tuple[Env, Signed, Signed],
) -> None:
    import time

    from fastapi.testclient import TestClient

    from modelseal.serving.run import ServeSettings, build

    env, _, _ = two_versions
    env.registry.run(env.admin, SetAlias(name="clf", alias="candidate", version=2))
    backend = LocalBackend(env.registry, env.admin)
    served = ModelSource("clf", ref="clf@live", allow=SKLEARN_ALLOW)
    shadow = ModelSource("clf", ref="clf@candidate", allow=SKLEARN_ALLOW)
    settings = ServeSettings(auth=False, poll_interval=0, reverify_interval=0)
    app = build([served], settings, shadows=[shadow], registry=env.registry, backend=backend)
    with TestClient(app) as client:
        for _ in range(5):
            answer = client.post("/v2/models/clf/infer", json=ROW)
            assert answer.status_code == 200
            assert answer.json()["model_version"] == "1"  # never the candidate's answer
        deadline = time.monotonic() + 30
        while True:
            summary = client.get("/v2/models/clf/shadow").json()
            done = summary["same"] + summary["different"] + summary["error"] + summary["dropped"]
            if done >= 5 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert summary["loaded"] is True
        assert summary["candidate"]["version"] == "2"
        # XGBoost and LightGBM models of the same data give different probabilities.
        assert summary["different"] == 5 and summary["error"] == 0
        assert summary["max_difference"] is not None and summary["max_difference"] > 0
        metrics = client.get("/metrics").text
        assert 'modelseal_shadow_comparisons_total{candidate_version="2",model="clf",' in metrics
        assert client.get("/v2/models/absent/shadow").status_code == 404
    assert ("serve.shadow", "allowed") in _events(env)


def test_the_event_loop_never_waits_on_the_database(
    registry: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token not in the cache, and a refusal to audit, are handled in a worker thread; a
    cached caller is answered on the loop, with the same decisions as the blocking check."""
    import anyio

    from modelseal.access.principals import CreateToken, CreateUser, GrantRole
    from modelseal.errors import AuthenticationError, PermissionDeniedError, RateLimitedError

    env = registry
    env.registry.run(env.admin, CreateUser(name="app"))
    env.registry.run(env.admin, GrantRole(name="app", role="inference-client", scope="clf"))
    token = env.registry.run(env.admin, CreateToken(name="app")).token
    access = ServeAccess(env.registry, required=True, rate=1.0, burst=3)
    threads: list[str] = []
    real = env.registry.authenticate

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(env.registry, "authenticate", spy)

    async def run() -> None:
        loop_thread = threading.current_thread().name
        bearer = f"Bearer {token}"
        who = await access.authorize_async(bearer, "127.0.0.1", "clf")
        assert who is not None and who.name == "app"
        assert len(threads) == 1 and threads[0] != loop_thread  # looked up off the loop
        assert (await access.authorize_async(bearer, "127.0.0.1", "clf")) == who
        assert len(threads) == 1  # answered from the cache
        with pytest.raises(PermissionDeniedError):
            await access.authorize_async(bearer, "127.0.0.1", "other")
        with pytest.raises(AuthenticationError):
            await access.authorize_async("Bearer msk_nope", "127.0.0.1", "clf")
        with pytest.raises(AuthenticationError):
            await access.authorize_async("", "127.0.0.1", "clf")
        with pytest.raises(RateLimitedError):
            for _ in range(5):
                await access.authorize_async(bearer, "127.0.0.1", "clf")
        assert loop_thread not in threads

    anyio.run(run)
    assert ("model.infer", "denied") in _events(env)

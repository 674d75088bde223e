"""AWS KMS provider against moto's KMS server (an emulator), run on 127.0.0.1 by the test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelseal.crypto import api, rotation
from modelseal.crypto.providers import open_provider
from modelseal.crypto.providers.aws_kms import AwsKmsProvider
from modelseal.errors import ProviderError, UnwrapError
from tests.conftest import build_model
from tests.crypto.conftest import require_module, tree

pytestmark = pytest.mark.interop
AD = b"model=m;version=7"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    require_module("moto", "pip install 'modelseal[crypto-test]'")
    require_module("boto3", "pip install 'modelseal[crypto]'")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def kms(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_KMS": moto_endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    import boto3  # type: ignore[import-untyped]  # boto3 ships no types

    return boto3.client("kms")


def new_alias(kms: Any) -> str:
    key = kms.create_key(Description="test kek")["KeyMetadata"]["KeyId"]
    alias = f"alias/modelseal-{uuid.uuid4().hex[:8]}"
    kms.create_alias(AliasName=alias, TargetKeyId=key)
    return alias


def test_envelope_round_trip_through_kms(kms: Any, tmp_path: Path) -> None:
    alias = new_alias(kms)
    provider = open_provider(f"aws-kms:{alias}")
    model = build_model(tmp_path / "m")
    api.encrypt(model, tmp_path / "enc", provider=provider, associated_data=AD)
    out = api.decrypt_to_memory(tmp_path / "enc", provider=provider, associated_data=AD)
    assert out == tree(model)
    wrapped = provider.wrap(b"k" * 32, context=b"ctx")
    assert wrapped.kek_id.startswith("arn:aws:kms:us-east-1:")
    assert provider.unwrap(wrapped, context=b"ctx") == b"k" * 32
    with pytest.raises(UnwrapError, match="refused"):
        provider.unwrap(wrapped, context=b"other")  # KMS checks the encryption context


def test_rotation_with_an_alias_disables_the_old_key(kms: Any, tmp_path: Path) -> None:
    alias = new_alias(kms)
    uri = f"aws-kms:{alias}"
    provider = open_provider(uri)
    assert isinstance(provider, AwsKmsProvider)
    model = build_model(tmp_path / "m")
    api.encrypt(model / "config.json", tmp_path / "c.enc", provider=provider, associated_data=AD)
    old_envelope = (tmp_path / "c.enc.envelope.json").read_bytes()
    old_arn = provider.current_kek_id()
    report = rotation.rotate([tmp_path / "c.enc"], provider=provider)
    assert report.retired == (old_arn,) and report.new_kek_id != old_arn
    assert kms.describe_key(KeyId=old_arn)["KeyMetadata"]["Enabled"] is False
    assert kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"] == report.new_kek_id
    api.decrypt(tmp_path / "c.enc", tmp_path / "c", provider=open_provider(uri), associated_data=AD)
    assert (tmp_path / "c").read_bytes() == (model / "config.json").read_bytes()
    state = kms.describe_key(KeyId=old_arn)["KeyMetadata"]["KeyState"]
    assert state == "PendingDeletion"
    # moto's Decrypt does not enforce a disabled key's state (real KMS answers DisabledException
    # or KMSInvalidStateException); check that such an answer fails closed, via botocore's stubber.
    from botocore.stub import Stubber  # type: ignore[import-untyped]  # botocore ships no types

    (tmp_path / "c.enc.envelope.json").write_bytes(old_envelope)
    client = provider._kms()
    with Stubber(client) as stub:
        stub.add_client_error("decrypt", service_error_code="DisabledException")
        with pytest.raises(UnwrapError, match="DisabledException"):
            api.decrypt(tmp_path / "c.enc", tmp_path / "c2", provider=provider, associated_data=AD)
    assert not (tmp_path / "c2").exists()


def test_rotation_to_a_named_key_from_the_cli(
    kms: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from modelseal.cli.main import main

    old_key = kms.create_key()["KeyMetadata"]["KeyId"]
    new_key = kms.create_key()["KeyMetadata"]["Arn"]
    model = build_model(tmp_path / "m")
    assert main(["encrypt", str(model), str(tmp_path / "enc"), "--kek", f"aws-kms:{old_key}"]) == 0
    assert (
        main(
            [
                "keys",
                "rotate",
                "--kek",
                f"aws-kms:{old_key}",
                "--new-kek",
                f"aws-kms:{new_key}",
                str(tmp_path / "enc"),
            ]
        )
        == 0
    )
    assert kms.describe_key(KeyId=old_key)["KeyMetadata"]["Enabled"] is False
    assert (
        main(
            ["decrypt", str(tmp_path / "enc"), str(tmp_path / "out"), "--kek", f"aws-kms:{new_key}"]
        )
        == 0
    )
    assert tree(tmp_path / "out") == tree(model)
    capsys.readouterr()
    # Without --new-kek a bare key id cannot rotate: one line, exit 2.
    assert main(["keys", "rotate", "--kek", f"aws-kms:{new_key}", str(tmp_path / "enc")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "alias/" in err


def test_kms_errors(
    kms: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelseal.cli.main import main

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # fail fast on the unreachable endpoint

    with pytest.raises(ProviderError, match="encrypt failed"):
        open_provider("aws-kms:alias/does-not-exist").wrap(b"k", context=b"")
    with pytest.raises(ProviderError, match="needs a key"):
        open_provider("aws-kms:")
    with pytest.raises(ProviderError, match="unknown aws-kms URI parameter"):
        open_provider("aws-kms:k?profile=x")
    unreachable = open_provider("aws-kms:k?endpoint=http://127.0.0.1:9&region=us-east-1")
    with pytest.raises(ProviderError, match="cannot reach AWS KMS"):
        unreachable.wrap(b"k", context=b"")
    (tmp_path / "f").write_bytes(b"x")
    assert (
        main(
            ["encrypt", str(tmp_path / "f"), str(tmp_path / "f.enc"), "--kek", "aws-kms:alias/nope"]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "NotFoundException" in err
    assert not (tmp_path / "f.enc").exists()

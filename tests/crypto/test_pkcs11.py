"""PKCS#11 for real: SoftHSM2 tokens made by the tests (KEK wrap/unwrap, rotation, signing).

Each xdist worker makes its own token directory (``SOFTHSM2_CONF``) before the module is first
loaded; tests use their own key labels on it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelseal.crypto import api, rotation
from modelseal.crypto.pkcs11_token import parse_uri
from modelseal.crypto.providers import open_provider
from modelseal.errors import KeyFileError, ProviderError, UnwrapError
from tests.conftest import build_model
from tests.crypto.conftest import require, require_module, require_tool, tree

pytestmark = pytest.mark.interop

PIN = "4321"
AD = b"model=m;version=1"


@pytest.fixture(scope="session")
def token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh SoftHSM2 token; yields the URI prefix ``pkcs11:token=...`` (PIN via URI)."""
    util = require_tool("softhsm2-util", "softhsm2")
    require_module("pkcs11", "pip install 'modelseal[crypto]'")
    from modelseal.crypto.pkcs11_token import DEFAULT_MODULES

    module = next((m for m in DEFAULT_MODULES if os.path.exists(m)), None)
    require(module is not None, "libsofthsm2.so not found (Debian package softhsm2)")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    label = "modelseal-test"
    subprocess.run(
        [util, "--init-token", "--free", "--label", label, "--so-pin", "0000", "--pin", PIN],
        check=True,
        capture_output=True,
    )
    yield f"pkcs11:token={label}"
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


def uri(token: str, label: str, pin: str = PIN) -> str:
    return f"{token};object={label}?pin-value={pin}"


def fresh(token: str) -> str:
    return uri(token, f"kek-{uuid.uuid4().hex[:8]}")


def test_uri_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pin").write_text("9999\n")
    parsed = parse_uri(
        "pkcs11:token=my%20token;object=k;id=%01%02"
        f"?module-path=/x.so&pin-source=file:{tmp_path / 'pin'}"
    )
    assert (parsed.token, parsed.object_label, parsed.object_id) == ("my token", "k", b"\x01\x02")
    assert parsed.module_path == "/x.so" and parsed.pin == "9999"
    assert "9999" not in repr(parsed) and "9999" not in parsed.describe()
    monkeypatch.setenv("MODELSEAL_PKCS11_PIN", "env-pin")
    monkeypatch.setenv("MODELSEAL_PKCS11_MODULE", "/y.so")
    assert parse_uri("pkcs11:token=t;object=k").pin == "env-pin"
    assert parse_uri("pkcs11:token=t;object=k").module_path == "/y.so"
    for bad in (
        "pkcs11:tokn=t",
        "pkcs11:token=t;token=u",
        "pkcs11:token=t?pin=1",
        "pkcs12:x",
        "pkcs11:token",
    ):
        with pytest.raises(ProviderError):
            parse_uri(bad)
    with pytest.raises(ProviderError, match="PIN file"):
        parse_uri("pkcs11:token=t?pin-source=file:/nonexistent/pin")


def test_wrap_unwrap_on_the_token(token: str) -> None:
    from modelseal.crypto.providers.pkcs11 import Pkcs11Provider

    provider = Pkcs11Provider.create(fresh(token))
    wrapped = provider.wrap(b"d" * 64, context=b"ctx")
    assert wrapped.provider == "pkcs11" and len(wrapped.ciphertext) == 12 + 64 + 16
    assert provider.unwrap(wrapped, context=b"ctx") == b"d" * 64
    with pytest.raises(UnwrapError, match="does not verify"):
        provider.unwrap(wrapped, context=b"other")
    flipped = wrapped.ciphertext[:-1] + bytes([wrapped.ciphertext[-1] ^ 0x01])  # always a change
    tampered = type(wrapped)(wrapped.provider, wrapped.kek_id, flipped)
    with pytest.raises(UnwrapError):
        provider.unwrap(tampered, context=b"ctx")


def test_kek_is_not_extractable(token: str) -> None:
    from pkcs11 import Attribute, ObjectClass

    from modelseal.crypto.pkcs11_token import session

    target = fresh(token)
    from modelseal.crypto.providers.pkcs11 import Pkcs11Provider

    Pkcs11Provider.create(target)
    parsed = parse_uri(target)
    with session(parsed) as s:
        (key,) = s.get_objects(
            {Attribute.LABEL: parsed.object_label, Attribute.CLASS: ObjectClass.SECRET_KEY}
        )
        assert key[Attribute.SENSITIVE] and not key[Attribute.EXTRACTABLE]
        with pytest.raises(Exception):  # noqa: B017 - the token refuses to reveal CKA_VALUE
            key[Attribute.VALUE]


def test_envelope_encryption_and_rotation_with_the_token(token: str, tmp_path: Path) -> None:
    from modelseal.crypto.providers.pkcs11 import Pkcs11Provider

    kek_uri = fresh(token)
    provider = Pkcs11Provider.create(kek_uri)
    model = build_model(tmp_path / "m")
    api.encrypt(model, tmp_path / "enc", provider=provider, associated_data=AD)
    api.encrypt(model / "config.json", tmp_path / "c.enc", provider=provider, associated_data=AD)
    old_id = provider.current_kek_id()
    old_envelope = (tmp_path / "c.enc.envelope.json").read_bytes()
    report = rotation.rotate([tmp_path / "enc", tmp_path / "c.enc"], provider=provider)
    assert report.retired == (old_id,) and provider.kek_ids() == {report.new_kek_id}
    api.decrypt(
        tmp_path / "enc", tmp_path / "out", provider=open_provider(kek_uri), associated_data=AD
    )
    assert tree(tmp_path / "out") == tree(model)
    (tmp_path / "c.enc.envelope.json").write_bytes(old_envelope)
    with pytest.raises(UnwrapError, match="not on the token"):
        api.decrypt(tmp_path / "c.enc", tmp_path / "c", provider=provider, associated_data=AD)


def test_provider_errors(token: str) -> None:
    from modelseal.crypto.providers.pkcs11 import Pkcs11Provider

    with pytest.raises(ProviderError, match="names no key"):
        Pkcs11Provider(f"{token}?pin-value={PIN}")
    missing = Pkcs11Provider(fresh(token))
    with pytest.raises(ProviderError, match="no key-encryption key"):
        missing.wrap(b"k", context=b"")
    with pytest.raises(ProviderError, match="wrong PIN"):
        Pkcs11Provider(uri(token, "x", pin="0000")).kek_ids()
    with pytest.raises(ProviderError, match="no single PKCS#11 token"):
        Pkcs11Provider(f"pkcs11:token=nosuch;object=x?pin-value={PIN}").kek_ids()
    with pytest.raises(ProviderError, match="no PIN"):
        Pkcs11Provider(f"{token};object=x").kek_ids()
    with pytest.raises(ProviderError, match="cannot load the PKCS#11 module"):
        Pkcs11Provider(f"{token};object=x?module-path=/nonexistent.so&pin-value=1").kek_ids()


def test_cli_with_the_token(token: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modelseal.cli.main import main

    kek_uri = fresh(token)
    model = build_model(tmp_path / "m")
    assert main(["keys", "create", "--kek", kek_uri]) == 0
    assert main(["encrypt", str(model), str(tmp_path / "enc"), "--kek", kek_uri]) == 0
    assert main(["keys", "rotate", "--kek", kek_uri, str(tmp_path / "enc")]) == 0
    assert main(["decrypt", str(tmp_path / "enc"), str(tmp_path / "out"), "--kek", kek_uri]) == 0
    assert tree(tmp_path / "out") == tree(model)
    capsys.readouterr()
    assert (
        main(
            [
                "decrypt",
                str(tmp_path / "enc"),
                str(tmp_path / "o2"),
                "--kek",
                uri(token, "kek", "0000"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "wrong PIN" in err and "0000" not in err


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "ecdsa-p384"])
def test_sign_with_the_token_and_verify_with_model_signing(
    token: str, tmp_path: Path, algorithm: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import modelseal
    from modelseal.cli.main import main
    from modelseal.signing.pkcs11 import Pkcs11Signer

    key_uri = uri(token, f"signer-{uuid.uuid4().hex[:8]}")
    assert main(["keys", "create", "--signing", key_uri, "--algorithm", algorithm]) == 0
    assert main(["keys", "export-public", key_uri, str(tmp_path / "hsm.pub")]) == 0
    model = build_model(tmp_path / "model")
    signature = tmp_path / "model.sig"
    # The CLI contract: modelseal sign --pkcs11-uri URI.
    code = main(["sign", str(model), "--pkcs11-uri", key_uri, "--signature", str(signature)])
    assert code == 0, capsys.readouterr().err
    # The Python API takes the same token key as a Signer.
    api_signature = tmp_path / "model-api.sig"
    result = modelseal.sign(model, private_key=Pkcs11Signer(key_uri), signature=api_signature)
    assert result.signature_path == api_signature
    assert modelseal.verify(model, signature=api_signature, public_key=tmp_path / "hsm.pub")
    # modelseal verify (the CLI) accepts it with the exported public key...
    capsys.readouterr()
    code = main(
        [
            "verify",
            str(model),
            "--signature",
            str(signature),
            "--public-key",
            str(tmp_path / "hsm.pub"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    # ... and so does the real model_signing CLI.
    ms = Path(sys.executable).with_name("model_signing")
    require(ms.exists(), "model_signing CLI not installed (pip install model-signing)")
    proc = subprocess.run(
        [
            str(ms),
            "verify",
            "key",
            str(model),
            "--signature",
            str(signature),
            "--public_key",
            str(tmp_path / "hsm.pub"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # A modified model fails both.
    (model / "config.json").write_text("{}")
    assert (
        main(
            [
                "verify",
                str(model),
                "--signature",
                str(signature),
                "--public-key",
                str(tmp_path / "hsm.pub"),
            ]
        )
        == 1
    )
    proc = subprocess.run(
        [
            str(ms),
            "verify",
            "key",
            str(model),
            "--signature",
            str(signature),
            "--public_key",
            str(tmp_path / "hsm.pub"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0


def test_signer_errors(token: str) -> None:
    from modelseal.signing.pkcs11 import Pkcs11Signer, create_signing_key

    with pytest.raises(KeyFileError, match="no EC public key"):
        Pkcs11Signer(uri(token, "no-such-key"))
    with pytest.raises(KeyFileError, match="names no key"):
        Pkcs11Signer(f"{token}?pin-value={PIN}")
    with pytest.raises(Exception, match="not supported"):
        create_signing_key(uri(token, "x"), algorithm="ed25519")
    label = uri(token, f"dup-{uuid.uuid4().hex[:8]}")
    create_signing_key(label)
    with pytest.raises(KeyFileError, match="already exists"):
        create_signing_key(label)


def test_missing_binding_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from modelseal.cli.main import main

    monkeypatch.setitem(sys.modules, "pkcs11", None)  # import pkcs11 -> ImportError
    code = main(["keys", "create", "--kek", "pkcs11:token=t;object=k?module-path=/x.so"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "needs python-pkcs11" in err

"""Sigstore keyless OMS signatures, verified offline against a trusted root file.

The bundles are real: model_signing v1.0.0 and v1.1.0 signed these models on the public-good
Sigstore instance (tests/signing/data/sigstore/README.md). Every test runs with the network
cut: a verification that tried to reach TUF, Rekor or Fulcio would fail.
"""

from __future__ import annotations

import base64
import copy
import json
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import modelseal
from modelseal.errors import (
    CertificateError,
    InputError,
    IntegrityError,
    MalformedSignatureError,
    ModelsealError,
    SignatureMismatchError,
    UsageError,
)
from modelseal.signing.bundle import OmsBundle, read_bundle
from modelseal.signing.sigstore_keyless import (
    SigstoreIdentity,
    SigstoreTrust,
    _der_utf8,
    certificate_identity,
)
from tests.signing.sigstore_data import (  # noqa: F401 (offline: a fixture)
    DATA,
    IDENTITY,
    ISSUER,
    PRODUCTION,
    ROOT_DIGEST,
    SIGNER,
    STAGING,
    offline,
)

RunCli = Callable[..., tuple[int, str, str]]
VERSIONS = ("v1.0.0", "v1.1.0")


def _trust(
    root: Path = PRODUCTION, *, identity: str | None = IDENTITY, issuer: str = ISSUER, **kw: Any
) -> SigstoreTrust:
    return SigstoreTrust(root, (SigstoreIdentity(issuer=issuer, identity=identity, **kw),))


def _model(tmp_path: Path, version: str = "v1.1.0") -> Path:
    """A private copy of a real signed model (its bundle inside, as upstream keeps it)."""
    return Path(shutil.copytree(DATA / f"{version}-sigstore", tmp_path / f"{version}-model"))


def _bundle(version: str = "v1.1.0") -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA / f"{version}-sigstore" / "model.sig").read_text())
    return loaded


def _entry(bundle: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = bundle["verificationMaterial"]["tlogEntries"][0]
    return entry


def _write(model: Path, bundle: dict[str, Any]) -> Path:
    path = model / "model.sig"
    path.write_text(json.dumps(bundle))
    return path


def _root(edit: Callable[[dict[str, Any]], None], tmp_path: Path) -> Path:
    document = json.loads(PRODUCTION.read_text())
    edit(document)
    path = tmp_path / "edited_root.json"
    path.write_text(json.dumps(document))
    return path


# --- the real bundles verify ----------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_real_bundles_verify_offline_with_their_identity(tmp_path: Path, version: str) -> None:
    model = _model(tmp_path, version)
    result = modelseal.verify(model, signature=model / "model.sig", sigstore=_trust())
    assert result.signer == SIGNER
    assert result.root_digest == ROOT_DIGEST
    assert sorted(item.path for item in result.manifest.items) == ["signme-1", "signme-2"]


def test_a_bundle_object_read_from_its_file_verifies(tmp_path: Path) -> None:
    model = _model(tmp_path)
    bundle = read_bundle(model / "model.sig")
    assert modelseal.verify(model, signature=bundle, sigstore=_trust()).signer == SIGNER


def test_identity_pattern_must_match_the_whole_identity(tmp_path: Path) -> None:
    model, sig = _model(tmp_path), tmp_path / "v1.1.0-model" / "model.sig"
    pattern = _trust(identity=None, identity_pattern=r"[a-z]+@us\.ibm\.com")
    assert modelseal.verify(model, signature=sig, sigstore=pattern).signer == SIGNER
    with pytest.raises(CertificateError) as caught:
        modelseal.verify(
            model, signature=sig, sigstore=_trust(identity=None, identity_pattern="stefanb")
        )
    assert [r.code for r in caught.value.reasons] == ["identity-mismatch"]


def test_any_one_of_several_identities_is_enough(tmp_path: Path) -> None:
    model = _model(tmp_path)
    trust = SigstoreTrust(
        PRODUCTION,
        (
            SigstoreIdentity(issuer="https://accounts.google.com", identity=IDENTITY),
            SigstoreIdentity(issuer=ISSUER, identity=IDENTITY),
        ),
    )
    assert modelseal.verify(model, signature=model / "model.sig", sigstore=trust).signer == SIGNER


# --- who signed -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("identity", "issuer"),
    [
        ("someone@us.ibm.com", ISSUER),  # wrong identity
        (IDENTITY, "https://accounts.google.com"),  # wrong issuer
        (IDENTITY, ISSUER + "/"),  # the issuer is exact, not a prefix
    ],
)
def test_another_identity_or_issuer_is_refused(tmp_path: Path, identity: str, issuer: str) -> None:
    model = _model(tmp_path)
    trust = _trust(identity=identity, issuer=issuer)
    with pytest.raises(CertificateError) as caught:
        modelseal.verify(model, signature=model / "model.sig", sigstore=trust)
    assert [r.code for r in caught.value.reasons] == ["identity-mismatch"]
    assert caught.value.message == (
        f"Sigstore signer {IDENTITY!r} from issuer {ISSUER!r} is not trusted "
        f"(trusted: {identity!r} from {issuer})"
    )
    assert caught.value.exit_code == 1


def test_certificate_identity_reads_the_san_and_the_issuer() -> None:
    from cryptography import x509

    raw = _bundle()["verificationMaterial"]["certificate"]["rawBytes"]
    cert = x509.load_der_x509_certificate(base64.b64decode(raw))
    assert certificate_identity(cert) == ([IDENTITY], ISSUER)


@given(st.text(max_size=300))
def test_der_utf8_strings_round_trip(text: str) -> None:
    data = text.encode("utf-8")
    if len(data) < 0x80:
        header = bytes([0x0C, len(data)])
    else:
        size = len(data).to_bytes((len(data).bit_length() + 7) // 8, "big")
        header = bytes([0x0C, 0x80 | len(size)]) + size
    assert _der_utf8(header + data) == text
    assert _der_utf8(header + data + b"\x00") is None  # trailing bytes: not exactly one string


@given(st.binary(max_size=64))
def test_der_utf8_never_raises(data: bytes) -> None:
    assert _der_utf8(data) is None or isinstance(_der_utf8(data), str)


def test_an_identity_needs_exactly_one_form_and_a_valid_pattern() -> None:
    with pytest.raises(UsageError, match="exactly one of an identity and an identity pattern"):
        SigstoreIdentity(issuer=ISSUER)
    with pytest.raises(UsageError, match="exactly one of an identity and an identity pattern"):
        SigstoreIdentity(issuer=ISSUER, identity=IDENTITY, identity_pattern=".*")
    with pytest.raises(UsageError, match="is not a regular expression"):
        SigstoreIdentity(issuer=ISSUER, identity_pattern="(")
    with pytest.raises(UsageError, match="needs its OIDC issuer"):
        SigstoreIdentity(issuer="", identity=IDENTITY)
    with pytest.raises(UsageError, match="at least one trusted identity"):
        SigstoreTrust(PRODUCTION, ())


# --- the model and the bundle ---------------------------------------------------------------


def test_a_tampered_model_file_is_caught_after_the_signer_is_verified(tmp_path: Path) -> None:
    model = _model(tmp_path)
    (model / "signme-1").write_bytes(b"signme-X")
    with pytest.raises(IntegrityError) as caught:
        modelseal.verify(model, signature=model / "model.sig", sigstore=_trust())
    assert [(r.code, r.path) for r in caught.value.reasons] == [("modified", "signme-1")]


def test_an_added_file_is_caught(tmp_path: Path) -> None:
    model = _model(tmp_path)
    (model / "payload.pkl").write_bytes(b"not signed")
    with pytest.raises(IntegrityError) as caught:
        modelseal.verify(model, signature=model / "model.sig", sigstore=_trust())
    assert [(r.code, r.path) for r in caught.value.reasons] == [("extra", "payload.pkl")]


def _flip(value: str, index: int, bit: int) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[index % len(raw)] ^= 1 << bit
    return base64.b64encode(bytes(raw)).decode("ascii")


def _b64_fields(bundle: dict[str, Any]) -> dict[str, tuple[dict[str, Any] | list[Any], Any]]:
    """Every base64 field of a bundle a verifier depends on: (container, key)."""
    entry = _entry(bundle)
    proof = entry["inclusionProof"]
    return {
        "dsse signature": (bundle["dsseEnvelope"]["signatures"][0], "sig"),
        "dsse payload": (bundle["dsseEnvelope"], "payload"),
        "certificate": (bundle["verificationMaterial"]["certificate"], "rawBytes"),
        "signed entry timestamp": (entry["inclusionPromise"], "signedEntryTimestamp"),
        "log id": (entry["logId"], "keyId"),
        "canonicalized body": (entry, "canonicalizedBody"),
        "root hash": (proof, "rootHash"),
        "first proof hash": (proof["hashes"], 0),
        "last proof hash": (proof["hashes"], len(proof["hashes"]) - 1),
    }


FIELDS = tuple(_b64_fields(_bundle()))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(field=st.sampled_from(FIELDS), index=st.integers(0, 10_000), bit=st.integers(0, 7))
def test_any_bit_flipped_in_the_bundle_is_refused(
    tmp_path: Path, field: str, index: int, bit: int
) -> None:
    model = tmp_path / "model"
    if not model.exists():
        shutil.copytree(DATA / "v1.1.0-sigstore", model)
    bundle = copy.deepcopy(_bundle())
    container, key = _b64_fields(bundle)[field]
    container[key] = _flip(container[key], index, bit)
    signature = _write(model, bundle)
    with pytest.raises(ModelsealError) as caught:
        modelseal.verify(model, signature=signature, sigstore=_trust())
    # Refused as a failed verification (1) or a damaged bundle (2); never an internal error.
    assert caught.value.exit_code in (1, 2)


@pytest.mark.parametrize(
    ("edit", "error", "code"),
    [
        (lambda b: _flip_in(b, "dsse signature"), SignatureMismatchError, "bad-signature"),
        (lambda b: _flip_in(b, "certificate"), CertificateError, "certificate-untrusted"),
        (lambda b: _flip_in(b, "signed entry timestamp"), CertificateError, "tlog-invalid"),
        (lambda b: _flip_in(b, "root hash"), CertificateError, "tlog-invalid"),
        (lambda b: _flip_in(b, "canonicalized body"), CertificateError, "tlog-invalid"),
        (lambda b: _bump(_entry(b), "integratedTime"), CertificateError, "tlog-invalid"),
        (lambda b: _bump(_entry(b), "logIndex"), CertificateError, "tlog-invalid"),
        (
            lambda b: _entry(b)["inclusionProof"]["checkpoint"].update(
                envelope=_entry(b)["inclusionProof"]["checkpoint"]["envelope"].replace(
                    "476246825", "476246826", 1
                )
            ),
            CertificateError,
            "tlog-invalid",
        ),
    ],
    ids=["signature", "certificate", "set", "root-hash", "body", "time", "index", "checkpoint"],
)
def test_each_tampered_part_names_what_failed(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], error: type[Exception], code: str
) -> None:
    model = _model(tmp_path)
    bundle = _bundle()
    edit(bundle)
    with pytest.raises(error) as caught:
        modelseal.verify(model, signature=_write(model, bundle), sigstore=_trust())
    assert [r.code for r in caught.value.reasons] == [code]  # type: ignore[attr-defined]


def _flip_in(bundle: dict[str, Any], field: str) -> None:
    container, key = _b64_fields(bundle)[field]
    middle = len(base64.b64decode(container[key])) // 2
    container[key] = _flip(container[key], middle, 5)


def _bump(entry: dict[str, Any], key: str) -> None:
    entry[key] = str(int(entry[key]) + 1)


def test_another_bundles_log_entry_or_certificate_is_refused(tmp_path: Path) -> None:
    model = _model(tmp_path)
    older = _bundle("v1.0.0")
    mixed = _bundle()
    mixed["verificationMaterial"]["tlogEntries"] = older["verificationMaterial"]["tlogEntries"]
    with pytest.raises(CertificateError):
        modelseal.verify(model, signature=_write(model, mixed), sigstore=_trust())
    mixed = _bundle()
    mixed["verificationMaterial"]["certificate"] = older["verificationMaterial"]["certificate"]
    with pytest.raises(CertificateError):
        modelseal.verify(model, signature=_write(model, mixed), sigstore=_trust())


def test_a_field_given_twice_is_a_damaged_bundle(tmp_path: Path) -> None:
    model = _model(tmp_path)
    text = (model / "model.sig").read_text()
    doubled = text.replace('{"mediaType":', '{"mediaType":"x","mediaType":', 1)
    (model / "model.sig").write_text(doubled)
    with pytest.raises(MalformedSignatureError, match="gives the field 'mediaType' twice"):
        modelseal.verify(model, signature=model / "model.sig", sigstore=_trust())


def test_a_bundle_without_its_json_cannot_be_verified_by_sigstore(tmp_path: Path) -> None:
    model = _model(tmp_path)
    parsed = read_bundle(model / "model.sig")
    rebuilt = OmsBundle(
        parsed.payload, parsed.payload_type, parsed.signatures, None, parsed.certificates
    )
    with pytest.raises(UsageError, match="from the JSON it was read from"):
        modelseal.verify(model, signature=rebuilt, sigstore=_trust())


# --- the trusted root -----------------------------------------------------------------------


def test_another_instances_trusted_root_is_refused(tmp_path: Path) -> None:
    model = _model(tmp_path)
    with pytest.raises(CertificateError) as caught:
        modelseal.verify(model, signature=model / "model.sig", sigstore=_trust(STAGING))
    assert [r.code for r in caught.value.reasons] == ["certificate-untrusted"]
    assert "does not chain to a Fulcio CA of trusted root" in caught.value.message


def _end_all(key: str, where: Callable[[dict[str, Any]], dict[str, Any]], end: str) -> Any:
    def edit(document: dict[str, Any]) -> None:
        for item in document[key]:
            where(item)["validFor"]["end"] = end

    return edit


@pytest.mark.parametrize(
    ("edit", "what"),
    [
        (_end_all("certificateAuthorities", lambda a: a, "2024-01-01T00:00:00Z"), "Fulcio CA"),
        (_end_all("tlogs", lambda t: t["publicKey"], "2024-01-01T00:00:00Z"), "Rekor key"),
        (_end_all("ctlogs", lambda c: c["publicKey"], "2024-01-01T00:00:00Z"), "CT log"),
    ],
    ids=["fulcio-ca", "rekor-key", "ct-log"],
)
def test_a_trusted_root_expired_before_the_signing_time_is_refused(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], what: str
) -> None:
    model = _model(tmp_path)
    root = _root(edit, tmp_path)
    with pytest.raises(CertificateError) as caught:
        modelseal.verify(model, signature=model / "model.sig", sigstore=_trust(root))
    assert [r.code for r in caught.value.reasons] == ["trusted-root-expired"]
    assert what in caught.value.message


def test_a_ca_valid_only_after_the_signing_time_is_refused(tmp_path: Path) -> None:
    def later(document: dict[str, Any]) -> None:
        for authority in document["certificateAuthorities"]:
            authority["validFor"] = {"start": "2025-12-01T00:00:00Z"}

    model = _model(tmp_path)
    with pytest.raises(CertificateError) as caught:
        modelseal.verify(
            model, signature=model / "model.sig", sigstore=_trust(_root(later, tmp_path))
        )
    assert caught.value.message.endswith("was not valid at the signing time 2025-10-10T02:12:20Z")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"{not json", "is not JSON"),
        (b'{"mediaType": "application/json"}', "is not a Sigstore trusted root"),
        (b"[]", "is not a Sigstore trusted root"),
    ],
)
def test_an_unusable_trusted_root_is_an_input_error(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    model = _model(tmp_path)
    root = tmp_path / "root.json"
    if content is not None:
        root.write_bytes(content)
    with pytest.raises(InputError, match=message) as caught:
        modelseal.verify(model, signature=model / "model.sig", sigstore=_trust(root))
    assert caught.value.exit_code == 2


def test_a_trusted_root_without_logs_or_cas_cannot_be_used(tmp_path: Path) -> None:
    model = _model(tmp_path)
    for key in ("tlogs", "certificateAuthorities"):
        root = _root(lambda d, key=key: d.update({key: []}), tmp_path)  # type: ignore[misc]
        with pytest.raises(InputError, match="cannot be used"):
            modelseal.verify(model, signature=model / "model.sig", sigstore=_trust(root))


def test_a_directory_as_trusted_root_is_an_input_error(tmp_path: Path) -> None:
    model = _model(tmp_path)
    with pytest.raises(InputError, match="is a directory"):
        modelseal.verify(model, signature=model / "model.sig", sigstore=_trust(tmp_path))


# --- the wrong kind of signature or trust ---------------------------------------------------


def test_a_key_based_bundle_is_not_sigstore(
    tmp_path: Path, key_pair: tuple[Path, Path], model_dir: Path
) -> None:
    signature = tmp_path / "key.sig"
    modelseal.sign(model_dir, private_key=key_pair[0], signature=signature)
    with pytest.raises(UsageError, match="key-based, not Sigstore keyless"):
        modelseal.verify(model_dir, signature=signature, sigstore=_trust())


def test_a_certificate_bundle_without_a_log_entry_is_not_sigstore(tmp_path: Path) -> None:
    model = _model(tmp_path)
    bundle = _bundle()
    bundle["verificationMaterial"]["tlogEntries"] = []
    with pytest.raises(UsageError, match="has no transparency log entry") as caught:
        modelseal.verify(model, signature=_write(model, bundle), sigstore=_trust())
    assert caught.value.topic == "sigstore-not-keyless"


def test_sigstore_trust_goes_alone(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    model = _model(tmp_path)
    with pytest.raises(UsageError, match="trusted root and identities alone"):
        modelseal.verify(
            model, signature=model / "model.sig", sigstore=_trust(), public_key=key_pair[1]
        )


@pytest.fixture
def without_sigstore(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in [m for m in sys.modules if m == "sigstore" or m.startswith("sigstore.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sigstore", None)
    yield


@pytest.mark.usefixtures("without_sigstore")
def test_without_the_sigstore_package_the_error_names_the_extra(
    tmp_path: Path, run_cli: RunCli
) -> None:
    model = _model(tmp_path)
    with pytest.raises(UsageError) as caught:
        modelseal.verify(model, signature=model / "model.sig", sigstore=_trust())
    assert caught.value.one_line() == (
        "Sigstore verification needs the sigstore package; "
        "install it: pip install 'modelseal[sigstore]'"
    )
    code, out, err = run_cli(
        *_cli_args(model, "--sigstore-identity", IDENTITY, "--sigstore-issuer", ISSUER)
    )
    assert (code, out) == (2, "")
    assert err.strip().splitlines() == [
        "modelseal: error: Sigstore verification needs the sigstore package; "
        "install it: pip install 'modelseal[sigstore]'"
    ]


# --- the command line -----------------------------------------------------------------------


def _cli_args(model: Path, *extra: str, root: Path = PRODUCTION) -> list[str | Path]:
    return ["verify", model, "--signature", model / "model.sig", "--trusted-root", root, *extra]


def test_cli_verifies_a_real_bundle(tmp_path: Path, run_cli: RunCli) -> None:
    model = _model(tmp_path)
    code, out, err = run_cli(
        *_cli_args(model, "--sigstore-identity", IDENTITY, "--sigstore-issuer", ISSUER)
    )
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"verified {model}: 2 files match, signed by {SIGNER}",
        f"root digest sha256:{ROOT_DIGEST}",
    ]


def test_cli_refuses_another_identity_in_one_line(tmp_path: Path, run_cli: RunCli) -> None:
    model = _model(tmp_path)
    code, out, err = run_cli(
        *_cli_args(
            model, "--sigstore-identity-pattern", ".*@example\\.com", "--sigstore-issuer", ISSUER
        )
    )
    assert (code, out) == (1, "")
    assert err.strip().splitlines()[-1] == (
        f"modelseal: error: Sigstore signer {IDENTITY!r} from issuer {ISSUER!r} is not trusted "
        f"(trusted: an identity matching /.*@example\\.com/ from {ISSUER}); verify with the "
        "identity and issuer that signed, or do not trust this model"
    )


def test_cli_json_reports_the_failure(tmp_path: Path, run_cli: RunCli) -> None:
    model = _model(tmp_path)
    code, out, _ = run_cli(
        *_cli_args(
            model,
            "--sigstore-identity",
            IDENTITY,
            "--sigstore-issuer",
            ISSUER,
            "--json",
            root=STAGING,
        )
    )
    report = json.loads(out)
    assert code == 1 and report["verified"] is False
    assert [r["code"] for r in report["reasons"]] == ["certificate-untrusted"]


def test_cli_missing_trusted_root_is_one_line_exit_2(tmp_path: Path, run_cli: RunCli) -> None:
    model = _model(tmp_path)
    missing = tmp_path / "nope.json"
    code, out, err = run_cli(
        *_cli_args(
            model, "--sigstore-identity", IDENTITY, "--sigstore-issuer", ISSUER, root=missing
        )
    )
    assert (code, out) == (2, "")
    assert err.strip().splitlines() == [
        f"modelseal: error: trusted root {str(missing)!r} does not exist; give the "
        "trusted_root.json of the Sigstore instance that signed (from its TUF repository)"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sigstore-issuer", ISSUER], "exactly one of --sigstore-identity and"),
        (
            [
                "--sigstore-identity",
                IDENTITY,
                "--sigstore-identity-pattern",
                ".*",
                "--sigstore-issuer",
                ISSUER,
            ],
            "exactly one of --sigstore-identity and",
        ),
        (["--sigstore-identity", IDENTITY], "--trusted-root needs --sigstore-issuer"),
        (
            [
                "--sigstore-identity",
                IDENTITY,
                "--sigstore-issuer",
                ISSUER,
                "--trust-anchor",
                str(PRODUCTION),
            ],
            "without --public-key or --trust-anchor",
        ),
    ],
)
def test_cli_sigstore_options_are_checked(
    tmp_path: Path, run_cli: RunCli, args: list[str], message: str
) -> None:
    model = _model(tmp_path)
    code, out, err = run_cli(*_cli_args(model, *args))
    assert (code, out) == (2, "")
    assert len(err.strip().splitlines()) == 1 and message in err


def test_cli_identity_options_need_a_trusted_root(tmp_path: Path, run_cli: RunCli) -> None:
    model = _model(tmp_path)
    code, _, err = run_cli(
        "verify", model, "--signature", model / "model.sig", "--sigstore-identity", IDENTITY
    )
    assert code == 2
    assert "the Sigstore identity options need --trusted-root" in err


def test_cli_a_sigstore_bundle_without_sigstore_trust_says_how(
    tmp_path: Path, run_cli: RunCli
) -> None:
    model = _model(tmp_path)
    code, _, err = run_cli("verify", model, "--signature", model / "model.sig")
    assert code == 2
    assert "--trusted-root with --sigstore-identity and --sigstore-issuer" in err


def test_a_backdated_log_time_falls_outside_the_certificate(tmp_path: Path) -> None:
    model = _model(tmp_path)
    bundle = _bundle()
    _entry(bundle)["integratedTime"] = str(int(_entry(bundle)["integratedTime"]) - 3600)
    with pytest.raises(CertificateError) as caught:
        modelseal.verify(model, signature=_write(model, bundle), sigstore=_trust())
    assert "cert is not valid at validation time" in caught.value.message


# --- a Rekor v2 bundle (time from a timestamp authority) ------------------------------------

REKOR_V2 = DATA / "rekor-v2" / "a.dsse.staging-rekor-v2.txt.sigstore.json"
BEACON = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/"
    "workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
ACTIONS = "https://token.actions.githubusercontent.com"


def test_a_rekor_v2_bundle_authenticates_against_its_instance() -> None:
    from modelseal.signing.api import authenticate

    bundle = read_bundle(REKOR_V2)
    trust = _trust(STAGING, identity=BEACON, issuer=ACTIONS)
    assert authenticate(bundle, sigstore=trust) == f"sigstore {BEACON} from issuer {ACTIONS}"
    pattern = _trust(
        STAGING,
        identity=None,
        identity_pattern=r"https://github\.com/sigstore-conformance/.*",
        issuer=ACTIONS,
    )
    assert authenticate(bundle, sigstore=pattern).startswith(f"sigstore {BEACON}")


def test_a_rekor_v2_bundle_needs_a_root_whose_timestamp_authority_vouches_for_it() -> None:
    from modelseal.signing.api import authenticate

    with pytest.raises(CertificateError) as caught:
        authenticate(read_bundle(REKOR_V2), sigstore=_trust(identity=BEACON, issuer=ACTIONS))
    assert [r.code for r in caught.value.reasons] == ["timestamp-untrusted"]


def test_a_rekor_v2_bundle_with_a_tampered_timestamp_is_refused(tmp_path: Path) -> None:
    from modelseal.signing.api import authenticate

    bundle = json.loads(REKOR_V2.read_text())
    stamps = bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
    raw = bytearray(base64.b64decode(stamps[0]["signedTimestamp"]))
    raw[-10] ^= 0x01  # inside the TSA's signature
    stamps[0]["signedTimestamp"] = base64.b64encode(bytes(raw)).decode("ascii")
    path = tmp_path / "tampered.sigstore.json"
    path.write_text(json.dumps(bundle))
    with pytest.raises(ModelsealError) as caught:
        authenticate(read_bundle(path), sigstore=_trust(STAGING, identity=BEACON, issuer=ACTIONS))
    assert isinstance(caught.value, CertificateError)
    assert [r.code for r in caught.value.reasons] == ["timestamp-untrusted"]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_TIMES = st.sampled_from(
    ["2021-01-12T11:53:27Z", "2025-10-10T02:12:20.5+00:00", "2030-01-01T00:00:00Z", "2025-10-10"]
)


@given(window=_JSON | st.fixed_dictionaries({"start": _TIMES}, optional={"end": _TIMES | _JSON}))
def test_a_validity_window_is_read_safely(window: Any) -> None:
    import datetime as dt

    from modelseal.signing.sigstore_root import _valid_at

    when = dt.datetime(2025, 10, 10, 2, 12, 20, tzinfo=dt.UTC)
    inside = _valid_at(window, when)
    assert isinstance(inside, bool)
    if inside:  # only a well-formed, zoned window that holds the time
        start = dt.datetime.fromisoformat(window["start"])
        assert start.tzinfo is not None and start <= when
        if isinstance(window.get("end"), str):
            assert when <= dt.datetime.fromisoformat(window["end"])

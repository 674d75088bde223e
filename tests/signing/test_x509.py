"""X.509 signing: leaf -> intermediate -> root, validated against --trust-anchor.

Every certificate is built at run time (tests/interop/_pki.py). Each broken chain fails with its
own reason code; each misuse of the command line is a usage error (exit 2) with one line.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypedDict

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.x509.oid import ExtendedKeyUsageOID

import modelseal
from modelseal.errors import (
    CertificateError,
    KeyFileError,
    MalformedSignatureError,
    SignatureMismatchError,
    UsageError,
    VerificationError,
)
from modelseal.signing.keys import generate_key, write_key_pair
from tests.conftest import build_model
from tests.interop._pki import DAY, NOW, Issued, Pki, build_pki, concat, issue

RunCli = Callable[..., tuple[int, str, str]]
LEAF = "CN=leaf,O=modelseal tests"


class _LeafUsage(TypedDict, total=False):
    """The :func:`issue` options that decide what a leaf certificate may do."""

    digital_signature: bool | None
    eku: Sequence[x509.ObjectIdentifier] | None
    ca: bool


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return build_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return build_pki(tmp_path_factory.mktemp("other-pki"), prefix="other-")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp("x509") / "model")


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory, pki: Pki, model: Path) -> Path:
    """The model signed with the leaf certificate and its intermediate."""
    sig = tmp_path_factory.mktemp("sig") / "model.sig"
    modelseal.sign(
        model,
        private_key=pki.leaf.key_path,
        signature=sig,
        certificate=pki.leaf.cert_path,
        certificate_chain=[pki.intermediate.cert_path],
    )
    return sig


def _sign(model: Path, sig: Path, leaf: Issued, *chain: Issued) -> Path:
    modelseal.sign(
        model,
        private_key=leaf.key_path,
        signature=sig,
        certificate=leaf.cert_path,
        certificate_chain=[c.cert_path for c in chain],
    )
    return sig


def _reasons(
    model: Path, sig: Path, anchors: list[Path], at: dt.datetime | None = None
) -> list[str]:
    with pytest.raises(CertificateError) as err:
        modelseal.verify(model, signature=sig, trust_anchors=anchors, at=at)
    return [r.code for r in err.value.reasons]


def _with_chain(sig: Path, dest: Path, *certs: x509.Certificate) -> Path:
    """Copy a bundle with its certificate chain replaced (the DSSE signature is untouched)."""
    bundle = json.loads(sig.read_text())
    bundle["verificationMaterial"]["x509CertificateChain"]["certificates"] = [
        {"rawBytes": base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()}
        for c in certs
    ]
    dest.write_text(json.dumps(bundle))
    return dest


def _cli_reasons(
    run_cli: RunCli, model: Path, sig: Path, *anchors: Path
) -> tuple[int, list[str], str]:
    code, out, err = run_cli(
        "verify", model, "--signature", sig, "--trust-anchor", *anchors, "--json"
    )
    return code, [r["code"] for r in json.loads(out)["reasons"]] if out else [], err


# --- the good path ------------------------------------------------------------------------


def test_cli_sign_and_verify_chain(run_cli: RunCli, pki: Pki, model: Path, tmp_path: Path) -> None:
    sig = tmp_path / "model.sig"
    code, out, err = run_cli(
        "sign",
        model,
        "--private-key",
        pki.leaf.key_path,
        "--signature",
        sig,
        "--certificate",
        pki.leaf.cert_path,
        "--certificate-chain",
        pki.intermediate.cert_path,
    )
    assert code == 0, err
    assert f"with certificate {LEAF}" in out
    material = json.loads(sig.read_text())["verificationMaterial"]
    ders = [
        base64.b64decode(c["rawBytes"]) for c in material["x509CertificateChain"]["certificates"]
    ]
    assert [x509.load_der_x509_certificate(d) for d in ders] == [
        pki.leaf.cert,
        pki.intermediate.cert,
    ]
    assert "publicKey" not in material
    code, out, err = run_cli(
        "verify", model, "--signature", sig, "--trust-anchor", pki.root.cert_path
    )
    assert code == 0, err
    assert f"signed by certificate {LEAF}" in out
    code, out, err = run_cli(
        "verify", model, "--signature", sig, "--trust-anchor", pki.root.cert_path, "--json"
    )
    assert code == 0, err
    assert json.loads(out)["signer"] == f"certificate {LEAF}"


def test_api_sign_and_verify_chain(pki: Pki, model: Path, signed: Path) -> None:
    result = modelseal.verify(model, signature=signed, trust_anchors=[pki.root.cert_path])
    assert result.signer == f"certificate {LEAF}"
    assert len(result.manifest.items) == 5
    # Inside every certificate's validity window, ``at`` changes nothing.
    later = modelseal.verify(
        model, signature=signed, trust_anchors=[pki.root.cert_path], at=NOW + 10 * DAY
    )
    assert later.root_digest == result.root_digest


def test_several_values_after_one_flag(
    run_cli: RunCli, pki: Pki, other_pki: Pki, model: Path, tmp_path: Path
) -> None:
    sig = tmp_path / "model.sig"
    code, _, err = run_cli(
        "sign",
        model,
        "--private-key",
        pki.leaf.key_path,
        "--signature",
        sig,
        "--certificate",
        pki.leaf.cert_path,
        "--certificate-chain",
        pki.intermediate.cert_path,
        pki.root.cert_path,
    )
    assert code == 0, err
    certs = json.loads(sig.read_text())["verificationMaterial"]["x509CertificateChain"][
        "certificates"
    ]
    assert len(certs) == 3
    code, out, err = run_cli(
        "verify",
        model,
        "--signature",
        sig,
        "--trust-anchor",
        other_pki.root.cert_path,
        pki.root.cert_path,
    )
    assert code == 0, err
    assert f"signed by certificate {LEAF}" in out
    # Both orders, and both anchors in one PEM file.
    code, _, err = run_cli(
        "verify",
        model,
        "--signature",
        sig,
        "--trust-anchor",
        pki.root.cert_path,
        other_pki.root.cert_path,
    )
    assert code == 0, err
    both = concat(tmp_path / "anchors.pem", other_pki.root, pki.root)
    code, _, err = run_cli("verify", model, "--signature", sig, "--trust-anchor", both)
    assert code == 0, err
    # Only the other CA: untrusted.
    code, reasons, err = _cli_reasons(run_cli, model, sig, other_pki.root.cert_path)
    assert (code, reasons) == (1, ["certificate-untrusted"])


def test_der_trust_anchor(
    run_cli: RunCli, pki: Pki, model: Path, signed: Path, tmp_path: Path
) -> None:
    der = tmp_path / "root.der"
    der.write_bytes(pki.root.cert.public_bytes(serialization.Encoding.DER))
    code, out, err = run_cli("verify", model, "--signature", signed, "--trust-anchor", der)
    assert code == 0, err
    assert f"signed by certificate {LEAF}" in out


def _negative_serial_pem(cert: x509.Certificate) -> bytes:
    """``cert`` with its serial number made negative (as some old CAs in system stores have);
    the signature no longer matches, but it parses (with a deprecation warning)."""
    der = cert.public_bytes(serialization.Encoding.DER)
    # DER's INTEGER content: two's complement, so a 0x00 leads when the top bit is set (random
    # serials have a multiple of 8 bits about 1 time in 256).
    serial = cert.serial_number.to_bytes(cert.serial_number.bit_length() // 8 + 1, "big")
    field = bytes([0x02, len(serial)]) + serial
    assert der.count(field) == 1
    # 0x80 first: negative whatever the serial, and still the minimal (DER) encoding.
    der = der.replace(field, bytes([0x02, len(serial), 0x80]) + serial[1:])
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize("bits", [159, 152, 8, 7])
def test_negative_serial_helper_works_for_every_serial_length(pki: Pki, bits: int) -> None:
    """A random serial has a multiple of 8 bits (its DER form then starts with 0x00) about one
    time in 256; the helper must make it negative then too, not fail the test by chance."""
    import warnings

    serial = (1 << (bits - 1)) | 0x5A
    cert = (
        x509.CertificateBuilder()
        .subject_name(pki.root.cert.subject)
        .issuer_name(pki.root.cert.subject)
        .public_key(pki.root.cert.public_key())
        .serial_number(serial)
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + DAY)
        .sign(pki.root.key, None if isinstance(pki.root.key, Ed25519PrivateKey) else SHA256())
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        negative = x509.load_pem_x509_certificate(_negative_serial_pem(cert))
        assert negative.serial_number < 0


JUNK_PEM = b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"


def test_ca_bundle_with_odd_certificates_as_trust_anchor(
    run_cli: RunCli, pki: Pki, other_pki: Pki, model: Path, signed: Path, tmp_path: Path
) -> None:
    """A system CA bundle may hold certificates cryptography deprecates or refuses: they are
    skipped quietly, the others are used (and no warning reaches stderr)."""
    import warnings

    bundle = tmp_path / "ca-bundle.crt"
    bundle.write_bytes(
        JUNK_PEM + _negative_serial_pem(other_pki.root.cert) + b"# comment\n" + pki.root.pem
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = modelseal.verify(model, signature=signed, trust_anchors=[bundle])
    assert result.signer == f"certificate {LEAF}"
    assert [str(w.message) for w in caught] == []
    code, out, err = run_cli("verify", model, "--signature", signed, "--trust-anchor", bundle)
    assert (code, err) == (0, "")
    assert "verified" in out
    # Nothing usable at all: an input error.
    (tmp_path / "junk.crt").write_bytes(JUNK_PEM)
    code, _, err = run_cli(
        "verify", model, "--signature", signed, "--trust-anchor", tmp_path / "junk.crt"
    )
    assert code == 2 and "holds no X.509 certificate" in err


def test_certificate_chain_file_must_parse_completely(
    run_cli: RunCli, pki: Pki, model: Path, tmp_path: Path
) -> None:
    chain = tmp_path / "chain.pem"
    chain.write_bytes(pki.intermediate.pem + JUNK_PEM)
    code, _, err = run_cli(
        "sign",
        model,
        "--private-key",
        pki.leaf.key_path,
        "--signature",
        tmp_path / "model.sig",
        "--certificate",
        pki.leaf.cert_path,
        "--certificate-chain",
        chain,
    )
    assert code == 2
    assert "certificate #2 in the file cannot be parsed" in err
    assert not (tmp_path / "model.sig").exists()


@pytest.mark.parametrize("algorithm", ["ecdsa-p384", "ecdsa-p521", "ed25519", "rsa-pss-3072"])
def test_every_key_type_as_leaf(pki: Pki, model: Path, tmp_path: Path, algorithm: str) -> None:
    leaf = issue(tmp_path, f"leaf-{algorithm}", issuer=pki.intermediate, algorithm=algorithm)
    sig = _sign(model, tmp_path / "model.sig", leaf, pki.intermediate)
    result = modelseal.verify(model, signature=sig, trust_anchors=[pki.root.cert_path])
    assert result.signer == f"certificate CN=leaf-{algorithm},O=modelseal tests"


def test_intermediate_as_trust_anchor(pki: Pki, model: Path, signed: Path) -> None:
    result = modelseal.verify(model, signature=signed, trust_anchors=[pki.intermediate.cert_path])
    assert result.signer == f"certificate {LEAF}"


# --- validity -----------------------------------------------------------------------------


def test_expired_leaf_at_later_time(pki: Pki, model: Path, signed: Path) -> None:
    with pytest.raises(CertificateError) as err:
        modelseal.verify(
            model, signature=signed, trust_anchors=[pki.root.cert_path], at=NOW + 60 * DAY
        )
    [reason] = err.value.reasons
    assert reason.code == "certificate-expired"
    assert "expired on" in reason.message and "CN=leaf" in reason.message


def test_not_yet_valid_leaf_at_earlier_time(pki: Pki, model: Path, signed: Path) -> None:
    with pytest.raises(CertificateError) as err:
        modelseal.verify(
            model, signature=signed, trust_anchors=[pki.root.cert_path], at=NOW - 2 * DAY
        )
    [reason] = err.value.reasons
    assert reason.code == "certificate-expired"
    assert "is not valid before" in reason.message and "CN=leaf" in reason.message


def test_naive_verification_time_is_utc(pki: Pki, model: Path, signed: Path) -> None:
    """A naive ``at`` is read as UTC (as cryptography does), not a TypeError."""
    naive_inside = (NOW + DAY).replace(tzinfo=None)
    result = modelseal.verify(
        model, signature=signed, trust_anchors=[pki.root.cert_path], at=naive_inside
    )
    assert result.signer == f"certificate {LEAF}"
    naive_after = (NOW + 60 * DAY).replace(tzinfo=None)
    assert _reasons(model, signed, [pki.root.cert_path], at=naive_after) == ["certificate-expired"]


@pytest.mark.parametrize(
    ("window", "fragment"),
    [
        ((NOW - 30 * DAY, NOW - DAY), "expired on"),
        ((NOW + DAY, NOW + 30 * DAY), "not valid before"),
    ],
    ids=["expired", "not-yet-valid"],
)
def test_cli_rejects_leaf_outside_validity(
    run_cli: RunCli,
    pki: Pki,
    model: Path,
    signed: Path,
    tmp_path: Path,
    window: tuple[dt.datetime, dt.datetime],
    fragment: str,
) -> None:
    # The same key, certified for another period: the DSSE signature stays valid, the time not.
    stale = issue(
        tmp_path,
        "leaf",
        key=pki.leaf.key,
        issuer=pki.intermediate,
        not_before=window[0],
        not_after=window[1],
    )
    sig = _with_chain(signed, tmp_path / "stale.sig", stale.cert, pki.intermediate.cert)
    code, reasons, err = _cli_reasons(run_cli, model, sig, pki.root.cert_path)
    assert (code, reasons) == (1, ["certificate-expired"])
    assert err.startswith("modelseal: error: certificate 'CN=leaf,O=modelseal tests'")
    assert fragment in err and err.count("\n") == 1
    # And modelseal refuses to sign with such a certificate in the first place.
    code, _, err = run_cli(
        "sign",
        model,
        "--private-key",
        stale.key_path,
        "--signature",
        tmp_path / "new.sig",
        "--certificate",
        stale.cert_path,
    )
    assert code == 2
    assert "is not valid now" in err


def test_expired_intermediate(pki: Pki, model: Path, tmp_path: Path) -> None:
    old = issue(
        tmp_path,
        "old-intermediate",
        issuer=pki.root,
        ca=True,
        path_length=0,
        not_before=NOW - 30 * DAY,
        not_after=NOW - DAY,
    )
    leaf = issue(tmp_path, "leaf", issuer=old)  # itself valid now
    sig = _sign(model, tmp_path / "model.sig", leaf, old)
    with pytest.raises(CertificateError) as err:
        modelseal.verify(model, signature=sig, trust_anchors=[pki.root.cert_path])
    [reason] = err.value.reasons
    assert reason.code == "certificate-expired"
    assert "CN=old-intermediate" in reason.message and "expired on" in reason.message


def test_expired_trust_anchor(model: Path, tmp_path: Path) -> None:
    root = issue(tmp_path, "old-root", ca=True, not_before=NOW - 30 * DAY, not_after=NOW - DAY)
    early = NOW - 20 * DAY
    intermediate = issue(
        tmp_path, "intermediate", issuer=root, ca=True, path_length=0, not_before=early
    )
    leaf = issue(tmp_path, "leaf", issuer=intermediate, not_before=early)
    sig = _sign(model, tmp_path / "model.sig", leaf, intermediate)
    with pytest.raises(CertificateError) as err:
        modelseal.verify(model, signature=sig, trust_anchors=[root.cert_path])
    [reason] = err.value.reasons
    assert reason.code == "certificate-expired"
    assert "CN=old-root" in reason.message and "expired on" in reason.message
    # Still valid at an earlier moment.
    result = modelseal.verify(
        model, signature=sig, trust_anchors=[root.cert_path], at=NOW - 10 * DAY
    )
    assert result.signer == f"certificate {LEAF}"


def test_stray_expired_certificate_in_bundle_is_ignored(
    pki: Pki, model: Path, tmp_path: Path
) -> None:
    """Chains often carry certificates the path does not need (an old cross-signed root)."""
    stale = issue(tmp_path, "stale-ca", ca=True, not_before=NOW - 30 * DAY, not_after=NOW - DAY)
    sig = _sign(model, tmp_path / "model.sig", pki.leaf, pki.intermediate, stale)
    result = modelseal.verify(model, signature=sig, trust_anchors=[pki.root.cert_path])
    assert result.signer == f"certificate {LEAF}"
    # ... but an expired certificate the path needs is reported as expired.
    assert _reasons(model, sig, [stale.cert_path]) == ["certificate-untrusted"]


# --- trust --------------------------------------------------------------------------------


def test_untrusted_root(run_cli: RunCli, other_pki: Pki, model: Path, signed: Path) -> None:
    code, reasons, err = _cli_reasons(run_cli, model, signed, other_pki.root.cert_path)
    assert (code, reasons) == (1, ["certificate-untrusted"])
    assert "does not chain to a trust anchor" in err
    assert "--trust-anchor" in err


def test_missing_intermediate(run_cli: RunCli, pki: Pki, model: Path, tmp_path: Path) -> None:
    sig = _sign(model, tmp_path / "model.sig", pki.leaf)
    code, reasons, err = _cli_reasons(run_cli, model, sig, pki.root.cert_path)
    assert (code, reasons) == (1, ["certificate-untrusted"])
    assert f"signing certificate {LEAF!r} does not chain" in err


def test_path_length_and_ca_flag_are_enforced(pki: Pki, model: Path, tmp_path: Path) -> None:
    # The intermediate has pathLenConstraint 0: it may not certify another CA.
    sub = issue(tmp_path, "sub-ca", issuer=pki.intermediate, ca=True)
    leaf = issue(tmp_path, "leaf", issuer=sub)
    sig = _sign(model, tmp_path / "deep.sig", leaf, sub, pki.intermediate)
    assert _reasons(model, sig, [pki.root.cert_path]) == ["certificate-untrusted"]
    # A leaf (CA:FALSE) cannot issue certificates.
    fake = issue(tmp_path, "fake-leaf", issuer=pki.leaf)
    sig = _sign(model, tmp_path / "fake.sig", fake, pki.leaf, pki.intermediate)
    assert _reasons(model, sig, [pki.root.cert_path]) == ["certificate-untrusted"]


def test_certificate_of_another_key_in_bundle(
    pki: Pki, model: Path, signed: Path, tmp_path: Path
) -> None:
    """A valid, trusted leaf for a different key swapped into the bundle: bad-signature."""
    other = issue(tmp_path, "leaf", issuer=pki.intermediate)
    sig = _with_chain(signed, tmp_path / "swapped.sig", other.cert, pki.intermediate.cert)
    with pytest.raises(SignatureMismatchError) as err:
        modelseal.verify(model, signature=sig, trust_anchors=[pki.root.cert_path])
    assert [r.code for r in err.value.reasons] == ["bad-signature"]


def test_edited_signature_bytes(
    run_cli: RunCli, pki: Pki, model: Path, signed: Path, tmp_path: Path
) -> None:
    bundle = json.loads(signed.read_text())
    raw = bytearray(base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"]))
    raw[len(raw) // 2] ^= 0x01
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()
    sig = tmp_path / "edited.sig"
    sig.write_text(json.dumps(bundle))
    code, reasons, err = _cli_reasons(run_cli, model, sig, pki.root.cert_path)
    assert (code, reasons) == (1, ["bad-signature"])
    assert "signature does not verify" in err


def test_damaged_certificate_in_bundle(
    run_cli: RunCli, pki: Pki, model: Path, signed: Path, tmp_path: Path
) -> None:
    bundle = json.loads(signed.read_text())
    bundle["verificationMaterial"]["x509CertificateChain"]["certificates"][0]["rawBytes"] = (
        base64.b64encode(b"not a certificate").decode()
    )
    sig = tmp_path / "damaged.sig"
    sig.write_text(json.dumps(bundle))
    with pytest.raises(MalformedSignatureError) as err:
        modelseal.verify(model, signature=sig, trust_anchors=[pki.root.cert_path])
    assert [r.code for r in err.value.reasons] == ["malformed"]
    code, _, err_line = run_cli(
        "verify", model, "--signature", sig, "--trust-anchor", pki.root.cert_path
    )
    assert code == 2
    assert "not valid DER" in err_line


# --- what the signing certificate may do ---------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"digital_signature": False}, "key usage excludes digitalSignature"),
        (
            {"eku": [ExtendedKeyUsageOID.SERVER_AUTH]},
            "extended key usage does not include codeSigning",
        ),
        ({"digital_signature": None, "eku": None}, "states no key usage for signing"),
        ({"ca": True}, "is a CA, not a signer"),
    ],
    ids=["no-digitalSignature", "eku-serverAuth-only", "no-usage-at-all", "ca-as-leaf"],
)
def test_leaf_usage(
    run_cli: RunCli, pki: Pki, model: Path, tmp_path: Path, kwargs: _LeafUsage, fragment: str
) -> None:
    leaf = issue(tmp_path, "bad-leaf", issuer=pki.intermediate, **kwargs)
    sig = _sign(model, tmp_path / "model.sig", leaf, pki.intermediate)
    code, reasons, err = _cli_reasons(run_cli, model, sig, pki.root.cert_path)
    assert (code, reasons) == (1, ["certificate-usage"])
    assert fragment in err
    assert "codeSigning" in err  # the hint says what certificate to get


@pytest.mark.parametrize(
    "kwargs",
    [{"eku": None}, {"digital_signature": None}, {"eku": [x509.ObjectIdentifier("2.5.29.37.0")]}],
    ids=["key-usage-only", "eku-codeSigning-only", "any-eku"],
)
def test_leaf_usage_accepted(pki: Pki, model: Path, tmp_path: Path, kwargs: _LeafUsage) -> None:
    leaf = issue(tmp_path, "leaf", issuer=pki.intermediate, **kwargs)
    sig = _sign(model, tmp_path / "model.sig", leaf, pki.intermediate)
    assert modelseal.verify(model, signature=sig, trust_anchors=[pki.root.cert_path]).signer == (
        f"certificate {LEAF}"
    )


def test_unknown_critical_extension_in_leaf_is_refused(
    pki: Pki, model: Path, tmp_path: Path
) -> None:
    private = x509.ObjectIdentifier("1.3.6.1.4.1.99999.1")
    odd = x509.UnrecognizedExtension(private, b"\x05\x00")
    leaf = issue(tmp_path, "odd", issuer=pki.intermediate, extra=[(odd, True)])
    sig = _sign(model, tmp_path / "model.sig", leaf, pki.intermediate)
    assert _reasons(model, sig, [pki.root.cert_path]) == ["certificate-untrusted"]
    # The same extension, not critical, is fine.
    leaf = issue(tmp_path, "leaf", issuer=pki.intermediate, extra=[(odd, False)])
    sig = _sign(model, tmp_path / "ok.sig", leaf, pki.intermediate)
    assert modelseal.verify(model, signature=sig, trust_anchors=[pki.root.cert_path]).signer == (
        f"certificate {LEAF}"
    )


def test_root_itself_as_signer_is_refused(pki: Pki, model: Path, tmp_path: Path) -> None:
    sig = _sign(model, tmp_path / "model.sig", pki.root)
    assert _reasons(model, sig, [pki.root.cert_path]) == ["certificate-usage"]


# --- misuse: exit 2 -----------------------------------------------------------------------


def test_wrong_key_for_certificate(
    run_cli: RunCli, pki: Pki, other_pki: Pki, model: Path, tmp_path: Path
) -> None:
    with pytest.raises(KeyFileError) as err:
        modelseal.sign(
            model,
            private_key=other_pki.leaf.key_path,
            signature=tmp_path / "a.sig",
            certificate=pki.leaf.cert_path,
        )
    assert "does not belong to the private key" in err.value.message
    code, _, err_line = run_cli(
        "sign",
        model,
        "--private-key",
        other_pki.leaf.key_path,
        "--signature",
        tmp_path / "b.sig",
        "--certificate",
        pki.leaf.cert_path,
        "--certificate-chain",
        pki.intermediate.cert_path,
    )
    assert code == 2
    assert err_line.startswith("modelseal: error: certificate ")
    assert "does not belong to the private key" in err_line and err_line.count("\n") == 1
    assert not (tmp_path / "a.sig").exists() and not (tmp_path / "b.sig").exists()


def test_certificate_bundle_with_public_key(
    run_cli: RunCli, pki: Pki, model: Path, signed: Path, tmp_path: Path
) -> None:
    pub = tmp_path / "leaf.pub"
    pub.write_bytes(
        pki.leaf.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    code, _, err = run_cli("verify", model, "--signature", signed, "--public-key", pub)
    assert code == 2
    assert err == (
        "modelseal: error: this signature is certificate-based; "
        "verify it with --trust-anchor CA.pem\n"
    )
    with pytest.raises(UsageError) as exc:
        modelseal.verify(model, signature=signed, public_key=pub)
    assert not isinstance(exc.value, VerificationError)


def test_key_bundle_with_trust_anchor_only(
    run_cli: RunCli, pki: Pki, model: Path, tmp_path: Path
) -> None:
    write_key_pair(
        generate_key("ecdsa-p256"), tmp_path / "k.pem", tmp_path / "k.pub", passphrase=None
    )
    sig = tmp_path / "key.sig"
    modelseal.sign(model, private_key=tmp_path / "k.pem", signature=sig)
    code, _, err = run_cli(
        "verify", model, "--signature", sig, "--trust-anchor", pki.root.cert_path
    )
    assert code == 2
    assert "this signature is key-based" in err and "--public-key" in err
    with pytest.raises(UsageError):
        modelseal.verify(model, signature=sig, trust_anchors=[pki.root.cert_path])


def test_bad_certificate_inputs(
    run_cli: RunCli, pki: Pki, model: Path, signed: Path, tmp_path: Path
) -> None:
    two = concat(tmp_path / "two.pem", pki.leaf, pki.intermediate)
    code, _, err = run_cli(
        "sign",
        model,
        "--private-key",
        pki.leaf.key_path,
        "--signature",
        tmp_path / "a.sig",
        "--certificate",
        two,
    )
    assert code == 2 and "holds 2 certificates" in err
    code, _, err = run_cli(
        "sign",
        model,
        "--private-key",
        pki.leaf.key_path,
        "--signature",
        tmp_path / "a.sig",
        "--certificate-chain",
        pki.intermediate.cert_path,
    )
    assert code == 2 and "--certificate-chain needs --certificate" in err
    code, _, err = run_cli(
        "verify", model, "--signature", signed, "--trust-anchor", pki.root.key_path
    )
    assert code == 2 and "holds no X.509 certificate" in err
    code, _, err = run_cli(
        "verify", model, "--signature", signed, "--trust-anchor", tmp_path / "missing.pem"
    )
    assert code == 2 and "cannot read trust anchor" in err
    assert not (tmp_path / "a.sig").exists()


# --- pinning, mixed inputs and single paths (api.py) ------------------------------------------


def test_public_key_must_match_certificate_when_both_given(
    run_cli: RunCli, pki: Pki, model: Path, signed: Path, tmp_path: Path
) -> None:
    write_key_pair(generate_key("ecdsa-p256"), tmp_path / "k", tmp_path / "k.pub", passphrase=None)
    code, _, err = run_cli(
        "verify",
        model,
        "--signature",
        signed,
        "--public-key",
        tmp_path / "k.pub",
        "--trust-anchor",
        pki.root.cert_path,
    )
    assert code == 1
    assert "another key" in err


def test_trust_anchor_is_not_silently_dropped_for_key_bundles(
    run_cli: RunCli, pki: Pki, model: Path, tmp_path: Path
) -> None:
    write_key_pair(generate_key("ecdsa-p256"), tmp_path / "k", tmp_path / "k.pub", passphrase=None)
    sig = tmp_path / "key.sig"
    modelseal.sign(model, private_key=tmp_path / "k", signature=sig)
    code, _, err = run_cli(
        "verify",
        model,
        "--signature",
        sig,
        "--public-key",
        tmp_path / "k.pub",
        "--trust-anchor",
        pki.root.cert_path,
    )
    assert code == 2
    assert "key-based" in err


@pytest.mark.parametrize("as_type", [str, Path], ids=["str", "Path"])
def test_single_trust_anchor_path_is_accepted(
    pki: Pki, model: Path, signed: Path, as_type: type
) -> None:
    anchor = as_type(pki.root.cert_path)
    result = modelseal.verify(model, signature=signed, trust_anchors=anchor)
    assert result.signer == f"certificate {LEAF}"


def test_single_certificate_chain_path_is_accepted(pki: Pki, model: Path, tmp_path: Path) -> None:
    sig = tmp_path / "model.sig"
    modelseal.sign(
        model,
        private_key=pki.leaf.key_path,
        signature=sig,
        certificate=pki.leaf.cert_path,
        certificate_chain=str(pki.intermediate.cert_path),
    )
    assert modelseal.verify(model, signature=sig, trust_anchors=[pki.root.cert_path])


def test_certificate_chain_without_certificate_is_refused(
    pki: Pki, model: Path, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match="certificate"):
        modelseal.sign(
            model,
            private_key=pki.leaf.key_path,
            signature=tmp_path / "model.sig",
            certificate_chain=[pki.intermediate.cert_path],
        )

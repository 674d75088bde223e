"""The rule for missing peers: fail under CI=true, skip with the reason elsewhere."""

from __future__ import annotations

import pytest

from tests.crypto.conftest import require


def test_missing_peer_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required under CI: softhsm2-util not found"):
        require(False, "softhsm2-util not found")


def test_missing_peer_skips_with_reason_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="tink is not installed"):
        require(False, "tink is not installed")
    require(True, "present peers pass through")  # no exception


def test_short_raw_writes_are_completed() -> None:
    """A raw file may accept fewer bytes than offered; the pipeline writes the rest."""
    import io

    from modelseal.crypto import keyset as ks
    from modelseal.crypto import streaming

    class Dribble:
        def __init__(self) -> None:
            self.data = bytearray()

        def write(self, data: bytes | bytearray | memoryview) -> int:
            chunk = bytes(data[:1000])
            self.data += chunk
            return len(chunk)

    keyset = ks.new_streaming_keyset(segment_size=4096)
    sink = Dribble()
    streaming.encrypt_stream(ks.primary_streaming_key(keyset), io.BytesIO(b"z" * 50_000), sink)
    assert streaming.decrypt_bytes(ks.decryption_keys(keyset), bytes(sink.data)) == b"z" * 50_000

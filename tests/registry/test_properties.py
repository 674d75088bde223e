"""Properties: streaming ingest hashes any chunking exactly as the hashing engine does; audit
records survive the database round trip byte for byte (the leaf never changes)."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelseal.audit.record import AuditEvent, AuditRecord
from modelseal.hashing.manifest import Serialization
from modelseal.registry.ingest import StreamingItems


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.binary(max_size=5000),
    cuts=st.lists(st.integers(0, 5000), max_size=12),
    shard=st.integers(1, 700),
    algorithm=st.sampled_from(["sha256", "blake2b", "blake3"]),
)
def test_streaming_items_match_the_engine(
    tmp_path: Path, data: bytes, cuts: list[int], shard: int, algorithm: str
) -> None:
    import modelseal

    path = tmp_path / "f.bin"
    path.write_bytes(data)
    for method_shard in (None, shard):
        manifest = modelseal.digest(path, hash_type=algorithm, shard_size=method_shard)
        serialization = Serialization(
            method="shards" if method_shard else "files", hash_type=algorithm,
            shard_size=method_shard,
        )  # fmt: skip
        hasher = StreamingItems(".", serialization)
        for chunk in _chunks(data, cuts):
            hasher.update(chunk)
        got = [(i.start, i.end, i.digest) for i in hasher.items()]
        want = [(i.start, i.end, i.digest) for i in manifest.items]
        assert got == want
        assert hasher.size == len(data)
    if algorithm == "sha256":
        files = StreamingItems(".", Serialization())
        files.update(data)
        assert files.items()[0].digest == hashlib.sha256(data).digest()


text = st.text(max_size=40)


@settings(max_examples=100, deadline=None)
@given(
    actor=text, roles=st.lists(text, max_size=3), action=text, resource=text,
    outcome=st.sampled_from(["allowed", "denied"]), reason=text,
    digest=st.none() | text, details=st.dictionaries(text, st.none() | st.integers() | text,
                                                     max_size=4),
)  # fmt: skip
def test_records_round_trip_their_rows(
    actor: str, roles: list[str], action: str, resource: str, outcome: str, reason: str,
    digest: str | None, details: dict[str, object],
) -> None:  # fmt: skip
    event = AuditEvent(actor=actor, roles=tuple(roles), action=action, resource=resource,
                       outcome=outcome, reason=reason, digest=digest, details=details)  # type: ignore[arg-type]  # fmt: skip
    record = AuditRecord.from_event(7, "2026-01-01T00:00:00.000000Z", event)
    again = AuditRecord.from_row(record.to_row())
    assert again == record
    assert again.canonical() == record.canonical()

"""Protect benchmark: encrypt and decrypt one 2 GiB file, warm cache, modelseal vs peers.

Peers, in the same run and on the same file: Google ``tink`` (Python, its streaming AEAD
``AES256_GCM_HKDF_1MB`` with the same keyset) and the ``age`` command-line tool (Debian package;
X25519 + ChaCha20-Poly1305). The limit is ``cryptography``'s raw AES-256-GCM throughput on
1 MiB segments in memory, on every usable core (threads; no I/O, no file system).

Every command is timed as a whole program (interpreter start-up included), rounds interleaved,
medians reported. modelseal fsyncs its output before the atomic rename (fail-closed, crash-safe);
tink and age do not. Targets (issue 6): >= 2x tink on encrypt and on decrypt, and >= 70 % of the
raw AES-GCM limit on 2 cores.

    .venv/bin/python bench/bench_crypto.py [--runs 3] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

PEERS = {"tink": "1.16.1", "moto": None, "boto3": None}
AD = "model=bench;version=1"
SEGMENT = 1 << 20


def tink_peer(operation: str, keyset: str, src: str, dst: str) -> None:
    """The tink side of the benchmark, run as its own process (``--tink-peer``)."""
    from tink import JsonKeysetReader, cleartext_keyset_handle, streaming_aead

    streaming_aead.register()
    with open(keyset, encoding="utf-8") as fh:
        handle = cleartext_keyset_handle.read(JsonKeysetReader(fh.read()))
    primitive = handle.primitive(streaming_aead.StreamingAead)
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        if operation == "encrypt":
            with primitive.new_encrypting_stream(fout, AD.encode()) as stream:
                shutil.copyfileobj(fin, stream, SEGMENT)
        else:
            with primitive.new_decrypting_stream(fin, AD.encode()) as stream:
                shutil.copyfileobj(stream, fout, SEGMENT)


def raw_aes_gcm_rate(total: int, threads: int) -> float:
    """Bytes/s of AES-256-GCM ``encrypt_into`` over 1 MiB segments on ``threads`` threads."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    plain = c.random_block(SEGMENT, seed=11)
    count = max(1, total // SEGMENT)

    def work(share: int) -> None:
        out = bytearray(SEGMENT + 16)
        for i in range(share):
            aead.encrypt_into(i.to_bytes(12, "big"), plain, None, out)

    shares = [count // threads + (1 if i < count % threads else 0) for i in range(threads)]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(work, shares))
    return count * SEGMENT / (time.perf_counter() - start)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb", buffering=0) as fh:
        while chunk := fh.read(8 * c.MiB):
            digest.update(chunk)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per command")
    parser.add_argument("--scale", type=float, default=1.0, help="data size factor (smoke)")
    parser.add_argument("--tink-peer", nargs=4, metavar=("OP", "KEYSET", "IN", "OUT"))
    args, _ = parser.parse_known_args(argv)  # run_all passes every benchmark the same flags
    if args.tink_peer:
        tink_peer(*args.tink_peer)
        return 0
    c.ensure_requirements(PEERS, extra="crypto-test")
    age = shutil.which("age")
    age_keygen = shutil.which("age-keygen")
    if age is None or age_keygen is None:
        raise c.BenchError("age not found; install the Debian package: apt-get install age")
    age_version = subprocess.run(
        [age, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    size = max(SEGMENT, int(2 * c.GiB * args.scale))
    machine = c.machine_info()
    with c.scratch_dir("modelseal-bench-crypto-", need_bytes=5 * size) as work:
        plain = work / "model.bin"
        c.write_file(plain, size, c.random_block())
        keyset = work / "keyset.json"
        c.run_once([c.script("modelseal"), "keys", "create", str(keyset), "--no-passphrase"])
        identity = work / "age.key"
        c.run_once([age_keygen, "-o", str(identity)])
        recipient = next(
            line.split(":", 1)[1].strip()
            for line in identity.read_text().splitlines()
            if line.startswith("# public key:")
        )
        ms, py, me = c.script("modelseal"), sys.executable, str(Path(__file__).resolve())
        enc = {n: work / f"{n}.enc" for n in ("modelseal", "tink", "age")}
        dec = {n: work / f"{n}.dec" for n in ("modelseal", "tink", "age")}
        key = ["--keyset", str(keyset), "--associated-data", AD, "--force"]
        encrypts = [
            c.Series("modelseal encrypt", [ms, "encrypt", str(plain), str(enc["modelseal"]), *key]),
            c.Series(
                "tink encrypt",
                [py, me, "--tink-peer", "encrypt", str(keyset), str(plain), str(enc["tink"])],
            ),
            c.Series("age encrypt", [age, "-r", recipient, "-o", str(enc["age"]), str(plain)]),
        ]
        decrypts = [
            c.Series(
                "modelseal decrypt",
                [ms, "decrypt", str(enc["modelseal"]), str(dec["modelseal"]), *key],
            ),
            c.Series(
                "tink decrypt",
                [py, me, "--tink-peer", "decrypt", str(keyset), str(enc["tink"]), str(dec["tink"])],
            ),
            c.Series(
                "age decrypt",
                [age, "-d", "-i", str(identity), "-o", str(dec["age"]), str(enc["age"])],
            ),
        ]
        conditions: dict[str, Any] = {}
        for label, group in (("encrypt", encrypts), ("decrypt", decrypts)):
            print(f"timing {label} ({size / c.GiB:.2f} GiB, {args.runs} runs)", flush=True)
            if label == "decrypt":  # outputs of the encrypt rounds are the inputs now
                for path in enc.values():
                    c.warm_cache(path)
            else:
                c.warm_cache(plain)
            c.settle()
            conditions[label] = c.wait_for_quiet()
            c.time_rounds(group, runs=args.runs, warmup=1)
        # Untimed checks: every output is right, and the formats interoperate both ways.
        expected = sha256_file(plain)
        for name, path in dec.items():
            if sha256_file(path) != expected:
                raise c.BenchError(f"{name} decrypted to different bytes")
        cross = work / "cross.dec"
        tink_peer("decrypt", str(keyset), str(enc["modelseal"]), str(cross))
        if sha256_file(cross) != expected:
            raise c.BenchError("tink could not decrypt modelseal's ciphertext")
        print("timing the raw AES-GCM limit", flush=True)
        conditions["raw"] = c.wait_for_quiet()
        rates_1 = [raw_aes_gcm_rate(size, 1) for _ in range(3)]
        rates_n = [raw_aes_gcm_rate(size, c.cores()) for _ in range(3)]
    limit = max(max(rates_1), max(rates_n))  # noise only lowers a rate: keep the best
    by_label = {s.label: s for s in [*encrypts, *decrypts]}

    def rate(label: str) -> float:
        return size / by_label[label].median

    rows = []
    for label in by_label:
        rows.append(
            [
                label,
                f"{by_label[label].median:.2f}",
                f"{rate(label) / c.GiB:.2f}",
                f"{rate(label) / limit:.0%}",
            ]
        )
    targets = []
    for op in ("encrypt", "decrypt"):
        speedup = rate(f"modelseal {op}") / rate(f"tink {op}")
        targets.append(
            [f"{op}: modelseal vs tink", f"{speedup:.2f}x", ">= 2x", c.verdict(speedup >= 2)]
        )
        share = rate(f"modelseal {op}") / limit
        targets.append(
            [f"{op}: share of raw AES-GCM", f"{share:.0%}", ">= 70%", c.verdict(share >= 0.7)]
        )
        vs_age = rate(f"modelseal {op}") / rate(f"age {op}")
        targets.append([f"{op}: modelseal vs age", f"{vs_age:.2f}x", "(reported)", "-"])
    headers = ["Command", "Median s", "GiB/s", "Of AES-GCM limit"]
    target_headers = ["Target", "Measured", "Goal", "Verdict"]
    results = {
        "benchmark": "crypto",
        "scale": args.scale,
        "bytes": size,
        "machine": machine,
        "loadavg_after": c.load_average(),
        "conditions": conditions,
        "versions": {d: c.dist_version(d) for d in ("modelseal", "tink", "cryptography")}
        | {"age": age_version},
        "limit": {
            "raw_aes_gcm_1_thread_gib_s": [round(r / c.GiB, 3) for r in rates_1],
            f"raw_aes_gcm_{c.cores()}_threads_gib_s": [round(r / c.GiB, 3) for r in rates_n],
            "limit_gib_s": round(limit / c.GiB, 3),
            "median_1_thread_gib_s": round(statistics.median(rates_1) / c.GiB, 3),
        },
        "rows": [s.as_dict() for s in [*encrypts, *decrypts]],
        "table": {"headers": headers, "rows": rows},
        "targets": {"headers": target_headers, "rows": targets},
    }
    print()
    print(c.text_table(headers, rows))
    print()
    print(c.text_table(target_headers, targets))
    print()
    print(c.markdown_table(headers, rows))
    print()
    print(c.markdown_table(target_headers, targets))
    print(f"\nraw AES-256-GCM limit: {limit / c.GiB:.2f} GiB/s ({c.cores()} cores)")
    print(f"results written to {c.write_results('crypto', results)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except c.BenchError as err:
        print(f"bench_crypto: error: {err}", file=sys.stderr)
        sys.exit(1)

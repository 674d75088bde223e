#!/usr/bin/env bash
# modelseal demo: make a small real model, make a key, sign, verify, tamper one byte, verify again.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=demo/out
rm -rf "$OUT"
mkdir -p "$OUT"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@" 2>&1; }

say "1. A small real model (safetensors weights + config)"
run python demo/make_model.py "$OUT/tiny-mlp"
ls -l "$OUT/tiny-mlp"

say "2. A signing key: ECDSA P-256, private key passphrase-protected (PKCS#8) and mode 0600"
# The demo passes the passphrase through the environment; interactively you would be prompted.
export MODELSEAL_PASSPHRASE="demo passphrase, not a secret"
run modelseal keygen --algorithm ecdsa-p256 --private-key "$OUT/signer.key" --public-key "$OUT/signer.pub"
ls -l "$OUT/signer.key" "$OUT/signer.pub"

say "3. Sign: hash every file and write an OpenSSF Model Signing bundle"
run modelseal sign "$OUT/tiny-mlp" --private-key "$OUT/signer.key" --signature "$OUT/tiny-mlp.sig"

say "4. Verify the untouched model (exit 0)"
run modelseal verify "$OUT/tiny-mlp" --signature "$OUT/tiny-mlp.sig" --public-key "$OUT/signer.pub"

say "5. Tamper: flip one byte of one weight"
python - "$OUT/tiny-mlp/model.safetensors" <<'PY'
import sys
path = sys.argv[1]
with open(path, "r+b") as fh:
    fh.seek(4096)
    byte = fh.read(1)
    fh.seek(4096)
    fh.write(bytes([byte[0] ^ 0x01]))
print(f"flipped bit 0 of byte 4096 in {path}")
PY

say "6. Verify again: it fails (exit 1) and says exactly what changed"
set +e
run modelseal verify "$OUT/tiny-mlp" --signature "$OUT/tiny-mlp.sig" --public-key "$OUT/signer.pub"
code=$?
set -e
echo "exit code: $code"
if [ "$code" -ne 1 ]; then
  echo "demo: expected the tampered model to fail verification with exit code 1" >&2
  exit 1
fi

say "Done. Everything the demo wrote is in $OUT/."

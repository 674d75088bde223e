#!/usr/bin/env bash
# modelseal demo: make a small real model, make a key, sign, verify, tamper one byte, verify again;
# then scan, load from the verified bytes, encrypt at rest, publish to the embedded registry, and
# promote to production only with the gate's signed decision; serve a promoted model and ask it.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${MODELSEAL_DEMO_OUT:-demo/out}
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

expect() {  # expect CODE COMMAND...: run it, show its output, insist on its exit code
  local want=$1
  shift
  set +e
  run "$@"
  local got=$?
  set -e
  echo "exit code: $got"
  if [ "$got" -ne "$want" ]; then
    echo "demo: expected exit code $want from: $*" >&2
    exit 1
  fi
}

say "7. Undo the tampering: the model verifies again"
python - "$OUT/tiny-mlp/model.safetensors" <<'PY'
import sys
with open(sys.argv[1], "r+b") as fh:
    fh.seek(4096)
    byte = fh.read(1)
    fh.seek(4096)
    fh.write(bytes([byte[0] ^ 0x01]))
PY
expect 0 modelseal verify "$OUT/tiny-mlp" --signature "$OUT/tiny-mlp.sig" --public-key "$OUT/signer.pub"

say "8. Scan before loading: a pickle that would run a shell command (built as bytes, never run)"
printf "cos\nsystem\n(S'touch %s/pwned'\ntR." "$OUT" > "$OUT/evil.pkl"
expect 1 modelseal scan "$OUT/evil.pkl"
expect 0 modelseal scan "$OUT/tiny-mlp"
test ! -e "$OUT/pwned" || { echo "demo: the payload ran" >&2; exit 1; }

say "9. Verified load: verify, scan and load exactly the bytes that were hashed"
expect 0 modelseal load-check "$OUT/tiny-mlp" --signature "$OUT/tiny-mlp.sig" --public-key "$OUT/signer.pub"

say "10. Encryption at rest: Tink-compatible streaming AEAD, bound to the model's name and version"
run modelseal keys create "$OUT/keyset.json"
run modelseal encrypt "$OUT/tiny-mlp" "$OUT/tiny-mlp.enc" --keyset "$OUT/keyset.json" --associated-data tiny-mlp:1
echo "load from the ciphertext: decrypted in memory only, then verified, scanned and loaded"
expect 0 modelseal load-check "$OUT/tiny-mlp.enc" --signature "$OUT/tiny-mlp.sig" --public-key "$OUT/signer.pub" \
  --keyset "$OUT/keyset.json" --associated-data tiny-mlp:1
echo "the same ciphertext presented as another version is refused:"
expect 1 modelseal load-check "$OUT/tiny-mlp.enc" --signature "$OUT/tiny-mlp.sig" --public-key "$OUT/signer.pub" \
  --keyset "$OUT/keyset.json" --associated-data tiny-mlp:2

say "11. The registry (embedded: SQLite and a local folder in \$MODELSEAL_HOME, no server)"
export MODELSEAL_HOME="$OUT/home"
run modelseal env capture --output "$OUT/environment.json"
expect 0 modelseal push "$OUT/tiny-mlp" --name tiny-mlp --signature "$OUT/tiny-mlp.sig" \
  --public-key "$OUT/signer.pub" --environment "$OUT/environment.json" --metadata owner=demo-team

say "12. A second version from a compromised training job: backdoored weights, signed with a key nobody trusts"
cp -r "$OUT/tiny-mlp" "$OUT/tiny-mlp-rogue"
python - "$OUT/tiny-mlp-rogue/model.safetensors" <<'PY'
import sys
with open(sys.argv[1], "r+b") as fh:  # the attacker's change to one weight
    fh.seek(8192)
    byte = fh.read(1)
    fh.seek(8192)
    fh.write(bytes([byte[0] ^ 0x40]))
PY
run modelseal keygen --private-key "$OUT/rogue.key" --public-key "$OUT/rogue.pub" --no-passphrase
run modelseal sign "$OUT/tiny-mlp-rogue" --private-key "$OUT/rogue.key" --signature "$OUT/rogue.sig"
expect 0 modelseal push "$OUT/tiny-mlp-rogue" --name tiny-mlp --signature "$OUT/rogue.sig" \
  --public-key "$OUT/rogue.pub" --environment "$OUT/environment.json" --metadata owner=demo-team

say "13. production is protected: nothing moves there without the gate's signed decision"
expect 1 modelseal alias set tiny-mlp production 1
run modelseal keygen --private-key "$OUT/gate.key" --public-key "$OUT/gate.pub"
expect 0 modelseal registry trust add "$OUT/gate.pub" --name "release gate" --purpose gate
cat > "$OUT/release.yaml" <<YAML
version: 1
name: release
signature:
  keys: [{name: training CI, path: signer.pub}]
scan: {max_severity: low}
environment: {python: minor, packages: [modelseal, numpy]}
rules:
  - {name: owned, expression: 'has(metadata.owner)', message: "the model has no owner"}
YAML
run cat "$OUT/release.yaml"

say "14. The gate on the rogue version: it fails (exit 1), and says why"
expect 1 modelseal gate tiny-mlp:2 --policy "$OUT/release.yaml" \
  --attest "$OUT/v2.intoto.jsonl" --gate-key "$OUT/gate.key"
expect 0 modelseal attest attach tiny-mlp:2 "$OUT/v2.intoto.jsonl"
echo "its FAILED decision is stored, and production refuses version 2:"
expect 1 modelseal alias set tiny-mlp production 2

say "15. The gate on the good version: it passes; attach the signed decision, then promote"
expect 0 modelseal gate tiny-mlp:1 --policy "$OUT/release.yaml" \
  --attest "$OUT/v1.intoto.jsonl" --gate-key "$OUT/gate.key"
digest=$(modelseal versions show tiny-mlp:1 --json | python -c 'import json,sys; print(json.load(sys.stdin)["root_digest"]["sha256"])')
expect 0 modelseal attest verify "$OUT/v1.intoto.jsonl" --public-key "$OUT/gate.pub" --digest "$digest"
expect 0 modelseal attest attach tiny-mlp:1 "$OUT/v1.intoto.jsonl"
expect 0 modelseal alias set tiny-mlp production 1
expect 0 modelseal pull tiny-mlp@production "$OUT/deployed" --public-key "$OUT/signer.pub"
run modelseal versions list tiny-mlp
echo "every change above is a record in a Merkle log; verify it end to end:"
expect 0 modelseal audit verify

say "16. Serve: a churn model, trained, signed, pushed with its input signature, gated, promoted"
python demo/make_churn.py "$OUT/churn"
run modelseal sign "$OUT/churn/model.txt" --private-key "$OUT/signer.key" --signature "$OUT/churn.sig"
expect 0 modelseal push "$OUT/churn/model.txt" --name churn --signature "$OUT/churn.sig" \
  --public-key "$OUT/signer.pub" --environment "$OUT/environment.json" --metadata owner=demo-team \
  --input-signature "$OUT/churn/signature.json"
expect 0 modelseal gate churn:1 --policy "$OUT/release.yaml" --attest "$OUT/churn.intoto.jsonl" \
  --gate-key "$OUT/gate.key"
expect 0 modelseal attest attach churn:1 "$OUT/churn.intoto.jsonl"
expect 0 modelseal alias set churn production 1
echo "an application's token may only ask churn* models for predictions:"
expect 0 modelseal user create churn-app
expect 0 modelseal role grant churn-app inference-client --scope 'churn*'
expect 0 modelseal token create churn-app --output "$OUT/churn-app.token"
PORT=${MODELSEAL_DEMO_PORT:-8089}
echo "$ modelseal serve --model churn@production --gate-key $OUT/gate.pub --port $PORT &"
modelseal serve --model churn@production --gate-key "$OUT/gate.pub" --port "$PORT" \
  >"$OUT/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do
  curl -sf "http://127.0.0.1:$PORT/v2/health/ready" >/dev/null 2>&1 && break
  kill -0 $SERVER 2>/dev/null || { cat "$OUT/serve.log" >&2; echo "demo: the server stopped" >&2; exit 1; }
  sleep 0.2
done
run curl -s "http://127.0.0.1:$PORT/v2/models/churn"
echo
echo "one request, with the application's token (curl reads the header from a 0600 file, so the"
echo "token is never printed):"
( umask 077; printf 'Authorization: Bearer %s\n' "$(cat "$OUT/churn-app.token")" >"$OUT/churn-app.header" )
run curl -s -H @"$OUT/churn-app.header" \
  "http://127.0.0.1:$PORT/v2/models/churn/infer" \
  -d '{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP64","data":[0.5,-0.2,1.1,0.3]}]}'
echo
echo "a value outside the recorded range is refused before the model runs:"
run curl -s -H @"$OUT/churn-app.header" \
  "http://127.0.0.1:$PORT/v2/models/churn/infer" \
  -d '{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP64","data":[99,0,0,0]}]}'
echo
kill $SERVER
wait $SERVER 2>/dev/null || true
trap - EXIT

say "Done. Everything the demo wrote is in $OUT/."

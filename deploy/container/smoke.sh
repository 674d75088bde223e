#!/usr/bin/env bash
# Run the image build-local.sh made the way deploy/k8s/deployment.yaml runs it, and check it:
#
#   sudo deploy/container/smoke.sh          # or: sudo make image-smoke
#
# As the Deployment: user 10001:10001, a read-only root filesystem with only /tmp, $HOME and
# MODELSEAL_HOME writable (tmpfs here, emptyDirs there), every capability dropped, no privilege
# escalation (no-new-privileges), the runtime's default seccomp profile. The server serves one
# model from disk: a tiny scikit-learn classifier, signed with a key made for the run (model,
# key and signature are made by the image itself, in a temporary folder, with no network).
# Checks: uid/gid 10001, no compiler, no pip, the root filesystem refuses writes, the init
# container's command (install the audit key 0600), /v2/health/ready is 200, one inference.
set -euo pipefail

IMAGE=${IMAGE:-localhost/modelseal-serve:dev}
PORT=${PORT:-18080}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/container/podman-opts.sh
. "$HERE/podman-opts.sh"

die() { echo "smoke: FAILED: $*" >&2; exit 1; }
step() { echo "smoke: $*"; }
[ "$(id -u)" -eq 0 ] || die "run as root (rootful podman)"
command -v curl >/dev/null || die "curl is missing"
podman image exists "$IMAGE" || die "no image $IMAGE (run deploy/container/build-local.sh)"

name="modelseal-smoke-$$"
work=$(mktemp -d "${TMPDIR:-/var/tmp}/modelseal-smoke.XXXXXX")
cleanup() { podman rm -f -t 5 "$name" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir "$work/model" "$work/audit-secret"
chown -R 10001:10001 "$work"

# `:U` makes the tmpfs belong to the container's user, as fsGroup does for the emptyDirs; a
# plain --tmpfs is root's 0755 there, so the server could not write its home.
restricted=("${podman_opts[@]}" --user 10001:10001 --read-only --read-only-tmpfs=false
    --tmpfs /tmp --tmpfs /home/modelseal:U --tmpfs /var/lib/modelseal:U
    --cap-drop=ALL --security-opt no-new-privileges)
offline() { podman run --rm "${restricted[@]}" --network none -v "$work:/work" "$@"; }

step "a model, a key pair and the signature (by the image, offline)"
offline --entrypoint python "$IMAGE" -c '
import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True)
joblib.dump(LogisticRegression(max_iter=500).fit(X, y), "/work/model/iris.joblib")'
offline --entrypoint modelseal "$IMAGE" keygen --no-passphrase \
    --private-key /work/signer.key --public-key /work/signer.pub
offline --entrypoint modelseal "$IMAGE" sign /work/model/iris.joblib \
    --private-key /work/signer.key --signature /work/iris.sig

step "inside the image: user, no compiler, no pip, read-only root filesystem"
# shellcheck disable=SC2016  # expanded by the container's shell
offline --entrypoint /bin/sh "$IMAGE" -c '
set -u
[ "$(id -u):$(id -g)" = 10001:10001 ] || { echo "runs as $(id)"; exit 1; }
for c in gcc cc c++ g++ clang ld as make; do
    if command -v "$c" >/dev/null; then echo "compiler present: $(command -v "$c")"; exit 1; fi
done
if python -c "import pip" 2>/dev/null; then echo "pip present"; exit 1; fi
for f in /x /usr/local/x /etc/x; do
    if touch "$f" 2>/dev/null; then echo "root filesystem writable: $f"; exit 1; fi
done
grep -q " / overlay ro," /proc/mounts || { echo "root not mounted ro"; exit 1; }
for d in /tmp /home/modelseal /var/lib/modelseal; do
    touch "$d/.w" || { echo "volume not writable: $d"; exit 1; }
done
id; echo "no compiler, no pip; / is read-only; the three volumes are writable"
' || die "image checks"

step "the init container's command (a placeholder key file, root:10001 0440 like the Secret)"
echo "placeholder, not a key" >"$work/audit-secret/log-key.pem"
chown 0:10001 "$work/audit-secret/log-key.pem"
chmod 0440 "$work/audit-secret/log-key.pem"
podman run --rm "${restricted[@]}" --network none \
    -v "$work/audit-secret:/etc/modelseal/audit:ro" --entrypoint /bin/sh "$IMAGE" -c '
install -d -m 0700 /var/lib/modelseal/audit \
  && install -m 0600 /etc/modelseal/audit/log-key.pem /var/lib/modelseal/audit/log-key.pem \
  && stat -c "%a %u:%g %n" /var/lib/modelseal/audit/log-key.pem' || die "init container command"

step "serve the signed model (--no-auth) on 127.0.0.1:$PORT"
podman run -d --name "$name" "${restricted[@]}" -p "127.0.0.1:$PORT:8080" \
    -v "$work/model:/models/iris:ro" -v "$work/iris.sig:/etc/modelseal/iris.sig:ro" \
    -v "$work/signer.pub:/etc/modelseal/signer.pub:ro" "$IMAGE" \
    --model iris=/models/iris/iris.joblib --signature /etc/modelseal/iris.sig \
    --public-key /etc/modelseal/signer.pub --no-auth --host 0.0.0.0 --port 8080 >/dev/null
start=$(date +%s%N)
for _ in $(seq 120); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "127.0.0.1:$PORT/v2/health/ready" || true)
    [ "$code" = 200 ] && break
    if [ "$(podman inspect -f '{{.State.Running}}' "$name")" != true ]; then
        podman logs "$name" >&2
        die "the server exited"
    fi
    sleep 0.5
done
[ "$code" = 200 ] || { podman logs "$name" >&2; die "/v2/health/ready answered $code"; }
step "ready after $(( ($(date +%s%N) - start) / 1000000 )) ms: $(curl -s "127.0.0.1:$PORT/v2/health/ready")"
podman exec "$name" grep -E '^(Uid|Gid|CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/1/status \
    | tr '\t' ' '
answer=$(curl -s -w '\n%{http_code}' -H 'Content-Type: application/json' \
    "127.0.0.1:$PORT/v2/models/iris/infer" \
    -d '{"inputs":[{"name":"input-0","shape":[2,4],"datatype":"FP64","data":[5.1,3.5,1.4,0.2,6.7,3.0,5.2,2.3]}]}')
step "infer: $answer" | tr '\n' ' '; echo
[ "$(tail -n1 <<<"$answer")" = 200 ] || die "inference did not answer 200"
grep -q '"data":\[0,2\]' <<<"$answer" || die "unexpected classes (setosa=0, virginica=2)"
podman stop -t 30 "$name" >/dev/null
step "stopped (exit code $(podman inspect -f '{{.State.ExitCode}}' "$name")); all checks passed"

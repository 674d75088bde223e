#!/usr/bin/env bash
# Build the inference server image (deploy/container/Containerfile) on a machine that reaches
# Debian's mirror and PyPI but no image registry (so python:3.11-slim-bookworm cannot be pulled).
#
#   sudo deploy/container/build-local.sh          # or: sudo make image
#
# 1. The base: unless it exists already (REBUILD_BASE=1 to remake it), debootstrap a minimal
#    Debian bookworm with its python3 (3.11), venv, `python` and the CA certificates, add pip
#    and setuptools under /usr/local (as the official image has them), and import it as
#    $BASE_IMAGE. Debian marks its Python "externally managed" (PEP 668: pip refuses to install
#    into it); the official image's Python is not, so the marker is removed in this BASE image,
#    never worked around in the Containerfile.
# 2. The image: `podman build` of the Containerfile, unchanged, with PYTHON_IMAGE=$BASE_IMAGE,
#    tagged $IMAGE. deploy/container/smoke.sh then runs it as deploy/k8s/deployment.yaml does.
#
# Behind a proxy that intercepts TLS, BUILD_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt (a
# bundle that trusts the proxy) is bind-mounted read-only over the image's bundle during the
# build's RUN steps only (Debian's pip reads that bundle), so none of it is in the image.
#
# Needs root, podman and debootstrap (Debian packages `podman`, `debootstrap`). Nothing is
# written into the repository: the root filesystem is made in a temporary folder and removed.
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-localhost/python:3.11-slim-bookworm}
IMAGE=${IMAGE:-localhost/modelseal-serve:dev}
EXTRAS=${EXTRAS:-serve,sklearn,xgboost,lightgbm,onnx}
SUITE=${SUITE:-bookworm}
# The mirrors this machine's apt uses (deb822 .sources or one-line sources.list), unless given.
apt_uri() {  # apt_uri SUFFIX: the first configured URI whose path ends with SUFFIX ("" if none)
    local found=() file
    for file in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list; do
        [ -f "$file" ] && found+=("$file")
    done
    [ "${#found[@]}" -gt 0 ] || return 0
    grep -hoE '^(URIs:[[:space:]]*|deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)[a-z]+://[^[:space:]]+' \
        "${found[@]}" | grep -oE '[a-z]+://[^[:space:]]+' | grep -E "$1/?\$" | head -1 || true
}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-$(apt_uri '/debian')}
SECURITY_MIRROR=${SECURITY_MIRROR:-$(apt_uri '/debian-security')}
# host: the build's RUN steps use the host's network, DNS and proxy routes to reach PyPI;
# NETWORK=private gives them podman's own network instead.
NETWORK=${NETWORK:-host}
REBUILD_BASE=${REBUILD_BASE:-0}
BUILD_CA_BUNDLE=${BUILD_CA_BUNDLE:-}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

die() { echo "build-local: $*" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap and rootful podman)"
command -v podman >/dev/null || die "podman is missing (apt-get install podman)"
if [ -z "$DEBIAN_MIRROR" ] || [ -z "$SECURITY_MIRROR" ]; then
    die "no Debian mirror found in /etc/apt; give DEBIAN_MIRROR=URL and SECURITY_MIRROR=URL"
fi

make_base() {
    command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"
    local work root
    work=$(mktemp -d "${TMPDIR:-/var/tmp}/modelseal-base.XXXXXX")
    root="$work/rootfs"
    # shellcheck disable=SC2064
    trap "umount -l '$root/proc' 2>/dev/null || true; rm -rf --one-file-system '$work'" EXIT
    echo "build-local: debootstrap $SUITE from $DEBIAN_MIRROR"
    debootstrap --variant=minbase \
        --include=python3,python3-venv,python-is-python3,ca-certificates,netbase,tzdata \
        "$SUITE" "$root" "$DEBIAN_MIRROR" >"$work/debootstrap.log" 2>&1 \
        || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
    cat >"$root/etc/apt/sources.list" <<EOF
deb $DEBIAN_MIRROR $SUITE main
deb $DEBIAN_MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
EOF
    mount -t proc proc "$root/proc"
    # env -i: none of the host's PIP_*/PYTHON* settings reach the chroot.
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root DEBIAN_FRONTEND=noninteractive \
        LC_ALL=C.UTF-8 chroot "$root" /bin/sh -eu <<'EOF'
apt-get update -qq
apt-get upgrade -y -qq >/dev/null
# PEP 668: the official python image's interpreter takes pip installs; Debian's refuses them.
rm -f /usr/lib/python3*/EXTERNALLY-MANAGED
# pip and setuptools under /usr/local, like the official image (Debian disables ensurepip for
# its system python; these are the wheels python3-venv bundles, which pip installs offline).
w=/usr/share/python-wheels
python "$(ls $w/pip-*.whl)/pip" install --quiet --no-index --no-cache-dir $w/pip-*.whl \
    $w/setuptools-*.whl
python -m pip --version
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt/* /var/cache/debconf/*-old \
    /usr/share/man/* /usr/share/info/* /root/.cache
find /usr/share/doc -type f ! -name copyright -delete
find / -xdev -name __pycache__ -type d -prune -exec rm -rf {} +
: >/etc/resolv.conf
: >/etc/hostname
EOF
    umount "$root/proc"
    echo "build-local: importing the base as $BASE_IMAGE"
    tar --numeric-owner -C "$root" -c . | podman import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        - "$BASE_IMAGE" >/dev/null
    rm -rf "$work"
    trap - EXIT
}

if [ "$REBUILD_BASE" = 1 ] || ! podman image exists "$BASE_IMAGE"; then
    make_base
else
    echo "build-local: using the existing base $BASE_IMAGE (REBUILD_BASE=1 remakes it)"
fi

# shellcheck source=deploy/container/podman-opts.sh
. "$REPO/deploy/container/podman-opts.sh"
opts=("${podman_opts[@]}")
if [ -n "$BUILD_CA_BUNDLE" ]; then
    [ -f "$BUILD_CA_BUNDLE" ] || die "BUILD_CA_BUNDLE $BUILD_CA_BUNDLE is not a file"
    opts+=(--volume "$(realpath "$BUILD_CA_BUNDLE"):/etc/ssl/certs/ca-certificates.crt:ro")
fi

echo "build-local: building $IMAGE"
podman build --pull=never --network "$NETWORK" "${opts[@]}" \
    --build-arg "PYTHON_IMAGE=$BASE_IMAGE" --build-arg "EXTRAS=$EXTRAS" \
    -f "$REPO/deploy/container/Containerfile" -t "$IMAGE" "$REPO"
podman image ls "$IMAGE"

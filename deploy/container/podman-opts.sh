# shellcheck shell=bash
# Sourced by build-local.sh and smoke.sh: the podman options this machine needs, in the array
# `podman_opts` (for `podman build` and `podman run` alike).
#
# - Limits podman can set without CAP_SYS_RESOURCE: podman asks for nofile 1048576 by default,
#   which the kernel refuses where the host's hard limit is lower (as in a sandbox):
#   "setrlimit `RLIMIT_NOFILE`: Operation not permitted: OCI permission denied".
# - The OCI runtime: crun refuses a hybrid cgroup v1/v2 layout (/sys/fs/cgroup/unified):
#   "cgroups in hybrid mode not supported, drop all controllers from cgroupv2"; runc takes it.
#   RUNTIME=... chooses one explicitly.
nofile=$(ulimit -Hn)
{ [ "$nofile" = unlimited ] || [ "$nofile" -gt 1048576 ]; } && nofile=1048576
nproc=$(ulimit -Hu)
{ [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; } && nproc=32768
podman_opts=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")
if [ -z "${RUNTIME:-}" ] && [ -d /sys/fs/cgroup/unified ] && command -v runc >/dev/null; then
    RUNTIME=runc
fi
[ -z "${RUNTIME:-}" ] || podman_opts+=(--runtime "$RUNTIME")

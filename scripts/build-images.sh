#!/usr/bin/env bash
# Build the local Docker test images benchscale/busybox:latest and
# benchscale/nettest:latest (the same plus iperf3 and socat, at the end).
#
# No image registry is reachable from the build/test machines, so nothing
# can be pulled: the image is made from Debian's busybox-static package, a
# root filesystem with /bin/busybox plus a symlink for every applet, packed
# with tar and loaded with `docker import`.
#
# Idempotent: the image carries a label with a hash of its inputs (the
# busybox binary and this script). When an image with the same hash exists
# the build is skipped; --force rebuilds anyway. A smoke test
# (`echo ok` in a container) runs every time.
#
# Needs: root (or docker access), a running dockerd and busybox-static, both
# provided by scripts/setup-host.sh.
set -euo pipefail

IMAGE="benchscale/busybox:latest"
LABEL="benchscale.content-hash"
BUSYBOX=/bin/busybox

log() { printf 'build-images: %s\n' "$*"; }
die() { printf 'build-images: ERROR: %s\n' "$*" >&2; exit 1; }

# import_rootfs ROOT IMAGE HASH WHAT OLD_ID: packs the folder ROOT as a
# reproducible tarball (fixed order, owner and mtime), imports it as IMAGE
# labelled with HASH, and drops OLD_ID, the previous build, now untagged
# (unless a container uses it).
import_rootfs() {
    local root="$1" image="$2" hash="$3" what="$4" old_id="$5" tarball new_id
    tarball="$(dirname "$root")/rootfs.tar"
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
        -C "$root" -cf "$tarball" .
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/sh"]' \
        --change "LABEL $LABEL=$hash" \
        --message "benchscale $what ($hash)" \
        "$tarball" "$image" >/dev/null
    new_id="$(docker image inspect -f '{{.Id}}' "$image")"
    if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
        docker image rm "$old_id" >/dev/null 2>&1 || true
    fi
    log "built $image ($new_id)"
}

force=0
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        -h|--help) echo "usage: $0 [--force]"; exit 0 ;;
        *) die "unknown argument: $arg (usage: $0 [--force])" ;;
    esac
done

[ -x "$BUSYBOX" ] || die "$BUSYBOX not found: run scripts/setup-host.sh first (package busybox-static)"
# busybox from the non-static 'busybox' package would need shared libraries
# that are not in the image.
if ldd "$BUSYBOX" >/dev/null 2>&1; then
    die "$BUSYBOX is dynamically linked: install busybox-static (scripts/setup-host.sh)"
fi
timeout 20 docker info >/dev/null 2>&1 || die "docker does not answer: run scripts/setup-host.sh first"

# Hash of everything that determines the image content.
hash="$(cat "$BUSYBOX" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"

current="$(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$IMAGE" 2>/dev/null || true)"
if [ "$force" = 0 ] && [ "$current" = "$hash" ]; then
    log "$IMAGE is up to date ($LABEL=$hash)"
else
    old_id="$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
    log "building $IMAGE ($LABEL=$hash)"

    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    root="$work/rootfs"
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,proc,sys,dev,var/www,var/run,run,tmp}
    chmod 1777 "$root/tmp"
    chmod 700 "$root/root"
    cp "$BUSYBOX" "$root/bin/busybox"

    # One symlink per applet, at the path busybox itself would install it
    # (--list-full prints e.g. "bin/sh", "sbin/ifconfig", "usr/bin/wget").
    # Same as `busybox --install -s`, without needing a chroot.
    "$BUSYBOX" --list-full | while read -r path; do
        [ "$path" = bin/busybox ] && continue
        mkdir -p "$root/$(dirname "$path")"
        ln -sf /bin/busybox "$root/$path"
    done

    # Minimal accounts: some applets (httpd, ps, id, ls -l) look these up.
    cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat >"$root/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
    # Docker bind-mounts /etc/hosts, /etc/hostname and /etc/resolv.conf at
    # run time, but they must exist as mount points in the image.
    : >"$root/etc/hosts"; : >"$root/etc/hostname"; : >"$root/etc/resolv.conf"

    import_rootfs "$root" "$IMAGE" "$hash" "busybox test image" "$old_id"
fi

# Smoke test: the image must run a command.
out="$(timeout 60 docker run --rm "$IMAGE" echo ok 2>&1)" || die "docker run $IMAGE echo ok failed: $out"
[ "$out" = ok ] || die "docker run $IMAGE echo ok printed '$out', expected 'ok'"
log "smoke test passed (docker run --rm $IMAGE echo ok)"

# --- benchscale/nettest:latest: the busybox image plus iperf3 and socat ---
# What the network-condition tests measure with: busybox's ping and nc, and
# iperf3 from Debian's package; socat, for relays that pair two connections
# (the remote-desktop example). Both are installed on the host by
# setup-host.sh and copied in with the shared libraries they link, so that
# nothing is pulled.
NETTEST="benchscale/nettest:latest"
IPERF3=/usr/bin/iperf3
SOCAT=/usr/bin/socat
[ -x "$IPERF3" ] || die "$IPERF3 not found: run scripts/setup-host.sh first (package iperf3)"
[ -x "$SOCAT" ] || die "$SOCAT not found: run scripts/setup-host.sh first (package socat)"
libs="$(ldd "$IPERF3" "$SOCAT" | awk '/=> \//{print $3} /^\t\/lib/{print $1}' | sort -u)"
base_id="$(docker image inspect -f '{{.Id}}' "$IMAGE")"
# shellcheck disable=SC2086
nettest_hash="$( { echo "$base_id"; cat "$IPERF3" "$SOCAT" $libs "${BASH_SOURCE[0]}"; } | sha256sum | cut -c1-16)"
current="$(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$NETTEST" 2>/dev/null || true)"
if [ "$force" = 0 ] && [ "$current" = "$nettest_hash" ]; then
    log "$NETTEST is up to date ($LABEL=$nettest_hash)"
else
    old_id="$(docker image inspect -f '{{.Id}}' "$NETTEST" 2>/dev/null || true)"
    log "building $NETTEST ($LABEL=$nettest_hash)"
    nwork="$(mktemp -d)"
    trap 'rm -rf "${work:-}" "$nwork"' EXIT
    nroot="$nwork/rootfs"
    mkdir -p "$nroot"
    cid="$(docker create "$IMAGE" true)"
    docker export "$cid" | tar -x -C "$nroot"
    docker rm "$cid" >/dev/null
    for f in "$IPERF3" "$SOCAT" $libs; do
        mkdir -p "$nroot$(dirname "$f")"
        cp -L "$f" "$nroot$f"
    done
    import_rootfs "$nroot" "$NETTEST" "$nettest_hash" "network test image" "$old_id"
fi
out="$(timeout 60 docker run --rm "$NETTEST" iperf3 --version 2>&1)" || die "docker run $NETTEST iperf3 --version failed: $out"
out2="$(timeout 60 docker run --rm "$NETTEST" socat -V 2>&1 | grep -m1 'socat version')" || die "docker run $NETTEST socat -V failed"
log "smoke test passed ($NETTEST: ${out%%$'\n'*}; $out2)"

#!/usr/bin/env bash
# Prepare this host for benchscale: install Docker, libvirt and QEMU from
# Debian packages and make sure dockerd, virtlogd and libvirtd are running.
#
# Idempotent: on a host that is already set up it runs no apt at all and
# only checks that the three daemons answer (a second or so).
#
# Works both with systemd as PID 1 (uses systemctl) and on machines with no
# init system managing daemons (CI/dev VMs: starts them by hand, detached,
# logging to /var/log/benchscale-<daemon>.log).
#
# Environment:
#   BENCHSCALE_DAEMON_TIMEOUT  seconds to wait for each daemon (default 60)
set -euo pipefail

log() { printf 'setup-host: %s\n' "$*"; }
die() { printf 'setup-host: ERROR: %s\n' "$*" >&2; exit 1; }

# --- root --------------------------------------------------------------------
# Everything below (apt, daemons, /var/log) needs root.
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        log "not root, re-running with sudo"
        exec sudo -E bash "${BASH_SOURCE[0]}" "$@"
    fi
    die "must run as root (and sudo is not available)"
fi

TIMEOUT="${BENCHSCALE_DAEMON_TIMEOUT:-60}"
LOG_DIR=/var/log

# systemd is "booted" iff this directory exists (same test as sd_booted(3)).
if [ -d /run/systemd/system ]; then HAVE_SYSTEMD=1; else HAVE_SYSTEMD=0; fi

# --- packages ------------------------------------------------------------------
# We install with --no-install-recommends to keep the install small and fast,
# so the recommended packages that we actually rely on are listed explicitly.
PACKAGES=(
    # Docker engine (20.10 on bookworm). containerd/runc/tini/iptables are hard
    # dependencies anyway; listed so the intent is visible.
    docker.io containerd runc tini iptables
    xz-utils            # docker.io Recommends: used for compressed image layers/imports
    docker-compose
    docker-registry     # the pull tests run their own instance on loopback
    # libvirt + QEMU
    libvirt-daemon-system libvirt-clients libvirt-daemon-driver-qemu
    qemu-system-x86
    qemu-utils          # qemu-img: not pulled in without recommends
    dnsmasq-base        # libvirt Recommends: needed for DHCP/DNS on NAT networks
    iproute2            # libvirt Recommends: used to manage bridges/taps
    # building the Rust libvirt bindings (virt crate)
    libvirt-dev pkg-config
    # test images: busybox rootfs for containers, tiny/real guests for VMs
    busybox-static debootstrap cpio e2fsprogs
    iperf3              # in the network test image (build-images.sh)
    socat               # in the network test image too: the flagship's relay
    nftables            # nft: NAT rules in router containers' namespaces
    procps              # ps, used below
    # SSH to VMs: the engine drives the system client (multiplexed); the
    # tests run a private sshd on 127.0.0.1
    openssh-client openssh-server
    # OCR of VM screens in `screenshot` test steps: the program, run as is
    # (brings tesseract-ocr-eng, the English model)
    tesseract-ocr
)

is_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

missing_packages() {
    local p
    for p in "${PACKAGES[@]}"; do
        is_installed "$p" || printf '%s\n' "$p"
    done
}

mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing: ${missing[*]}"
    # Without systemd, keep package maintainer scripts from trying to start
    # services through /etc/init.d (that would start daemons with other log
    # files/flags than ours, or fail); we start them ourselves below.
    # Only add a policy-rc.d if there is none, and remove only our own.
    added_policy=0
    if [ "$HAVE_SYSTEMD" = 0 ] && [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\n# temporary, added by benchscale setup-host.sh\nexit 101\n' \
            >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        added_policy=1
        trap 'if [ "$added_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # A second pass for anything the first one removed to resolve a conflict:
    # machine images of this kind carry a backported qemu-utils (10.x) that
    # apt removes to install qemu-system-x86 7.2; this installs 7.2's.
    mapfile -t missing < <(missing_packages)
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing (second pass): ${missing[*]}"
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    if [ "$added_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; added_policy=0; fi
    mapfile -t missing < <(missing_packages)
    [ "${#missing[@]}" -eq 0 ] || die "still not installed after apt-get install: ${missing[*]}"
    log "packages installed"
else
    log "all packages already installed"
fi

# --- /dev/kvm permissions ------------------------------------------------------
# udev normally gives /dev/kvm group kvm (rw). Without udev it stays root-only
# (crw-------), and then libvirt, which checks access as the libvirt-qemu:kvm
# user that runs QEMU, decides on every call that its cached QEMU
# capabilities are stale ("KVM was enabled when probing ... but it is not
# available now") and re-probes QEMU: 3-4 s added to every `virsh version`,
# define and start. Whether KVM guests then actually run is for the engine to
# find out (it falls back to TCG); this only keeps libvirt's cache valid.
if [ -c /dev/kvm ] && getent group kvm >/dev/null; then
    kvm_mode="8#$(stat -c %a /dev/kvm)"
    if [ "$(stat -c %G /dev/kvm)" != kvm ] || (( (kvm_mode & 8#060) != 8#060 )); then
        log "giving /dev/kvm group kvm, mode 0660 (as udev would)"
        chgrp kvm /dev/kvm
        chmod g+rw /dev/kvm
    fi
fi

# --- daemons -------------------------------------------------------------------
# proc_alive NAME: a live (non-zombie) process with that exact name exists.
# Zombies matter here: PID 1 on these machines is not a real init and can
# take a minute or more to reap a killed daemon, which `pgrep -x` still lists.
# (Output compared instead of grep -q: with pipefail, grep -q exiting early
# could make ps die of SIGPIPE and the pipeline report failure.)
# shellcheck disable=SC2009,SC2143
proc_alive() { [ -n "$(ps -C "$1" -o stat= 2>/dev/null | grep -v '^Z')" ]; }
# pid_alive PID: that process exists and is not a zombie.
# shellcheck disable=SC2143
pid_alive() { [ -n "$(ps -p "$1" -o stat= 2>/dev/null | grep -v '^Z')" ]; }

# Readiness probes. Each must be cheap and fail fast (timeout guards hangs).
docker_ok()   { timeout 10 docker info >/dev/null 2>&1; }
libvirtd_ok() { timeout 10 virsh -c qemu:///system version >/dev/null 2>&1; }
virtlogd_ok() {
    # virtlogd has its own admin socket; virt-admin (libvirt-clients) talks to it.
    if command -v virt-admin >/dev/null 2>&1; then
        timeout 10 virt-admin -c virtlogd:///system server-list >/dev/null 2>&1
    else
        [ -S /run/libvirt/virtlogd-sock ] && proc_alive virtlogd
    fi
}

# start_by_hand NAME CMD...: start a daemon detached from this script.
# setsid puts it in its own session/process group, so neither the end of this
# script nor a job-control kill of the caller's process group takes it down.
# The subshell first closes every inherited descriptor above 2: a daemon that
# keeps, say, the write end of a caller's pipe open would make that caller
# (CI capturing output, `... | tee`) wait for EOF forever.
start_by_hand() {
    local name="$1"; shift
    local logf="$LOG_DIR/benchscale-$name.log"
    printf '\n=== %s: starting %s\n' "$(date -Is)" "$*" >>"$logf"
    (
        for fd in "/proc/$BASHPID/fd/"*; do
            fd="${fd##*/}"
            if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-"; fi
        done
        exec setsid -f "$@" </dev/null >>"$logf" 2>&1
    )
}

# ensure_daemon NAME PROCESS_NAME SYSTEMD_UNIT PROBE START_CMD...
ensure_daemon() {
    local name="$1" proc="$2" unit="$3" probe="$4"; shift 4
    local logf="$LOG_DIR/benchscale-$name.log"
    if "$probe"; then
        log "$name already running"
        return 0
    fi
    if [ "$HAVE_SYSTEMD" = 1 ]; then
        log "starting $name (systemctl start $unit)"
        systemctl start "$unit" || die "systemctl start $unit failed (see: journalctl -u $unit)"
    elif proc_alive "$proc"; then
        # Running but not answering yet (e.g. just started by someone else):
        # give it the same time to come up rather than starting a second one.
        log "$name process exists but does not answer yet; waiting"
    else
        log "starting $name (log: $logf)"
        "$@"
    fi
}

# wait_daemon NAME PROCESS_NAME SYSTEMD_UNIT PROBE
# Fails at the timeout, or early when a daemon we started by hand has died.
wait_daemon() {
    local name="$1" proc="$2" unit="$3" probe="$4" logf="$LOG_DIR/benchscale-$1.log"
    local start=$SECONDS deadline=$((SECONDS + TIMEOUT)) why=""
    until "$probe"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            why="did not answer within ${TIMEOUT}s"
        elif [ "$HAVE_SYSTEMD" = 0 ] && [ $((SECONDS - start)) -ge 2 ] && ! proc_alive "$proc"; then
            # (the 2 s grace covers the instant between fork and exec)
            why="exited without answering"
        fi
        if [ -n "$why" ]; then
            if [ "$HAVE_SYSTEMD" = 1 ]; then
                die "$name $why (see: journalctl -u $unit)"
            fi
            printf 'setup-host: last lines of %s:\n' "$logf" >&2
            tail -n 20 "$logf" >&2 2>/dev/null || true
            die "$name $why (log: $logf)"
        fi
        sleep 0.5
    done
}

start_dockerd() {
    # dockerd refuses to start when its pid file names a live process; after a
    # crash/kill -9 the pid may have been reused, so drop a stale file.
    rm -f /var/run/docker.pid
    # Same for the containerd that dockerd runs for itself: dockerd reuses a
    # containerd whose pid file names a process that exists, and a zombie
    # counts as existing (kill -0), so after a kill -9 it would wait for a
    # dead containerd and give up ("timeout waiting for containerd to start").
    local cpid_file=/var/run/docker/containerd/containerd.pid cpid
    if [ -f "$cpid_file" ]; then
        cpid="$(cat "$cpid_file" 2>/dev/null || true)"
        if ! { [ -n "$cpid" ] && pid_alive "$cpid"; }; then
            rm -f "$cpid_file"
        fi
    fi
    # No extra flags needed here: iptables (nft backend) and overlay2 work.
    # dockerd starts and manages its own containerd when none is running.
    start_by_hand dockerd dockerd
}
start_virtlogd() {
    # libvirt's pid files are lock-based, stale ones are harmless.
    start_by_hand virtlogd virtlogd
}
start_libvirtd() {
    # Log warnings and errors to stderr (= our log file). Without this,
    # libvirtd sends them to syslog/journald, which do not exist here.
    LIBVIRT_LOG_OUTPUTS="3:stderr" start_by_hand libvirtd libvirtd
}

# Start all that are down first, then wait, so their start-ups overlap.
# virtlogd before libvirtd: QEMU guests log through virtlogd.
ensure_daemon dockerd  dockerd  docker.service   docker_ok   start_dockerd
ensure_daemon virtlogd virtlogd virtlogd.service virtlogd_ok start_virtlogd
ensure_daemon libvirtd libvirtd libvirtd.service libvirtd_ok start_libvirtd

wait_daemon virtlogd virtlogd virtlogd.service virtlogd_ok
wait_daemon libvirtd libvirtd libvirtd.service libvirtd_ok
wait_daemon dockerd  dockerd  docker.service   docker_ok
log "dockerd, virtlogd and libvirtd answer"

# Debian's libvirt defines a 'default' NAT network (192.168.122.0/24; on the
# machines we checked it is inactive with autostart off). benchscale never
# relies on it, it creates its own networks: we neither start nor remove it.
log "done"

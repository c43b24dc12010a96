#!/usr/bin/env bash
# Build the three benchscale VM test images from Debian packages only, into the
# base image folder (default /var/lib/libvirt/images, or
# $BENCHSCALE_BASE_IMAGE_PATH):
#
#   benchscale-tiny.vmlinuz        Debian cloud kernel (linux-image-cloud-amd64)
#   benchscale-tiny.initrd         busybox-static + virtio modules + /init
#   benchscale-tiny.qcow2          64 MiB ext4 data disk (label bs-tiny), for
#                                  the overlay the engine always attaches
#   benchscale-debian-12.qcow2     Debian 12 root file system (ext4 on the
#                                  whole disk, no partition table, 2 GiB)
#   benchscale-debian-12.vmlinuz   its kernel and initramfs, for direct
#   benchscale-debian-12.initrd    kernel boot: root=/dev/vda rw console=ttyS0
#   benchscale-desktop-12.*        the Debian guest with a generic kernel, Xorg,
#                                  a VNC server and viewer (same layout; see
#                                  scripts/build-vm-images-desktop.sh)
#
# Cached: next to the outputs, benchscale-tiny.stamp,
# benchscale-debian-12.stamp and benchscale-desktop-12.stamp record a hash of the code in this script that
# builds that image and of the package versions that go in (the kernel
# candidate of linux-image-cloud-amd64, busybox-static; for the desktop, also
# the candidates of linux-image-amd64, Xorg, x11vnc, the viewer, xterm, socat). An image is rebuilt
# only when its hash changes, an output is missing, or with --force; otherwise
# a run takes a second or two and touches no network. Before a build, apt's
# lists are refreshed (apt-get update). Outputs are built in a temporary
# folder inside the base folder and moved into place at the end, so an
# interrupted build never leaves half an image. Cold build: about 20 s for
# the tiny guest, 2.5 to 4.5 min for the Debian one (debootstrap and apt
# downloads).
#
# When the Debian and desktop images are built in one run, the desktop image
# starts from a copy of the Debian guest's finished root file system.
#
# Usage: build-vm-images.sh [--force] [--only tiny|debian|desktop]
# (without --only: all three)
#
# ---------------------------------------------------------------------------
# The tiny guest (boots to its login marker in a few seconds under TCG)
# ---------------------------------------------------------------------------
# Kernel command line (all optional; `console=ttyS0` is needed to see the
# markers on the serial console):
#   bs.ip=ADDR/PREFIX        static IPv4 address for eth0 (e.g. 10.0.0.5/24)
#   bs.ip.ethN=ADDR/PREFIX   static IPv4 address for another interface
#   bs.gw=GW                 default gateway
#   bs.dns=A[,B...]          name servers for /etc/resolv.conf
#   bs.hostname=NAME         host name (default benchscale-tiny)
#   ip=ADDR:SERVER:GW:MASK:HOST:DEV:AUTOCONF[:DNS0[:DNS1]]
#                            the kernel's nfsroot syntax, also understood
#                            (MASK dotted or a prefix length, DEV default eth0;
#                            may be given once per interface); ip=dhcp means
#                            DHCP, ip=off/none means no network set-up.
#   bs.panic=1               load the modules, then trigger a real kernel panic
#                            (sysrq 'c'): "Kernel panic - not syncing: sysrq
#                            triggered crash"
#   bs.panic_after=SECONDS   boot normally, then panic that many seconds after
#                            the login marker
# Every interface (eth*) without a static address gets DHCP (busybox udhcpc,
# up to ~15 s, then it keeps trying in the background and the boot goes on).
# Serial console lines, in order:
#   benchscale-tiny: init started (uptime 1.23s)
#   benchscale-tiny: modules loaded: virtio_pci_modern_dev ... evdev
#   benchscale-tiny: disk /dev/vda mounted on /data          (ext4 disk only)
#   benchscale-tiny: network up eth0 10.0.0.5/24 (static|dhcp)
#   benchscale-tiny: services up: http :80, echo :7, telnet :23
#   benchscale-tiny: ready (uptime 3.45s)
#   <hostname> login: root (automatic, no password)
# then a root shell on the console. Services: busybox httpd on TCP 80 (serves
# /www/index.html: "benchscale-tiny <hostname> <addresses>"), an echo server
# (nc -e cat) on TCP 7, telnetd (root shell, no password) on TCP 23.
# The ACPI power button (virsh shutdown) powers the guest off; the pvpanic
# drivers are loaded, so a domain with <panic model='isa'/> reports panics.
#
# ---------------------------------------------------------------------------
# The Debian 12 guest
# ---------------------------------------------------------------------------
# debootstrap --variant=minbase bookworm from the mirror apt is configured
# with, plus systemd-sysv, udev, dbus, openssh-server, cloud-init (NoCloud
# data source only), ifupdown + isc-dhcp-client + resolvconf (cloud-init's
# "eni" renderer: network config v1/v2, DHCP and static addresses, name
# servers), iproute2, iputils-ping, sudo,
# qemu-guest-agent, linux-image-cloud-amd64 and initramfs-tools (virtio
# modules listed in /etc/initramfs-tools/modules). No machine-id and no SSH
# host keys in the image: each instance makes its own (cloud-init makes
# ed25519 and ecdsa host keys; sshd makes an ed25519 key itself if there is
# no cloud-init seed). Boot it with
#   kernel benchscale-debian-12.vmlinuz, initrd benchscale-debian-12.initrd,
#   cmdline "root=/dev/vda rw console=ttyS0"
# and a NoCloud seed (a disk or CD-ROM with volume label `cidata`). Serial
# console lines that mark progress: "<hostname> login:" (getty), then
# "Cloud-init v. 22.4.2 finished at ..." when cloud-init is done. Network
# interfaces get udev's predictable names (ens2, enp1s0, ...): in network
# config v2, match them by MAC address (or boot with net.ifnames=0 for eth0).
# Without network-config in the seed, cloud-init configures DHCP on the first
# interface. The root account is locked; log in over SSH as the seed's user.
#
# Needs root, debootstrap, busybox-static, e2fsprogs, cpio, qemu-utils
# (scripts/setup-host.sh installs them) and the Debian mirror.
set -euo pipefail

log() { printf 'build-vm-images: %s\n' "$*"; }
die() { printf 'build-vm-images: ERROR: %s\n' "$*" >&2; exit 1; }

usage() { echo "usage: $0 [--force] [--only tiny|debian|desktop]"; }

ARGS=("$@")
force=0
only=all
while [ "$#" -gt 0 ]; do
    case "$1" in
        --force) force=1 ;;
        --only)
            [ "$#" -ge 2 ] || die "--only needs an argument (tiny, debian or desktop)"
            only="$2"; shift ;;
        --only=*) only="${1#--only=}" ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
case "$only" in all|tiny|debian|desktop) ;; *) die "--only must be tiny, debian or desktop, not '$only'" ;; esac

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        log "not root, re-running with sudo"
        exec sudo -E bash "${BASH_SOURCE[0]}" "${ARGS[@]}"
    fi
    die "must run as root (debootstrap, chroot, mknod)"
fi

BASE="${BENCHSCALE_BASE_IMAGE_PATH:-/var/lib/libvirt/images}"
SUITE=bookworm
KERNEL_META=linux-image-cloud-amd64
TINY=benchscale-tiny
DEB=benchscale-debian-12
DESK=benchscale-desktop-12
export LC_ALL=C DEBIAN_FRONTEND=noninteractive

for tool in busybox cpio gzip mkfs.ext4 qemu-img apt-get apt-cache dpkg-deb unshare flock; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found: run scripts/setup-host.sh first"
done
[ -x /usr/sbin/debootstrap ] || die "debootstrap not found: run scripts/setup-host.sh first"

mkdir -p "$BASE"
chmod 0711 "$BASE" 2>/dev/null || true

# One build at a time per base folder (the lock is on the folder itself).
exec 9<"$BASE"
flock -w 3600 9 || die "another build-vm-images.sh is still building in $BASE"

# --- what apt knows ------------------------------------------------------------
# Lines of `apt-cache policy` look like
#   500 http://deb.debian.org/debian bookworm/main amd64 Packages
apt_sources() { apt-cache policy 2>/dev/null | awk '$3 ~ /\/main$/ && $4 == "amd64" {print $2, $3}'; }
kernel_candidate() {
    apt-cache policy "$KERNEL_META" 2>/dev/null | awk '/Candidate:/ {print $2}'
}
# The mirrors the host's apt uses (only needed for a build: apt-cache is slow
# where apt's binary caches are cleaned after every apt run, as in Docker-style
# images, so a cached run calls it just once).
find_mirrors() {
    local sources
    sources="$(apt_sources)"
    suite_url() { awk -v s="$1/main" '$2 == s {print $1; exit}' <<<"$sources"; }
    MIRROR="${BENCHSCALE_DEBIAN_MIRROR:-$(suite_url "$SUITE")}"
    SECURITY_MIRROR="${BENCHSCALE_DEBIAN_SECURITY_MIRROR:-$(suite_url "$SUITE-security")}"
    UPDATES_MIRROR="$(suite_url "$SUITE-updates")"
    UPDATES_MIRROR="${UPDATES_MIRROR:-$MIRROR}"
}


# install_outputs NAME HASH INFO FILES...: move built files from $WORK/out into
# $BASE (rename within one file system), then write the stamp.
install_outputs() {
    local name="$1" hash="$2" info="$3" f; shift 3
    rm -f "$BASE/$name.stamp"
    for f in "$@"; do
        chmod 0644 "$WORK/out/$f"
        mv -f "$WORK/out/$f" "$BASE/$f"
    done
    printf 'hash=%s\n%s\nbuilt=%s\n' "$hash" "$info" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$BASE/$name.stamp"
}

# ============================================================================
# tiny guest
# ============================================================================

# The modules the tiny guest loads (their dependencies are added from
# modules.dep). Names as in modules.dep, with '-' or '_'.
TINY_MODULES=(virtio_pci virtio_net virtio_blk virtio-rng pvpanic-mmio pvpanic-pci button evdev)

write_tiny_init() {
    cat >"$1" <<'INIT'
#!/bin/sh
# benchscale-tiny /init (PID 1). Kernel command line conventions: see
# scripts/build-vm-images.sh in benchscale.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
exec </dev/console >/dev/console 2>&1

uptime_s() { read -r u _ </proc/uptime; echo "${u}s"; }
say() { echo "benchscale-tiny: $*"; }
say "init started (uptime $(uptime_s))"

panic_now() {
    say "triggering a kernel panic ($1)"
    sync
    echo c >/proc/sysrq-trigger
    sleep 2
    exit 1  # no sysrq: PID 1 exiting panics the kernel too
}

# "255.255.255.0" or "24" -> 24
mask2prefix() {
    case "$1" in
        "") echo 24; return ;;
        *.*) ;;
        *) echo "$1"; return ;;
    esac
    p=0
    for o in $(echo "$1" | tr . ' '); do
        case "$o" in
            255) p=$((p + 8)) ;; 254) p=$((p + 7)) ;; 252) p=$((p + 6)) ;;
            248) p=$((p + 5)) ;; 240) p=$((p + 4)) ;; 224) p=$((p + 3)) ;;
            192) p=$((p + 2)) ;; 128) p=$((p + 1)) ;;
        esac
    done
    echo "$p"
}

HOST=benchscale-tiny
PANIC=0
PANIC_AFTER=
GW=
DNS=
STATIC=        # " dev=addr/prefix ..."
NONET=0

# ip=<client>:<server>:<gw>:<netmask>:<hostname>:<device>:<autoconf>:<dns0>:<dns1>
parse_ip() {
    case "$1" in
        off|none) NONET=1; return ;;
        dhcp|on|any|both|bootp|rarp|dhcp6|auto6) return ;;
    esac
    oldifs=$IFS; IFS=:
    # shellcheck disable=SC2086
    set -- $1
    IFS=$oldifs
    c=$1 g=${3:-} m=${4:-} h=${5:-} d=${6:-eth0} d0=${8:-} d1=${9:-}
    [ -n "$d" ] || d=eth0
    [ -n "$h" ] && HOST=$h
    [ -n "$g" ] && GW=$g
    [ -n "$d0" ] && DNS="$DNS $d0"
    [ -n "$d1" ] && DNS="$DNS $d1"
    [ -n "$c" ] && STATIC="$STATIC $d=$c/$(mask2prefix "$m")"
}

for arg in $(cat /proc/cmdline); do
    case "$arg" in
        bs.hostname=*) HOST=${arg#*=} ;;
        bs.ip=*) STATIC="$STATIC eth0=${arg#*=}" ;;
        bs.ip.*=*) k=${arg%%=*}; STATIC="$STATIC ${k#bs.ip.}=${arg#*=}" ;;
        bs.gw=*) GW=${arg#*=} ;;
        bs.dns=*) DNS="$DNS $(echo "${arg#*=}" | tr , ' ')" ;;
        bs.panic=*) PANIC=${arg#*=} ;;
        bs.panic_after=*) PANIC_AFTER=${arg#*=} ;;
        ip=*) parse_ip "${arg#ip=}" ;;
    esac
done

hostname "$HOST"
echo "$HOST" >/etc/hostname
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n' "$HOST" >/etc/hosts

# Modules, in dependency order (computed when the image was built).
loaded=
for m in $(cat /etc/benchscale/modules); do
    if insmod "/lib/modules/$m.ko" 2>/tmp/insmod.err; then
        loaded="$loaded $m"
    else
        say "insmod $m failed: $(cat /tmp/insmod.err)"
    fi
done
say "modules loaded:$loaded"

if [ "$PANIC" = 1 ]; then
    panic_now "bs.panic=1"
fi

# Data disk: the base image is a small ext4 file system.
if [ -b /dev/vda ]; then
    mkdir -p /data
    if mount -t ext4 -o noatime /dev/vda /data 2>/dev/null; then
        say "disk /dev/vda mounted on /data"
    else
        say "disk /dev/vda present (no ext4 on it, not mounted)"
    fi
fi

# Network.
ip link set lo up
n=0
while [ ! -e /sys/class/net/eth0 ] && [ "$n" -lt 30 ]; do sleep 0.1; n=$((n + 1)); done
IFACES=$(ls /sys/class/net | grep '^eth' || true)
: >/etc/resolv.conf
for d in $DNS; do echo "nameserver $d" >>/etc/resolv.conf; done
if [ "$NONET" = 1 ]; then
    say "network not configured (ip=off)"
elif [ -z "$IFACES" ]; then
    say "no network interface"
else
    dhcp_pids=
    for dev in $IFACES; do
        ip link set "$dev" up
        addr=
        for s in $STATIC; do
            [ "${s%%=*}" = "$dev" ] && addr=${s#*=}
        done
        if [ -n "$addr" ]; then
            if ip addr add "$addr" dev "$dev"; then
                echo "$addr" >"/run/net.$dev"
                say "network up $dev $addr (static)"
            else
                say "network $dev: could not add $addr"
            fi
        else
            # Blocks until a lease (then udhcpc stays in the background to
            # renew it) or ~15 s (then it goes on trying in the background).
            udhcpc -i "$dev" -s /etc/udhcpc.script -p "/run/udhcpc.$dev.pid" \
                -t 15 -T 1 -A 2 -b -x "hostname:$HOST" >/dev/null 2>&1 &
            dhcp_pids="$dhcp_pids $!"
        fi
    done
    if [ -n "$GW" ]; then
        ip route add default via "$GW" || say "could not add default route via $GW"
    fi
    for p in $dhcp_pids; do wait "$p" || true; done
    for dev in $IFACES; do
        [ -e "/run/net.$dev" ] || say "network $dev: no address yet (DHCP keeps trying in the background)"
    done
fi
ADDRS=$(cat /run/net.* 2>/dev/null | tr '\n' ' ')

# Services.
mkdir -p /www
echo "benchscale-tiny $HOST $ADDRS" >/www/index.html
httpd -p 80 -h /www
nc -ll -p 7 -e /bin/cat </dev/null >/dev/null 2>&1 &
telnetd -p 23 -l /bin/sh
if ls /dev/input/event* >/dev/null 2>&1; then
    acpid -c /etc/acpi -l /dev/null
fi
say "services up: http :80, echo :7, telnet :23"

if [ -n "$PANIC_AFTER" ]; then
    ( sleep "$PANIC_AFTER"; panic_now "bs.panic_after=$PANIC_AFTER" ) &
fi

say "ready (uptime $(uptime_s))"
echo "$HOST login: root (automatic, no password)"
exec /bin/busybox init
INIT
}

write_tiny_udhcpc_script() {
    cat >"$1" <<'UDHCPC'
#!/bin/sh
# udhcpc event script: $1 = deconfig|bound|renew|leasefail|nak; udhcpc sets
# interface, ip, subnet, mask, router, dns, lease in the environment.
prefix=${mask:-24}
case "$1" in
    deconfig)
        ip -4 addr flush dev "$interface"
        ip link set "$interface" up
        rm -f "/run/net.$interface"
        ;;
    bound|renew)
        old=$(cat "/run/net.$interface" 2>/dev/null || true)
        if [ "$old" != "$ip/$prefix" ]; then
            ip -4 addr flush dev "$interface"
            ip addr add "$ip/$prefix" dev "$interface"
            echo "$ip/$prefix" >"/run/net.$interface"
            echo "benchscale-tiny: network up $interface $ip/$prefix (dhcp)" >/dev/console
        fi
        # busybox's `ip route show` takes no selector: it lists every route.
        if [ -n "$router" ] && ! ip route | grep -q '^default '; then
            for r in $router; do
                ip route add default via "$r" dev "$interface" && break
            done
        fi
        if [ -n "$dns" ] && ! grep -q nameserver /etc/resolv.conf; then
            for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
        fi
        ;;
esac
exit 0
UDHCPC
}

build_tiny() {
    local t0=$SECONDS w="$WORK/tiny"
    mkdir -p "$w/dl"
    log "$TINY: fetching $KERNEL_META $KVER_CANDIDATE"
    # The meta package depends on the versioned kernel package, e.g.
    # linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2).
    local kpkg
    kpkg="$(apt-cache show "$KERNEL_META=$KVER_CANDIDATE" | awk -F': ' '/^Depends:/ {print $2; exit}' \
            | tr ',' '\n' | awk '/^ *linux-image-/ {print $1; exit}')"
    [ -n "$kpkg" ] || die "cannot find the kernel package $KERNEL_META $KVER_CANDIDATE depends on"
    (cd "$w/dl" && apt-get -q -o APT::Sandbox::User=root download "$kpkg" >/dev/null) \
        || die "apt-get download $kpkg failed"
    dpkg-deb -x "$w"/dl/*.deb "$w/kernel"
    local kver
    kver="$(ls "$w/kernel/lib/modules")"
    [ -f "$w/kernel/boot/vmlinuz-$kver" ] || die "no vmlinuz in $kpkg"
    local mdir="$w/kernel/lib/modules/$kver"
    # The .deb ships no modules.dep (depmod runs in its postinst).
    busybox depmod -b "$w/kernel" "$kver"

    # Resolve the module list with dependencies, dependencies first.
    local -A mpath=() mdeps=() seen=()
    local order=() line key deps
    while IFS= read -r line; do
        key="${line%%:*}"
        deps="${line#*:}"
        local base="${key##*/}"; base="${base%.ko}"
        mpath[$base]="$key"
        mdeps[$base]="$deps"
    done <"$mdir/modules.dep"
    resolve() {
        local name="$1" d
        if [ -z "${mpath[$name]:-}" ]; then
            if [ -n "${mpath[${name//_/-}]:-}" ]; then name="${name//_/-}"
            elif [ -n "${mpath[${name//-/_}]:-}" ]; then name="${name//-/_}"
            else die "module $1 not in $kpkg"; fi
        fi
        [ -z "${seen[$name]:-}" ] || return 0
        seen[$name]=1
        for d in ${mdeps[$name]}; do
            d="${d##*/}"; resolve "${d%.ko}"
        done
        order+=("$name")
    }
    local m
    for m in "${TINY_MODULES[@]}"; do resolve "$m"; done

    local r="$w/root"
    mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc/benchscale,etc/acpi/PWRF,lib/modules,dev,proc,sys,run,tmp,root,www,data}
    chmod 1777 "$r/tmp"; chmod 700 "$r/root"
    cp /bin/busybox "$r/bin/busybox"
    busybox --list-full | while read -r path; do
        [ "$path" = bin/busybox ] && continue
        mkdir -p "$r/$(dirname "$path")"
        ln -sf /bin/busybox "$r/$path"
    done
    for m in "${order[@]}"; do
        cp "$mdir/${mpath[$m]}" "$r/lib/modules/$m.ko"
    done
    printf '%s\n' "${order[@]}" >"$r/etc/benchscale/modules"
    # The kernel opens /dev/console for init before /init mounts devtmpfs.
    mknod -m 600 "$r/dev/console" c 5 1
    mknod -m 666 "$r/dev/null" c 1 3
    write_tiny_init "$r/init"
    write_tiny_udhcpc_script "$r/etc/udhcpc.script"
    chmod 755 "$r/init" "$r/etc/udhcpc.script"
    printf '#!/bin/sh\necho "benchscale-tiny: power button, powering off" >/dev/console\nexec poweroff\n' \
        >"$r/etc/acpi/PWRF/00000080"
    chmod 755 "$r/etc/acpi/PWRF/00000080"
    cat >"$r/etc/inittab" <<'EOF'
::respawn:/bin/cttyhack /bin/sh -l
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/sh -c 'umount /data 2>/dev/null; sync'
EOF
    cat >"$r/etc/profile" <<'EOF'
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PS1='\h:\w# '
EOF
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
    printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' >"$r/etc/group"
    printf 'root::0:0:99999:7:::\n' >"$r/etc/shadow"
    chmod 600 "$r/etc/shadow"
    echo "benchscale-tiny $kver (kernel package $kpkg $KVER_CANDIDATE, busybox $busybox_ver)" >"$r/etc/benchscale/version"

    (cd "$r" && find . -print0 | LC_ALL=C sort -z \
        | cpio --null -o -H newc -R 0:0 --quiet) | gzip -9n >"$WORK/out/$TINY.initrd"
    cp "$w/kernel/boot/vmlinuz-$kver" "$WORK/out/$TINY.vmlinuz"

    # Data disk: 64 MiB ext4 (sparse), a README on it.
    mkdir -p "$w/disk"
    printf 'benchscale-tiny data disk (ext4, mounted on /data by the tiny guest)\n' >"$w/disk/README"
    truncate -s 64M "$w/disk.raw"
    mkfs.ext4 -q -F -L bs-tiny -m 0 -E lazy_itable_init=0,lazy_journal_init=0 -d "$w/disk" "$w/disk.raw"
    qemu-img convert -f raw -O qcow2 "$w/disk.raw" "$WORK/out/$TINY.qcow2"

    install_outputs "$TINY" "$TINY_HASH" \
        "kernel=$kver package=$kpkg version=$KVER_CANDIDATE busybox=$busybox_ver modules=${order[*]}" \
        "$TINY.vmlinuz" "$TINY.initrd" "$TINY.qcow2"
    rm -rf "$w"
    log "$TINY built in $((SECONDS - t0)) s (kernel $kver; modules: ${order[*]})"
}

# ============================================================================
# Debian 12 guest
# ============================================================================

DEB_PACKAGES=(
    systemd-sysv udev dbus
    openssh-server sudo
    cloud-init
    ifupdown isc-dhcp-client resolvconf iproute2 iputils-ping netbase
    procps less
    qemu-guest-agent
    "$KERNEL_META" initramfs-tools
)
# Loaded from the initramfs; the rest load from the root file system (udev).
DEB_INITRAMFS_MODULES=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
    failover net_failover virtio_net virtio_blk virtio_scsi sd_mod)

# The part that runs inside the chroot (in a private mount namespace).
write_deb_stage2() {
    cat >"$1" <<'STAGE2'
#!/bin/sh
set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin
apt-get update -qq
apt-get install -y -q -o Dpkg::Use-Pty=0 $DEB_PACKAGES
apt-get clean
STAGE2
}

# run_in_chroot ROOT SCRIPT LOG [VAR=VALUE...]: run SCRIPT (a path inside
# ROOT) with /bin/sh in a chroot, in a private mount namespace (nothing
# mounted for it outlives it), with the variables given in its environment.
run_in_chroot() {
    local r="$1" script="$2" logf="$3"; shift 3
    env "$@" unshare --mount --propagation private sh -c '
            set -e
            r="$1"
            mount -t proc proc "$r/proc"
            mount -t sysfs -o ro sysfs "$r/sys"
            mount -t tmpfs -o mode=755 tmpfs "$r/dev"
            mknod -m 666 "$r/dev/null" c 1 3
            mknod -m 666 "$r/dev/zero" c 1 5
            mknod -m 666 "$r/dev/full" c 1 7
            mknod -m 666 "$r/dev/random" c 1 8
            mknod -m 666 "$r/dev/urandom" c 1 9
            mknod -m 666 "$r/dev/tty" c 5 0
            mkdir -p "$r/dev/pts" "$r/dev/shm"
            mount -t devpts -o newinstance,ptmxmode=666 devpts "$r/dev/pts"
            ln -s pts/ptmx "$r/dev/ptmx"
            mount -t tmpfs tmpfs "$r/run"
            chroot "$r" /bin/sh "$2"
        ' sh "$r" "$script" >"$logf" 2>&1
}

# deb_chroot_prepare ROOT: what package installs in the chroot need and the
# image must not keep (deb_clean removes it again).
deb_chroot_prepare() {
    local r="$1"
    echo force-unsafe-io >"$r/etc/dpkg/dpkg.cfg.d/99benchscale-build-unsafe-io"
    # No daemon may start inside the chroot.
    printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
    chmod 755 "$r/usr/sbin/policy-rc.d"
    rm -f "$r/etc/resolv.conf"
    cp -L /etc/resolv.conf "$r/etc/resolv.conf"
}

# debian_rootfs DIR: the Debian guest's root file system in DIR/root, packages
# installed, configured and cleaned, ready for the disk (debian_disk).
debian_rootfs() {
    local t0=$SECONDS w="$1"
    local r="$w/root"
    mkdir -p "$w"
    [ -n "$MIRROR" ] || die "cannot find the $SUITE mirror in apt's configuration (set BENCHSCALE_DEBIAN_MIRROR)"
    log "$DEB: debootstrap --variant=minbase $SUITE from $MIRROR (log: $w/debootstrap.log)"
    if ! /usr/sbin/debootstrap --variant=minbase --components=main "$SUITE" "$r" "$MIRROR" \
            >"$w/debootstrap.log" 2>&1; then
        tail -n 30 "$w/debootstrap.log" >&2
        die "debootstrap failed"
    fi
    log "$DEB: debootstrap done after $((SECONDS - t0)) s"

    # --- apt/dpkg configuration of the image ----------------------------------
    rm -f "$r/etc/apt/sources.list"
    {
        printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            "$MIRROR" "$SUITE" "$SUITE"
        if [ -n "$SECURITY_MIRROR" ]; then
            printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
                "$SECURITY_MIRROR" "$SUITE"
        fi
    } >"$r/etc/apt/sources.list.d/debian.sources"
    if [ "$UPDATES_MIRROR" != "$MIRROR" ]; then
        log "$DEB: note: $SUITE-updates comes from $UPDATES_MIRROR on this host; the image uses $MIRROR"
    fi
    cat >"$r/etc/apt/apt.conf.d/90benchscale" <<'EOF'
APT::Install-Recommends "0";
APT::Install-Suggests "0";
Acquire::Languages "none";
EOF
    cat >"$r/etc/dpkg/dpkg.cfg.d/90benchscale-nodoc" <<'EOF'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
EOF
    deb_chroot_prepare "$r"

    # initramfs: only the listed modules (small, quick to load under TCG).
    mkdir -p "$r/etc/initramfs-tools/conf.d"
    printf '%s\n' "${DEB_INITRAMFS_MODULES[@]}" >>"$r/etc/initramfs-tools/modules"
    printf 'MODULES=list\nCOMPRESS=zstd\n' >"$r/etc/initramfs-tools/conf.d/benchscale.conf"
    # No kernel/initrd symlinks in / (linux-image postinst asks otherwise).
    printf 'do_symlinks = no\n' >"$r/etc/kernel-img.conf"

    # --- install the packages (private mount namespace: nothing leaks) --------
    write_deb_stage2 "$r/tmp/stage2.sh"
    log "$DEB: installing ${DEB_PACKAGES[*]} (log: $w/stage2.log)"
    local t1=$SECONDS
    if ! run_in_chroot "$r" /tmp/stage2.sh "$w/stage2.log" DEB_PACKAGES="${DEB_PACKAGES[*]}"; then
        tail -n 40 "$w/stage2.log" >&2
        die "installing packages in the chroot failed"
    fi
    log "$DEB: packages installed after $((SECONDS - t1)) s"

    # --- system configuration -------------------------------------------------
    echo "localhost" >"$r/etc/hostname"
    echo "LANG=C.UTF-8" >"$r/etc/default/locale"
    printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$r/etc/hosts"
    # Whole-disk ext4, no partition table. fsck at boot is skipped (the root is
    # mounted rw by the kernel command line).
    printf 'LABEL=bs-root\t/\text4\tdefaults,errors=remount-ro\t0\t0\n' >"$r/etc/fstab"
    # Loopback only; cloud-init writes the rest (50-cloud-init).
    printf 'auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n' >"$r/etc/network/interfaces"

    mkdir -p "$r/etc/cloud/cloud.cfg.d"
    cat >"$r/etc/cloud/cloud.cfg.d/90_benchscale.cfg" <<'EOF'
# benchscale: seeds come only from a NoCloud volume (label cidata).
datasource_list: [ NoCloud, None ]
# No "locales" package: C.UTF-8 (in libc) is the only UTF-8 locale, and it is
# already set in /etc/default/locale, so cc_locale has nothing to do.
locale: C.UTF-8
# No boot loader in the image (direct kernel boot).
grub_dpkg:
  enabled: false
# 127.0.1.1 <hostname> in /etc/hosts (sudo looks the host name up).
manage_etc_hosts: true
# RSA host keys take long to generate under software emulation.
ssh_genkeytypes: [ ed25519, ecdsa ]
EOF
    mkdir -p "$r/etc/ssh/sshd_config.d"
    cat >"$r/etc/ssh/sshd_config.d/50-benchscale.conf" <<'EOF'
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
UseDNS no
EOF
    # Without a cloud-init seed nothing makes host keys: do it before sshd.
    mkdir -p "$r/etc/systemd/system/ssh.service.d"
    cat >"$r/etc/systemd/system/ssh.service.d/50-benchscale.conf" <<'EOF'
[Unit]
After=cloud-init.service

[Service]
ExecStartPre=/bin/sh -c 'test -e /etc/ssh/ssh_host_ed25519_key || ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key'
EOF

    # Serial console getty (systemd also starts it for console=ttyS0).
    mkdir -p "$r/etc/systemd/system/getty.target.wants"
    ln -sf /lib/systemd/system/serial-getty@.service \
        "$r/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service"
    # Nothing that burns CPU in the background of an emulated guest.
    local unit
    for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
                fstrim.timer man-db.timer; do
        ln -sf /dev/null "$r/etc/systemd/system/$unit"
    done

    deb_clean "$r"
}

# deb_clean ROOT: each instance its own identity; no build leftovers.
deb_clean() {
    local r="$1"
    : >"$r/etc/machine-id"
    rm -f "$r/var/lib/dbus/machine-id" "$r"/etc/ssh/ssh_host_*
    rm -rf "$r/var/lib/cloud"/*
    rm -f "$r/usr/sbin/policy-rc.d" "$r/etc/dpkg/dpkg.cfg.d/99benchscale-build-unsafe-io" "$r"/tmp/stage2*.sh
    # resolvconf makes /etc/resolv.conf a link into /run (never write through
    # it: the link is relative, but a build on another resolvconf might not be).
    rm -f "$r/etc/resolv.conf" "$r/etc/resolvconf/resolv.conf.d/original"
    if [ -d "$r/etc/resolvconf" ]; then
        ln -s ../run/resolvconf/resolv.conf "$r/etc/resolv.conf"
    else
        : >"$r/etc/resolv.conf"
    fi
    rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb \
        "$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old "$r"/tmp/* "$r"/var/tmp/* \
        "$r"/root/.bash_history
    mkdir -p "$r/var/lib/apt/lists/partial"
    find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
    find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
    rm -rf "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/lintian/*
    find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
    find "$r/var/log" -type f -exec truncate -s 0 {} +
}

# debian_disk DIR NAME SIZE: DIR/root (one kernel in /boot) becomes
# $WORK/out/NAME.qcow2 (ext4 of SIZE on the whole disk, label bs-root),
# NAME.vmlinuz and NAME.initrd; DIR/root is removed. Sets DISK_KVER.
debian_disk() {
    local w="$1" name="$2" size="$3"
    local r="$w/root" kver
    kver="$(ls "$r/lib/modules")"
    [ "$(echo "$kver" | wc -l)" = 1 ] || die "more than one kernel in the image: $kver"
    [ -f "$r/boot/vmlinuz-$kver" ] && [ -f "$r/boot/initrd.img-$kver" ] || die "no kernel/initramfs in /boot"
    DISK_KVER="$kver"
    cp "$r/boot/vmlinuz-$kver" "$WORK/out/$name.vmlinuz"
    cp "$r/boot/initrd.img-$kver" "$WORK/out/$name.initrd"

    log "$name: root file system is $(du -sm "$r" | cut -f1) MiB; making the $size ext4 disk"
    local t1=$SECONDS
    truncate -s "$size" "$w/disk.raw"
    mkfs.ext4 -q -F -L bs-root -E lazy_itable_init=0,lazy_journal_init=0 -d "$r" "$w/disk.raw"
    local t2=$SECONDS
    qemu-img convert -f raw -O qcow2 "$w/disk.raw" "$WORK/out/$name.qcow2"
    log "$name: mkfs.ext4 -d took $((t2 - t1)) s, qemu-img convert $((SECONDS - t2)) s"
    rm -rf "$r" "$w/disk.raw"
}

build_debian() {
    local t0=$SECONDS w="$WORK/debian"
    debian_rootfs "$w"
    local kpkg_ver
    kpkg_ver="$(chroot "$w/root" dpkg-query -W -f='${Version}' "$KERNEL_META")"
    # The desktop image starts from the same root file system.
    if [ "$want_desk" = 1 ]; then
        mkdir -p "$WORK/desktop"
        cp -a "$w/root" "$WORK/desktop/root"
    fi
    debian_disk "$w" "$DEB" 2G
    install_outputs "$DEB" "$DEB_HASH" "kernel=$DISK_KVER $KERNEL_META=$kpkg_ver suite=$SUITE mirror=$MIRROR" \
        "$DEB.qcow2" "$DEB.vmlinuz" "$DEB.initrd"
    log "$DEB built in $((SECONDS - t0)) s (kernel $DISK_KVER)"
}

# ============================================================================
# desktop guest
# ============================================================================
# shellcheck source=build-vm-images-desktop.sh
. "$(dirname "${BASH_SOURCE[0]}")/build-vm-images-desktop.sh"

# ============================================================================
# cache keys
# ============================================================================
# Each image's hash covers the code that builds it (bash prints the functions
# and arrays back, heredocs included: editing the tiny guest's /init does not
# rebuild the Debian image) and the versions of the packages that go in.
busybox_ver="$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || echo unknown)"
compute_keys() {
    KVER_CANDIDATE="$(kernel_candidate)"
    if { [ -z "$KVER_CANDIDATE" ] || [ "$KVER_CANDIDATE" = "(none)" ]; } && [ "$apt_updated" = 0 ]; then
        log "apt has no candidate for $KERNEL_META: apt-get update"
        apt-get update -qq
        apt_updated=1
        KVER_CANDIDATE="$(kernel_candidate)"
    fi
    if [ -z "$KVER_CANDIDATE" ] || [ "$KVER_CANDIDATE" = "(none)" ]; then
        die "no candidate version of $KERNEL_META (is the Debian mirror configured?)"
    fi
    TINY_HASH="$( {
        declare -f build_tiny write_tiny_init write_tiny_udhcpc_script install_outputs
        declare -p TINY_MODULES
        printf '%s\n' "$KERNEL_META=$KVER_CANDIDATE" "busybox-static=$busybox_ver"
        sha256sum </bin/busybox
    } | sha256sum | cut -c1-16)"
    local deb_code
    deb_code="$(
        declare -f write_deb_stage2 run_in_chroot deb_chroot_prepare debian_rootfs deb_clean debian_disk \
            install_outputs
        declare -p DEB_PACKAGES DEB_INITRAMFS_MODULES
        printf '%s\n' "$KERNEL_META=$KVER_CANDIDATE" "suite=$SUITE"
    )"
    DEB_HASH="$( { declare -f build_debian; echo "$deb_code"; } | sha256sum | cut -c1-16)"
    DESK_HASH="$( {
        echo "$deb_code"
        declare -f build_desktop write_desk_stage2 write_desk_files
        declare -p DESK_PACKAGES DESK_KEY_PACKAGES DESK_INITRAMFS_MODULES DESK_MODULES_EXCLUDED
        apt-cache policy "${DESK_KEY_PACKAGES[@]}" 2>/dev/null | awk '/^[^ ]/ {p=$1} /Candidate:/ {print p, $2}'
    } | sha256sum | cut -c1-16)"
}

# up_to_date NAME HASH FILES...: the stamp has this hash and every file exists.
up_to_date() {
    local name="$1" hash="$2" f; shift 2
    [ "$force" = 0 ] || return 1
    [ -f "$BASE/$name.stamp" ] || return 1
    grep -qx "hash=$hash" "$BASE/$name.stamp" || return 1
    for f in "$@"; do [ -s "$BASE/$f" ] || return 1; done
}

# Sets want_tiny / want_deb / want_desk; quiet=1 for the first pass.
decide() {
    local quiet="$1"
    want_tiny=0; want_deb=0; want_desk=0
    if [ "$only" = all ] || [ "$only" = tiny ]; then
        if up_to_date "$TINY" "$TINY_HASH" "$TINY.vmlinuz" "$TINY.initrd" "$TINY.qcow2"; then
            [ "$quiet" = 1 ] || log "$TINY is up to date (hash $TINY_HASH)"
        else
            want_tiny=1
        fi
    fi
    if [ "$only" = all ] || [ "$only" = debian ]; then
        if up_to_date "$DEB" "$DEB_HASH" "$DEB.qcow2" "$DEB.vmlinuz" "$DEB.initrd"; then
            [ "$quiet" = 1 ] || log "$DEB is up to date (hash $DEB_HASH)"
        else
            want_deb=1
        fi
    fi
    if [ "$only" = all ] || [ "$only" = desktop ]; then
        if up_to_date "$DESK" "$DESK_HASH" "$DESK.qcow2" "$DESK.vmlinuz" "$DESK.initrd"; then
            [ "$quiet" = 1 ] || log "$DESK is up to date (hash $DESK_HASH)"
        else
            want_desk=1
        fi
    fi
}

apt_updated=0
compute_keys
decide 1
# Something to build: first bring apt's lists up to date (a cached run never
# touches the network), so that the versions hashed are the ones downloaded.
if { [ "$want_tiny" = 1 ] || [ "$want_deb" = 1 ] || [ "$want_desk" = 1 ]; } && [ "$apt_updated" = 0 ]; then
    log "apt-get update"
    apt-get update -qq || log "WARNING: apt-get update failed, going on with apt's current lists"
    apt_updated=1
    compute_keys
fi
decide 0
if [ "$want_tiny" = 0 ] && [ "$want_deb" = 0 ] && [ "$want_desk" = 0 ]; then
    exit 0
fi
find_mirrors

WORK="$(mktemp -d "$BASE/.benchscale-build.XXXXXX")"
cleanup() {
    # Everything mounted for the chroot lives in a private mount namespace
    # that is gone by now; refuse to delete anything still mounted anyway.
    if grep -q " $WORK" /proc/mounts; then
        printf 'build-vm-images: WARNING: something is still mounted under %s, not removing it\n' "$WORK" >&2
        return
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/out"

if [ "$want_tiny" = 1 ]; then build_tiny; fi
if [ "$want_deb" = 1 ]; then build_debian; fi
if [ "$want_desk" = 1 ]; then build_desktop; fi
log "done: $(cd "$BASE" && ls benchscale-* 2>/dev/null | tr '\n' ' ')"

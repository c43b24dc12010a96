# shellcheck shell=bash
# The desktop guest image, benchscale-desktop-12: sourced by
# build-vm-images.sh (`build-vm-images.sh --only desktop` builds just this
# one), not run on its own.
#
#   benchscale-desktop-12.qcow2     the Debian 12 guest's root file system plus
#                                   a graphical session (ext4 on the whole
#                                   disk, no partition table, 3 GiB)
#   benchscale-desktop-12.vmlinuz   Debian's generic kernel (linux-image-amd64:
#   benchscale-desktop-12.initrd    the cloud kernel has no display drivers)
#
# It is the Debian guest (same packages, cloud-init seed, SSH, serial getty)
# with the cloud kernel swapped for the generic one and these added, all
# from Debian's packages, without recommends: Xorg (xserver-xorg-core, its
# modesetting driver on the kernel's DRM device, no acceleration), x11vnc
# (VNC server of the screen), xtightvncviewer (VNC viewer), xterm and
# fonts-dejavu-core (big text), x11-xserver-utils (xset, xrandr), socat.
# No desktop environment and no window manager: windows are placed by the
# helpers below, newest on top.
#
# Boot it like the Debian guest, with a video device (QEMU's standard VGA,
# libvirt <video><model type='vga'/>, or virtio, <model type='virtio'/>):
#   kernel benchscale-desktop-12.vmlinuz, initrd benchscale-desktop-12.initrd,
#   cmdline "root=/dev/vda rw console=ttyS0"
# optional on the command line: bs.screen=WIDTHxHEIGHT (e.g. 1024x768) sets
# the screen size (default: the video device's preferred mode).
#
# At boot, systemd starts (whether or not cloud-init has finished):
#   benchscale-display.service  Xorg as root on display :0 (vt7), listening on
#                               its Unix socket only, access control off (any
#                               local user may draw), screen saver and DPMS
#                               blanking off, no mouse pointer, white
#                               background
#   benchscale-vnc.service      x11vnc of :0 on 127.0.0.1:5900 only, no
#                               password, shared, forever (restarted if it
#                               dies)
# and then writes on the serial console (/dev/console):
#   benchscale-desktop: display ready 1280x800, vnc 127.0.0.1:5900 (uptime 41.07s)
# A guest without a display device writes instead
#   benchscale-desktop: no display device (/dev/dri/card0) ...
#
# Helper commands (in /usr/local/bin; any user may run them, they re-run
# themselves with `sudo -n` when not root). What they start runs on in a
# systemd service; the X clients and socat run as the unprivileged user
# bs-desktop. Exit status 0 when the service started.
#   bs-show-text TEXT...   shows TEXT (the arguments joined by spaces) in big
#                          black letters (DejaVu Sans Mono Bold, font size up
#                          to 96 px, smaller for long texts) on white, centred
#                          on a window that covers the whole screen, replacing
#                          the text shown before (the same text again leaves
#                          the window as it is); it returns once the text is
#                          drawn (1 to 4 s under emulation). With no argument
#                          it takes the text away. (benchscale-text.service)
#   bs-serve-desktop RELAY PORT
#                          offers this desktop outward and returns at once: a
#                          connection out to RELAY:PORT over TCP, bridged by
#                          socat to the local VNC server (made once x11vnc
#                          listens), made again one second after it ends or
#                          fails, for ever. TCP keepalive (a probe after 5 s
#                          idle, every 2 s, 3 lost) ends a connection whose
#                          other end vanished. `bs-serve-desktop --stop`
#                          stops. (benchscale-serve.service)
#   bs-view RELAY PORT     returns at once, then shows the VNC server at
#                          RELAY:PORT full screen, view only (xtightvncviewer,
#                          through a local socat with the same keepalive).
#                          Before the first session the screen says
#                          "CONNECTING TO RELAY:PORT". When a session ends
#                          (the server or the relay closed it, or keepalive
#                          gave up on it) the viewer exits and "CONNECTION
#                          LOST" is shown (capitals: OCR reads DejaVu Sans
#                          Mono's lower-case l as L now and then); it tries again every 2 s, and a new
#                          session covers the text. `bs-view --stop` stops.
#                          (benchscale-view.service) Serial console lines:
#                            benchscale-desktop: viewer connected to RELAY:PORT
#                            benchscale-desktop: viewer lost RELAY:PORT
#                          (the second once "CONNECTION LOST" is on screen).
# A relay that pairs the two connections should use TCP keepalive too: while
# the screen stands still no data flows, and it cannot otherwise tell that
# one end vanished.
# Logs: journalctl -u 'benchscale-*', /var/log/Xorg.0.log.

DESK_PACKAGES=(
    linux-image-amd64
    xserver-xorg-core x11-xserver-utils
    x11vnc xtightvncviewer
    xterm fonts-dejavu-core
    socat
)
# The packages whose candidate versions go into the image's cache key.
DESK_KEY_PACKAGES=(linux-image-amd64 xserver-xorg-core x11vnc xtightvncviewer xterm socat)
# Added to the Debian guest's initramfs modules.
DESK_INITRAMFS_MODULES=(ext4 crc32c_generic)
# Kernel modules the guest never needs (wireless, sound, cameras, real GPUs,
# ...): left out of the image by dpkg (path-exclude).
DESK_MODULES_EXCLUDED=(
    drivers/net/wireless drivers/media drivers/infiniband drivers/staging
    drivers/gpu/drm/amd drivers/gpu/drm/nouveau drivers/gpu/drm/i915 drivers/gpu/drm/radeon
    drivers/bluetooth drivers/iio drivers/isdn drivers/net/can drivers/mtd drivers/hwmon
    sound net/bluetooth net/wireless net/mac80211
)

write_desk_stage2() {
    cat >"$1" <<'STAGE2'
#!/bin/sh
set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin
apt-get update -qq
apt-get install -y -q -o Dpkg::Use-Pty=0 $DESK_PACKAGES
# The Debian guest's cloud kernel goes: it has no display drivers.
cloud=$(dpkg-query -W -f='${Package}\n' 'linux-image-*cloud*' 2>/dev/null || true)
if [ -n "$cloud" ]; then
    apt-get purge -y -q -o Dpkg::Use-Pty=0 $cloud
fi
useradd --system --user-group --home-dir /run/benchscale-desktop/home --no-create-home \
    --shell /usr/sbin/nologin bs-desktop
apt-get clean
STAGE2
}

# The files of the session: writes them under ROOT.
write_desk_files() {
    local r="$1"
    mkdir -p "$r/usr/lib/benchscale-desktop" "$r/usr/local/bin" "$r/etc/X11/xorg.conf.d" \
        "$r/etc/systemd/system/multi-user.target.wants"

    cat >"$r/etc/X11/xorg.conf.d/10-benchscale.conf" <<'EOF'
# benchscale desktop guest: the kernel's DRM device (bochs, virtio-gpu, qxl)
# through modesetting, no acceleration (no GPU under emulation), no blanking,
# no input devices (the screen is watched, not used).
Section "ServerFlags"
    Option "BlankTime" "0"
    Option "StandbyTime" "0"
    Option "SuspendTime" "0"
    Option "OffTime" "0"
    Option "AutoAddDevices" "false"
    Option "DontVTSwitch" "true"
EndSection

Section "Device"
    Identifier "benchscale-video"
    Driver "modesetting"
    Option "AccelMethod" "none"
EndSection
EOF

    # --- common shell functions -----------------------------------------------
    cat >"$r/usr/lib/benchscale-desktop/common.sh" <<'EOF'
# Sourced by the benchscale desktop scripts.
export DISPLAY=:0
RUN=/run/benchscale-desktop
say() { echo "benchscale-desktop: $*" >/dev/console 2>/dev/null || true; echo "benchscale-desktop: $*"; }
uptime_s() { read -r u _ </proc/uptime; echo "${u}s"; }
# screen_size: WIDTHxHEIGHT of display :0.
screen_size() { xrandr --current 2>/dev/null | sed -n 's/.* current \([0-9]*\) x \([0-9]*\),.*/\1x\2/p'; }
# listening PORT: something listens on 127.0.0.1:PORT.
listening() { [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }
# as_root: re-run the calling script as root.
as_root() {
    if [ "$(id -u)" -ne 0 ]; then
        exec sudo -n "$0" "$@"
    fi
}
EOF

    # --- the X server ---------------------------------------------------------
    cat >"$r/usr/lib/benchscale-desktop/xorg" <<'EOF'
#!/bin/sh
# benchscale-display.service: Xorg on the virtual screen.
. /usr/lib/benchscale-desktop/common.sh
mkdir -p "$RUN/home"
chown bs-desktop:bs-desktop "$RUN/home"
n=0
while [ ! -e /dev/dri/card0 ] && [ "$n" -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
if [ ! -e /dev/dri/card0 ]; then
    say "no display device (/dev/dri/card0): give the guest a video device (vga, virtio or qxl)"
    exit 1
fi
exec /usr/lib/xorg/Xorg :0 vt7 -nolisten tcp -noreset -ac -s 0 -dpms -nocursor -novtswitch \
    -logfile /var/log/Xorg.0.log
EOF
    cat >"$r/usr/lib/benchscale-desktop/display-up" <<'EOF'
#!/bin/sh
# benchscale-display.service, after start: wait until X answers, then no
# blanking, a white background, the screen size asked for with bs.screen=.
. /usr/lib/benchscale-desktop/common.sh
n=0
until xset q >/dev/null 2>&1; do
    n=$((n + 1))
    if [ "$n" -gt 600 ]; then say "X did not answer within 120 s (see /var/log/Xorg.0.log)"; exit 1; fi
    sleep 0.2
done
xset s off s noblank
# (modesetting on these devices has no DPMS extension; nothing to turn off)
xset -dpms 2>/dev/null || true
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        bs.screen=*) xrandr -s "${arg#*=}" || say "cannot set the screen size ${arg#*=}: $(xrandr -q 2>&1 | head -n 3 | tr '\n' ' ')" ;;
    esac
done
xsetroot -solid white
exit 0
EOF
    cat >"$r/usr/lib/benchscale-desktop/vnc-up" <<'EOF'
#!/bin/sh
# benchscale-vnc.service, after start: wait for the VNC port, then the
# console marker.
. /usr/lib/benchscale-desktop/common.sh
n=0
until listening 5900; do
    n=$((n + 1))
    if [ "$n" -gt 600 ]; then say "x11vnc does not listen on 5900 after 120 s"; exit 1; fi
    sleep 0.2
done
say "display ready $(screen_size), vnc 127.0.0.1:5900 (uptime $(uptime_s))"
EOF

    cat >"$r/etc/systemd/system/benchscale-display.service" <<'EOF'
[Unit]
Description=benchscale desktop: Xorg on the virtual screen (display :0)
# Early, beside the network: with default dependencies it would come after
# sysinit.target, which cloud-init's network stage holds back until DHCP is
# done (30 s and more under emulation). The script waits for the DRM device.
DefaultDependencies=no
After=local-fs.target systemd-journald.socket systemd-tmpfiles-setup.service systemd-udev-trigger.service
Conflicts=shutdown.target
Before=shutdown.target

[Service]
ExecStart=/usr/lib/benchscale-desktop/xorg
ExecStartPost=/usr/lib/benchscale-desktop/display-up
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
EOF
    cat >"$r/etc/systemd/system/benchscale-vnc.service" <<'EOF'
[Unit]
Description=benchscale desktop: x11vnc of display :0 on 127.0.0.1:5900
DefaultDependencies=no
BindsTo=benchscale-display.service
After=benchscale-display.service
Conflicts=shutdown.target
Before=shutdown.target

[Service]
User=bs-desktop
Environment=HOME=/run/benchscale-desktop/home
ExecStart=/usr/bin/x11vnc -display :0 -localhost -rfbport 5900 -nopw -forever -shared -norc -noipv6 -nocursor -quiet
ExecStartPost=+/usr/lib/benchscale-desktop/vnc-up
Restart=always
RestartSec=1

[Install]
WantedBy=benchscale-display.service
EOF
    ln -sf ../benchscale-display.service "$r/etc/systemd/system/multi-user.target.wants/benchscale-display.service"
    mkdir -p "$r/etc/systemd/system/benchscale-display.service.wants"
    ln -sf ../benchscale-vnc.service "$r/etc/systemd/system/benchscale-display.service.wants/benchscale-vnc.service"

    # --- big text -------------------------------------------------------------
    cat >"$r/usr/lib/benchscale-desktop/text-window" <<'EOF'
#!/bin/sh
# benchscale-text.service: an xterm over the whole screen with the text of
# $RUN/text in big letters, centred.
. /usr/lib/benchscale-desktop/common.sh
text=$(cat "$RUN/text")
size=$(screen_size)
w=${size%x*} h=${size#*x}
[ -n "$w" ] && [ -n "$h" ] || { w=1024; h=768; }
len=${#text}
[ "$len" -gt 0 ] || len=1
# DejaVu Sans Mono: a cell is about 0.6 x 1.17 of the pixel size.
px=$((w * 10 / ((len + 2) * 6)))
[ "$px" -le 96 ] || px=96
[ "$px" -ge 16 ] || px=16
cols=$((w * 10 / (px * 6) + 1))
rows=$((h * 100 / (px * 117) + 1))
pad_cols=$(( (cols - ${#text}) / 2 ))
[ "$pad_cols" -ge 0 ] || pad_cols=0
pad_rows=$(( (rows - 1) / 2 ))
export BS_TEXT="$text" BS_PAD_COLS="$pad_cols" BS_PAD_ROWS="$pad_rows"
exec xterm -display :0 -geometry "${cols}x${rows}+0+0" -b 0 -bw 0 -bg white -fg black \
    -fa "DejaVu Sans Mono:style=Bold:pixelsize=$px" +sb -title benchscale-text \
    -xrm 'XTerm*cursorColor: white' -e /bin/sh -c '
        printf "\033[?25l"
        i=0; while [ "$i" -lt "$BS_PAD_ROWS" ]; do echo; i=$((i + 1)); done
        printf "%*s%s" "$BS_PAD_COLS" "" "$BS_TEXT"
        touch /run/benchscale-desktop/home/text.shown
        exec sleep infinity'
EOF
    cat >"$r/etc/systemd/system/benchscale-text.service" <<'EOF'
[Unit]
Description=benchscale desktop: big text on the screen (bs-show-text)
Requisite=benchscale-display.service
After=benchscale-display.service

[Service]
User=bs-desktop
Environment=HOME=/run/benchscale-desktop/home
ExecStart=/usr/lib/benchscale-desktop/text-window
EOF
    cat >"$r/usr/local/bin/bs-show-text" <<'EOF'
#!/bin/sh
# bs-show-text TEXT...: big black text on white over the whole screen,
# replacing what was shown; no argument: take the text away.
. /usr/lib/benchscale-desktop/common.sh
as_root "$@"
if [ "$#" -eq 0 ]; then
    systemctl stop benchscale-text.service
    exit 0
fi
mkdir -p "$RUN"
# The same text already up: leave it (no flicker).
if [ -e "$RUN/home/text.shown" ] && [ "$(cat "$RUN/text" 2>/dev/null)" = "$*" ] \
        && systemctl -q is-active benchscale-text.service; then
    exit 0
fi
printf '%s' "$*" >"$RUN/text"
rm -f "$RUN/home/text.shown"
systemctl restart benchscale-text.service || exit 1
n=0
until [ -e "$RUN/home/text.shown" ]; do
    n=$((n + 1))
    if [ "$n" -gt 300 ] || ! systemctl -q is-active benchscale-text.service; then
        echo "bs-show-text: the text window did not come up (journalctl -u benchscale-text)" >&2
        exit 1
    fi
    sleep 0.1
done
# The shell printed the text; give xterm a moment to draw it.
sleep 0.5
EOF

    # --- offering the desktop outward ---------------------------------------
    cat >"$r/usr/lib/benchscale-desktop/serve-loop" <<'EOF'
#!/bin/sh
# benchscale-serve.service: a connection out to RELAY:PORT bridged to the
# local VNC server, again after it ends.
. /usr/lib/benchscale-desktop/common.sh
. "$RUN/serve.env"
KA=keepalive,keepidle=5,keepintvl=2,keepcnt=3
while :; do
    until listening 5900; do sleep 0.5; done
    socat -d -d "TCP:$RELAY:$PORT,connect-timeout=5,$KA" "TCP:127.0.0.1:5900,$KA"
    sleep 1
done
EOF
    cat >"$r/etc/systemd/system/benchscale-serve.service" <<'EOF'
[Unit]
Description=benchscale desktop: the desktop offered to a relay (bs-serve-desktop)
After=benchscale-vnc.service

[Service]
User=bs-desktop
ExecStart=/usr/lib/benchscale-desktop/serve-loop
Restart=always
RestartSec=1
EOF
    cat >"$r/usr/local/bin/bs-serve-desktop" <<'EOF'
#!/bin/sh
# bs-serve-desktop RELAY PORT: keep a connection out to RELAY:PORT bridged to
# this desktop's VNC server (127.0.0.1:5900); --stop: stop.
. /usr/lib/benchscale-desktop/common.sh
as_root "$@"
case "${1:-}" in
    --stop) systemctl stop benchscale-serve.service; exit ;;
esac
if [ "$#" -ne 2 ]; then echo "usage: bs-serve-desktop RELAY PORT | --stop" >&2; exit 2; fi
mkdir -p "$RUN"
printf 'RELAY=%s\nPORT=%s\n' "$1" "$2" >"$RUN/serve.env"
systemctl restart benchscale-serve.service
EOF

    # --- viewing a desktop ----------------------------------------------------
    cat >"$r/usr/lib/benchscale-desktop/view-loop" <<'EOF'
#!/bin/sh
# benchscale-view.service: the viewer full screen on RELAY:PORT; big text
# under it says what is going on when it is not there.
. /usr/lib/benchscale-desktop/common.sh
. "$RUN/view.env"
KA=keepalive,keepidle=5,keepintvl=2,keepcnt=3
LOCAL=5999
as_user() { setpriv --reuid=bs-desktop --regid=bs-desktop --init-groups env HOME="$RUN/home" "$@"; }
bs-show-text "CONNECTING TO $RELAY:$PORT"
while :; do
    # A local end with TCP keepalive: the viewer alone would wait for ever
    # on a relay that vanished while the screen did not change.
    as_user socat "TCP-LISTEN:$LOCAL,bind=127.0.0.1,reuseaddr" "TCP:$RELAY:$PORT,connect-timeout=5,$KA" &
    spid=$!
    n=0
    until listening "$LOCAL" || [ "$n" -gt 50 ]; do sleep 0.1; n=$((n + 1)); done
    rm -f "$RUN/view.connected"
    as_user xtightvncviewer -fullscreen -viewonly -encodings "copyrect tight hextile zlib raw" \
        "127.0.0.1::$LOCAL" 2>&1 | while IFS= read -r line; do
            echo "viewer: $line"
            case "$line" in
                *"Connected to RFB server"*) touch "$RUN/view.connected"; say "viewer connected to $RELAY:$PORT" ;;
            esac
        done
    kill "$spid" 2>/dev/null
    wait "$spid" 2>/dev/null
    if [ -e "$RUN/view.connected" ]; then
        bs-show-text "CONNECTION LOST"
        say "viewer lost $RELAY:$PORT"
    fi
    sleep 2
done
EOF
    cat >"$r/etc/systemd/system/benchscale-view.service" <<'EOF'
[Unit]
Description=benchscale desktop: a remote desktop viewed full screen (bs-view)
Requisite=benchscale-display.service
After=benchscale-display.service

[Service]
ExecStart=/usr/lib/benchscale-desktop/view-loop
Restart=always
RestartSec=1
EOF
    cat >"$r/usr/local/bin/bs-view" <<'EOF'
#!/bin/sh
# bs-view RELAY PORT: view the desktop at RELAY:PORT full screen, "connection
# lost" in big letters when the session ends, trying again; --stop: stop.
. /usr/lib/benchscale-desktop/common.sh
as_root "$@"
case "${1:-}" in
    --stop) systemctl stop benchscale-view.service; exit ;;
esac
if [ "$#" -ne 2 ]; then echo "usage: bs-view RELAY PORT | --stop" >&2; exit 2; fi
mkdir -p "$RUN"
printf 'RELAY=%s\nPORT=%s\n' "$1" "$2" >"$RUN/view.env"
systemctl restart benchscale-view.service
EOF
    chmod 755 "$r"/usr/lib/benchscale-desktop/* "$r"/usr/local/bin/bs-*
    chmod 644 "$r/usr/lib/benchscale-desktop/common.sh"
}

build_desktop() {
    local t0=$SECONDS w="$WORK/desktop"
    local r="$w/root"
    if [ -d "$r" ]; then
        log "$DESK: starting from the Debian guest's root file system built just now"
    else
        log "$DESK: building the Debian guest's root file system first"
        debian_rootfs "$w"
    fi
    local t1=$SECONDS
    deb_chroot_prepare "$r"
    # The generic kernel has ext4 as a module (the cloud kernel has it built
    # in): the initramfs needs it to mount the root.
    printf '%s\n' "${DESK_INITRAMFS_MODULES[@]}" >>"$r/etc/initramfs-tools/modules"
    {
        local d
        for d in "${DESK_MODULES_EXCLUDED[@]}"; do
            printf 'path-exclude=/lib/modules/*/kernel/%s/*\n' "$d"
        done
    } >"$r/etc/dpkg/dpkg.cfg.d/91benchscale-desktop-modules"
    write_desk_stage2 "$r/tmp/stage2-desktop.sh"
    log "$DESK: installing ${DESK_PACKAGES[*]} (log: $w/stage2-desktop.log)"
    if ! run_in_chroot "$r" /tmp/stage2-desktop.sh "$w/stage2-desktop.log" DESK_PACKAGES="${DESK_PACKAGES[*]}"; then
        tail -n 40 "$w/stage2-desktop.log" >&2
        die "installing the desktop packages in the chroot failed"
    fi
    log "$DESK: packages installed after $((SECONDS - t1)) s"
    write_desk_files "$r"
    local versions
    versions="$(chroot "$r" dpkg-query -W -f='${Package}=${Version} ' "${DESK_KEY_PACKAGES[@]}")"
    deb_clean "$r"
    debian_disk "$w" "$DESK" 3G
    install_outputs "$DESK" "$DESK_HASH" "kernel=$DISK_KVER ${versions% } suite=$SUITE mirror=$MIRROR" \
        "$DESK.qcow2" "$DESK.vmlinuz" "$DESK.initrd"
    log "$DESK built in $((SECONDS - t0)) s (kernel $DISK_KVER)"
}

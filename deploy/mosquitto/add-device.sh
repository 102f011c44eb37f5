#!/bin/sh
# Register a device with the running broker (as root, after install.sh): its
# credential, and a role that lets it publish only edgeprobe/v1/FLEET/DEVICE_ID/<kind>
# and subscribe only to its own .../cmd. The fleet is fixed here, per device.
#
#   add-device.sh [--root DIR] DEVICE_ID FLEET [PASSWORD]   (a random password is made and printed if omitted)
# Registering a device again replaces its password and role. No reload needed.
set -eu
root=
[ "${1:-}" = "--root" ] && { root=${2:?--root needs a directory}; shift 2; }
device=${1:?usage: add-device.sh [--root DIR] DEVICE_ID FLEET [PASSWORD]}
fleet=${2:?fleet required}
for name in "$device" "$fleet"; do
  case $name in *[!A-Za-z0-9_.-]*|[!A-Za-z0-9]*) echo "'$name' must match [A-Za-z0-9][A-Za-z0-9_.-]*" >&2; exit 2 ;; esac
done
password=${3:-$(openssl rand -hex 16)}
opts=$root/etc/mosquitto/edgeprobe/ctrl
[ -r "$opts/mosquitto_ctrl" ] || { echo "$opts/mosquitto_ctrl is missing: run install.sh first (as root)" >&2; exit 2; }
# mosquitto_ctrl exits 0 even when the broker answers an error: look for one in what it says
ctrl() {
  out=$(XDG_CONFIG_HOME=$opts mosquitto_ctrl dynsec "$@" 2>&1) || { echo "mosquitto_ctrl $1: $out" >&2; return 1; }
  case $out in *Error*) echo "mosquitto_ctrl $1: $out" >&2; return 1 ;; esac
}
role=edgeprobe-device-$device
ctrl deleteClient "$device" 2>/dev/null || true  # registering again replaces both
ctrl deleteRole "$role" 2>/dev/null || true
ctrl createRole "$role"
for kind in birth death health latency robustness drift verdict event; do
  ctrl addRoleACL "$role" publishClientSend "edgeprobe/v1/$fleet/$device/$kind" allow
done
ctrl addRoleACL "$role" subscribeLiteral "edgeprobe/v1/$fleet/$device/cmd" allow
ctrl createClient "$device" -p "$password"
ctrl addClientRole "$device" "$role"
[ -n "${3:-}" ] || echo "$device $password"

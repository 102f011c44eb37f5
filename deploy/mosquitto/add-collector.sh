#!/bin/sh
# Register a collector (or an operator that sends commands) with the running broker,
# as root after install.sh: it may read every fleet's messages, also through a
# $share group, and publish commands. Give each collector of a shared group its
# own name: the client id is the username (use_username_as_clientid).
#
#   add-collector.sh [--root DIR] NAME [PASSWORD]   (a random password is made and printed if omitted)
set -eu
root=
[ "${1:-}" = "--root" ] && { root=${2:?--root needs a directory}; shift 2; }
name=${1:?usage: add-collector.sh [--root DIR] NAME [PASSWORD]}
case $name in *[!A-Za-z0-9_.-]*|[!A-Za-z0-9]*) echo "'$name' must match [A-Za-z0-9][A-Za-z0-9_.-]*" >&2; exit 2 ;; esac
password=${2:-$(openssl rand -hex 16)}
opts=$root/etc/mosquitto/edgeprobe/ctrl
[ -r "$opts/mosquitto_ctrl" ] || { echo "$opts/mosquitto_ctrl is missing: run install.sh first (as root)" >&2; exit 2; }
# mosquitto_ctrl exits 0 even when the broker answers an error: look for one in what it says
ctrl() {
  out=$(XDG_CONFIG_HOME=$opts mosquitto_ctrl dynsec "$@" 2>&1) || { echo "mosquitto_ctrl $1: $out" >&2; return 1; }
  case $out in *Error*) echo "mosquitto_ctrl $1: $out" >&2; return 1 ;; esac
}
role=edgeprobe-collector
if ! ctrl getRole "$role" 2>/dev/null; then
  ctrl createRole "$role"
  ctrl addRoleACL "$role" subscribePattern "edgeprobe/v1/#" allow
  ctrl addRoleACL "$role" subscribePattern "\$share/+/edgeprobe/v1/#" allow
  ctrl addRoleACL "$role" publishClientSend "edgeprobe/v1/+/+/cmd" allow
fi
ctrl deleteClient "$name" 2>/dev/null || true
ctrl createClient "$name" -p "$password"
ctrl addClientRole "$name" "$role"
[ -n "${2:-}" ] || echo "$name $password"

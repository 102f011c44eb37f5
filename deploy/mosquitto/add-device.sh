#!/bin/sh
# Register a device (or the collector): add a credential to the broker's password file.
# The username IS the device_id, which is what the ACL's %u patterns rely on.
#
#   add-device.sh PASSWD_FILE DEVICE_ID [PASSWORD]     (a random password is made and printed if omitted)
# Then reload the broker: systemctl reload mosquitto (or kill -HUP its pid).
set -eu
file=${1:?usage: add-device.sh PASSWD_FILE DEVICE_ID [PASSWORD]}
device=${2:?device id required}
case $device in *[!A-Za-z0-9_.-]*|[!A-Za-z0-9]*) echo "device id '$device' must match [A-Za-z0-9][A-Za-z0-9_.-]*" >&2; exit 2 ;; esac
password=${3:-$(openssl rand -hex 16)}
if [ -f "$file" ]; then mosquitto_passwd -b "$file" "$device" "$password"
else touch "$file" && chmod 600 "$file" && mosquitto_passwd -b "$file" "$device" "$password"; fi
[ -n "${3:-}" ] || echo "$device $password"

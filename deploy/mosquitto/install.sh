#!/bin/sh
# Install the edgeprobe broker configuration into Debian's mosquitto, as root.
#
#   install.sh [--root DIR] [--port PORT] CA_DIR
#
# CA_DIR holds ca.crt, server.crt and server.key (make them with make-certs.sh,
# on the admin machine). Only those three are copied: the CA key never reaches
# the broker. --root installs under DIR instead of / (the tests use it), --port
# changes the TLS listener (default 8883). Then restart mosquitto and register
# the collector and devices with add-collector.sh and add-device.sh.
set -eu
root= port=8883
while [ $# -gt 0 ]; do
  case $1 in
    --root) root=${2:?--root needs a directory}; shift 2 ;;
    --port) port=${2:?--port needs a number}; shift 2 ;;
    -*) echo "install.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
ca=${1:?usage: install.sh [--root DIR] [--port PORT] CA_DIR}
here=$(cd "$(dirname "$0")" && pwd)
etc=$root/etc/mosquitto
dir=$etc/edgeprobe
lib=$root/var/lib/mosquitto

id mosquitto >/dev/null 2>&1 || { echo "there is no mosquitto user: install Debian's mosquitto package first" >&2; exit 2; }
plugin=
for p in /usr/lib/*/mosquitto_dynamic_security.so /usr/lib/mosquitto_dynamic_security.so; do
  [ -f "$p" ] && plugin=$p && break
done
[ -n "$plugin" ] || { echo "mosquitto's dynamic-security plugin is missing: install mosquitto 2.0 or later" >&2; exit 2; }
for f in ca.crt server.crt server.key; do
  [ -f "$ca/$f" ] || { echo "$ca/$f is missing: make it with make-certs.sh $ca BROKER_NAME" >&2; exit 2; }
done
[ -d "$etc/conf.d" ] || { echo "$etc/conf.d is missing: install Debian's mosquitto package first" >&2; exit 2; }

install -d -o root -g mosquitto -m 0750 "$dir" "$dir/certs"
install -o root -g mosquitto -m 0644 "$ca/ca.crt" "$ca/server.crt" "$dir/certs/"
install -o root -g mosquitto -m 0640 "$ca/server.key" "$dir/certs/server.key"
[ -d "$lib" ] || install -d -o mosquitto -g mosquitto -m 0750 "$lib"

conf=$(mktemp)
sed -e "s#/etc/mosquitto/#$etc/#g" -e "s#/var/lib/mosquitto/#$lib/#g" -e "s#@DYNSEC_PLUGIN@#$plugin#" \
    -e "s#^listener 8883\$#listener $port#" "$here/edgeprobe.conf" > "$conf"
install -o root -g mosquitto -m 0640 "$conf" "$etc/conf.d/edgeprobe.conf"
rm -f "$conf"

# The dynamic-security store (users, roles) with one admin for mosquitto_ctrl; the
# admin's options file is root's alone (0600), and mosquitto owns the store it rewrites.
if [ ! -f "$lib/edgeprobe-dynsec.json" ]; then
  admin=$(openssl rand -hex 24)
  mosquitto_ctrl dynsec init "$lib/edgeprobe-dynsec.json" edgeprobe-admin "$admin" >/dev/null
  chown mosquitto:mosquitto "$lib/edgeprobe-dynsec.json"
  chmod 0600 "$lib/edgeprobe-dynsec.json"
  # mosquitto_ctrl reads $XDG_CONFIG_HOME/mosquitto_ctrl (its -o option is ignored in 2.0.11)
  install -d -o root -g root -m 0700 "$dir/ctrl"
  (umask 077 && printf -- '-h 127.0.0.1\n-p %s\n-u edgeprobe-admin\n-P %s\n--cafile %s\n' \
     "$port" "$admin" "$dir/certs/ca.crt" > "$dir/ctrl/mosquitto_ctrl")
fi
echo "installed $etc/conf.d/edgeprobe.conf; restart mosquitto, then add-collector.sh and add-device.sh"

#!/bin/sh
# Make a private CA, a server certificate for the broker and (optionally) client
# certificates, with openssl. For tests and first installs; a site with its own
# PKI uses its own certificates instead.
#
#   make-certs.sh OUT_DIR [SERVER_NAME ...]        CA + server cert (SAN: names, 127.0.0.1, localhost)
#   OUT_DIR is the admin machine's CA folder: install.sh copies only ca.crt, server.crt and server.key
#   to the broker, never ca.key.
#   make-certs.sh OUT_DIR --client NAME            a client cert signed by OUT_DIR/ca.*
set -eu
out=${1:?usage: make-certs.sh OUT_DIR [SERVER_NAME ...] | OUT_DIR --client NAME}
shift
mkdir -p "$out"
umask 077
days=825

if [ "${1:-}" = "--client" ]; then
  name=${2:?client name required}
  openssl req -new -newkey rsa:2048 -nodes -subj "/CN=$name" -keyout "$out/$name.key" -out "$out/$name.csr" 2>/dev/null
  openssl x509 -req -in "$out/$name.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
    -days "$days" -sha256 -out "$out/$name.crt" 2>/dev/null
  rm -f "$out/$name.csr"
  echo "$out/$name.crt"
  exit 0
fi

if [ ! -f "$out/ca.key" ]; then
  openssl req -x509 -new -newkey rsa:2048 -nodes -days 3650 -sha256 -subj "/CN=edgeprobe CA" \
    -keyout "$out/ca.key" -out "$out/ca.crt" 2>/dev/null
fi
san="IP:127.0.0.1,DNS:localhost"
cn=localhost
for name in "$@"; do
  cn=$name
  case $name in *[!0-9.]*) san="$san,DNS:$name" ;; *) san="$san,IP:$name" ;; esac
done
ext=$(mktemp)
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" > "$ext"
openssl req -new -newkey rsa:2048 -nodes -subj "/CN=$cn" -keyout "$out/server.key" -out "$out/server.csr" 2>/dev/null
openssl x509 -req -in "$out/server.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
  -days "$days" -sha256 -extfile "$ext" -out "$out/server.crt" 2>/dev/null
rm -f "$out/server.csr" "$ext"
chmod 644 "$out/ca.crt" "$out/server.crt"
chmod 640 "$out/server.key"
echo "$out/ca.crt $out/server.crt $out/server.key"

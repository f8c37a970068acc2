#!/usr/bin/env bash
# Create a development PKI in OUTDIR (default: certs/dev):
#   ca.crt ca.key            - a dev CA (EC P-256, 10 years)
#   server.crt server.key    - server certificate, SANs localhost and 127.0.0.1 (and ::1)
#   client.crt client.key    - client certificate, CN=dev-client, O=brokerside-dev (clientAuth)
#   other-ca.crt other-ca.key, untrusted-client.crt untrusted-client.key
#                            - a second CA and a client it signed, for negative tests
# Existing files are kept unless FORCE=1. Keys are mode 0600. For development and tests only.
set -euo pipefail
out=${1:-"$(dirname "$0")/dev"}
mkdir -p "$out"
cd "$out"
if [ -f ca.crt ] && [ "${FORCE:-0}" != 1 ]; then
    echo "dev certificates already in $out (FORCE=1 to remake)"
    exit 0
fi
umask 077
days=3650

make_ca() { # name cn
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" \
        -out "$1.crt" -days $days -subj "/O=brokerside-dev/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

make_leaf() { # name ca subject extfile-content
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" \
        -subj "$3" 2>/dev/null
    printf '%s\n' "$4" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -out "$1.crt" \
        -days $days -extfile "$1.ext" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

make_ca ca "brokerside dev CA"
make_leaf server ca "/O=brokerside-dev/CN=localhost" \
    "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
extendedKeyUsage=serverAuth,clientAuth
keyUsage=critical,digitalSignature"
make_leaf client ca "/O=brokerside-dev/CN=dev-client" \
    "subjectAltName=DNS:dev-client.local
extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature"
make_ca other-ca "untrusted CA"
make_leaf untrusted-client other-ca "/O=elsewhere/CN=intruder" \
    "extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature"
rm -f ./*.srl
chmod 0644 ./*.crt
echo "dev certificates written to $out"

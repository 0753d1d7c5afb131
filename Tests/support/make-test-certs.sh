#!/usr/bin/env bash
# Makes throwaway certificates for the TLS tests in DIR (never committed): a test CA, ECDSA
# and RSA leaf certificates for a.test, ECDSA ones for b.test and *.w.test, a client certificate
# signed by the CA, one signed by another CA, and session ticket keys.
set -euo pipefail
dir="$1"
mkdir -p "$dir"
cd "$dir"
q() { "$@" >/dev/null 2>&1; }
ec() { q openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

ec ca.key
q openssl req -x509 -new -key ca.key -out ca.crt -days 2 -subj "/CN=lb test CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
ec other-ca.key
q openssl req -x509 -new -key other-ca.key -out other-ca.crt -days 2 -subj "/CN=other CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign

leaf() { # NAME KEYFILE SAN [EXT]
    q openssl req -new -key "$2" -out "$1.csr" -subj "/CN=$3"
    printf 'subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=%s\n' "$3" "${4:-serverAuth}" > "$1.ext"
    q openssl x509 -req -in "$1.csr" -CA "${5:-ca}.crt" -CAkey "${5:-ca}.key" -CAcreateserial -out "$1.crt" -days 2 -extfile "$1.ext"
    rm -f "$1.csr" "$1.ext"
}
ec a-ec.key; leaf a-ec a-ec.key a.test
q openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out a-rsa.key; leaf a-rsa a-rsa.key a.test
ec b-ec.key; leaf b-ec b-ec.key b.test
ec w-ec.key; leaf w-ec w-ec.key "*.w.test"
ec client.key; leaf client client.key client.test clientAuth
ec stranger.key; leaf stranger stranger.key stranger.test clientAuth other-ca
# A certificate file that carries its chain (leaf, then the CA).
cat b-ec.crt ca.crt > b-chain.crt
# A "good" OCSP response for a.test's ECDSA certificate, signed by the CA (for ssl_stapling_file).
printf 'V\t301231000000Z\t\t%s\tunknown\t/CN=a.test\n' "$(openssl x509 -in a-ec.crt -noout -serial | cut -d= -f2)" > index.txt
q openssl ocsp -index index.txt -rsigner ca.crt -rkey ca.key -CA ca.crt -issuer ca.crt -cert a-ec.crt -respout a-ocsp.der -ndays 2
head -c 80 /dev/urandom > ticket1.key
head -c 80 /dev/urandom > ticket2.key
head -c 48 /dev/urandom > ticket48.key
touch done

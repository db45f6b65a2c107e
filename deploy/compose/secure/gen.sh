#!/bin/sh
# Makes the certificates, gossip key and web configuration that
# docker-compose.secure.yml uses. From deploy/:
#
#   sh compose/secure/gen.sh PASSWORD
#
# It writes into compose/secure/out/:
#
#   ca.pem, ca-key.pem            a CA for this cluster (the key stays here)
#   <service>/tls/node.pem        for query-1, query-2, store-1, store-2,
#   <service>/tls/node-key.pem      sidecar-a, sidecar-b: a certificate with
#   <service>/tls/ca.pem            the service name as DNS SAN, its fixed IP
#                                   as IP SAN, serverAuth and clientAuth
#   <service>/cluster.key         the gossip key, the same for every service
#   <service>/web.yml             HTTPS with the service's certificate and
#                                   three users: admin (PASSWORD), prometheus
#                                   and grafana (random passwords)
#   prometheus/ca.pem, password   what Prometheus needs to scrape skein
#   grafana/ca.pem, password      what Grafana's data source needs
#
# Running it again keeps the CA and the gossip key, and replaces the
# certificates and passwords. Then
#   docker compose -f docker-compose.yml -f docker-compose.secure.yml \
#     up -d --force-recreate secrets-init
# copies them into the services' volumes, and skein reads them again without
# a restart. Restart prometheus-a, prometheus-b and grafana to be sure they
# use theirs.
#
# Needs openssl (1.1.1 or later) and htpasswd, for the bcrypt
# hashes of web.yml, which openssl cannot make: apt-get install apache2-utils
# (Debian, Ubuntu), dnf install httpd-tools (Fedora, RHEL), apk add
# apache2-utils (Alpine); macOS ships it.
#
# The fixed IPs come from SKEIN_COMPOSE_NET (default 10.210.0, i.e.
# 10.210.0.0/24); set the same value for gen.sh and docker compose.
set -eu

die() {
	echo "gen.sh: $*" >&2
	exit 1
}

[ $# -eq 1 ] && [ -n "$1" ] || die "usage: sh compose/secure/gen.sh PASSWORD (the password of the user admin)"
admin_password=$1

command -v openssl >/dev/null 2>&1 || die "openssl not found"
command -v htpasswd >/dev/null 2>&1 ||
	die "htpasswd not found: it makes the bcrypt hashes of web.yml, which openssl cannot.
Install apache2-utils (Debian, Ubuntu, Alpine) or httpd-tools (Fedora, RHEL)."

here=$(cd "$(dirname "$0")" && pwd)
out=$here/out
net=${SKEIN_COMPOSE_NET:-10.210.0}

# Service, last octet of its fixed IP (docker-compose.secure.yml), extra SANs.
# The queriers are also reached as skein-query (their network alias, used by
# Grafana) and on localhost (their published ports).
nodes="
query-1 11 ,DNS:skein-query,DNS:localhost,IP:127.0.0.1
query-2 12 ,DNS:skein-query,DNS:localhost,IP:127.0.0.1
store-1 21
store-2 22
sidecar-a 31
sidecar-b 32
"

umask 077
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# A request configuration of our own, so that the system's openssl.cnf adds
# nothing.
cat >"$tmp/req.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF

newkey() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

if [ ! -f "$out/ca.pem" ] || [ ! -f "$out/ca-key.pem" ]; then
	newkey "$out/ca-key.pem"
	openssl req -x509 -new -config "$tmp/req.cnf" -extensions ca \
		-key "$out/ca-key.pem" -subj "/CN=skein compose CA" -days 3650 \
		-out "$out/ca.pem"
	echo "made a new CA: $out/ca.pem"
fi
chmod 0644 "$out/ca.pem"

# cert DIR NAME SANS: a key and a certificate the CA signs, for both uses.
cert() {
	newkey "$1/node-key.pem"
	openssl req -new -config "$tmp/req.cnf" -key "$1/node-key.pem" \
		-subj "/CN=$2" -out "$tmp/node.csr"
	printf '%s\n' \
		'basicConstraints = critical, CA:FALSE' \
		'keyUsage = critical, digitalSignature' \
		'extendedKeyUsage = serverAuth, clientAuth' \
		'subjectKeyIdentifier = hash' \
		'authorityKeyIdentifier = keyid' \
		"subjectAltName = $3" >"$tmp/node.ext"
	openssl x509 -req -in "$tmp/node.csr" -CA "$out/ca.pem" -CAkey "$out/ca-key.pem" \
		-set_serial "0x$(openssl rand -hex 16)" -days 397 \
		-extfile "$tmp/node.ext" -out "$1/node.pem" 2>/dev/null
	cp "$out/ca.pem" "$1/ca.pem"
}

# bcrypt PASSWORD: the hash, for basic_auth_users.
bcrypt() {
	printf '%s' "$1" | htpasswd -niBC 10 "" | tr -d ':\n'
}

# The gossip key: base64 of 32 random bytes, as `skein keygen` prints.
if [ ! -f "$out/cluster.key" ]; then
	openssl rand -base64 32 >"$out/cluster.key"
fi

prometheus_password=$(openssl rand -hex 16)
grafana_password=$(openssl rand -hex 16)
admin_hash=$(bcrypt "$admin_password")
prometheus_hash=$(bcrypt "$prometheus_password")
grafana_hash=$(bcrypt "$grafana_password")

echo "$nodes" | while read -r name octet extra; do
	[ -n "$name" ] || continue
	mkdir -p "$out/$name/tls"
	cert "$out/$name/tls" "$name" "DNS:$name,IP:$net.$octet${extra:-}"
	cp "$out/cluster.key" "$out/$name/cluster.key"
	cat >"$out/$name/web.yml" <<EOF
# Made by gen.sh. Paths are relative to this file's directory.
tls_server_config:
  cert_file: tls/node.pem
  key_file: tls/node-key.pem
basic_auth_users:
  admin: "$admin_hash"
  prometheus: "$prometheus_hash"
  grafana: "$grafana_hash"
EOF
	echo "made $name: DNS:$name,IP:$net.$octet${extra:-}"
done

for client in prometheus grafana; do
	mkdir -p "$out/$client"
	cp "$out/ca.pem" "$out/$client/ca.pem"
done
printf '%s' "$prometheus_password" >"$out/prometheus/password"
printf '%s' "$grafana_password" >"$out/grafana/password"

echo "done. From deploy/:
  docker compose -f docker-compose.yml -f docker-compose.secure.yml up -d --build
  curl --cacert compose/secure/out/ca.pem -u admin:PASSWORD https://localhost:10902/api/v1/stores"

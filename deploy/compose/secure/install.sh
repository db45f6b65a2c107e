#!/bin/sh
# Run by the one-shot secrets-init service of docker-compose.secure.yml, as
# root: copies what gen.sh made (compose/secure/out, mounted at /src/out)
# into one volume per service, owned by the uid that service runs as and
# readable by it alone (directories 0700, files 0600). A bind mount could
# not do that: its files keep the owner they have on the host.
set -eu

src=/src/out
[ -f "$src/ca.pem" ] || {
	echo "install.sh: compose/secure/out is empty; run 'sh compose/secure/gen.sh PASSWORD' in deploy/ first" >&2
	exit 1
}

# copy NAME UID:GID: /src/out/NAME/ into the volume at /secrets/NAME.
copy() {
	[ -d "$src/$1" ] || {
		echo "install.sh: $src/$1 is missing; run gen.sh again" >&2
		exit 1
	}
	cp -R "$src/$1/." "/secrets/$1/"
	chown -R "$2" "/secrets/$1"
	find "/secrets/$1" -type d -exec chmod 0700 {} +
	find "/secrets/$1" -type f -exec chmod 0600 {} +
	echo "install.sh: $1 ($2)"
}

# The skein image's user.
for name in query-1 query-2 store-1 store-2; do
	copy "$name" 10001:10001
done
# The sidecars run as Prometheus' uid (docker-compose.yml), like Prometheus.
for name in sidecar-a sidecar-b prometheus; do
	copy "$name" 65534:65534
done
# Grafana's image runs as uid 472, group 0.
copy grafana 472:0

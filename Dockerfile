# Build stage: compiles the release binary.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY src ./src
COPY benches ./benches
COPY cluster-tests ./cluster-tests
RUN cargo build --release --locked --bin skein

# Runtime stage: the binary alone, as an unprivileged user.
FROM debian:bookworm-slim
RUN groupadd --system --gid 10001 skein \
 && useradd --system --uid 10001 --gid 10001 --no-create-home skein \
 && mkdir /data \
 && chown 10001:10001 /data
# CA roots for TLS to S3, GCS and Azure endpoints (the slim image has none);
# taken from the build stage so the runtime stage installs no package.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /src/target/release/skein /usr/local/bin/skein
# Local state (a store gateway's --data-dir, whose default ./data resolves
# to /data/data here): mount a volume to keep index headers across restarts.
VOLUME ["/data"]
WORKDIR /data
USER 10001
# 10900/udp: gossip; 10901: gRPC Store API; 10902: HTTP (health, readiness,
# metrics, and on queriers the Prometheus HTTP API).
EXPOSE 10900/udp 10901 10902
# Liveness over bash's /dev/tcp, so no HTTP client has to be installed. It
# assumes the HTTP server listens on port 10902 of 127.0.0.1 or 0.0.0.0
# (the default --http-address).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/10902 && printf 'GET /-/healthy HTTP/1.0\\r\\n\\r\\n' >&3 && IFS= read -r -t 4 status <&3 && [[ $status == *' 200'* ]]"]
ENTRYPOINT ["/usr/local/bin/skein"]
CMD ["synthetic"]

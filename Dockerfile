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
RUN useradd --system --uid 10001 --no-create-home skein
COPY --from=build /src/target/release/skein /usr/local/bin/skein
USER 10001
# 10901: gRPC Store API; 10902: HTTP (health, readiness, metrics).
EXPOSE 10901 10902
ENTRYPOINT ["/usr/local/bin/skein"]
CMD ["synthetic"]

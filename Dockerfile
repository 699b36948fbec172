# syntax=docker/dockerfile:1
# The `jalon` image: the server binary on a distroless runtime, as the
# non-root user 65532. The Helm chart (helm/jalon) runs it with `serve` and,
# as a pre-install/pre-upgrade hook, `migrate`.
#
#   docker build -t ghcr.io/jalon/jalon:0.1.0 .

# Build: protos compile with protox (pure Rust), SQLite is bundled and TLS is
# rustls: no protoc, no OpenSSL, nothing beyond the Rust image.
FROM rust:1.95-bookworm AS builder
WORKDIR /app
COPY . .
# The registry cache survives source changes (BuildKit); the build itself does
# not need the network beyond crates.io, and --locked keeps Cargo.lock as is.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    cargo build --release --locked -p jalon-server \
 && /app/target/release/jalon --version

# Run: glibc and libgcc only (what the binary links), no shell, no package
# manager, user nonroot (65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /app/target/release/jalon /usr/local/bin/jalon
USER 65532:65532
# Writable by nonroot: a bare `docker run` (development mode, SQLite) keeps its
# jalon.db and .jalon-dev-secret here. The chart uses PostgreSQL and a read-only
# root filesystem, and writes nothing.
WORKDIR /home/nonroot
EXPOSE 50051
# Listen on every interface inside the container (the default, 127.0.0.1,
# would be unreachable); the chart sets it too.
ENV JALON__SERVER__LISTEN=0.0.0.0:50051
ENTRYPOINT ["/usr/local/bin/jalon"]
CMD ["serve"]

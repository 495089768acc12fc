# syntax=docker/dockerfile:1
# Multi-stage build of the `aim` binary. The first build compiles only the dependencies (from the
# manifests and the lock file, with empty stand-ins for our own sources), so that layer is
# reused until the dependencies change.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY rust-toolchain.toml Cargo.toml Cargo.lock ./
# Patched third-party crates (vendor/README.md) are dependencies like any other.
COPY vendor vendor
COPY services/api/Cargo.toml services/api/
COPY shared/connect/Cargo.toml shared/connect/
COPY shared/store/Cargo.toml shared/store/build.rs shared/store/
COPY shared/local-pg/Cargo.toml shared/local-pg/
COPY shared/pipeline/Cargo.toml shared/pipeline/
COPY services/faults/Cargo.toml services/faults/
RUN set -eu; \
    for dir in services/api services/faults shared/connect shared/store shared/local-pg shared/pipeline; do \
      mkdir -p "$dir/src" "$dir/benches"; touch "$dir/src/lib.rs"; \
    done; \
    echo 'fn main() {}' > services/api/src/main.rs; \
    echo 'fn main() {}' > services/faults/src/main.rs; \
    mkdir -p services/api/tests/api migrations; touch services/api/tests/api/main.rs; \
    echo 'fn main() {}' > services/api/benches/analytics.rs; \
    echo 'fn main() {}' > shared/pipeline/benches/ingest.rs; \
    cargo build --release --locked -p aim-api; \
    rm -rf services/api/src services/api/benches services/api/tests shared/*/src shared/*/benches
COPY services services
COPY shared shared
COPY migrations migrations
# The stand-in build left newer timestamps on our own crates' outputs; make sure they rebuild.
RUN touch services/api/src/main.rs services/api/src/lib.rs shared/*/src/lib.rs \
 && cargo build --release --locked -p aim-api

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/aim --create-home aim
COPY --from=build /src/target/release/aim /usr/local/bin/aim
USER aim
ENV AIM_LISTEN=0.0.0.0:8080 \
    AIM_DATA_DIR=/var/lib/aim \
    AIM_LOG_FORMAT=json
EXPOSE 8080 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/health || exit 1
ENTRYPOINT ["aim"]
CMD ["serve"]

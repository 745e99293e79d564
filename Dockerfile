# syntax=docker/dockerfile:1

# nene's container image, built by `docker compose up --build` (the `app`
# service) or `docker build -t nene .`. Two stages: the builder compiles the
# release binary with the dependencies in their own cached layer; the runtime
# is a slim Debian with the binary, ini/ and htdocs/, run as an unprivileged
# user. nene links only glibc (TLS to Redis is rustls with built-in roots),
# so the runtime needs no extra packages.

FROM rust:1-bookworm AS builder
WORKDIR /src

# Dependencies first: this layer is rebuilt only when a manifest or
# Cargo.lock changes, not on every source edit. Empty stand-ins replace
# nene's own targets (the bench is declared in Cargo.toml, so it needs one)
# and the FastCGI crate, the example applications and the test harness,
# which are workspace members: cargo reads their manifests even when it
# builds nene alone (`-p nene`). `full`: the image takes every session DSN (memcached, SQLite,
# MySQL/MariaDB, PostgreSQL besides files and Redis).
COPY Cargo.toml Cargo.lock ./
COPY fastcgi/Cargo.toml fastcgi/
COPY examples/hello/Cargo.toml examples/hello/
COPY examples/todo/Cargo.toml examples/todo/
COPY test-support/Cargo.toml test-support/
RUN mkdir -p src fastcgi/src benches examples/hello/src examples/todo/src test-support/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs fastcgi/src/lib.rs test-support/src/lib.rs \
    && echo 'fn main() {}' > benches/protocol.rs \
    && echo 'fn main() {}' > benches/session_formats.rs \
    && echo 'fn main() {}' > examples/hello/src/main.rs \
    && echo 'fn main() {}' > examples/todo/src/main.rs \
    && cargo build --release --locked -p nene --features full \
    && rm -rf src fastcgi/src

# nene itself. COPY keeps the sources' modification times, which can be
# older than the stand-ins just built: touch them so cargo rebuilds nene.
COPY fastcgi/src ./fastcgi/src
COPY src ./src
RUN touch src/main.rs src/lib.rs fastcgi/src/lib.rs \
    && cargo build --release --locked -p nene --features full

FROM debian:bookworm-slim

RUN groupadd --system --gid 10001 nene \
    && useradd --system --no-log-init --uid 10001 --gid nene \
        --home-dir /app --no-create-home --shell /usr/sbin/nologin nene

WORKDIR /app
COPY --from=builder /src/target/release/nene /usr/local/bin/nene
COPY ini/ ./ini/
COPY htdocs/ ./htdocs/
# session.save_path (var/sessions) for file sessions, which nene (not root)
# cannot create under /app itself. A named volume mounted here starts as a
# copy of this directory, owner and mode included.
RUN mkdir -p var/sessions \
    && chown nene:nene var/sessions \
    && chmod 0700 var/sessions

USER nene
# ini/system.ini listens on loopback; in a container nginx connects from
# another container, so listen on every interface.
ENV NENE_LISTEN=0.0.0.0:9000
EXPOSE 9000
# SIGTERM: nene stops accepting and lets requests in flight finish within
# server.drain_timeout (8s); compose.yaml's stop_grace_period is longer.
# SIGUSR2 (`docker kill -s SIGUSR2`): a graceful upgrade in place, the same
# process (PID 1 here) executing the binary again on the same socket; an
# image deploy is a new container instead (compose.yaml says how).
STOPSIGNAL SIGTERM
CMD ["nene", "serve"]

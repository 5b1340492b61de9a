# syntax=docker/dockerfile:1.7
# The ecom image: one binary, every workload one subcommand of it (`ecom gateway`,
# `ecom stream-engine`, ... ; see compose.yaml and k8s/). Build with BuildKit:
#   docker build -t ecom .
#
# Stage 1 compiles with the crates' downloads and the target directory in BuildKit cache
# mounts, so that a change to the sources rebuilds the workspace's own crates, not its
# dependencies. Stage 2 is a slim Debian with the binary, CA certificates (with Amazon RDS's CA
# bundle, which the services verify RDS against: PGSSLMODE=verify-full) and a non-root user.

ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN} AS build
WORKDIR /src
# librdkafka is built from its bundled sources (cmake-free, with make and gcc), against the
# system's OpenSSL for TLS to the brokers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential pkg-config libssl-dev \
    && rm -rf /var/lib/apt/lists/*
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ecom \
    && cp target/release/ecom /usr/local/bin/ecom

FROM debian:${DEBIAN}-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 ecom \
    && useradd --system --uid 10001 --gid ecom --home-dir /var/lib/ecom --create-home ecom
COPY --from=build /usr/local/bin/ecom /usr/local/bin/ecom
# The CAs of Amazon RDS in every region (PGSSLROOTCERT in k8s/overlays/aws).
ADD --chmod=644 https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem /etc/ssl/certs/rds-global-bundle.pem
USER 10001:10001
WORKDIR /var/lib/ecom
# The services' JSON logs for the log shippers; override per workload.
ENV ECOM_LOG_FORMAT=json
EXPOSE 8080
# `ecom health` asks /healthz on the port of ECOM_ADDR (no curl in the image).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["ecom", "health"]
ENTRYPOINT ["ecom"]
CMD ["up", "--addr", "0.0.0.0:8080", "--data-dir", "/var/lib/ecom/data"]

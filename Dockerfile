# syntax=docker/dockerfile:1
# The `lineage` image: the binary and the default plugin, running as a
# non-root user on a slim Debian. Build: docker build -t lineage:dev .

FROM rust:1.95.0-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      cmake libssl-dev libsasl2-dev zlib1g-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    scripts/build-plugins.sh \
 && cargo build --release --locked -p lineage \
 && mkdir -p /out \
 && cp target/release/lineage /out/lineage \
 && cp plugins/enrich.wasm /out/enrich.wasm

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libssl3 libsasl2-2 zlib1g libcurl4 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 lineage \
 && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin lineage
COPY --from=build /out/lineage /usr/local/bin/lineage
# The default plugin; the chart mounts the one in use at /plugin.
COPY --from=build /out/enrich.wasm /opt/lineage/plugins/enrich.wasm
ENV PLUGIN_PATH=/opt/lineage/plugins/enrich.wasm \
    PLUGIN_CACHE_DIR=/tmp/lineage-components \
    METRICS_ADDRESS=0.0.0.0:9464
USER 10001:10001
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/lineage"]
CMD ["run"]

# lakelog container image: a static-ish release build on a distroless, non-root runtime.
#   docker build -t lakelog:0.1.0 .
#   docker run --rm -e LAKELOG_CONFIG_YAML="$(cat pipeline.yaml)" -p 127.0.0.1:9464:9464 lakelog:0.1.0
# The image runs `lakelog run --log-json`; the pipeline YAML comes from LAKELOG_CONFIG_YAML (an
# ECS secret from SSM in infra/) or a mounted file (`-c /config/pipeline.yaml`).

FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin lakelog \
 && strip target/release/lakelog

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/lakelog /usr/local/bin/lakelog
# Inside a container the metrics listener must leave loopback for Prometheus to reach it.
ENV LAKELOG_METRICS_LISTEN=0.0.0.0:9464
EXPOSE 9464
USER nonroot
ENTRYPOINT ["/usr/local/bin/lakelog"]
CMD ["run", "--log-json"]

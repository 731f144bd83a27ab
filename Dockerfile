# syntax=docker/dockerfile:1
# The spendgate binaries in a small non-root image: `ingest` (the default
# command), `audit` when cmd/audit exists, and a tiny `healthcheck` (the
# runtime image has no shell, curl or wget).
#
#   docker build -t spendgate .
#   docker run --rm -e SPENDGATE_NATS_URL=nats://nats:4222 \
#     -e SPENDGATE_CLICKHOUSE_ADDR=clickhouse:9000 spendgate
#   docker run --rm spendgate audit --help     # another binary: name it

FROM golang:1.26-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# Every command under cmd/ (ingest, audit, …) plus the health probe, static.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -ldflags="-s -w" -o /out/ ./cmd/... ./deploy/healthcheck

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
# Embedded-NATS data (only used when SPENDGATE_NATS_URL is empty) goes here.
WORKDIR /home/nonroot
USER nonroot:nonroot
ENV SPENDGATE_METRICS_LISTEN=0.0.0.0:9464 \
    SPENDGATE_LOG_FORMAT=json
EXPOSE 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/healthcheck", "http://127.0.0.1:9464/readyz"]
CMD ["ingest"]

# herald's image: the controller and the speaker (one image, two entrypoints).
#
# Build with `make image` (BuildKit: the cache mounts keep Go's module and build
# caches between builds). The base images are build arguments so that a machine
# without registry access can pass images it made itself (hack/local-images.sh);
# the defaults are the ordinary public ones.
ARG GO_IMAGE=golang:1.26
ARG BASE_IMAGE=gcr.io/distroless/static:nonroot

FROM ${GO_IMAGE} AS build
ARG VERSION=dev
ENV CGO_ENABLED=0 GOFLAGS=-trimpath GOMODCACHE=/go/pkg/mod GOCACHE=/root/.cache/go-build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    ldflags="-s -w -X github.com/heraldlb/herald/internal/version.Version=${VERSION}" && \
    go build -ldflags "$ldflags" -o /out/herald-controller ./controller && \
    go build -ldflags "$ldflags" -o /out/herald-speaker ./speaker

FROM ${BASE_IMAGE}
ARG VERSION=dev
LABEL org.opencontainers.image.title=herald \
      org.opencontainers.image.version=${VERSION} \
      org.opencontainers.image.source=https://github.com/heraldlb/herald
COPY --from=build /out/herald-controller /out/herald-speaker /
USER 65532:65532
ENTRYPOINT ["/herald-controller"]

# herald's image: the controller and the speaker (one image, two entrypoints).
FROM golang:1.26 AS build
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/heraldlb/herald/internal/version.Version=${VERSION}" \
      -o /out/herald-controller ./controller && \
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/heraldlb/herald/internal/version.Version=${VERSION}" \
      -o /out/herald-speaker ./speaker

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/herald-controller /out/herald-speaker /
USER 65532:65532
ENTRYPOINT ["/herald-controller"]

# syntax=docker/dockerfile:1
#
# Kestrel sensor image. `make image` builds it with the version from git; by hand:
#   docker build --build-arg VERSION=$(scripts/version.sh) --build-arg COMMIT=$(git rev-parse HEAD) \
#     -t ghcr.io/kestrel-sec/kestrel:<version, "+" as "-"> .
#
# Two stages on the same Debian release (12, bookworm), so the binary's glibc matches the runtime's:
# NVML (libnvidia-ml.so.1) is dlopen'ed through cgo, and the NVIDIA container runtime injects the
# host driver's glibc-linked library at start (NVIDIA_DRIVER_CAPABILITIES=utility). A musl or
# scratch image cannot load it.
#
# Bases are pinned by digest; the tag beside it is for people. The digests are the ones public
# Dockerfiles kept current by Dependabot/Renovate pinned for these tags when this was written (this
# repository's build machine reaches no registry to re-resolve them). To move to a newer base:
#   docker buildx imagetools inspect golang:1.26.8-bookworm         (the index digest)
#   docker buildx imagetools inspect gcr.io/distroless/base-debian12:latest
# and replace both tag and digest; deploy/release_test.go checks the form and that the Go version
# is at least go.mod's.

FROM golang:1.26.8-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d AS build
WORKDIR /src
COPY . .
# The version and commit of the source (.git is not in the build context).
ARG VERSION
ARG COMMIT=unknown
# The BPF objects and protobuf code are committed: no clang or protoc here. The same `make build`
# as on a workstation, with the module and build caches kept between builds.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    test -n "$VERSION" || { echo "build with --build-arg VERSION=... (make image passes it)" >&2; exit 1; }; \
    make build BIN=/out/sensor VERSION="$VERSION" COMMIT="$COMMIT" && /out/sensor --version

# glibc, CA certificates and tzdata; no shell, no package manager.
FROM gcr.io/distroless/base-debian12:latest@sha256:9e9b50d2048db3741f86a48d939b4e4cc775f5889b3496439343301ff54cdba8 AS runtime
COPY --from=build /out/sensor /usr/bin/sensor
# Root, but the DaemonSet drops every capability except the few it lists and mounts the root
# filesystem read-only.
USER 0:0
ENTRYPOINT ["/usr/bin/sensor"]

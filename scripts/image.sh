#!/usr/bin/env bash
# make image: build the sensor image (Dockerfile) with the first container builder that works here:
# a docker daemon, then podman, then buildah. Without one it says what it found and fails.
#   scripts/image.sh REF VERSION COMMIT
set -euo pipefail
cd "$(dirname "$0")/.."
ref=$1 version=$2 commit=$3
args=(--build-arg "VERSION=$version" --build-arg "COMMIT=$commit" -f Dockerfile -t "$ref" .)

found=()
if command -v docker >/dev/null; then
  if docker info >/dev/null 2>&1; then
    echo "make image: docker build -t $ref (version $version)"
    DOCKER_BUILDKIT=1 exec docker build "${args[@]}"
  fi
  why=$(docker info 2>&1 | grep -m1 -iE 'cannot connect|error' || true)
  found+=("docker CLI at $(command -v docker), but no daemon answers (${why:-docker info failed})")
fi
if command -v podman >/dev/null; then
  echo "make image: podman build -t $ref (version $version)"
  exec podman build "${args[@]}"
fi
if command -v buildah >/dev/null; then
  echo "make image: buildah build -t $ref (version $version)"
  exec buildah build "${args[@]}"
fi
{
  echo "make image: no container builder works here, so $ref was not built."
  if ((${#found[@]})); then printf '  found: %s\n' "${found[@]}"; fi
  echo "  Start a docker daemon, or install podman or buildah (apt-get install podman), and run make image again."
} >&2
exit 1

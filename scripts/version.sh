#!/usr/bin/env bash
# Prints the semantic version of the source tree, from git tags vMAJOR.MINOR.PATCH[-PRERELEASE]:
#
#   HEAD is tagged v1.2.3                 v1.2.3
#   5 commits after the tag v1.2.3        v1.2.4-dev.5+<commit>     (a pre-release of the next patch)
#   5 commits after the tag v1.3.0-rc.1   v1.3.0-rc.1.dev.5+<commit>
#   no release tag in the history         v0.0.0-dev+<commit>
#   uncommitted changes to tracked files  ".dirty" ends the build metadata (v1.2.3+dirty)
#   not a git checkout                    v0.0.0-dev+unknown
#
# <commit> is the 12-digit abbreviated commit. `make build`, `make image` and the Dockerfile stamp this
# into the binary (sensor --version); image tags use it with "+" replaced by "-" (a tag allows no "+").
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"

if ! commit=$(git rev-parse --short=12 HEAD 2>/dev/null); then
  echo v0.0.0-dev+unknown
  exit 0
fi
dirty=""
git diff --quiet HEAD -- 2>/dev/null || dirty=dirty

semver='^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$'
tag="" ahead=0
if desc=$(git describe --tags --long --match 'v[0-9]*.[0-9]*.[0-9]*' 2>/dev/null); then
  # <tag>-<commits since>-g<commit>; the tag itself may contain dashes.
  rest=${desc%-g*}
  tag=${rest%-*}
  ahead=${rest##*-}
  [[ $tag =~ $semver ]] || tag=""
fi

if [[ -z $tag ]]; then
  echo "v0.0.0-dev+${commit}${dirty:+.$dirty}"
elif [[ $ahead == 0 ]]; then
  echo "${tag}${dirty:++$dirty}"
elif [[ $tag == *-* ]]; then
  echo "${tag}.dev.${ahead}+${commit}${dirty:+.$dirty}"
else
  [[ $tag =~ $semver ]]
  echo "v${BASH_REMATCH[1]}.${BASH_REMATCH[2]}.$((BASH_REMATCH[3] + 1))-dev.${ahead}+${commit}${dirty:+.$dirty}"
fi

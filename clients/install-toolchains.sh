#!/usr/bin/env bash
# Install what the Node, Go and Java clients need to build and test: the repo's one install
# script (scripts/install-deps.sh, which `make test` and .ci/run use too) for these parts only.
# Debian's packages and the npm registry only; idempotent. Run as root.
#
#   bash clients/install-toolchains.sh            # node, go and java
#   bash clients/install-toolchains.sh go java    # only some languages
set -euo pipefail
for lang in "$@"; do
    case "$lang" in
        node | go | java) ;;
        *) echo "unknown language $lang (node, go, java)" >&2; exit 2 ;;
    esac
done
[ $# -gt 0 ] || set -- node go java
exec bash "$(dirname "$0")/../scripts/install-deps.sh" "$@"

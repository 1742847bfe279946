#!/usr/bin/env bash
# Fill vendor/ from Debian's Go source packages, so the module builds offline with
# GOFLAGS=-mod=vendor and the Go module proxy is never asked.
#
# Debian ships Go libraries as source under /usr/share/gocode/src (golang-google-grpc-dev,
# golang-google-protobuf-dev, golang-github-golang-protobuf-1-5-dev, golang-golang-x-net-dev,
# golang-golang-x-sys-dev, golang-golang-x-text-dev, golang-google-genproto-dev). This script
# lists the packages this module imports, closes over their dependencies in GOPATH mode, copies
# each package's non-test files into vendor/ (as `go mod vendor` would) and writes
# vendor/modules.txt. Run from clients/go (make -C clients go-vendor does).
set -euo pipefail
cd "$(dirname "$0")"

GOCODE=${GOCODE:-/usr/share/gocode}
SRC=$GOCODE/src
MODULE=$(awk '$1 == "module" {print $2; exit}' go.mod)

if [ ! -d "$SRC/google.golang.org/grpc" ] || [ ! -d "$SRC/google.golang.org/protobuf" ]; then
    echo "Debian's Go gRPC sources are missing under $SRC: run clients/install-toolchains.sh" >&2
    echo "(apt-get install golang-go golang-google-grpc-dev golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev)" >&2
    exit 1
fi

# 1. The non-standard packages this module's code (tests included) imports, ours excepted.
roots=$(GO111MODULE=off GOPATH=$GOCODE GOFLAGS= go list -e \
    -f '{{join .Imports "\n"}}{{"\n"}}{{join .TestImports "\n"}}{{"\n"}}{{join .XTestImports "\n"}}' ./... \
    | sort -u | grep -E '^[a-z0-9-]+\.[a-z.]+/' | grep -v "^$MODULE" || true)
if [ -z "$roots" ]; then
    echo "found no third-party imports in $(pwd)" >&2
    exit 1
fi

# 2. Their transitive closure, resolved against Debian's GOPATH.
# shellcheck disable=SC2086
pkgs=$(GO111MODULE=off GOPATH=$GOCODE GOFLAGS= go list -deps \
    -f '{{if not .Standard}}{{.ImportPath}}{{end}}' $roots | sort -u)

# 3. Modules: every go.mod under the Debian tree; a package belongs to the longest prefix.
modules=$(cd "$SRC" && find . -name go.mod -not -path '*/testdata/*' | sed 's|^\./||; s|/go.mod$||' \
    | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-)
module_of() {
    local m
    for m in $modules; do
        case "$1" in "$m" | "$m"/*) echo "$m"; return ;; esac
    done
    echo "no go.mod in $SRC owns package $1" >&2
    return 1
}
# The version go.mod requires (explicit), else the zero pseudo-version Go uses for local code.
version_of() {
    local v
    v=$(awk -v m="$1" '($1 == m || ($1 == "require" && $2 == m)) {print ($1 == m ? $2 : $3); exit}' go.mod)
    if [ -n "$v" ]; then echo "$v explicit"; else echo "v0.0.0-00010101000000-000000000000"; fi
}

rm -rf vendor.tmp && mkdir -p vendor.tmp
declare -A pkgs_of=()
for p in $pkgs; do
    m=$(module_of "$p")
    pkgs_of[$m]+="$p"$'\n'
    mkdir -p "vendor.tmp/$p"
    find "$SRC/$p" -maxdepth 1 -type f -not -name '*_test.go' -exec cp {} "vendor.tmp/$p/" \;
done

{
    for m in $(printf '%s\n' "${!pkgs_of[@]}" | sort); do
        read -r v explicit <<<"$(version_of "$m")"
        echo "# $m $v"
        # The module's own go version sets the language version its packages compile with.
        gov=$(awk '$1 == "go" {print $2; exit}' "$SRC/$m/go.mod")
        meta=()
        [ -n "${explicit:-}" ] && meta+=("explicit")
        [ -n "$gov" ] && meta+=("go $gov")
        [ ${#meta[@]} -gt 0 ] && (IFS=';'; echo "## ${meta[*]}" | sed 's/;/; /g')
        printf '%s' "${pkgs_of[$m]}"
        for f in LICENSE PATENTS; do
            [ -f "$SRC/$m/$f" ] && mkdir -p "vendor.tmp/$m" && cp "$SRC/$m/$f" "vendor.tmp/$m/"
        done
        explicit=
    done
} >vendor.tmp/modules.txt

# Every module go.mod requires must be vendored, or -mod=vendor refuses to build.
for m in $(awk '$1 == "require" && $2 != "(" {print $2} /^\t/ {print $1}' go.mod); do
    [ -n "${pkgs_of[$m]:-}" ] || { echo "go.mod requires $m but nothing imports it" >&2; exit 1; }
done
debian_grpc=$(sed -n 's/^const Version = "\(.*\)"$/v\1/p' "$SRC/google.golang.org/grpc/version.go")
echo "vendoring Debian's google.golang.org/grpc $debian_grpc (go.mod requires $(version_of google.golang.org/grpc | cut -d' ' -f1))" >&2

rm -rf vendor && mv vendor.tmp vendor
echo "vendor/: $(printf '%s\n' $pkgs | wc -l) packages from ${#pkgs_of[@]} modules of $SRC" >&2

#!/usr/bin/env bash
# Install what the Node, Go and Java clients need to build and test, from Debian's packages and
# the npm registry only (no binary downloads, no Go module proxy). Idempotent: packages already
# installed are not asked for again. Run as root (or with sudo available); .ci/run calls it.
#
#   bash clients/install-toolchains.sh            # everything
#   bash clients/install-toolchains.sh go java    # only some languages
set -euo pipefail
cd "$(dirname "$0")"

langs=("$@")
[ ${#langs[@]} -eq 0 ] && langs=(node go java)

# protoc itself: the Go and Java stubs are generated with Debian's (its version matches
# Debian's protobuf-java); node's with grpcio-tools' protoc from the project's venv.
apt_common=(protobuf-compiler)
# Go: the toolchain, the two protoc plugins and the gRPC/protobuf libraries as source
# (/usr/share/gocode/src), from which go/vendor-debian.sh fills vendor/.
apt_go=(golang-go protoc-gen-go protoc-gen-go-grpc golang-google-grpc-dev golang-google-protobuf-dev
    golang-github-golang-protobuf-1-5-dev golang-golang-x-net-dev golang-golang-x-sys-dev
    golang-golang-x-text-dev golang-google-genproto-dev)
# Java: the grpc-java protoc plugin, gRPC-Java and protobuf-java, and the jars gRPC-Java needs
# at run time (Netty, Guava, perfmark, Gson); javax.annotation.Generated for compiling the stubs.
apt_java=(protobuf-compiler-grpc-java-plugin libgrpc-java libprotobuf-java libnetty-java libguava-java
    libperfmark-java libgoogle-gson-java libjsr305-java liberror-prone-java
    libgeronimo-annotation-1.3-spec-java)
# Node: Debian's nodejs/npm only when no node is installed (an existing node 18+ is kept).
apt_node=()

want=("${apt_common[@]}")
for lang in "${langs[@]}"; do
    case "$lang" in
        go) want+=("${apt_go[@]}") ;;
        java)
            want+=("${apt_java[@]}")
            command -v javac >/dev/null 2>&1 || want+=(default-jdk-headless)
            ;;
        node)
            command -v node >/dev/null 2>&1 || apt_node+=(nodejs)
            command -v npm >/dev/null 2>&1 || apt_node+=(npm)
            want+=("${apt_node[@]}")
            ;;
        *) echo "unknown language $lang (node, go, java)" >&2; exit 2 ;;
    esac
done

missing=()
for pkg in "${want[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    echo "install-toolchains: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "install-toolchains: Debian packages already installed"
fi

for lang in "${langs[@]}"; do
    case "$lang" in
        node)
            # @grpc/grpc-js, @bufbuild/protobuf, ts-proto, typescript, @types/node: pinned by
            # package-lock.json; pure JavaScript, nothing downloaded at install time.
            if [ ! -f node/node_modules/.package-lock.json ] \
                || [ node/package-lock.json -nt node/node_modules/.package-lock.json ]; then
                echo "install-toolchains: npm ci in clients/node"
                (cd node && npm ci --no-audit --no-fund)
            else
                echo "install-toolchains: clients/node/node_modules is up to date"
            fi
            ;;
        go)
            ./go/vendor-debian.sh
            ;;
    esac
done

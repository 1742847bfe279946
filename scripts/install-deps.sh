#!/usr/bin/env bash
# Everything the test suite needs that is not in the repo, from Debian's packages and the npm
# registry only (no binary downloads, no Go module proxy):
#
#   python    venv support for `make install` (python3-venv, when `python3 -m venv` lacks it)
#   postgres  PostgreSQL's server binaries: the tests start their own throwaway clusters
#   nginx     Debian's nginx (its http2 and grpc modules): tests/cluster puts it in front of two
#             servers
#   node      node and npm, then clients/node's packages (npm ci, pinned by package-lock.json)
#   go        the Go toolchain, protoc plugins and gRPC sources, then clients/go/vendor/
#   java      a JDK, the grpc-java protoc plugin and Debian's gRPC-Java jars
#   chromium  Debian's chromium: the evaluation report is screenshotted in a headless browser
#
# One script for `make test` (which runs it with --auto), `.ci/run` and
# clients/install-toolchains.sh. Idempotent, and fast when everything is there: each part is
# checked first; apt-get runs only for what is missing — `apt-get update` once, then one
# `apt-get install`.
#
#   sudo bash scripts/install-deps.sh            # install everything missing
#   sudo bash scripts/install-deps.sh go java    # only these parts
#   bash scripts/install-deps.sh --check         # list what is missing; exit 1 if anything is
#   bash scripts/install-deps.sh --auto          # root: install; otherwise --check, but exit 0
set -euo pipefail
cd "$(dirname "$0")/.."

COMMAND="sudo bash scripts/install-deps.sh"  # the one command; the tests' skip messages name it
ALL=(python postgres nginx node go java chromium)

mode=install
parts=()
for arg in "$@"; do
    case "$arg" in
        --check) mode=check ;;
        --auto) mode=auto ;;
        -h | --help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        python | postgres | nginx | node | go | java | chromium) parts+=("$arg") ;;
        *) echo "install-deps: unknown part $arg (${ALL[*]}, --check, --auto)" >&2; exit 2 ;;
    esac
done
[ ${#parts[@]} -eq 0 ] && parts=("${ALL[@]}")
root=false
[ "$(id -u)" -eq 0 ] && root=true
if [ "$mode" = auto ]; then
    if $root; then mode=install; else mode=report; fi
fi

has() { command -v "$1" >/dev/null 2>&1; }
# PostgreSQL's binaries live outside PATH on Debian (tests/postgres.py looks in the same places).
has_pg() { has "$1" || compgen -G "/usr/lib/postgresql/*/bin/$1" >/dev/null; }
# nginx is in /usr/sbin, which a non-root PATH may lack; it must have the http2 and grpc modules.
nginx_ok() {
    local nginx
    nginx=$(PATH="$PATH:/usr/sbin:/sbin" command -v nginx) || return 1
    "$nginx" -V 2>&1 | grep -q -- '--with-http_v2_module' \
        && ! "$nginx" -V 2>&1 | grep -q -- '--without-http_grpc_module'
}

want=()  # Debian packages: each part adds what it lacks
dpkg_parts=()
for part in "${parts[@]}"; do
    case "$part" in
        python) "${PYTHON:-python3}" -c 'import ensurepip, venv' 2>/dev/null || want+=(python3-venv) ;;
        postgres) { has_pg initdb && has_pg pg_ctl; } || want+=(postgresql) ;;
        nginx) nginx_ok || want+=(nginx) ;;
        node)
            # Debian's nodejs/npm only when none is installed (an existing node 18+ is kept).
            has node || want+=(nodejs)
            has npm || want+=(npm)
            ;;
        chromium) has chromium || want+=(chromium) ;;
        go | java) dpkg_parts+=("$part") ;;
    esac
done

# Go and Java come from Debian's packages as a whole: protoc (its version matches Debian's
# protobuf-java; the Go and Java stubs are generated with it), plugins, libraries as source
# (Go: /usr/share/gocode/src, from which clients/go/vendor-debian.sh fills vendor/) or jars
# (Java: gRPC-Java, protobuf-java and what gRPC-Java needs at run time, Netty, Guava, perfmark,
# Gson; javax.annotation.Generated for compiling the stubs).
apt_go=(protobuf-compiler golang-go protoc-gen-go protoc-gen-go-grpc golang-google-grpc-dev
    golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev golang-golang-x-net-dev
    golang-golang-x-sys-dev golang-golang-x-text-dev golang-google-genproto-dev)
apt_java=(protobuf-compiler protobuf-compiler-grpc-java-plugin libgrpc-java libprotobuf-java
    libnetty-java libguava-java libperfmark-java libgoogle-gson-java libjsr305-java
    liberror-prone-java libgeronimo-annotation-1.3-spec-java)
listed=()
for part in ${dpkg_parts[@]+"${dpkg_parts[@]}"}; do
    case "$part" in
        go) listed+=("${apt_go[@]}") ;;
        java)
            listed+=("${apt_java[@]}")
            has javac || want+=(default-jdk-headless)
            ;;
    esac
done
if [ ${#listed[@]} -gt 0 ]; then
    # One dpkg-query for all of them: the installed ones, every other one is wanted (it exits 1
    # when it has never heard of one; without dpkg, none counts as installed).
    installed=" $({ dpkg-query -W -f='${Package}:${db:Status-Status} ' "${listed[@]}" 2>/dev/null \
        || true; } | tr ' ' '\n' | sed -n 's/:installed$//p' | tr '\n' ' ') "
    for pkg in "${listed[@]}"; do
        [[ "$installed" == *" $pkg "* ]] || want+=("$pkg")
    done
fi
# Each package once, in the order first asked for.
missing=()
for pkg in ${want[@]+"${want[@]}"}; do
    [[ " ${missing[*]-} " == *" $pkg "* ]] || missing+=("$pkg")
done
# Which tests go without them (tests/postgres.py, tests/cluster, tests/clients_live say the same).
affected() {
    local pkg out=()
    for pkg in "${missing[@]}"; do
        case "$pkg" in
            python3-venv) out+=("make cannot create .venv") ;;
            postgresql) out+=("the PostgreSQL tests skip") ;;
            nginx) out+=("tests/cluster's nginx tests fail") ;;
            nodejs | npm) out+=("the Node client's tests skip") ;;
            default-jdk-headless | lib*-java | protobuf-compiler-grpc-java-plugin)
                out+=("the Java client's tests skip") ;;
            golang-* | protoc-gen-go*) out+=("the Go client's tests skip") ;;
            protobuf-compiler) out+=("the generated-code check skips") ;;
            chromium) out+=("the report's browser check skips") ;;
        esac
    done
    printf '%s\n' "${out[@]}" | awk '!seen[$0]++' | paste -sd ';' | sed 's/;/; /g'
}

# clients/node's packages and clients/go/vendor/: the clients' Makefile rules, which do
# nothing when they are up to date. Run as the user who called sudo, so that user owns them.
client_steps() {
    local targets=() as_user=()
    for part in "${parts[@]}"; do
        case "$part" in
            node) targets+=(node/node_modules/.package-lock.json) ;;
            go) targets+=(go-vendor) ;;
        esac
    done
    [ ${#targets[@]} -gt 0 ] || return 0
    if $root && [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
        as_user=(runuser -u "$SUDO_USER" --)
    fi
    ${as_user[@]+"${as_user[@]}"} make -s -C clients "${targets[@]}"
}

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: ${parts[*]}: everything is installed"
    [ "$mode" = install ] && client_steps
    exit 0
fi

case "$mode" in
    check | report)
        echo "install-deps: missing Debian packages: ${missing[*]} ($(affected))" >&2
        echo "install-deps: install them (as root) with: $COMMAND" >&2
        [ "$mode" = check ] && exit 1
        exit 0
        ;;
esac

if ! $root; then
    echo "install-deps: installing ${missing[*]} needs root: $COMMAND" >&2
    exit 1
fi
if ! has apt-get; then
    echo "install-deps: no apt-get (not Debian or Ubuntu): install the equivalents of" \
        "${missing[*]} yourself" >&2
    exit 1
fi
echo "install-deps: apt-get install ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
client_steps

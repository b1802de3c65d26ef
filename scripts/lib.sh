# Shared steps of scripts/run, scripts/test and scripts/bench.  Sourced.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${THREADS_BUILD:-$ROOT/build}
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Debian packages the module and its tests need; installed only if missing.
RUN_PACKAGES="nginx nginx-dev libpq-dev libjansson-dev libssl-dev postgresql
    gcc make pkg-config dpkg-dev"
TEST_PACKAGES="libtest-base-perl libtext-diff-perl libtest-longstring-perl
    libwww-perl libhttp-message-perl libipc-run-perl liburi-perl
    liblist-moreutils-perl valgrind clang libclang-rt-14-dev curl
    prometheus"

install_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # the packaged nginx starts itself on :80; we run our own
    as_root systemctl disable --now nginx >/dev/null 2>&1 || true
    as_root service nginx stop >/dev/null 2>&1 || true
    # prometheus is there for its promtool only
    as_root systemctl disable --now prometheus >/dev/null 2>&1 || true
}

# Builds ngx_http_threads_module.so against the packaged nginx, with its
# configure flags, so that the stock /usr/sbin/nginx loads it.
build_module() {
    local src=/usr/share/nginx/src cflags
    [ -f "$src/conf_flags" ] || die "nginx-dev is not installed"
    mkdir -p "$BUILD"
    cflags="$(dpkg-buildflags --get CFLAGS) -fPIC $(dpkg-buildflags --get CPPFLAGS) ${THREADS_EXTRA_CFLAGS:-}"
    if [ ! -f "$BUILD/Makefile" ] || [ "$ROOT/config" -nt "$BUILD/Makefile" ] \
        || [ "$(cat "$BUILD/.cflags" 2>/dev/null)" != "$cflags" ]; then
        log "configuring the module build in $BUILD"
        (cd "$src" && . ./conf_flags && ./configure \
            --with-cc-opt="$cflags" \
            --with-ld-opt="$(dpkg-buildflags --get LDFLAGS) -fPIC" \
            "${NGX_CONF_FLAGS[@]}" --add-dynamic-module="$ROOT" \
            --builddir="$BUILD") > "$BUILD/configure.log" 2>&1 \
            || { tail -n 30 "$BUILD/configure.log"; die "configure failed"; }
        printf '%s' "$cflags" > "$BUILD/.cflags"
    fi
    log "building ngx_http_threads_module.so"
    make -s -f "$BUILD/Makefile" -C "$src" modules >"$BUILD/make.log" 2>&1 \
        || { cat "$BUILD/make.log"; die "build failed"; }
    MODULE_SO=$BUILD/ngx_http_threads_module.so
    [ -f "$MODULE_SO" ] || die "no $MODULE_SO after the build"
}

# A PostgreSQL cluster of our own in $1, on 127.0.0.1:$2, owned by the
# postgres user when we are root.
pg_start() {
    local dir=$1 port=$2 user=${PG_USER:-postgres}
    local run=()
    [ "$(id -u)" = 0 ] && run=(runuser -u postgres --)
    if [ ! -f "$dir/PG_VERSION" ]; then
        log "creating a PostgreSQL cluster in $dir"
        mkdir -p "$dir"
        [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
        chmod 700 "$dir"
        "${run[@]}" "$PG_BIN/initdb" -D "$dir" -A trust -U "$user" \
            -E UTF8 --locale=C.UTF-8 >/dev/null || die "initdb failed"
    fi
    if ! "${run[@]}" "$PG_BIN/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
        log "starting PostgreSQL on 127.0.0.1:$port"
        "${run[@]}" "$PG_BIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w \
            -o "-k $dir -p $port -c listen_addresses=127.0.0.1 ${PG_OPTS:-}" \
            start >/dev/null || { tail -n 20 "$dir/server.log"; die "PostgreSQL did not start"; }
    fi
}

pg_stop() {
    local dir=$1 run=()
    [ "$(id -u)" = 0 ] && run=(runuser -u postgres --)
    [ -f "$dir/PG_VERSION" ] || return 0
    "${run[@]}" "$PG_BIN/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
}

# Creates database $3 if needed and applies the schema (safe twice).
pg_schema() {
    local host=$1 port=$2 db=$3
    psql -X -q -h "$host" -p "$port" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
        || psql -X -q -h "$host" -p "$port" -U postgres -d postgres \
            -c "CREATE DATABASE \"$db\"" >/dev/null
    psql -X -q -v ON_ERROR_STOP=1 -h "$host" -p "$port" -U postgres -d "$db" \
        -f "$ROOT/scripts/schema.sql" >/dev/null || die "schema failed"
}

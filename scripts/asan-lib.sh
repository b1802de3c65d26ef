# Sanitizer settings shared by scripts/test-asan and scripts/soak.  Sourced.

# Every sanitizer report of nginx (and of its workers, which inherit the
# master's settings) goes to a file under $1 named after the process id,
# emptied here.  Leak checks are off: nginx leaves memory to the exit by
# design.  ODR checks are off: every dynamic module defines its own
# ngx_modules[] (nginx's design; with -fsanitize-address-use-odr-indicator
# each copy is still checked at its own bounds).  The first report ends
# the process.
asan_env() {
    ASAN_REPORTS=$1
    rm -rf "$ASAN_REPORTS"
    mkdir -p "$ASAN_REPORTS"
    # workers may run as another user
    chmod 1777 "$ASAN_REPORTS"
    export ASAN_OPTIONS="detect_leaks=0:detect_odr_violation=0:halt_on_error=1:abort_on_error=0:disable_coredump=1:print_summary=1:log_path=$ASAN_REPORTS/asan"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$ASAN_REPORTS/ubsan"
}

# Prints each distinct report once (by its SUMMARY line) with the count of
# its copies; false when there was any report since asan_env.
asan_check_reports() {
    local f n=0 sum
    local -A seen=()
    for f in "$ASAN_REPORTS"/*; do
        [ -f "$f" ] || continue
        n=$((n + 1))
        sum=$(grep -m1 '^SUMMARY:' "$f" | sed -E 's/\(BuildId: [0-9a-f]+\)//' || true)
        sum=${sum:-$(head -n 1 "$f")}
        seen[$sum]=$(( ${seen[$sum]:-0} + 1 ))
        [ "${seen[$sum]}" = 1 ] || continue
        printf '\n==== sanitizer report %s\n' "$f" >&2
        cat "$f" >&2
    done
    if [ "$n" -gt 0 ]; then
        log "$n sanitizer report(s) in $ASAN_REPORTS:"
        for sum in "${!seen[@]}"; do
            printf '  %5d  %s\n' "${seen[$sum]}" "$sum" >&2
        done
        return 1
    fi
    log "no sanitizer reports"
}

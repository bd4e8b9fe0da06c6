# layout.sh — the source tree keeps the shape docs/hacking.md describes:
#   - dependencies point one way, api/ → daemon/ → store/ → vae/: vae/ includes nothing of
#     the other three, store/ nothing of daemon/ or api/, and in daemon/ only the wiring
#     file (daemon/serve.c) includes an api/ header;
#   - no source file (C, header, script, test) is above 800 lines;
#   - each folder's public header says what the folder is for (a comment at its top).
# It reads the tree only; no daemon is started.
. tests/e2e/lib.sh

includes() { # folder, pattern: the #include lines of folder's files naming pattern
    grep -n "^#include \"$2" "$1"/*.c "$1"/*.h 2>/dev/null
}

bad=$(includes vae 'store/'; includes vae 'daemon/'; includes vae 'api/')
check "vae/ includes nothing of store/, daemon/ or api/: $bad" [ -z "$bad" ]
bad=$(includes store 'daemon/'; includes store 'api/')
check "store/ includes nothing of daemon/ or api/: $bad" [ -z "$bad" ]
bad=$(includes daemon 'api/' | grep -v '^daemon/serve\.c:')
check "in daemon/ only serve.c includes api/: $bad" [ -z "$bad" ]

long=$(find api daemon store vae tests scripts web -type f -not -path '*/node_modules/*' \
        \( -name '*.c' -o -name '*.h' -o -name '*.sh' -o -name '*.py' -o -name '*.js' \) \
        -exec wc -l {} + | awk '$2 != "total" && $1 > 800 {print $2 " (" $1 " lines)"}')
check "no source file above 800 lines: $long" [ -z "$long" ]

for h in vae/train.h vae/spec.h store/store.h daemon/jobs.h daemon/job.h api/http.h; do
    head -n 1 "$h" | grep -q '^/\* ' || fail "$h does not open with a comment saying what it is"
    ok
done
finish

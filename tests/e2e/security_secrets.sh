# security_secrets.sh — where the token comes from. --token on the command line is
# visible to every user in ps: it still works but warns on stderr. --token-file PATH
# reads the token from the file's first line and refuses a file that group or others
# may read (or an empty one, or a missing one), naming the flag; VAED_TOKEN keeps
# working without a warning.
. tests/e2e/security_lib.sh
# no warning in a daemon log but the host's own: an OpenBLAS core without AVX-512 kernels
# on an AVX-512 CPU (OPENBLAS_CORETYPE set by the machine) is said at every start
no_warning() { ! grep -i "warn" "$1" | grep -qv "has no AVX-512 kernels"; }
e2e_init
SPEC=$(tiny_spec sec 1)
needs_token() { # what, token
    api POST /v1/jobs "$SPEC"
    check "$1: no token: 401 (got $STATUS)" [ "$STATUS" = 401 ]
    api POST /v1/jobs "$SPEC" -H "Authorization: Bearer $2"
    check "$1: with the token: 201 (got $STATUS: $BODY)" [ "$STATUS" = 201 ]
    api POST /v1/jobs "$SPEC" -H "Authorization: Bearer ${2}x"
    check "$1: a longer token: 401 (got $STATUS)" [ "$STATUS" = 401 ]
}

# ---- --token: works, warns ---------------------------------------------------------------
start_daemon --threads 1 --token cmdline-secret
needs_token "--token" cmdline-secret
check "--token on the command line warns on stderr: $(head -c 300 "$T/daemon.log")" \
    grep -qi "warn.*--token.*\(ps\|visible\)" "$T/daemon.log"
check "the warning does not print the token" sh -c '! grep -q cmdline-secret "$1"' _ "$T/daemon.log"
stop_daemon

# ---- --token-file ----------------------------------------------------------------------
umask 077
printf 'file-secret-42\nsecond line is ignored\n' >"$T/tok"
: >"$T/daemon.log"
start_daemon --threads 1 --token-file "$T/tok"
needs_token "--token-file" file-secret-42
api POST /v1/jobs "$SPEC" -H "Authorization: Bearer second line is ignored"
check "--token-file: the second line is not a token (got $STATUS)" [ "$STATUS" = 401 ]
check "--token-file gives no warning: $(cat "$T/daemon.log" | head -c 300)" no_warning "$T/daemon.log"
stop_daemon
printf 'crlf-secret\r\n' >"$T/tokcrlf"
start_daemon --threads 1 --token-file "$T/tokcrlf"
api POST /v1/jobs "$SPEC" -H "Authorization: Bearer crlf-secret"
check "--token-file: a CRLF line end is not part of the token (got $STATUS)" [ "$STATUS" = 201 ]
stop_daemon

cp "$T/tok" "$T/tokgroup"; chmod 640 "$T/tokgroup"
no_start "a token file readable by the group" "--token-file" --token-file "$T/tokgroup"
cp "$T/tok" "$T/tokworld"; chmod 604 "$T/tokworld"
no_start "a token file readable by others" "--token-file" --token-file "$T/tokworld"
no_start "a missing token file" "--token-file" --token-file "$T/no-such-file"
: >"$T/tokempty"
no_start "an empty token file" "--token-file" --token-file "$T/tokempty"
no_start "--token and --token-file together" "--token-file" --token x --token-file "$T/tok"

# ---- VAED_TOKEN: works, no warning --------------------------------------------------------
: >"$T/daemon.log"
VAED_TOKEN=env-secret-7
export VAED_TOKEN
start_daemon --threads 1
unset VAED_TOKEN
needs_token "VAED_TOKEN" env-secret-7
check "VAED_TOKEN gives no warning" no_warning "$T/daemon.log"
stop_daemon
finish

/* serve.c — `vaed serve`: the daemon. Parses flags (each with an environment
 * variable), opens the store, starts the job manager and the HTTP server, then waits
 * for SIGTERM or SIGINT and shuts down in order: stop accepting requests, checkpoint
 * running jobs and mark them interrupted, commit and close the database, exit 0.
 *
 * Signals: OpenBLAS starts its threads when the library loads, before main, so a
 * signal mask set here cannot cover every thread and the kernel may deliver SIGTERM to
 * one of theirs. So SIGTERM and SIGINT get a handler (in every thread alike) that only
 * writes a byte to a pipe (async-signal-safe); the main thread sleeps reading it. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/audit.h"
#include "api/cache.h"
#include "api/datasets.h"
#include "api/routes.h"
#include "api/serving.h"
#include "api/tokens.h"
#include "daemon/bus.h"
#include "daemon/cmd.h"
#include "daemon/jobs.h"
#include "daemon/log.h"
#include "daemon/version.h"
#include "store/store.h"
#include "vae/train.h"

typedef struct flag {
    const char *name, *env, *arg, *help;
    const char *value;          /* the flag, else the environment, else the default */
} flag;

enum { F_LISTEN, F_DB, F_WORKERS, F_THREADS, F_TOKEN, F_TOKEN_READS, F_DATA_DIR, F_MAXMEM,
       F_MAXQ, F_CORS, F_HTTP_THREADS, F_ACCESS_LOG, F_PORT_FILE, F_WAIT, F_MAXCONN,
       F_PERIP, F_UPLOAD_DIR, F_MAX_UPLOAD, F_MAX_STREAMS, F_MODEL_CACHE, F_ALLOW_HOST,
       F_TOKEN_FILE, F_HEADER_TIMEOUT, F_MAX_BODY, F_TLS_CERT, F_TLS_KEY, F_RESERVE,
       F_TOKENS_FILE, F_AUDIT_KEEP, F_OTHER_CORES, F_NODE, F_LEASE_TTL, F_N };

static flag flags[F_N] = {
    [F_LISTEN] = {"--listen", "VAED_LISTEN", "HOST:PORT", "address to serve on (port 0: any free port)", "127.0.0.1:8080"},
    [F_DB] = {"--db", "VAED_DB", "FILE|URL", "SQLite database (created if missing), or a PostgreSQL URL (postgresql://…)", "./vaed.db"},
    [F_WORKERS] = {"--workers", "VAED_WORKERS", "N", "jobs trained at once", "1"},
    [F_THREADS] = {"--threads", "VAED_THREADS", "N", "training threads per job (0: the spec's train.threads)", "0"},
    [F_TOKEN] = {"--token", "VAED_TOKEN", "T", "one admin token named default: 'Authorization: Bearer T' (docs/operations.md)", ""},
    [F_TOKEN_FILE] = {"--token-file", "VAED_TOKEN_FILE", "FILE", "read the token from FILE's first line (mode 0600: refused if group or others may read it)", ""},
    [F_TOKENS_FILE] = {"--tokens-file", "VAED_TOKENS_FILE", "FILE", "scoped tokens, one 'NAME read|control|admin SECRET' per line (mode 0600; docs/operations.md)", ""},
    [F_TOKEN_READS] = {"--token-reads", "VAED_TOKEN_READS", "0|1", "require a token (any scope) on reads too", "0"},
    [F_AUDIT_KEEP] = {"--audit-keep", "VAED_AUDIT_KEEP", "N", "audit trail rows kept (the oldest are deleted)", "100000"},
    [F_DATA_DIR] = {"--data-dir", "VAED_DATA_DIR", "DIR", "the only directory server-side dataset paths may point into", ""},
    [F_MAXMEM] = {"--max-job-memory", "VAED_MAX_JOB_MEMORY", "MIB", "refuse jobs estimated to need more", "4096"},
    [F_MAXQ] = {"--max-queued", "VAED_MAX_QUEUED", "N", "refuse submissions past this many queued jobs", "1000"},
    [F_CORS] = {"--cors", "VAED_CORS", "ORIGINS", "comma-separated allowed CORS origins (none by default)", ""},
    [F_HTTP_THREADS] = {"--http-threads", "VAED_HTTP_THREADS", "N", "HTTP worker threads", "4"},
    [F_MAXCONN] = {"--max-connections", "VAED_MAX_CONNECTIONS", "N", "open connections at most, event streams included", "256"},
    [F_HEADER_TIMEOUT] = {"--header-timeout", "VAED_HEADER_TIMEOUT", "SECONDS", "a request's head (line and headers) must arrive within this, else the connection is closed (0: no limit)", "10"},
    [F_RESERVE] = {"--reserve-slots", "VAED_RESERVE_SLOTS", "N", "connections accepted past --max-connections, for GET /healthz and token holders only (503 busy to others)", "16"},
    [F_PERIP] = {"--per-ip-limit", "VAED_PER_IP_LIMIT", "N", "connections at most from one client address (0: none)", "64"},
    [F_ACCESS_LOG] = {"--access-log", "VAED_ACCESS_LOG", "0|1", "one log line per request", "1"},
    [F_PORT_FILE] = {"--port-file", "VAED_PORT_FILE", "FILE", "write the bound port here once listening", ""},
    [F_WAIT] = {"--control-wait", "VAED_CONTROL_WAIT", "SECONDS", "how long a control request waits for its job", "30"},
    [F_MAX_STREAMS] = {"--max-streams", "VAED_MAX_STREAMS", "N", "event streams open at once at most (503 past it; 0: no limit)", "200"},
    [F_UPLOAD_DIR] = {"--upload-dir", "VAED_UPLOAD_DIR", "DIR", "where uploaded datasets are kept (default: <db>.datasets beside the database)", ""},
    [F_MODEL_CACHE] = {"--model-cache", "VAED_MODEL_CACHE", "N", "models kept loaded for the serving routes (encode, decode, ...)", "4"},
    [F_ALLOW_HOST] = {"--allow-host", "VAED_ALLOW_HOST", "NAME", "another Host name to answer to (repeatable; NAME:PORT for one port; the variable: comma-separated)", ""},
    [F_MAX_BODY] = {"--max-body", "VAED_MAX_BODY", "MIB", "refuse request bodies (but dataset uploads) larger than this (413); the serving routes' batches need the room: 1,000 rows of 784 floats are about 3 MiB as .npy, 18 MiB as JSON", "1"},
    [F_TLS_CERT] = {"--tls-cert", "VAED_TLS_CERT", "FILE", "serve HTTPS only, with this PEM certificate (chain); needs --tls-key", ""},
    [F_TLS_KEY] = {"--tls-key", "VAED_TLS_KEY", "FILE", "the certificate's PEM private key (mode 0600: refused if group or others may read it)", ""},
    [F_NODE] = {"--node", "VAED_NODE", "NAME", "this node's name in a cluster (a PostgreSQL --db; 1 to 63 bytes, unique; default HOST-PID): a node restarted under its name takes its jobs back at once", ""},
    [F_LEASE_TTL] = {"--lease-ttl", "VAED_LEASE_TTL", "SECONDS", "a cluster node's job leases last this long unrenewed: a dead node's jobs move after it (docs/operations.md)", "10"},
    [F_OTHER_CORES] = {"--accept-other-cores", "VAED_ACCEPT_OTHER_CORES", "0|1", "resume jobs that last ran on other kernels (another OpenBLAS core, multiply library or build): they continue correctly, not bit for bit (docs/operations.md)", "0"},
    [F_MAX_UPLOAD] = {"--max-upload", "VAED_MAX_UPLOAD", "MIB", "refuse dataset uploads larger than this (413)", "256"},
};

/* --allow-host is repeatable: every occurrence, comma-joined (the form VAED_ALLOW_HOST
 * takes); the flag table's value points here once one was given. */
static char *allow_hosts_joined;
/* --token was given on the command line (not through VAED_TOKEN): every user of the
 * machine can read it in ps, so the daemon says so. */
static int token_on_cmdline;
/* The token read from --token-file; it must outlive the server (api_config.token). */
static char token_buf[4096];

static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    unsigned char b = (unsigned char)sig;
    int saved = errno;
    ssize_t w = write(sig_pipe[1], &b, 1);
    (void)w;
    errno = saved;
}

static void help(FILE *f)
{
    fprintf(f, "usage: vaed serve [flags]\n\nEvery flag can also be set by its environment "
               "variable; a flag wins over the variable.\n\n");
    for (int i = 0; i < F_N; i++)
        fprintf(f, "  %s %-9s %-22s %s%s%s%s\n", flags[i].name, flags[i].arg, flags[i].env,
                flags[i].help, flags[i].value[0] ? " (default " : "", flags[i].value,
                flags[i].value[0] ? ")" : "");
}

static int parse_flags(int argc, char **argv)
{
    for (int i = 0; i < F_N; i++) {
        const char *e = getenv(flags[i].env);
        if (e)
            flags[i].value = e;
    }
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "-h") || !strcmp(argv[a], "--help")) {
            help(stdout);
            return 1;
        }
        int found = 0;
        for (int i = 0; i < F_N && !found; i++) {
            size_t n = strlen(flags[i].name);
            const char *v = NULL;
            if (!strncmp(argv[a], flags[i].name, n) && argv[a][n] == '=') {
                v = argv[a] + n + 1;
            } else if (!strcmp(argv[a], flags[i].name)) {
                if (a + 1 >= argc) {
                    fprintf(stderr, "vaed serve: %s needs a value (%s)\n", flags[i].name,
                            flags[i].arg);
                    return 2;
                }
                v = argv[++a];
            }
            if (!v)
                continue;
            found = 1;
            token_on_cmdline |= i == F_TOKEN;
            if (i == F_ALLOW_HOST && allow_hosts_joined) {
                size_t l = strlen(allow_hosts_joined);
                char *j = xmalloc(l + strlen(v) + 2);
                snprintf(j, l + strlen(v) + 2, "%s,%s", allow_hosts_joined, v);
                free(allow_hosts_joined);
                allow_hosts_joined = j;
            } else if (i == F_ALLOW_HOST) {
                allow_hosts_joined = xstrdup(v); /* the first one replaces the variable */
            }
            flags[i].value = i == F_ALLOW_HOST ? allow_hosts_joined : v;
        }
        if (!found) {
            fprintf(stderr, "vaed serve: unknown flag '%s' (vaed serve --help)\n", argv[a]);
            return 2;
        }
    }
    return 0;
}

/* The token from --token-file into token_buf: the first line, its line end and trailing
 * blanks cut. The file must be a regular file neither group nor others may read (a
 * token file anyone can read is a token on the command line again). Returns 0, or 2
 * after saying what is wrong. */
static int read_token_file(const char *path)
{
    FILE *f = fopen(path, "r");
    struct stat sb;
    if (!f || fstat(fileno(f), &sb) != 0) {
        fprintf(stderr, "vaed serve: --token-file %s: %s\n", path, strerror(errno));
        if (f)
            fclose(f);
        return 2;
    }
    if (!S_ISREG(sb.st_mode) || (sb.st_mode & 077)) {
        fprintf(stderr, "vaed serve: --token-file %s: %s (chmod 600 %s)\n", path,
                S_ISREG(sb.st_mode) ? "group or others may read it" : "not a regular file",
                path);
        fclose(f);
        return 2;
    }
    if (!fgets(token_buf, sizeof token_buf, f))
        token_buf[0] = '\0';
    fclose(f);
    size_t n = strlen(token_buf);
    if (n == sizeof token_buf - 1 && token_buf[n - 1] != '\n') {
        fprintf(stderr, "vaed serve: --token-file %s: the first line is over %zu bytes\n", path,
                sizeof token_buf - 2);
        return 2;
    }
    while (n && strchr("\r\n \t", token_buf[n - 1]))
        token_buf[--n] = '\0';
    if (!n) {
        fprintf(stderr, "vaed serve: --token-file %s: the first line is empty\n", path);
        return 2;
    }
    return 0;
}

/* A whole PEM file of FLAG's into *out (NUL-terminated, the caller frees it; 1 MiB at
 * most). which: F_TLS_CERT or F_TLS_KEY; secret: the file must be a regular file neither group nor others may read, as
 * for --token-file. Returns 0, or 2 after saying what is wrong. */
static int read_pem_file(int which, int secret, char **out)
{
    const char *name = flags[which].name, *path = flags[which].value;
    FILE *f = fopen(path, "rb");
    struct stat sb;
    *out = NULL;
    if (!f || fstat(fileno(f), &sb) != 0) {
        fprintf(stderr, "vaed serve: %s %s: %s\n", name, path, strerror(errno));
        if (f)
            fclose(f);
        return 2;
    }
    const char *bad = !S_ISREG(sb.st_mode)            ? "not a regular file"
                      : secret && (sb.st_mode & 077)  ? "group or others may read it (chmod 600)"
                      : sb.st_size > (1 << 20)        ? "over 1 MiB"
                      : NULL;
    if (bad) {
        fprintf(stderr, "vaed serve: %s %s: %s\n", name, path, bad);
        fclose(f);
        return 2;
    }
    char *buf = xmalloc((size_t)sb.st_size + 1);
    size_t n = fread(buf, 1, (size_t)sb.st_size, f);
    fclose(f);
    buf[n] = '\0';
    if (!strstr(buf, "-----BEGIN ")) {
        fprintf(stderr, "vaed serve: %s %s: not a PEM file (no -----BEGIN line)\n", name, path);
        explicit_bzero(buf, n);
        free(buf);
        return 2;
    }
    *out = buf;
    return 0;
}

/* A comma-separated flag value as a NULL-terminated list (NULL when empty). OUT *buf:
 * the copy the list points into; the caller frees both. */
static const char **split_list(const char *value, char **buf)
{
    *buf = NULL;
    if (!value[0])
        return NULL;
    *buf = xstrdup(value);
    size_t n = 1;
    for (const char *p = *buf; *p; p++)
        n += *p == ',';
    const char **list = xcalloc(n + 1, sizeof *list);
    size_t k = 0;
    for (char *tok = strtok(*buf, ","); tok; tok = strtok(NULL, ","))
        list[k++] = tok;
    return list;
}

/* A whole number in [lo, hi] from a flag, or -1 after saying what is wrong. */
static long num_flag(int i, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(flags[i].value, &end, 10);
    if (!*flags[i].value || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "vaed serve: %s (%s): '%s' is not a whole number from %ld to %ld\n",
                flags[i].name, flags[i].env, flags[i].value, lo, hi);
        return -1;
    }
    return v;
}

/* The job manager reaches the dataset registry (api/datasets.h) through these: daemon/
 * below this wiring file includes nothing from api/. */
static int datasets_spec_parse(void *ctx, store *st, vae_spec *out, const json_t *doc,
                               vaed_err *err)
{
    (void)ctx;
    return api_datasets_spec_parse(st, out, doc, err);
}

static int datasets_owns_path(void *ctx, store *st, const char *path)
{
    return api_datasets_owns_path(ctx, st, path);
}

static int datasets_local_path(void *ctx, store *st, const char *path, char *out, size_t n,
                               vaed_err *err)
{
    return api_datasets_local_path(ctx, st, path, out, n, err);
}

int cmd_serve(int argc, char **argv)
{
    int rc = parse_flags(argc, argv);
    if (rc)
        return rc == 1 ? 0 : rc;
    long workers = num_flag(F_WORKERS, 1, 64), threads = num_flag(F_THREADS, 0, 64),
         maxmem = num_flag(F_MAXMEM, 1, 1L << 24), maxq = num_flag(F_MAXQ, 1, 1000000),
         http_threads = num_flag(F_HTTP_THREADS, 1, 256), token_reads = num_flag(F_TOKEN_READS, 0, 1),
         access_log = num_flag(F_ACCESS_LOG, 0, 1), wait_s = num_flag(F_WAIT, 1, 3600),
         max_conn = num_flag(F_MAXCONN, 1, 100000), per_ip = num_flag(F_PERIP, 0, 100000),
         max_upload = num_flag(F_MAX_UPLOAD, 1, 1L << 24),
         max_streams = num_flag(F_MAX_STREAMS, 0, 100000),
         model_cache = num_flag(F_MODEL_CACHE, 1, 1000),
         header_timeout = num_flag(F_HEADER_TIMEOUT, 0, 3600),
         max_body = num_flag(F_MAX_BODY, 1, 1024),
         reserve = num_flag(F_RESERVE, 0, 10000),
         audit_keep = num_flag(F_AUDIT_KEEP, 1, 1000000000L),
         other_cores = num_flag(F_OTHER_CORES, 0, 1),
         lease_ttl = num_flag(F_LEASE_TTL, 1, 3600);
    if (workers < 0 || threads < 0 || maxmem < 0 || maxq < 0 || http_threads < 0 ||
        token_reads < 0 || access_log < 0 || wait_s < 0 || max_conn < 0 || per_ip < 0 ||
        max_upload < 0 || max_streams < 0 || model_cache < 0 || header_timeout < 0 ||
        max_body < 0 || reserve < 0 || audit_keep < 0 || other_cores < 0 ||
        lease_ttl < 0)
        return 2;
    const char *token = flags[F_TOKEN].value;
    if (flags[F_TOKEN_FILE].value[0]) {
        if (token[0]) {
            fprintf(stderr, "vaed serve: --token-file and --token (or VAED_TOKEN): give one\n");
            return 2;
        }
        if ((rc = read_token_file(flags[F_TOKEN_FILE].value)))
            return rc;
        token = token_buf;
    } else if (token_on_cmdline && token[0]) {
        fprintf(stderr, "vaed serve: warning: --token on the command line is visible to every "
                        "user of this machine (ps); use --token-file or VAED_TOKEN\n");
    }

    api_tokens toks = {0};
    if (flags[F_TOKENS_FILE].value[0]) {
        if (token[0]) {
            fprintf(stderr, "vaed serve: --tokens-file and --token/--token-file (or VAED_TOKEN): "
                            "give one (a token file's admin line replaces --token)\n");
            return 2;
        }
        vaed_err terr;
        if (api_tokens_load(flags[F_TOKENS_FILE].value, &toks, &terr)) {
            fprintf(stderr, "vaed serve: --tokens-file: %s\n", terr.msg);
            return 2;
        }
    }

    char *tls_cert = NULL, *tls_key = NULL;
    if (!flags[F_TLS_CERT].value[0] != !flags[F_TLS_KEY].value[0]) {
        fprintf(stderr, "vaed serve: --tls-cert and --tls-key go together\n");
        return 2;
    }
    if (flags[F_TLS_CERT].value[0] &&
        ((rc = read_pem_file(F_TLS_CERT, 0, &tls_cert)) ||
         (rc = read_pem_file(F_TLS_KEY, 1, &tls_key)))) {
        free(tls_cert);
        api_tokens_free(&toks);
        return rc;
    }

    if (pipe(sig_pipe) != 0) {
        fprintf(stderr, "vaed serve: pipe: %s\n", strerror(errno));
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    vaed_err err;
    vaed_err_clear(&err);
    store *st = NULL;
    jobs *J = NULL;
    bus *events = NULL;
    api_server *srv = NULL;
    api_cache *cache = NULL;
    api_models *models = NULL;
    api_datasets *datasets = NULL;
    char *cors_buf = NULL, *hosts_buf = NULL;
    const char **cors = NULL, **hosts = NULL;
    rc = 1;

    char db_shown[512];
    store_db_shown(flags[F_DB].value, db_shown, sizeof db_shown);
    if (store_is_server(flags[F_DB].value) && !flags[F_UPLOAD_DIR].value[0]) {
        /* there is no file to put the uploads beside */
        log_msg(LOG_ERROR, "--upload-dir: required with a PostgreSQL --db (a directory for "
                           "uploaded datasets; docs/operations.md)");
        goto done;
    }
    /* on PostgreSQL the daemon is a cluster's node (daemon/cluster.c) */
    char node[64] = "";
    if (store_is_server(flags[F_DB].value)) {
        if (flags[F_NODE].value[0]) {
            snprintf(node, sizeof node, "%s", flags[F_NODE].value);
        } else {
            char host[48] = "";
            gethostname(host, sizeof host - 1);
            struct timespec ts; /* a suffix: containers share pids (and hostnames) */
            clock_gettime(CLOCK_REALTIME, &ts);
            snprintf(node, sizeof node, "%s-%ld-%04lx", host[0] ? host : "node", (long)getpid(),
                     (unsigned long)((ts.tv_nsec ^ (long)ts.tv_sec) & 0xffff));
        }
    }
    if (strlen(flags[F_NODE].value) >= sizeof node) {
        log_msg(LOG_ERROR, "--node: a name of 1 to %zu bytes", sizeof node - 1);
        goto done;
    }
    store_opts so;
    store_opts_default(&so);
    so.node = node[0] ? node : NULL;
    so.lease_ttl = (double)lease_ttl;
    if (store_open(&st, flags[F_DB].value, &so, &err)) {
        log_msg(LOG_ERROR, "database %s: %s", db_shown, err.msg);
        goto done;
    }
    char upload_dir[4096];
    snprintf(upload_dir, sizeof upload_dir, "%s", flags[F_UPLOAD_DIR].value);
    if (!upload_dir[0])
        snprintf(upload_dir, sizeof upload_dir, "%s.datasets", flags[F_DB].value);
    if (api_datasets_new(&datasets, flags[F_DATA_DIR].value, upload_dir, &err)) {
        log_msg(LOG_ERROR, "%s", err.msg);
        goto done;
    }
    api_datasets_prune(datasets, st);
    jobs_config jc;
    jobs_config_default(&jc);
    jc.workers = (int)workers;
    jc.threads = (int)threads;
    jc.max_job_memory = (size_t)maxmem << 20;
    jc.max_queued = (int)maxq;
    jc.wait_s = (double)wait_s;
    jc.accept_other_cores = (int)other_cores;
    jc.lease_ttl = (double)lease_ttl;
    jc.data_dir = flags[F_DATA_DIR].value[0] ? flags[F_DATA_DIR].value : NULL;
    const jobs_datasets jd = {datasets, datasets_spec_parse, datasets_owns_path,
                              datasets_local_path};
    jc.datasets = &jd;
    /* The event bus comes before the job manager (which publishes into it) and goes
     * after it and the HTTP server (whose streams read from it). */
    bus_config bc;
    bus_config_default(&bc);
    events = bus_new(&bc);
    jc.bus = events;
    vae_blas_init();
    char blas[256];
    vae_blas_info(blas, sizeof blas);
    char narrow[384];
    if (vae_blas_narrow(narrow, sizeof narrow))
        log_msg(LOG_WARN, "%s", narrow);
    if (jobs_start(&J, st, &jc, &err)) {
        log_msg(LOG_ERROR, "job manager: %s", err.msg);
        goto done;
    }

    /* Metrics replies, kept: 64 of them, 32 MiB at most (api/cache.h). */
    cache = api_cache_new(64, (size_t)32 << 20);
    models = api_models_new((int)model_cache);
    api_ctx actx = {.J = J, .st = st, .bus = events, .max_streams = (int)max_streams,
                    .cache = cache, .models = models, .datasets = datasets,
                    .audit_keep = audit_keep};
    atomic_init(&actx.n_streams, 0);
    api_config cfg;
    api_config_default(&cfg);
    cfg.listen = flags[F_LISTEN].value;
    cfg.threads = (unsigned)http_threads;
    cfg.conn_limit = (unsigned)max_conn;
    cfg.per_ip_limit = (unsigned)per_ip;
    cfg.reserve_slots = (unsigned)reserve;
    cfg.head_timeout_s = (unsigned)header_timeout;
    cfg.token = token[0] ? token : NULL;
    cfg.tokens = toks.t;
    cfg.ntokens = toks.n;
    /* every state-changing request, into the store (api/audit.h) */
    cfg.audit = api_audit_record;
    cfg.audit_cls = &actx;
    cfg.reads_need_token = (int)token_reads;
    cfg.access_log = (int)access_log;
    cfg.user = &actx;
    cfg.spool_routes = api_datasets_spool_routes;
    cfg.spool_dir = api_datasets_upload_dir(datasets);
    cfg.max_spool = (uint64_t)max_upload << 20;
    cfg.max_body = (size_t)max_body << 20;
    cfg.cors_origins = cors = split_list(flags[F_CORS].value, &cors_buf);
    /* Host, Origin and Content-Type are checked: what a web page in the user's browser
     * could send (DNS rebinding, a text/plain POST) is refused (api/http_guard.c). */
    cfg.browser_checks = 1;
    cfg.allow_hosts = hosts = split_list(flags[F_ALLOW_HOST].value, &hosts_buf);
    cfg.tls_cert = tls_cert;
    cfg.tls_key = tls_key;
    size_t nroutes;
    const api_route *routes = api_routes(&nroutes);
    /* The HTTP threads are created from this one and inherit its policy: SCHED_BATCH
     * (unprivileged) keeps a request's wake-up from preempting a training thread in
     * the middle of a multiply, where both of OpenBLAS's threads would then wait for
     * the preempted one. Requests still run as soon as a core yields, which OpenBLAS's
     * idle worker does all the time; the workers and the store's writer were started
     * above and keep the normal policy. */
    struct sched_param sp = {0};
    if (pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp) != 0)
        log_msg(LOG_WARN, "HTTP threads: could not use SCHED_BATCH; requests may preempt training");
    if (api_server_start(&cfg, routes, nroutes, &srv, &err)) {
        log_msg(LOG_ERROR, "%s", err.msg);
        goto done;
    }
    unsigned port = api_server_port(srv);
    log_msg(LOG_INFO, "vaed %s serving %s on port %u (listen %s), database %s, %ld worker(s), %s%s",
            VAED_VERSION, tls_cert ? "HTTPS" : "HTTP", port, flags[F_LISTEN].value,
            db_shown, workers, blas,
            cfg.token || cfg.ntokens ? ", token required" : "");
    if (flags[F_PORT_FILE].value[0]) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", flags[F_PORT_FILE].value);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%u\n", port) < 0 || fclose(f) ||
            rename(tmp, flags[F_PORT_FILE].value)) {
            log_msg(LOG_ERROR, "--port-file %s: %s", flags[F_PORT_FILE].value, strerror(errno));
            goto done;
        }
    }

    /* Wait for the handler's byte. poll() with a timeout, not a plain read(): under
     * ThreadSanitizer a handler runs only when its thread leaves an intercepted call,
     * and a read() restarted by SA_RESTART would never leave. */
    unsigned char sig = 0;
    for (;;) {
        struct pollfd pfd = {.fd = sig_pipe[0], .events = POLLIN};
        if (poll(&pfd, 1, 250) > 0 && read(sig_pipe[0], &sig, 1) == 1)
            break;
    }
    log_msg(LOG_INFO, "%s: stopping (running jobs checkpoint and become interrupted)",
            sig == SIGTERM ? "SIGTERM" : "SIGINT");
    rc = 0;
done:
    api_server_stop(srv);
    api_cache_free(cache);
    api_models_free(models);
    jobs_stop(J);
    api_datasets_free(datasets);
    bus_free(events);
    if (st && store_close(st, &err)) {
        log_msg(LOG_ERROR, "closing the database: %s", err.msg);
        rc = 1;
    }
    free(cors);
    free(cors_buf);
    free(hosts);
    free(hosts_buf);
    free(allow_hosts_joined);
    allow_hosts_joined = NULL;
    explicit_bzero(token_buf, sizeof token_buf);
    api_tokens_free(&toks);
    free(tls_cert);
    if (tls_key)
        explicit_bzero(tls_key, strlen(tls_key));
    free(tls_key);
    if (rc == 0)
        log_msg(LOG_INFO, "stopped cleanly");
    return rc;
}

/* dashboards.c — the load of scripts/bench-api: dashboards polling a daemon and
 * following a job's events, in one thread, so that the stand-ins for browsers on other
 * machines take as little of this machine's CPU as they can (100 python3 threads and
 * 20 curl processes took about 1.3% of it, a third of what was measured as the
 * daemon's cost). Built by bench-api with the system's cc.
 *
 *   dashboards PORT JOB BIGJOB STOPFILE POLLERS STREAMS
 *
 * POLLERS keep-alive connections, each from its own loopback address (127.0.1.x),
 * each asks once a second for the metrics of JOB since the last step it saw
 * (`max_points=1000&since=N`), every tenth time the whole range of BIGJOB instead.
 * STREAMS connections (127.0.2.x) follow GET /v1/jobs/JOB/events. Runs until STOPFILE
 * exists, then prints "N polls: p50 X ms, p99 Y ms" and "E events" on stdout. One thread,
 * one epoll set: the clients cost the machine a few hundred wake-ups a second. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXC 512

typedef struct conn {
    int fd, stream;
    long since, n;              /* pollers: last step seen, polls sent */
    double due, sent;           /* next poll, time the current one was sent (0: idle) */
    char *buf;                  /* a poller's reply so far */
    size_t len, cap;
} conn;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int dial(int port, const char *from)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, from, &a.sin_addr);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0)
        return -1;
    a.sin_port = htons((unsigned short)port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        return -1;
    return fd;
}

static int send_all(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t k = write(fd, s, n);
        if (k <= 0)
            return -1;
        s += k;
        n -= (size_t)k;
    }
    return 0;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The reply is whole when the headers are in and Content-Length bytes follow them. */
static const char *whole(const conn *c)
{
    const char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end)
        return NULL;
    const char *cl = strcasestr(c->buf, "content-length:");
    if (!cl || cl > end)
        return NULL;
    size_t body = (size_t)strtoul(cl + 15, NULL, 10), head = (size_t)(end + 4 - c->buf);
    return c->len >= head + body ? end + 4 : NULL;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: dashboards PORT JOB BIGJOB STOPFILE POLLERS STREAMS\n");
        return 2;
    }
    int port = atoi(argv[1]), np = atoi(argv[5]), ns = atoi(argv[6]);
    long job = atol(argv[2]), big = atol(argv[3]);
    const char *stop = argv[4];
    if (np + ns > MAXC || np > 250 || ns > 250)
        return 2;
    static conn c[MAXC];
    static struct epoll_event evs[MAXC];
    int ep = epoll_create1(0);
    if (ep < 0)
        return 1;
    static double lat[1 << 20];
    size_t nlat = 0;
    long events = 0;
    char addr[32], req[256];
    double t0 = now();
    for (int i = 0; i < np + ns; i++) {
        c[i].stream = i >= np;
        snprintf(addr, sizeof addr, "127.0.%d.%d", c[i].stream ? 2 : 1,
                 (c[i].stream ? i - np : i) + 1);
        if ((c[i].fd = dial(port, addr)) < 0) {
            fprintf(stderr, "dashboards: connect from %s: %s\n", addr, strerror(errno));
            return 1;
        }
        c[i].since = -1;
        struct epoll_event e = {.events = EPOLLIN, .data.u32 = (unsigned)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &e) != 0)
            return 1;
        c[i].due = t0 + (double)i / (np ? np : 1); /* spread over the first second */
        if (c[i].stream) {
            snprintf(req, sizeof req,
                     "GET /v1/jobs/%ld/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", job);
            if (send_all(c[i].fd, req))
                return 1;
        }
    }
    char rd[65536];
    double last_check = 0;
    for (;;) {
        double t = now(), next = t + 0.1;
        if (t - last_check >= 0.1) {
            last_check = t;
            if (access(stop, F_OK) == 0)
                break;
        }
        for (int i = 0; i < np; i++) {
            if (!c[i].sent && c[i].due <= t) {
                c[i].n++;
                if (c[i].n % 10 == 0)
                    snprintf(req, sizeof req, "GET /v1/jobs/%ld/metrics?max_points=1000 HTTP/1.1\r\n"
                             "Host: 127.0.0.1\r\n\r\n", big);
                else if (c[i].since >= 0)
                    snprintf(req, sizeof req, "GET /v1/jobs/%ld/metrics?max_points=1000&since=%ld "
                             "HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", job, c[i].since);
                else
                    snprintf(req, sizeof req, "GET /v1/jobs/%ld/metrics?max_points=1000 HTTP/1.1\r\n"
                             "Host: 127.0.0.1\r\n\r\n", job);
                if (send_all(c[i].fd, req))
                    return 1;
                c[i].sent = t;
                c[i].len = 0;
            }
            if (!c[i].sent && c[i].due < next)
                next = c[i].due;
        }
        /* rounded up: a wait rounded down to 0 ms would spin until the next poll is due */
        double left_ms = (next - now()) * 1000;
        int wait_ms = left_ms <= 0 ? 0 : (int)left_ms + 1;
        int nev = epoll_wait(ep, evs, MAXC, wait_ms);
        if (nev < 0 && errno != EINTR)
            return 1;
        for (int e = 0; e < nev; e++) {
            const int i = (int)evs[e].data.u32;
            ssize_t k = read(c[i].fd, rd, sizeof rd);
            if (k <= 0) {
                fprintf(stderr, "dashboards: connection %d closed\n", i);
                return 1;
            }
            if (c[i].stream) { /* count the events; chunk framing does not matter */
                for (char *p = rd; (p = memmem(p, (size_t)(rd + k - p), "event:", 6)); p += 6)
                    events++;
                continue;
            }
            if (c[i].len + (size_t)k + 1 > c[i].cap) {
                c[i].cap = (c[i].len + (size_t)k + 1) * 2;
                if (!(c[i].buf = realloc(c[i].buf, c[i].cap)))
                    return 1;
            }
            memcpy(c[i].buf + c[i].len, rd, (size_t)k);
            c[i].len += (size_t)k;
            c[i].buf[c[i].len] = 0;
            const char *body = whole(&c[i]);
            if (!body)
                continue;
            double done = now();
            if (nlat < sizeof lat / sizeof *lat)
                lat[nlat++] = done - c[i].sent;
            if (c[i].n % 10) { /* the reply ends with "next_since":N} */
                const char *ns_at = strstr(body, "\"next_since\":");
                long s = ns_at ? atol(ns_at + 13) : -1;
                if (s > c[i].since)
                    c[i].since = s;
            }
            c[i].due = c[i].sent + 1.0;
            c[i].sent = 0;
        }
    }
    qsort(lat, nlat, sizeof *lat, cmp);
    printf("%zu polls: p50 %.2f ms, p99 %.2f ms\n%ld events\n", nlat,
           nlat ? lat[nlat / 2] * 1e3 : 0.0, nlat ? lat[nlat * 99 / 100] * 1e3 : 0.0, events);
    return 0;
}

/* bus.h — the event bus: what happens to each job (steps, epochs, schedule changes,
 * state changes, checkpoints), kept in a per-job ring of the newest events and handed
 * to live subscribers (the SSE route, api/events.c), each with its own read cursor.
 *
 * The one rule: a publisher never waits for a subscriber. Training threads publish;
 * a publish copies a fixed-size record into the job's ring under a short mutex and
 * wakes the subscribers that were idle (through the wake callback each subscriber's
 * reader attached — the SSE route's api_stream_wake — which must never block for long).
 * It never does I/O and never waits for a client: a slow client reads from its cursor
 * at its own pace, and one that falls further behind than the ring holds is told so
 * (a reset) instead of holding anything up.
 *
 * Event ids: each job's events are numbered 1, 2, 3, ... in publish order, for the
 * life of the process (SSE's `id:`). Ids are not stored: after a restart they start
 * at 1 again, and a client presenting an id newer than any the job has is reset.
 *
 * Steps are throttled: at most step_hz of them per second per job enter the ring.
 * A step that comes too soon after the last one is held as the job's "pending" step;
 * a newer step replaces it (the newest wins, nothing queues up), it enters the ring
 * at the next publish once the interval has passed, and it always enters right
 * before a state event, so a client sees the figures a job stopped at.
 *
 * Memory: a job's ring starts small and doubles up to ring_cap records (a few hundred
 * bytes each; schedule texts and failure reasons are held separately, owned by their
 * slot). Rings exist for jobs that had an event and are freed once the job reached a
 * final state (completed, failed, cancelled) and either linger_s passed or, after
 * that, no subscriber remains; rings of jobs that stay unfinished without subscribers
 * (queued, paused) are kept small because they only hold state events.
 *
 * Locking: b->mu guards the table of jobs; each job's channel has its own mutex for
 * its ring and subscribers. Order: b->mu, then a channel's mu, then whatever lock the
 * wake callback takes (the HTTP layer's stream lock, inside api_stream_wake).
 *
 * The bus knows nothing of HTTP (daemon/ includes no api/ header but in its wiring
 * file): a reader hands it a callback to wake it. */
#ifndef VAED_BUS_H
#define VAED_BUS_H

#include <stddef.h>
#include <stdint.h>

#include "vae/metric_fields.h"


typedef struct bus bus;
typedef struct bus_sub bus_sub;

typedef struct bus_config {
    size_t ring_cap;            /* events kept per job for resuming, >= 2 */
    double step_hz;             /* step events per second per job at most; 0 = every step */
    double linger_s;            /* a finished job's ring is kept this long for late readers */
} bus_config;

/* ring_cap 1024, step_hz 10, linger_s 60. */
void bus_config_default(bus_config *c);

enum bus_type {
    BUS_STEP, BUS_EPOCH, BUS_SCHEDULE, BUS_STATE, BUS_CHECKPOINT,
    BUS_RESET,                  /* never published: a reader's cursor fell off the ring */
};

/* The name of a type as SSE shows it ("step", ..., "reset"). */
const char *bus_type_name(int type);

/* One step's figures, as the metrics table has them (step is the row's step: the
 * 0-based index of the step just taken; epoch its progress at the start). */
typedef struct bus_step {
    int64_t step;
    VAE_METRIC_FIELDS(VAE_MF_DECL) /* vae/metric_fields.h: epoch, beta, ..., time */
    double samples_per_sec;     /* training rate over the last second or so; 0 unknown */
} bus_step;

/* One epoch's figures: training means, and the held-out split when has_test. */
typedef struct bus_epoch {
    int epoch;                  /* epochs completed, 1-based */
    int64_t step;               /* steps completed */
    double train_loss, train_xent, train_kl, train_elbo, train_beta;
    int has_test;
    double xent, kl, elbo;
    int active_units;
    double eval_s;
} bus_epoch;

/* A record as a reader gets it. text is the schedule (compact JSON, one line) for
 * BUS_SCHEDULE, the reason (may be NULL) for BUS_STATE; NULL otherwise. */
typedef struct bus_event {
    uint64_t id;                /* 0 for the synthetic current-state and reset events */
    int type;
    int64_t job;
    union {
        bus_step step;
        bus_epoch epoch;
        struct { int64_t effective_step; } schedule;
        struct { char state[16]; int64_t step; /* steps completed, -1 unknown */ } state;
        struct { int64_t step; char kind[16]; } checkpoint;
        struct { uint64_t after, first, latest; } reset;
    } u;
    const char *text;
} bus_event;

/* Create / free. bus_new aborts on allocation failure (small, fixed). bus_free must
 * come after every subscriber was dropped (the HTTP server stopped) and every
 * publisher stopped (the job manager stopped); NULL is a no-op. */
bus *bus_new(const bus_config *cfg);
void bus_free(bus *b);

/* ---- publishing (any thread; b may be NULL: then nothing happens) ----
 * Each is O(1) in the number of subscribers that are reading, takes a short mutex,
 * and never blocks on I/O. Strings are copied. Allocation failures of the optional
 * texts drop the text, not the event. */
void bus_publish_step(bus *b, int64_t job, const bus_step *s);
void bus_publish_epoch(bus *b, int64_t job, const bus_epoch *e);
/* schedule_json: the resolved schedule as compact JSON (newlines are replaced). */
void bus_publish_schedule(bus *b, int64_t job, int64_t effective_step,
                          const char *schedule_json);
/* state: "queued", "running", "paused", "completed", "failed", "cancelled",
 * "interrupted"; reason may be NULL. completed, failed and cancelled are final. */
void bus_publish_state(bus *b, int64_t job, const char *state, const char *reason);
void bus_publish_checkpoint(bus *b, int64_t job, int64_t step, const char *kind);

/* 1 for the final states (completed, failed, cancelled). */
int bus_state_final(const char *state);

/* ---- subscribing ----
 * bus_subscribe opens a cursor on job's events. last_id < 0: a fresh start — the
 * first event read is the job's current state (synthetic, id = the newest id so far),
 * then every later event. last_id >= 0 (Last-Event-ID): events after it are read
 * from the ring; if some of them are gone (or last_id is newer than anything the job
 * had) the first event read is a reset, then the current state, then live events.
 * fallback_state/fallback_step/fallback_reason describe the job when the bus has no
 * record of it (from the store; reason may be NULL). Returns the cursor (the
 * caller's, freed by bus_unsubscribe); never NULL (aborts on allocation failure). */
bus_sub *bus_subscribe(bus *b, int64_t job, int64_t last_id, const char *fallback_state,
                       int64_t fallback_step, const char *fallback_reason);

/* How to wake s's reader when new events arrive while it is idle: wake(arg) (wake
 * NULL: none). Call it once the reader exists; the bus calls wake only under the
 * channel's lock, and bus_unsubscribe (called from the reader's free callback) drops
 * it under that lock, so arg is never used after the reader is gone. wake must not
 * block for long nor call into the bus. */
typedef void (*bus_wake_fn)(void *arg);
void bus_sub_attach(bus_sub *s, bus_wake_fn wake, void *arg);

/* The next event for s. Returns 1 and fills *ev (ev->text points into s, valid until
 * the next call on s), or 0 when there is nothing new: s is then marked idle and its
 * stream (if attached) is woken by the next publish. Never blocks for long. Only one
 * thread may read a given cursor at a time. */
int bus_next(bus_sub *s, bus_event *ev);

/* Close the cursor and free it; NULL is a no-op. */
void bus_unsubscribe(bus_sub *s);

/* ---- feeding the bus from elsewhere (a cluster's node: daemon/mirror.c) ----
 * bus_watched: the jobs that have subscribers, up to max of their ids into ids (any
 * order); returns how many there are (may be more than max). bus_state_of: the job's
 * current state as the bus has it, into state (16 bytes): 1, or 0 when it has none. */
size_t bus_watched(bus *b, int64_t *ids, size_t max);
int bus_state_of(bus *b, int64_t job, char state[16]);

/* For tests and /metrics: jobs with a ring, subscribers, bytes held by rings. */
typedef struct bus_stats {
    size_t channels, subscribers, bytes;
    uint64_t published, steps_coalesced, resets;
} bus_stats;
void bus_get_stats(bus *b, bus_stats *out);

#endif

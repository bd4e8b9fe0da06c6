/* bus.c — see bus.h.
 *
 * A channel per job holds its ring: slots[id % alloc] for the ids [first_id, next_id),
 * alloc growing by doubling up to ring_cap, then the oldest slot is overwritten. A
 * subscriber's cursor is the id it reads next; it fell off the ring when its cursor is
 * below first_id. A subscriber marks itself idle when it found nothing; a publish
 * wakes only idle subscribers (a busy one reads on anyway), so a publish costs one
 * wake per subscriber that was waiting and nothing for one that is behind or stalled.
 *
 * The current state of a job (for the first event of a fresh subscriber) is kept in
 * the channel beside the ring, so it survives its state event leaving the ring. */
#include "daemon/bus.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vae/err.h"

enum { NBUCKETS = 256, RING_START = 16 };

typedef struct slot {
    bus_event ev;               /* ev.text unused in the ring: text below */
    char *text;                 /* owned, NULL when none */
} slot;

typedef struct chan {
    int64_t job;
    pthread_mutex_t mu;
    slot *ring;                 /* alloc slots, NULL until the first event */
    size_t alloc;
    uint64_t first_id, next_id; /* ids in the ring: [first_id, next_id) */
    size_t text_bytes;
    /* current state */
    int state_known;
    char state[16];
    char *reason;               /* owned */
    int final;
    double final_at;
    int64_t last_step;          /* newest step seen (pending ones too), -1 none */
    /* step throttle */
    int any_step, has_pending;
    double last_step_t;
    bus_step pending;
    bus_sub *subs;
    size_t nsubs;
    struct chan *hnext;
} chan;

struct bus_sub {
    bus *b;
    chan *ch;                   /* NULL: a finished job the bus had no record of */
    uint64_t cursor;            /* next id to read */
    int idle;                   /* found nothing: wake on the next publish */
    bus_wake_fn wake;           /* the reader's wake-up, and its argument; under ch->mu */
    void *wake_arg;
    int need_reset, need_snap;
    bus_event reset, snap;
    char *snap_text;            /* owned: the snapshot's reason */
    char *scratch;              /* owned: the text of the last event read */
    size_t scratch_cap;
    bus_sub *prev, *next;       /* ch->subs, under ch->mu */
};

struct bus {
    bus_config cfg;
    pthread_mutex_t mu;         /* the table, last_gc */
    chan *table[NBUCKETS];
    double last_gc;
    atomic_ulong published, coalesced, resets;
};

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void bus_config_default(bus_config *c)
{
    c->ring_cap = 1024;
    c->step_hz = 10.0;
    c->linger_s = 60.0;
}

const char *bus_type_name(int type)
{
    static const char *names[] = {"step", "epoch", "schedule", "state", "checkpoint", "reset"};
    return type >= 0 && type <= BUS_RESET ? names[type] : "unknown";
}

int bus_state_final(const char *state)
{
    return state && (!strcmp(state, "completed") || !strcmp(state, "failed") ||
                     !strcmp(state, "cancelled"));
}

bus *bus_new(const bus_config *cfg)
{
    bus *b = xcalloc(1, sizeof *b);
    if (cfg)
        b->cfg = *cfg;
    else
        bus_config_default(&b->cfg);
    if (b->cfg.ring_cap < 2)
        b->cfg.ring_cap = 2;
    pthread_mutex_init(&b->mu, NULL);
    b->last_gc = mono();
    return b;
}

static void chan_free(chan *ch)
{
    if (ch->ring)
        for (uint64_t id = ch->first_id; id < ch->next_id; id++)
            free(ch->ring[id % ch->alloc].text);
    free(ch->ring);
    free(ch->reason);
    pthread_mutex_destroy(&ch->mu);
    free(ch);
}

void bus_free(bus *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < NBUCKETS; i++)
        for (chan *ch = b->table[i], *n; ch; ch = n) {
            n = ch->hnext;
            /* Subscribers outliving the bus would be a shutdown-order bug: detach them
             * rather than leave them pointing at freed memory. */
            for (bus_sub *s = ch->subs; s; s = s->next)
                s->ch = NULL;
            chan_free(ch);
        }
    pthread_mutex_destroy(&b->mu);
    free(b);
}

/* ---- the table (b->mu held) ----------------------------------------------------------- */

static chan *find(bus *b, int64_t job)
{
    for (chan *ch = b->table[(uint64_t)job % NBUCKETS]; ch; ch = ch->hnext)
        if (ch->job == job)
            return ch;
    return NULL;
}

static chan *create(bus *b, int64_t job)
{
    chan *ch = xcalloc(1, sizeof *ch);
    ch->job = job;
    pthread_mutex_init(&ch->mu, NULL);
    ch->first_id = ch->next_id = 1;
    ch->last_step = -1;
    size_t h = (uint64_t)job % NBUCKETS;
    ch->hnext = b->table[h];
    b->table[h] = ch;
    return ch;
}

/* Free channels of finished jobs that nobody reads and whose linger time is over;
 * at most once a second (it walks every channel). */
static void gc(bus *b)
{
    double now = mono();
    if (now - b->last_gc < 1.0)
        return;
    b->last_gc = now;
    for (size_t i = 0; i < NBUCKETS; i++)
        for (chan **p = &b->table[i]; *p;) {
            chan *ch = *p;
            pthread_mutex_lock(&ch->mu);
            int dead = ch->final && ch->nsubs == 0 && now - ch->final_at >= b->cfg.linger_s;
            pthread_mutex_unlock(&ch->mu);
            if (dead) {
                *p = ch->hnext;
                chan_free(ch);
            } else {
                p = &ch->hnext;
            }
        }
}

/* The job's channel, created if needed, returned locked. */
static chan *lock_chan(bus *b, int64_t job)
{
    pthread_mutex_lock(&b->mu);
    gc(b);
    chan *ch = find(b, job);
    if (!ch)
        ch = create(b, job);
    pthread_mutex_lock(&ch->mu);
    pthread_mutex_unlock(&b->mu);
    return ch;
}

/* ---- the ring (ch->mu held) ----------------------------------------------------------- */

/* Append ev (its text given separately, owned by the ring from here; may be NULL) and
 * wake the idle subscribers. */
static void commit(bus *b, chan *ch, const bus_event *ev, char *text)
{
    size_t count = (size_t)(ch->next_id - ch->first_id);
    if (!ch->ring || (count == ch->alloc && ch->alloc < b->cfg.ring_cap)) {
        size_t na = ch->ring ? ch->alloc * 2 : RING_START;
        if (na > b->cfg.ring_cap)
            na = b->cfg.ring_cap;
        slot *nr = calloc(na, sizeof *nr);
        if (nr) {
            for (uint64_t id = ch->first_id; id < ch->next_id; id++)
                nr[id % na] = ch->ring[id % ch->alloc];
            free(ch->ring);
            ch->ring = nr;
            ch->alloc = na;
        } else if (!ch->ring) { /* no ring at all: the event is lost, the id is not */
            free(text);
            ch->first_id = ++ch->next_id;
            return;
        }
    }
    if (count == ch->alloc) { /* full at its cap: the oldest goes */
        slot *old = &ch->ring[ch->first_id % ch->alloc];
        if (old->text)
            ch->text_bytes -= strlen(old->text) + 1;
        free(old->text);
        old->text = NULL;
        ch->first_id++;
    }
    slot *sl = &ch->ring[ch->next_id % ch->alloc];
    sl->ev = *ev;
    sl->ev.id = ch->next_id;
    sl->ev.job = ch->job;
    sl->ev.text = NULL;
    sl->text = text;
    if (text)
        ch->text_bytes += strlen(text) + 1;
    ch->next_id++;
    atomic_fetch_add_explicit(&b->published, 1, memory_order_relaxed);
    for (bus_sub *s = ch->subs; s; s = s->next)
        if (s->idle && s->wake) {
            s->idle = 0;
            s->wake(s->wake_arg);
        }
}

static void commit_pending(bus *b, chan *ch, double now)
{
    bus_event ev = {.type = BUS_STEP};
    ev.u.step = ch->pending;
    ch->has_pending = 0;
    ch->last_step_t = now;
    commit(b, ch, &ev, NULL);
}

/* Before any other event: a held step whose interval is over goes first. */
static void flush_due(bus *b, chan *ch, double now)
{
    if (ch->has_pending && (b->cfg.step_hz <= 0 || now - ch->last_step_t >= 1.0 / b->cfg.step_hz))
        commit_pending(b, ch, now);
}

/* ---- publishing ----------------------------------------------------------------------- */

void bus_publish_step(bus *b, int64_t job, const bus_step *s)
{
    if (!b)
        return;
    chan *ch = lock_chan(b, job);
    double now = mono();
    ch->last_step = s->step + 1; /* steps completed, as the job's state shows it */
    if (ch->has_pending)
        atomic_fetch_add_explicit(&b->coalesced, 1, memory_order_relaxed);
    ch->pending = *s;
    ch->has_pending = 1;
    if (!ch->any_step) {
        ch->any_step = 1;
        commit_pending(b, ch, now);
    } else {
        flush_due(b, ch, now);
    }
    pthread_mutex_unlock(&ch->mu);
}

void bus_publish_epoch(bus *b, int64_t job, const bus_epoch *e)
{
    if (!b)
        return;
    chan *ch = lock_chan(b, job);
    flush_due(b, ch, mono());
    bus_event ev = {.type = BUS_EPOCH};
    ev.u.epoch = *e;
    commit(b, ch, &ev, NULL);
    pthread_mutex_unlock(&ch->mu);
}

void bus_publish_schedule(bus *b, int64_t job, int64_t effective_step, const char *schedule_json)
{
    if (!b)
        return;
    char *text = schedule_json ? strdup(schedule_json) : NULL;
    for (char *p = text; p && *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' '; /* one data: line per event */
    chan *ch = lock_chan(b, job);
    flush_due(b, ch, mono());
    bus_event ev = {.type = BUS_SCHEDULE};
    ev.u.schedule.effective_step = effective_step;
    commit(b, ch, &ev, text);
    pthread_mutex_unlock(&ch->mu);
}

void bus_publish_state(bus *b, int64_t job, const char *state, const char *reason)
{
    if (!b)
        return;
    char *text = reason ? strdup(reason) : NULL, *keep = reason ? strdup(reason) : NULL;
    for (char *p = text; p && *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    chan *ch = lock_chan(b, job);
    double now = mono();
    if (ch->has_pending) /* the figures the job stopped at, whatever the rate */
        commit_pending(b, ch, now);
    ch->state_known = 1;
    snprintf(ch->state, sizeof ch->state, "%s", state);
    free(ch->reason);
    ch->reason = keep;
    if (bus_state_final(state) && !ch->final) {
        ch->final = 1;
        ch->final_at = now;
    }
    bus_event ev = {.type = BUS_STATE};
    snprintf(ev.u.state.state, sizeof ev.u.state.state, "%s", state);
    ev.u.state.step = ch->last_step;
    commit(b, ch, &ev, text);
    pthread_mutex_unlock(&ch->mu);
}

void bus_publish_checkpoint(bus *b, int64_t job, int64_t step, const char *kind)
{
    if (!b)
        return;
    chan *ch = lock_chan(b, job);
    flush_due(b, ch, mono());
    bus_event ev = {.type = BUS_CHECKPOINT};
    ev.u.checkpoint.step = step;
    snprintf(ev.u.checkpoint.kind, sizeof ev.u.checkpoint.kind, "%s", kind ? kind : "");
    commit(b, ch, &ev, NULL);
    pthread_mutex_unlock(&ch->mu);
}

/* ---- feeding from elsewhere ------------------------------------------------------------ */

size_t bus_watched(bus *b, int64_t *ids, size_t max)
{
    size_t n = 0;
    if (!b)
        return 0;
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < NBUCKETS; i++)
        for (chan *ch = b->table[i]; ch; ch = ch->hnext) {
            pthread_mutex_lock(&ch->mu);
            if (ch->nsubs > 0) {
                if (n < max)
                    ids[n] = ch->job;
                n++;
            }
            pthread_mutex_unlock(&ch->mu);
        }
    pthread_mutex_unlock(&b->mu);
    return n;
}

int bus_state_of(bus *b, int64_t job, char state[16])
{
    int known = 0;
    if (!b)
        return 0;
    pthread_mutex_lock(&b->mu);
    chan *ch = find(b, job);
    if (ch) {
        pthread_mutex_lock(&ch->mu);
        if ((known = ch->state_known))
            snprintf(state, 16, "%s", ch->state);
        pthread_mutex_unlock(&ch->mu);
    }
    pthread_mutex_unlock(&b->mu);
    return known;
}

/* ---- subscribing ---------------------------------------------------------------------- */

/* s->snap := the channel's current state as of its newest id (ch->mu held). */
static void snapshot(bus_sub *s, chan *ch)
{
    memset(&s->snap, 0, sizeof s->snap);
    s->snap.type = BUS_STATE;
    s->snap.job = ch->job;
    s->snap.id = ch->next_id - 1;
    snprintf(s->snap.u.state.state, sizeof s->snap.u.state.state, "%s", ch->state);
    s->snap.u.state.step = ch->last_step;
    free(s->snap_text);
    s->snap_text = ch->reason ? strdup(ch->reason) : NULL;
    s->need_snap = 1;
}

static void make_reset(bus_sub *s, int64_t job, uint64_t after, uint64_t first, uint64_t latest)
{
    memset(&s->reset, 0, sizeof s->reset);
    s->reset.type = BUS_RESET;
    s->reset.job = job;
    s->reset.u.reset.after = after;
    s->reset.u.reset.first = first;
    s->reset.u.reset.latest = latest;
    s->need_reset = 1;
    atomic_fetch_add_explicit(&s->b->resets, 1, memory_order_relaxed);
}

bus_sub *bus_subscribe(bus *b, int64_t job, int64_t last_id, const char *fallback_state,
                       int64_t fallback_step, const char *fallback_reason)
{
    bus_sub *s = xcalloc(1, sizeof *s);
    s->b = b;
    pthread_mutex_lock(&b->mu);
    gc(b);
    chan *ch = find(b, job);
    if (!ch && bus_state_final(fallback_state)) {
        /* Finished before the bus knew it (or long ago): the state, and the end. */
        pthread_mutex_unlock(&b->mu);
        if (last_id > 0)
            make_reset(s, job, (uint64_t)last_id, 1, 0);
        s->snap.type = BUS_STATE;
        s->snap.job = job;
        snprintf(s->snap.u.state.state, sizeof s->snap.u.state.state, "%s", fallback_state);
        s->snap.u.state.step = fallback_step;
        s->snap_text = fallback_reason ? strdup(fallback_reason) : NULL;
        s->need_snap = 1;
        return s;
    }
    if (!ch)
        ch = create(b, job);
    pthread_mutex_lock(&ch->mu);
    pthread_mutex_unlock(&b->mu);
    s->ch = ch;
    if (!ch->state_known) {
        snprintf(ch->state, sizeof ch->state, "%s", fallback_state ? fallback_state : "unknown");
        free(ch->reason);
        ch->reason = fallback_reason ? strdup(fallback_reason) : NULL;
        if (ch->last_step < 0)
            ch->last_step = fallback_step;
        ch->state_known = 1;
    }
    uint64_t latest = ch->next_id - 1;
    if (last_id < 0) {
        snapshot(s, ch);
        s->cursor = ch->next_id;
    } else if ((uint64_t)last_id > latest || (uint64_t)last_id + 1 < ch->first_id) {
        make_reset(s, job, (uint64_t)last_id, ch->first_id, latest);
        snapshot(s, ch);
        s->cursor = ch->next_id;
    } else {
        s->cursor = (uint64_t)last_id + 1;
    }
    s->next = ch->subs;
    if (s->next)
        s->next->prev = s;
    ch->subs = s;
    ch->nsubs++;
    pthread_mutex_unlock(&ch->mu);
    return s;
}

void bus_sub_attach(bus_sub *s, bus_wake_fn wake, void *arg)
{
    if (!s->ch)
        return;
    pthread_mutex_lock(&s->ch->mu);
    s->wake = wake;
    s->wake_arg = arg;
    pthread_mutex_unlock(&s->ch->mu);
}

/* Copy text into s's scratch; ev->text points at it (NULL if text is NULL or the copy
 * could not be made). */
static void take_text(bus_sub *s, bus_event *ev, const char *text)
{
    ev->text = NULL;
    if (!text)
        return;
    size_t n = strlen(text) + 1;
    if (n > s->scratch_cap) {
        char *p = realloc(s->scratch, n);
        if (!p)
            return;
        s->scratch = p;
        s->scratch_cap = n;
    }
    memcpy(s->scratch, text, n);
    ev->text = s->scratch;
}

int bus_next(bus_sub *s, bus_event *ev)
{
    chan *ch = s->ch;
    if (ch)
        pthread_mutex_lock(&ch->mu);
    int got = 1;
    if (s->need_reset) {
        *ev = s->reset;
        ev->text = NULL;
        s->need_reset = 0;
    } else if (s->need_snap) {
        *ev = s->snap;
        take_text(s, ev, s->snap_text);
        s->need_snap = 0;
    } else if (!ch) {
        got = 0;
    } else if (s->cursor < ch->first_id) {
        /* Fell off the ring: say so, then start over from the current state. */
        make_reset(s, ch->job, s->cursor - 1, ch->first_id, ch->next_id - 1);
        *ev = s->reset;
        ev->text = NULL;
        s->need_reset = 0;
        snapshot(s, ch);
        s->cursor = ch->next_id;
    } else if (s->cursor < ch->next_id) {
        slot *sl = &ch->ring[s->cursor % ch->alloc];
        *ev = sl->ev;
        take_text(s, ev, sl->text);
        s->cursor++;
    } else {
        s->idle = 1;
        got = 0;
    }
    if (ch)
        pthread_mutex_unlock(&ch->mu);
    return got;
}

void bus_unsubscribe(bus_sub *s)
{
    if (!s)
        return;
    chan *ch = s->ch;
    if (ch) {
        pthread_mutex_lock(&ch->mu);
        if (s->prev)
            s->prev->next = s->next;
        else
            ch->subs = s->next;
        if (s->next)
            s->next->prev = s->prev;
        ch->nsubs--;
        s->wake = NULL;
        pthread_mutex_unlock(&ch->mu);
        /* ch may be freed from here on */
        pthread_mutex_lock(&s->b->mu);
        gc(s->b);
        pthread_mutex_unlock(&s->b->mu);
    }
    free(s->snap_text);
    free(s->scratch);
    free(s);
}

void bus_get_stats(bus *b, bus_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < NBUCKETS; i++)
        for (chan *ch = b->table[i]; ch; ch = ch->hnext) {
            pthread_mutex_lock(&ch->mu);
            out->channels++;
            out->subscribers += ch->nsubs;
            out->bytes += sizeof *ch + ch->alloc * sizeof(slot) + ch->text_bytes;
            pthread_mutex_unlock(&ch->mu);
        }
    pthread_mutex_unlock(&b->mu);
    out->published = atomic_load(&b->published);
    out->steps_coalesced = atomic_load(&b->coalesced);
    out->resets = atomic_load(&b->resets);
}

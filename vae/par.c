/* par.c — see par.h. Every wait is for a monotonic counter to reach a value: first a
 * spin of up to SPIN_NS that yields the core now and then, then a sleep on the one
 * condition variable, which every counter update broadcasts (under the mutex, so a
 * sleeper that checked the counter under it cannot miss the update). */
#include "par.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

/* How long a waiter spins before it sleeps: longer than the trainer's own work between
 * two steps (its hooks, the metrics record), so the helpers stay awake through it. */
#define SPIN_NS 300000L

struct vae_par {
    int n;                      /* parts, the caller included */
    pthread_t *th;              /* n − 1 helpers */
    int started;                /* helpers created */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    vae_par_fn fn;              /* the section: written before gen is raised */
    void *arg;
    atomic_ulong gen;           /* sections started */
    atomic_ulong done;          /* helper parts finished, over all sections */
    atomic_ulong bar_gen;       /* barriers passed */
    atomic_int bar_count;       /* parts at the current barrier */
    atomic_int quit;
};

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static long mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void wake(vae_par *p)
{
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Wait until *c >= want (or quit). */
static void wait_ge(vae_par *p, atomic_ulong *c, unsigned long want)
{
    long t0 = 0;
    for (int i = 0;; i++) {
        if (atomic_load(c) >= want || atomic_load(&p->quit))
            return;
        cpu_relax();
        if ((i & 63) == 63) {
            /* Let any other thread that wants this core have it (with a spare core
             * this returns at once). */
            sched_yield();
            long now = mono_ns();
            if (!t0)
                t0 = now;
            else if (now - t0 > SPIN_NS)
                break;
        }
    }
    pthread_mutex_lock(&p->mu);
    while (atomic_load(c) < want && !atomic_load(&p->quit))
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

typedef struct helper_arg {
    vae_par *p;
    int part;
} helper_arg;

static void *helper(void *a)
{
    helper_arg *h = a;
    vae_par *p = h->p;
    const int part = h->part;
    free(h);
    unsigned long seen = 0;
    for (;;) {
        wait_ge(p, &p->gen, seen + 1);
        if (atomic_load(&p->quit))
            break;
        seen++;
        p->fn(p->arg, part, p->n);
        atomic_fetch_add(&p->done, 1);
        wake(p);
    }
    return NULL;
}

vae_par *vae_par_new(int nparts)
{
    if (nparts < 2)
        return NULL;
    vae_par *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->th = calloc((size_t)nparts - 1, sizeof *p->th);
    if (!p->th) {
        free(p);
        return NULL;
    }
    p->n = nparts;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->bar_gen, 0);
    atomic_init(&p->bar_count, 0);
    atomic_init(&p->quit, 0);
    for (int i = 1; i < nparts; i++) {
        helper_arg *h = malloc(sizeof *h);
        if (!h)
            break;
        *h = (helper_arg){p, i};
        if (pthread_create(&p->th[i - 1], NULL, helper, h)) {
            free(h);
            break;
        }
        p->started++;
    }
    if (p->started != nparts - 1) {
        vae_par_free(p);
        return NULL;
    }
    return p;
}

void vae_par_free(vae_par *p)
{
    if (!p)
        return;
    atomic_store(&p->quit, 1);
    wake(p);
    for (int i = 0; i < p->started; i++)
        pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->th);
    free(p);
}

int vae_par_parts(const vae_par *p) { return p ? p->n : 1; }

void vae_par_run(vae_par *p, vae_par_fn fn, void *arg)
{
    if (!p) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    unsigned long g = atomic_fetch_add(&p->gen, 1) + 1;
    wake(p);
    fn(arg, 0, p->n);
    wait_ge(p, &p->done, g * (unsigned long)(p->n - 1));
}

void vae_par_post(vae_par *p, atomic_ulong *c)
{
    atomic_fetch_add(c, 1);
    if (p)
        wake(p);
}

void vae_par_wait(vae_par *p, atomic_ulong *c, unsigned long want)
{
    if (p)
        wait_ge(p, c, want);
}

void vae_par_barrier(vae_par *p)
{
    if (!p)
        return;
    unsigned long g = atomic_load(&p->bar_gen);
    if (atomic_fetch_add(&p->bar_count, 1) == p->n - 1) {
        atomic_store(&p->bar_count, 0);
        atomic_fetch_add(&p->bar_gen, 1);
        wake(p);
        return;
    }
    wait_ge(p, &p->bar_gen, g + 1);
}

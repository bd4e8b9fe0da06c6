/* par.c — see par.h. One mutex and two condition variables; a section costs two
 * wake-ups, small next to the ~0.3 ms each half of Adam takes on the reference model. */
#include "par.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

struct vae_par {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    vae_par_fn fn;
    void *arg;
    unsigned long gen, finished;
    int quit;
    int avoid_cpu;              /* the CPU the helper was last kept off, -1 none */
};

/* Keep the helper off the caller's CPU: the scheduler otherwise tends to wake it on
 * the waker's CPU, where the two halves would take turns instead of running at once. */
static void keep_off(vae_par *p)
{
    int cpu = sched_getcpu();
    if (cpu < 0 || cpu == p->avoid_cpu)
        return;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return;
    CPU_CLR(cpu, &set);
    if (CPU_COUNT(&set) > 0 && pthread_setaffinity_np(p->th, sizeof set, &set) == 0)
        p->avoid_cpu = cpu;
}

static void *helper(void *a)
{
    vae_par *p = a;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->gen == seen)
            pthread_cond_wait(&p->go, &p->mu);
        if (p->quit)
            break;
        seen = p->gen;
        vae_par_fn fn = p->fn;
        void *arg = p->arg;
        pthread_mutex_unlock(&p->mu);
        fn(arg, 1, 2);
        pthread_mutex_lock(&p->mu);
        p->finished = seen;
        pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

vae_par *vae_par_new(void)
{
    vae_par *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    p->avoid_cpu = -1;
    if (pthread_create(&p->th, NULL, helper, p)) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->go);
        pthread_cond_destroy(&p->done);
        free(p);
        return NULL;
    }
    return p;
}

void vae_par_free(vae_par *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_signal(&p->go);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->th, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p);
}

void vae_par_run(vae_par *p, vae_par_fn fn, void *arg)
{
    if (!p) {
        fn(arg, 0, 2);
        fn(arg, 1, 2);
        return;
    }
    keep_off(p);
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    unsigned long g = ++p->gen;
    pthread_cond_signal(&p->go);
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0, 2);
    pthread_mutex_lock(&p->mu);
    while (p->finished != g)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

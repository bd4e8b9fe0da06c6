/* par.h — the trainer's own threads: a parallel section runs one function on n parts at
 * once, part 0 on the calling thread and the others on helper threads.
 *
 * vaed does its parallelism itself instead of through OpenBLAS's threads (which run
 * in lockstep inside every multiply, so a preempted one stalls all): a step splits
 * its batch into shards and its parameters into chunks (vae/model.h), and the parts
 * of a section claim them from counters. Which part computes what never changes a
 * number, so runs are bit-for-bit reproducible whatever the timing and thread count.
 *
 * Helpers, and a caller waiting for them, spin briefly before they sleep: the
 * sections of a training step follow one another within microseconds, and a
 * wake-up from sleep costs more than that. */
#ifndef VAED_PAR_H
#define VAED_PAR_H

#include <stdatomic.h>

typedef struct vae_par vae_par;
typedef void (*vae_par_fn)(void *arg, int part, int nparts);

/* Start nparts − 1 helper threads (nparts >= 2). Returns NULL if a thread cannot be
 * created; every function here takes a NULL pool as one part, the caller. */
vae_par *vae_par_new(int nparts);
void vae_par_free(vae_par *p);

/* The number of parts: 1 for NULL. */
int vae_par_parts(const vae_par *p);

/* Run fn(arg, i, n) for every part i at once; return when all are done. */
void vae_par_run(vae_par *p, vae_par_fn fn, void *arg);

/* Called by every part of a section: return when all have reached it. */
void vae_par_barrier(vae_par *p);

/* Finer hand-offs inside a section: a counter that parts raise as they finish pieces
 * of work, and a wait until it reaches a value. With a NULL pool there is no one to
 * wait for: the wait returns at once. */
void vae_par_post(vae_par *p, atomic_ulong *c);
void vae_par_wait(vae_par *p, atomic_ulong *c, unsigned long want);

#endif

/* par.h — a two-way parallel section for the elementwise work of a training step.
 *
 * Between matrix multiplies the trainer's own loops (Adam, the gradient norm) run on
 * one core while OpenBLAS's worker idles on the other. vae_par_run splits such a loop
 * in two: part 0 runs on the calling thread, part 1 on a helper thread that sleeps on
 * a condition variable between sections, so it never competes with OpenBLAS during a
 * multiply. The split is by fixed halves, and each part reduces its own half, so the
 * results do not depend on timing: runs stay bit-for-bit reproducible. */
#ifndef VAED_PAR_H
#define VAED_PAR_H

typedef struct vae_par vae_par;
typedef void (*vae_par_fn)(void *arg, int part, int nparts);

/* Start the helper. Returns NULL if the thread cannot be created; vae_par_run on a
 * NULL pool runs both parts on the calling thread. */
vae_par *vae_par_new(void);
void vae_par_free(vae_par *p);

/* Run fn(arg, 0, 2) here and fn(arg, 1, 2) on the helper; return when both are done. */
void vae_par_run(vae_par *p, vae_par_fn fn, void *arg);

#endif

/* cache.c — see cache.h. A handful of entries under one mutex, found by a linear scan
 * (a lookup compares at most `entries` short keys; the reply it saves is milliseconds). */
#include "api/cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    char *key;                  /* NULL: free slot */
    char *body;
    size_t len;
    unsigned long used;         /* the tick of its last use */
} entry;

struct api_cache {
    pthread_mutex_t mu;
    entry *e;
    int n;
    size_t max_bytes, bytes;
    unsigned long tick, hits, misses;
};

api_cache *api_cache_new(int entries, size_t max_bytes)
{
    if (entries < 1)
        return NULL;
    api_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->e = calloc((size_t)entries, sizeof *c->e);
    if (!c->e) {
        free(c);
        return NULL;
    }
    c->n = entries;
    c->max_bytes = max_bytes;
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

static void drop(api_cache *c, entry *e)
{
    c->bytes -= e->len;
    free(e->key);
    free(e->body);
    memset(e, 0, sizeof *e);
}

void api_cache_free(api_cache *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++)
        drop(c, &c->e[i]);
    pthread_mutex_destroy(&c->mu);
    free(c->e);
    free(c);
}

static entry *find(api_cache *c, const char *key)
{
    for (int i = 0; i < c->n; i++)
        if (c->e[i].key && !strcmp(c->e[i].key, key))
            return &c->e[i];
    return NULL;
}

int api_cache_get(api_cache *c, const char *key, char **body, size_t *len)
{
    if (!c)
        return 0;
    int found = 0;
    pthread_mutex_lock(&c->mu);
    entry *e = find(c, key);
    if (e && (*body = malloc(e->len ? e->len : 1))) {
        memcpy(*body, e->body, e->len);
        *len = e->len;
        e->used = ++c->tick;
        found = 1;
    }
    if (found)
        c->hits++;
    else
        c->misses++;
    pthread_mutex_unlock(&c->mu);
    return found;
}

void api_cache_put(api_cache *c, const char *key, const char *body, size_t len)
{
    if (!c || len > c->max_bytes / 4)
        return;
    char *k = strdup(key), *b = malloc(len ? len : 1);
    if (!k || !b) {
        free(k);
        free(b);
        return;
    }
    memcpy(b, body, len);
    pthread_mutex_lock(&c->mu);
    entry *e = find(c, key);
    if (e)
        drop(c, e);
    /* Make room: the least recently used go first, until one slot is free and the
     * bytes fit. */
    for (;;) {
        entry *lru = NULL, *free_slot = NULL;
        for (int i = 0; i < c->n; i++) {
            if (!c->e[i].key)
                free_slot = free_slot ? free_slot : &c->e[i];
            else if (!lru || c->e[i].used < lru->used)
                lru = &c->e[i];
        }
        if (free_slot && c->bytes + len <= c->max_bytes) {
            *free_slot = (entry){k, b, len, ++c->tick};
            c->bytes += len;
            break;
        }
        drop(c, lru); /* lru exists: a full table or too many bytes means entries */
    }
    pthread_mutex_unlock(&c->mu);
}

void api_cache_stats(api_cache *c, int *n, size_t *bytes, unsigned long *hits,
                     unsigned long *misses)
{
    *n = 0;
    *bytes = 0;
    *hits = *misses = 0;
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->n; i++)
        *n += c->e[i].key != NULL;
    *bytes = c->bytes;
    *hits = c->hits;
    *misses = c->misses;
    pthread_mutex_unlock(&c->mu);
}

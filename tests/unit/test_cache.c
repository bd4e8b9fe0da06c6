/* test_cache.c — the metrics reply cache (api/cache.h): what is put comes back
 * byte for byte as a copy the caller owns; a key put again is replaced; the least
 * recently used reply goes first when the slots or the bytes run out; a reply over a
 * quarter of the bytes is not kept; a NULL cache keeps nothing; and four threads
 * hammering it see only replies that belong to their keys. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "api/cache.h"

static int get_is(api_cache *c, const char *key, const char *want)
{
    char *b = NULL;
    size_t n = 0;
    if (!api_cache_get(c, key, &b, &n))
        return want == NULL;
    int ok = want && n == strlen(want) && memcmp(b, want, n) == 0;
    free(b);
    return ok;
}

static void test_basics(void)
{
    api_cache *c = api_cache_new(3, 400);
    CHECK(c != NULL, "new");
    CHECK(get_is(c, "a", NULL), "empty cache answers nothing");
    api_cache_put(c, "a", "alpha", 5);
    api_cache_put(c, "b", "beta", 4);
    CHECK(get_is(c, "a", "alpha") && get_is(c, "b", "beta"), "what was put comes back");
    char *b1, *b2;
    size_t n1, n2;
    CHECK(api_cache_get(c, "a", &b1, &n1) && api_cache_get(c, "a", &b2, &n2) && b1 != b2,
          "each get is a copy of its own");
    b1[0] = 'X'; /* the caller's copy: changing it changes nothing cached */
    free(b1), free(b2);
    CHECK(get_is(c, "a", "alpha"), "the cached reply is untouched by a caller");
    api_cache_put(c, "a", "ALPHA!", 6);
    CHECK(get_is(c, "a", "ALPHA!"), "a key put again is replaced");
    /* slots: a and b in, c fills the third; d must push out the least recently used,
     * which is b after a was read last */
    api_cache_put(c, "c", "gamma", 5);
    CHECK(get_is(c, "a", "ALPHA!"), "a still in");
    api_cache_put(c, "d", "delta", 5);
    CHECK(get_is(c, "b", NULL), "the least recently used went first");
    CHECK(get_is(c, "a", "ALPHA!") && get_is(c, "c", "gamma") && get_is(c, "d", "delta"),
          "the others stay");
    /* bytes: 400 in all, 100 at most per reply */
    char big[101];
    memset(big, 'z', sizeof big);
    api_cache_put(c, "big", big, 101);
    CHECK(get_is(c, "big", NULL), "a reply over a quarter of the bytes is not kept");
    api_cache_put(c, "e", big, 100);
    api_cache_put(c, "f", big, 100);
    api_cache_put(c, "g", big, 100);
    int n;
    size_t bytes;
    unsigned long hits, misses;
    api_cache_stats(c, &n, &bytes, &hits, &misses);
    CHECK(n == 3 && bytes == 300, "three slots, 300 bytes: %d, %zu", n, bytes);
    api_cache_put(c, "h", big, 100);
    api_cache_stats(c, &n, &bytes, &hits, &misses);
    CHECK(n == 3 && bytes <= 400, "bounded: %d entries, %zu bytes", n, bytes);
    CHECK(hits > 0 && misses > 0, "hits %lu misses %lu counted", hits, misses);
    api_cache_free(c);

    /* a NULL cache keeps nothing and answers nothing */
    api_cache_put(NULL, "a", "x", 1);
    CHECK(get_is(NULL, "a", NULL), "NULL cache");
    CHECK(api_cache_new(0, 100) == NULL, "no slots: no cache");
    api_cache_free(NULL);
}

static api_cache *shared;

static void *hammer(void *arg)
{
    long t = (long)arg;
    long bad = 0;
    char key[32], body[64];
    for (int i = 0; i < 20000; i++) {
        int k = (int)((i * 7 + t) % 11);
        snprintf(key, sizeof key, "k%d", k);
        snprintf(body, sizeof body, "reply of k%d", k);
        if (i % 3 == 0) {
            api_cache_put(shared, key, body, strlen(body));
        } else {
            char *b;
            size_t n;
            if (api_cache_get(shared, key, &b, &n)) {
                bad += n != strlen(body) || memcmp(b, body, n) != 0;
                free(b);
            }
        }
    }
    return (void *)bad;
}

static void test_threads(void)
{
    shared = api_cache_new(5, 1 << 20);
    pthread_t th[4];
    for (long i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, hammer, (void *)i);
    long bad = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        bad += (long)r;
    }
    CHECK(bad == 0, "%ld replies came back under another key", bad);
    api_cache_free(shared);
}

int main(void)
{
    test_basics();
    test_threads();
    return t_done("test_cache");
}

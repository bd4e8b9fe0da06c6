/* nodes.c — GET /v1/nodes: the cluster's nodes as the database has them (their
 * heartbeats, kept by store_node_beat), each with the leases it holds, read on a
 * connection of its own. */
#include <stdio.h>
#include <string.h>

#include "store/lease.h"
#include "store/store_impl.h"

struct nodes_acc {
    json_t *nodes;              /* array */
    double now;
};

static json_t *num_or_null(sql_stmt *s, int i)
{
    return sql_column_type(s, i) == SQL_NULL ? json_null() : json_real(sql_column_double(s, i));
}

static int node_row(void *arg, sql_stmt *s)
{
    struct nodes_acc *a = arg;
    const char *name = sql_column_text(s, 0), *k = sql_column_text(s, 3);
    double seen = sql_column_double(s, 2), ttl = sql_column_double(s, 4);
    a->now = sql_column_double(s, 5);
    json_t *o = json_pack("{s:s, s:o, s:o, s:s, s:f, s:b, s:[], s:[]}", "name",
                          name ? name : "", "started_at", num_or_null(s, 1), "seen_at",
                          num_or_null(s, 2), "kernels", k ? k : "", "lease_ttl", ttl, "alive",
                          a->now - seen <= (ttl > 0 ? ttl : 10.0), "jobs", "evaluations");
    return !o || json_array_append_new(a->nodes, o) ? VAED_ENOMEM : 0;
}

static int lease_row(void *arg, sql_stmt *s)
{
    struct nodes_acc *a = arg;
    const char *node = sql_column_text(s, 1);
    size_t i;
    json_t *n;
    json_array_foreach(a->nodes, i, n)
    {
        if (node && !strcmp(json_string_value(json_object_get(n, "name")), node)) {
            /* a negative key is an evaluation's lease (STORE_LEASE_EVAL) */
            const int64_t key = sql_column_int64(s, 0);
            json_t *l = json_pack("{s:I, s:I, s:f}", key > 0 ? "job" : "evaluation",
                                  (json_int_t)(key > 0 ? key : -key), "gen",
                                  (json_int_t)sql_column_int64(s, 2), "expires_at",
                                  sql_column_double(s, 3));
            if (!l || json_array_append_new(json_object_get(n, key > 0 ? "jobs" : "evaluations"), l))
                return VAED_ENOMEM;
        }
    }
    return 0;
}

int store_nodes_json(store *st, json_t **out, vaed_err *err)
{
    *out = NULL;
    if (!st->node[0])
        return vaed_err_set(err, VAED_ENOTFOUND, NULL,
                            "this daemon is no cluster's node (a PostgreSQL --db makes it one)");
    const char *now = lease_now_sql(sql_kind_of(st->wdb));
    char sql[512];
    struct nodes_acc a = {.nodes = json_array()};
    if (!a.nodes)
        return vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory");
    snprintf(sql, sizeof sql, "SELECT name, started, seen, kernels, lease_ttl, %s FROM nodes "
             "ORDER BY name", now);
    int rc = store_read_each(st, sql, 0, node_row, &a, "nodes", err);
    if (rc == 0) {
        snprintf(sql, sizeof sql, "SELECT job, node, gen, expires FROM leases WHERE node IS NOT "
                 "NULL AND expires > %s ORDER BY job", now);
        rc = store_read_each(st, sql, 0, lease_row, &a, "leases", err);
    }
    if (rc == 0 && !(*out = json_pack("{s:s, s:o}", "node", st->node, "nodes", a.nodes)))
        rc = vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory");
    else if (rc)
        json_decref(a.nodes);
    if (rc == VAED_ENOMEM)
        vaed_err_set(err, VAED_ENOMEM, NULL, "out of memory");
    return rc;
}

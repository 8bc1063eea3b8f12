/*
 * gw_metrics.c — the gateway's observer (see gw_int.h): every part reports
 * what happened (a request over, a load, a slot saved or restored, a
 * request refused before it reached a role) through gw__observe(); the
 * observers in the table below hear each event. The first keeps the
 * counters that /metrics (Prometheus text, rendered here) and /status
 * show. Gauges (queue lengths, role states, connections) are read when
 * /metrics is asked for.
 */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "gw_int.h"

static const double buckets[GW_N_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

static void count_code(gw_role_t *r, int code)
{
    for (int i = 0; i < GW_MAX_CODES; i++) {
        if (r->m.codes[i].code == code || r->m.codes[i].code == 0) {
            r->m.codes[i].code = code;
            r->m.codes[i].n++;
            return;
        }
    }
}

static void answered(gw_role_t *r, int code, double secs)
{
    count_code(r, code);
    int b = 0;
    while (b < GW_N_BUCKETS && secs > buckets[b])
        b++;
    r->m.hist[b]++;
    r->m.lat_sum += secs;
    r->m.lat_n++;
}

/* The counters behind /metrics and /status. */
static void count(gateway_t *g, const gw_obs_t *e)
{
    gw_role_t *r = e->role;
    switch (e->kind) {
    case GW_OBS_ANSWERED:
        r->m.tokens_in += e->tokens_in;
        r->m.tokens_out += e->tokens_out;
        answered(r, e->code, e->secs);
        break;
    case GW_OBS_UNROUTED:
        g->m.unrouted[e->code == 400 ? 0 : e->code == 401 ? 1 : e->code == 403 || e->code == 415 ? 3 : 2]++;
        break;
    case GW_OBS_LOADED:
        r->m.loads++;
        r->m.load_seconds += e->secs;
        r->m.last_load_s = e->secs;
        break;
    case GW_OBS_KV_SAVED:
        if (e->ok)
            r->m.kv_saves++;
        else
            r->m.kv_save_failures++;
        break;
    case GW_OBS_KV_RESTORED:
        if (e->ok)
            r->m.kv_restores++;
        else
            r->m.kv_restore_failures++;
        break;
    case GW_OBS_KV_EVICTED:
        g->m.kv_evicted++;
        break;
    case GW_OBS_IMAGES:
        r->m.image_requests++;
        r->m.images += e->images;
        break;
    }
}

/* Everyone who wants to hear of the gateway's events: add an observer here. */
static void (*const observers[])(gateway_t *g, const gw_obs_t *e) = {count};

void gw__observe(gateway_t *g, const gw_obs_t *e)
{
    for (size_t i = 0; i < sizeof observers / sizeof *observers; i++)
        observers[i](g, e);
}

void gw__metrics_reply(gateway_t *g, httpd_req_t *req)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "# HELP variet_requests_total Requests by role and HTTP status.\n"
                           "# TYPE variet_requests_total counter\n");
    for (size_t i = 0; i < g->n_roles; i++)
        if (!g->roles[i]->retired)
        for (int k = 0; k < GW_MAX_CODES && g->roles[i]->m.codes[k].code; k++)
            evbuffer_add_printf(b, "variet_requests_total{role=\"%s\",code=\"%d\"} %llu\n", g->roles[i]->name,
                                g->roles[i]->m.codes[k].code, (unsigned long long)g->roles[i]->m.codes[k].n);
    evbuffer_add_printf(b, "variet_unrouted_requests_total{code=\"400\"} %llu\n"
                           "variet_unrouted_requests_total{code=\"401\"} %llu\n"
                           "variet_unrouted_requests_total{code=\"404\"} %llu\n",
                        (unsigned long long)g->m.unrouted[0], (unsigned long long)g->m.unrouted[1],
                        (unsigned long long)g->m.unrouted[2]);
    evbuffer_add_printf(b, "variet_unrouted_requests_total{code=\"403\"} %llu\n", (unsigned long long)g->m.unrouted[3]);
    httpd_stats_t hs;
    httpd_stats(g->http, &hs);
    static const int refused_codes[8] = {400, 408, 413, 417, 431, 501, 505, 0};
    evbuffer_add_printf(b,
                        "# HELP variet_connections_open Client connections open now (max_connections %d).\n"
                        "# TYPE variet_connections_open gauge\nvariet_connections_open %d\n"
                        "# TYPE variet_connections_accepted_total counter\nvariet_connections_accepted_total %llu\n"
                        "# HELP variet_connections_rejected_total Connections answered 503 at max_connections.\n"
                        "# TYPE variet_connections_rejected_total counter\nvariet_connections_rejected_total %llu\n"
                        "# HELP variet_accept_errors_total accept() failures (out of file descriptors, ...).\n"
                        "# TYPE variet_accept_errors_total counter\nvariet_accept_errors_total %llu\n"
                        "# TYPE variet_connections_shed_total counter\nvariet_connections_shed_total %llu\n"
                        "# HELP variet_header_timeouts_total Requests whose head missed header_timeout.\n"
                        "# TYPE variet_header_timeouts_total counter\nvariet_header_timeouts_total %llu\n"
                        "# HELP variet_http_refused_total Malformed requests refused by the HTTP layer.\n"
                        "# TYPE variet_http_refused_total counter\n",
                        g->reg->engine.max_connections, hs.open, (unsigned long long)hs.accepted,
                        (unsigned long long)hs.rejected, (unsigned long long)hs.accept_errors,
                        (unsigned long long)hs.shed, (unsigned long long)hs.head_timeouts);
    for (int k = 0; k < 8; k++)
        if (hs.refused[k])
            evbuffer_add_printf(b, "variet_http_refused_total{code=\"%.0d%s\"} %llu\n", refused_codes[k],
                                refused_codes[k] ? "" : "other", (unsigned long long)hs.refused[k]);
    evbuffer_add_printf(b, "# HELP variet_request_duration_seconds Time from request to last byte.\n"
                           "# TYPE variet_request_duration_seconds histogram\n");
    for (size_t i = 0; i < g->n_roles; i++) {
        gw_role_t *r = g->roles[i];
        uint64_t cum = 0;
        for (int k = 0; k < GW_N_BUCKETS; k++) {
            cum += r->m.hist[k];
            evbuffer_add_printf(b, "variet_request_duration_seconds_bucket{role=\"%s\",le=\"%g\"} %llu\n", r->name,
                                buckets[k], (unsigned long long)cum);
        }
        cum += r->m.hist[GW_N_BUCKETS];
        evbuffer_add_printf(b, "variet_request_duration_seconds_bucket{role=\"%s\",le=\"+Inf\"} %llu\n", r->name,
                            (unsigned long long)cum);
        evbuffer_add_printf(b, "variet_request_duration_seconds_sum{role=\"%s\"} %.6f\n", r->name, r->m.lat_sum);
        evbuffer_add_printf(b, "variet_request_duration_seconds_count{role=\"%s\"} %llu\n", r->name,
                            (unsigned long long)r->m.lat_n);
    }
    evbuffer_add_printf(b, "# HELP variet_tokens_total Tokens from llama-server timings.\n# TYPE variet_tokens_total counter\n");
    for (size_t i = 0; i < g->n_roles; i++) {
        gw_role_t *r = g->roles[i];
        evbuffer_add_printf(b, "variet_tokens_total{role=\"%s\",direction=\"in\"} %llu\n", r->name,
                            (unsigned long long)r->m.tokens_in);
        evbuffer_add_printf(b, "variet_tokens_total{role=\"%s\",direction=\"out\"} %llu\n", r->name,
                            (unsigned long long)r->m.tokens_out);
    }
    evbuffer_add_printf(b, "# TYPE variet_loads_total counter\n");
    for (size_t i = 0; i < g->n_roles; i++)
        if (!g->roles[i]->retired)
        evbuffer_add_printf(b, "variet_loads_total{role=\"%s\"} %llu\n", g->roles[i]->name,
                            (unsigned long long)g->roles[i]->m.loads);
    evbuffer_add_printf(b, "# TYPE variet_load_seconds_total counter\n");
    for (size_t i = 0; i < g->n_roles; i++)
        if (!g->roles[i]->retired)
        evbuffer_add_printf(b, "variet_load_seconds_total{role=\"%s\"} %.3f\n", g->roles[i]->name,
                            g->roles[i]->m.load_seconds);
    evbuffer_add_printf(b, "# HELP variet_role_state 1 for the state each role is in.\n# TYPE variet_role_state gauge\n");
    static const char *const states[] = {"stopped", "loading", "ready", "stopping", "failed"};
    for (size_t i = 0; i < g->n_roles; i++)
        if (!g->roles[i]->retired)
        for (int k = 0; k < 5; k++)
            evbuffer_add_printf(b, "variet_role_state{role=\"%s\",state=\"%s\"} %d\n", g->roles[i]->name, states[k],
                                !strcmp(gw__role_state(g->roles[i]), states[k]));
    evbuffer_add_printf(b, "# HELP variet_kv_saves_total Slot saves before stops (context kept across swaps).\n"
                           "# TYPE variet_kv_saves_total counter\n");
    for (size_t i = 0; i < g->n_roles; i++)
        if (!g->roles[i]->retired)
            evbuffer_add_printf(b, "variet_kv_saves_total{role=\"%s\",result=\"ok\"} %llu\n"
                                   "variet_kv_saves_total{role=\"%s\",result=\"failed\"} %llu\n",
                                g->roles[i]->name, (unsigned long long)g->roles[i]->m.kv_saves, g->roles[i]->name,
                                (unsigned long long)g->roles[i]->m.kv_save_failures);
    evbuffer_add_printf(b, "# HELP variet_kv_restores_total Slot restores: verified by the answer's cache_n, or failed "
                           "(prefilled instead).\n# TYPE variet_kv_restores_total counter\n");
    for (size_t i = 0; i < g->n_roles; i++)
        if (!g->roles[i]->retired)
            evbuffer_add_printf(b, "variet_kv_restores_total{role=\"%s\",result=\"verified\"} %llu\n"
                                   "variet_kv_restores_total{role=\"%s\",result=\"failed\"} %llu\n",
                                g->roles[i]->name, (unsigned long long)g->roles[i]->m.kv_restores, g->roles[i]->name,
                                (unsigned long long)g->roles[i]->m.kv_restore_failures);
    evbuffer_add_printf(b, "# HELP variet_image_requests_total Requests routed to a role that carry images "
                           "(image_url / input_image parts, multimodal_data).\n"
                           "# TYPE variet_image_requests_total counter\n");
    for (size_t i = 0; i < g->n_roles; i++)
        if (!g->roles[i]->retired)
            evbuffer_add_printf(b, "variet_image_requests_total{role=\"%s\"} %llu\n", g->roles[i]->name,
                                (unsigned long long)g->roles[i]->m.image_requests);
    evbuffer_add_printf(b, "# HELP variet_images_total Images in the requests routed to a role.\n"
                           "# TYPE variet_images_total counter\n");
    for (size_t i = 0; i < g->n_roles; i++)
        if (!g->roles[i]->retired)
            evbuffer_add_printf(b, "variet_images_total{role=\"%s\"} %llu\n", g->roles[i]->name,
                                (unsigned long long)g->roles[i]->m.images);
    evbuffer_add_printf(b, "# TYPE variet_kv_store_bytes gauge\nvariet_kv_store_bytes %llu\n",
                        (unsigned long long)g->kv_bytes);
    evbuffer_add_printf(b, "# HELP variet_log_streams_open Backend log streams (/roles/NAME/logs?follow=1) open now.\n"
                           "# TYPE variet_log_streams_open gauge\nvariet_log_streams_open %d\n",
                        dash_follows(g->dash));
    evbuffer_add_printf(b, "# TYPE variet_queue_length gauge\n");
    for (size_t i = 0; i < g->n_roles; i++)
        if (!g->roles[i]->retired)
        evbuffer_add_printf(b, "variet_queue_length{role=\"%s\"} %d\n", g->roles[i]->name, g->roles[i]->n_queued);
    httpd_add_header(req, "Content-Type", "text/plain; version=0.0.4");
    size_t n = evbuffer_get_length(b);
    httpd_reply(req, 200, evbuffer_pullup(b, -1), n);
    evbuffer_free(b);
}

/*
 * dash.h — the dashboard's server side: the page's embedded files, live
 * backend logs and tuning histories, answered on the gateway's httpd
 * requests. The gateway routes to these (route.h: ROUTE_UI,
 * ROUTE_ROLE_LOGS with follow, ROUTE_ROLE_TUNE) after its access check;
 * everything else the page shows comes from /status and /metrics.
 *
 *   GET /ui, /ui/NAME     the files of ui/ (ui.h), with an ETag; a matching
 *                         If-None-Match gets 304. Cache-Control: no-cache
 *                         (revalidated, so a new binary's page shows at
 *                         once); the HTML carries a Content-Security-Policy
 *                         that allows only this origin's scripts, styles
 *                         and connections, and no framing.
 *   GET /roles/NAME/logs?follow=1[&tail=N]
 *                         the last N lines (default 100) of the role's
 *                         backend output, then new output as it comes,
 *                         chunked text/plain. Bounded: at most
 *                         DASH_MAX_FOLLOW streams at once (then 429), at
 *                         most 64 KiB read per tick (4 a second), nothing
 *                         read while 256 KiB wait for a slow client (the
 *                         ring moves on; "[variet: N bytes skipped]" says
 *                         so). It ends when the client goes, or closes its
 *                         sending side, or at shutdown.
 *   GET /roles/NAME/tune[?plot=trials|frontier]
 *                         the role's tuning history, tune-NAME.json in the
 *                         configuration's folder (where `variet tune`
 *                         writes it), as JSON; with plot, that plot as SVG
 *                         (tune_plot.h: the same as in the retuning log).
 *                         404 naming the file when there is none.
 *
 * Ownership: the gateway owns the dash_t; open log streams are its own
 * until their client goes (the request's close callback) or dash_free.
 */
#ifndef VARIET_DASH_H
#define VARIET_DASH_H

#include <stddef.h>

#include "backend.h"
#include "httpd.h"

struct event_base;
typedef struct dash dash_t;

#define DASH_MAX_FOLLOW 16

dash_t *dash_new(struct event_base *base);
/* Ends every open log stream (their connections are closed) and frees. */
void dash_free(dash_t **d);
/* Log streams open now. */
int dash_follows(const dash_t *d);

/* GET /ui...: answers req (200, 304 or 404). */
void dash_asset(httpd_req_t *req);

/* GET /roles/NAME/logs?follow=1: starts a stream of be's output; be must
 * outlive it (the gateway frees backends after its HTTP server, whose
 * close callbacks end the streams, or after dash_free). Answers 429 past
 * DASH_MAX_FOLLOW. */
void dash_log_follow(dash_t *d, httpd_req_t *req, backend_t *be, size_t tail_lines);

/* GET /roles/NAME/tune: the history in dir (the configuration's folder)
 * of the role named role, or its plot (query plot=trials|frontier). */
void dash_tune(httpd_req_t *req, const char *dir, const char *role);

#endif

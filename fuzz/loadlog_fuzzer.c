/*
 * loadlog_fuzzer.c — libFuzzer target for llama-server's log parser
 * (loadlog): the input is a log, read whole (loadlog_parse) and as the
 * lines of one request (loadlog_images), then split at a chosen byte and
 * fed line by line, which must give the same report as the whole.
 * Invariants: devices within LOADLOG_MAX_DEV, every name and message
 * NUL-terminated within its field, a ready report has its listening line;
 * image counts are not negative, a complete request has an image, an
 * encode time is -1 or not negative.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadlog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "loadlog_fuzzer: invariant broken: %s\n", what);
        abort();
    }
}

static void check(const loadlog_t *r)
{
    must(r->n_dev >= 0 && r->n_dev <= LOADLOG_MAX_DEV, "device count in range");
    for (int i = 0; i < r->n_dev; i++)
        must(memchr(r->dev[i].name, 0, sizeof r->dev[i].name) != NULL, "device name terminated");
    must(memchr(r->error, 0, sizeof r->error) && memchr(r->listen, 0, sizeof r->listen) &&
             memchr(r->mmproj, 0, sizeof r->mmproj) && memchr(r->mmproj_device, 0, sizeof r->mmproj_device) &&
             memchr(r->oom_device, 0, sizeof r->oom_device) && memchr(r->fit_abort, 0, sizeof r->fit_abort),
         "strings terminated");
    must(!r->ready || r->t_ready == r->t_ready, "ready has a time"); /* not NaN */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    loadlog_t whole;
    loadlog_init(&whole);
    loadlog_parse(&whole, text, size);
    check(&whole);

    loadlog_images_t im;
    loadlog_images(text, size, &im);
    must(im.n_images >= 0 && im.tokens >= 0 && im.decode_ms >= 0, "image counts not negative");
    must(!im.complete || im.n_images > 0, "a complete request has an image");
    must(im.encode_ms == -1 || im.encode_ms >= 0, "encode time -1 or not negative");

    /* line by line gives the same report */
    loadlog_t byline;
    loadlog_init(&byline);
    size_t at = 0;
    while (at < size) {
        const char *nl = memchr(text + at, '\n', size - at);
        size_t e = nl ? (size_t)(nl - text) : size;
        loadlog_line(&byline, text + at, e - at);
        at = nl ? e + 1 : size;
    }
    must(byline.n_dev == whole.n_dev && byline.ready == whole.ready && byline.oom == whole.oom &&
             byline.n_ctx == whole.n_ctx && !strcmp(byline.error, whole.error) &&
             !strcmp(byline.mmproj_device, whole.mmproj_device),
         "line by line equals the whole");
    return 0;
}

/*
 * ui.h — the dashboard's static files, built into the binary: the files
 * of ui/ (html, js, css) become byte arrays at build time (cmake/embed.cmake
 * writes ui_assets.c into the build folder), so `variet serve` needs no
 * file and no network to serve /ui. Pure lookups; dash.c answers with them.
 */
#ifndef VARIET_UI_H
#define VARIET_UI_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    const char *name;          /* file name under ui/, e.g. "app.js" */
    const unsigned char *data; /* its bytes (NUL after the last) */
    size_t len;
    const char *etag;          /* quoted: "\"<16 hex digits of its SHA-256>\"" */
} ui_asset_t;

/* The generated table (ui_assets.c). */
extern const ui_asset_t ui__assets[];
extern const size_t ui__n_assets;

/* The asset a request path names: "/ui" and "/ui/" are index.html,
 * "/ui/NAME" the file NAME (no folders); NULL for anything else. */
const ui_asset_t *ui_find(const char *path);

/* Content-Type by the name's extension (html, js, css, svg, json, png,
 * ico; else application/octet-stream). */
const char *ui_content_type(const char *name);

/* Does an If-None-Match header (a list of entity tags, weak ones included,
 * or "*") name etag? */
bool ui_etag_matches(const char *if_none_match, const char *etag);

#endif

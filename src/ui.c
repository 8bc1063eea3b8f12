/*
 * ui.c — lookups in the dashboard's embedded files (see ui.h).
 */
#include "ui.h"

#include <string.h>
#include <strings.h>

const ui_asset_t *ui_find(const char *path)
{
    const char *name;
    if (!strcmp(path, "/ui") || !strcmp(path, "/ui/"))
        name = "index.html";
    else if (!strncmp(path, "/ui/", 4))
        name = path + 4;
    else
        return NULL;
    for (size_t i = 0; i < ui__n_assets; i++)
        if (!strcmp(ui__assets[i].name, name))
            return &ui__assets[i];
    return NULL;
}

const char *ui_content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".json", "application/json"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (!strcasecmp(dot, types[i].ext))
            return types[i].type;
    return "application/octet-stream";
}

bool ui_etag_matches(const char *h, const char *etag)
{
    if (!h)
        return false;
    size_t el = strlen(etag);
    while (*h) {
        while (*h == ' ' || *h == '\t' || *h == ',')
            h++;
        if (*h == '*')
            return true;
        if (!strncmp(h, "W/", 2)) /* If-None-Match compares weakly */
            h += 2;
        size_t n = strcspn(h, ", \t");
        if (n == el && !strncmp(h, etag, el))
            return true;
        h += n;
    }
    return false;
}

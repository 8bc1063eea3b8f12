/*
 * svgplot.h — small line/scatter plots rendered as standalone SVG text
 * (pure: no I/O). Used for the tuner's plots, which go into the Markdown
 * retuning log as files and to the dashboard through GET
 * /roles/NAME/tune?plot=..., so both show the same picture.
 *
 * A plot has a title, an x axis (linear, or in powers of two for context
 * sizes), a left y axis and optionally a right one (series choose theirs),
 * and a legend. Y axes start at zero (the figures are rates). Points whose
 * x or y is not finite are skipped; a plot with no point shows its `empty`
 * note instead of a frame. Every text is XML-escaped; the output has no
 * script, no external reference and a fixed viewBox.
 */
#ifndef VARIET_SVGPLOT_H
#define VARIET_SVGPLOT_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

typedef enum { SVGPLOT_DOT = 0, SVGPLOT_CROSS, SVGPLOT_SQUARE } svgplot_marker_t;

typedef struct {
    const char *name;        /* legend text */
    const double *x, *y;     /* n points (borrowed) */
    size_t n;
    const char *color;       /* CSS color, e.g. "#1f77b4" (only [#0-9a-zA-Z] kept) */
    bool line;               /* join consecutive points */
    svgplot_marker_t marker; /* drawn at every point */
    int axis;                /* 0: left y axis, 1: right */
} svgplot_series_t;

typedef struct {
    const char *title;
    const char *xlabel, *ylabel, *y2label; /* y2label: the right axis (NULL: none) */
    int width, height;                     /* pixels; 0: 720 x 360 */
    bool xlog2;                            /* x axis in powers of two; values <= 0 skipped */
    bool xint;                             /* integer x ticks only (trial numbers) */
    const svgplot_series_t *series;
    size_t n_series;
    const char *empty; /* note shown when no series has a point (NULL: "no data") */
} svgplot_t;

/* The SVG document of p (NUL-terminated, caller frees; never NULL). */
char *svgplot_render(const svgplot_t *p);

/* Append s to out with & < > " ' escaped and control bytes dropped. */
void svgplot_escape(buf_t *out, const char *s);

/* Tick positions for [lo, hi]: a "nice" step (1, 2 or 5 × 10^k) giving
 * about `want` ticks; writes at most cap values, returns how many. */
int svgplot_ticks(double lo, double hi, int want, double *out, int cap);

#endif

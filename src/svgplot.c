/*
 * svgplot.c — line/scatter plots as SVG text (see svgplot.h).
 *
 * Layout, in pixels of the viewBox: title on top, the legend in a row
 * under it, the frame below with tick labels outside it (left axis at the
 * left, the right axis at the right when a series uses it) and the x label
 * under the frame. Ticks are "nice" numbers (1, 2, 5 × 10^k); an x axis in
 * powers of two puts a tick on every power in range. Coordinates are
 * written with one decimal, so the same data gives the same bytes.
 */
#include "svgplot.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"};

void svgplot_escape(buf_t *out, const char *s)
{
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '&': buf_append(out, "&amp;", 5); break;
        case '<': buf_append(out, "&lt;", 4); break;
        case '>': buf_append(out, "&gt;", 4); break;
        case '"': buf_append(out, "&quot;", 6); break;
        case '\'': buf_append(out, "&#39;", 5); break;
        default:
            /* XML 1.0 allows tab, LF and CR among the control bytes; a
             * label has no use for them either */
            if (c >= 0x20 && c != 0x7f)
                buf_append(out, s, 1);
        }
    }
}

int svgplot_ticks(double lo, double hi, int want, double *out, int cap)
{
    if (!isfinite(lo) || !isfinite(hi) || hi <= lo || want < 1 || cap < 1)
        return 0;
    double raw = (hi - lo) / want, mag = pow(10, floor(log10(raw))), step = mag;
    if (raw / mag > 5)
        step = 10 * mag;
    else if (raw / mag > 2)
        step = 5 * mag;
    else if (raw / mag > 1)
        step = 2 * mag;
    int n = 0;
    for (double t = ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9 && n < cap; t += step)
        out[n++] = fabs(t) < step * 1e-9 ? 0 : t;
    return n;
}

/* A tick label: powers of two as 32K / 1M, other numbers with the step's
 * decimals. */
static void tick_label(char *b, size_t cap, double v, double step, bool pow2)
{
    if (pow2 && v >= 1048576 && fmod(v, 1048576) == 0)
        snprintf(b, cap, "%.0fM", v / 1048576);
    else if (pow2 && v >= 1024 && fmod(v, 1024) == 0)
        snprintf(b, cap, "%.0fK", v / 1024);
    else {
        int dec = step > 0 && step < 1 ? (int)ceil(-log10(step) - 1e-9) : 0;
        snprintf(b, cap, "%.*f", dec > 6 ? 6 : dec, v);
    }
}

static void color_of(char *b, size_t cap, const char *c, size_t i)
{
    size_t n = 0;
    for (; c && *c && n + 1 < cap; c++)
        if (*c == '#' || (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z'))
            b[n++] = *c;
    b[n] = 0;
    if (!n)
        snprintf(b, cap, "%s", palette[i % (sizeof palette / sizeof palette[0])]);
}

typedef struct {
    double x0, x1;        /* data range on x (log2 of it for xlog2) */
    double ymax[2];       /* top of each y axis */
    double l, r, t, b;    /* the frame, pixels */
    bool xlog2;
} frame_t;

static bool point_ok(const svgplot_t *p, double x, double y)
{
    return isfinite(x) && isfinite(y) && (!p->xlog2 || x > 0);
}

static double px(const frame_t *f, double x)
{
    double v = f->xlog2 ? log2(x) : x;
    return f->l + (v - f->x0) / (f->x1 - f->x0) * (f->r - f->l);
}

static double py(const frame_t *f, int axis, double y)
{
    double v = y < 0 ? 0 : y;
    return f->b - v / f->ymax[axis] * (f->b - f->t);
}

static void marker(buf_t *o, svgplot_marker_t m, double x, double y, const char *col)
{
    switch (m) {
    case SVGPLOT_CROSS:
        buf_printf(o, "<path d=\"M%.1f %.1fL%.1f %.1fM%.1f %.1fL%.1f %.1f\" stroke=\"%s\" stroke-width=\"1.5\"/>",
                   x - 3.5, y - 3.5, x + 3.5, y + 3.5, x - 3.5, y + 3.5, x + 3.5, y - 3.5, col);
        break;
    case SVGPLOT_SQUARE:
        buf_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"6\" height=\"6\" fill=\"%s\"/>", x - 3, y - 3, col);
        break;
    default:
        buf_printf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", x, y, col);
    }
}

/* The y ticks of an axis up to its data maximum; sets the axis top to the
 * first tick at or above it. Returns the tick count. */
static int y_axis(double max, double *ticks, int cap, double *top)
{
    if (!(max > 0))
        max = 1;
    int n = svgplot_ticks(0, max, 5, ticks, cap - 1);
    if (n < 1) {
        ticks[0] = 0;
        n = 1;
    }
    double step = n > 1 ? ticks[1] - ticks[0] : max;
    if (ticks[n - 1] < max * (1 - 1e-9)) {
        ticks[n] = ticks[n - 1] + step;
        n++;
    }
    *top = ticks[n - 1] > 0 ? ticks[n - 1] : 1;
    return n;
}

char *svgplot_render(const svgplot_t *p)
{
    int W = p->width > 0 ? p->width : 720, H = p->height > 0 ? p->height : 360;
    bool y2 = p->y2label != NULL;
    for (size_t s = 0; s < p->n_series; s++)
        y2 |= p->series[s].axis == 1;
    frame_t f = {.l = 64, .r = W - (y2 ? 64 : 24), .t = 62, .b = H - 48, .xlog2 = p->xlog2};
    double xmin = INFINITY, xmax = -INFINITY, ymax[2] = {0, 0};
    size_t points = 0;
    for (size_t s = 0; s < p->n_series; s++) {
        const svgplot_series_t *S = &p->series[s];
        int ax = S->axis == 1;
        for (size_t i = 0; i < S->n; i++) {
            if (!point_ok(p, S->x[i], S->y[i]))
                continue;
            double x = p->xlog2 ? log2(S->x[i]) : S->x[i];
            xmin = fmin(xmin, x);
            xmax = fmax(xmax, x);
            ymax[ax] = fmax(ymax[ax], S->y[i]);
            points++;
        }
    }
    buf_t o;
    buf_init(&o, 0);
    buf_printf(&o,
               "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" "
               "font-family=\"sans-serif\" font-size=\"12\" role=\"img\">\n",
               W, H, W, H);
    buf_printf(&o, "<title>");
    svgplot_escape(&o, p->title);
    buf_printf(&o, "</title>\n<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", W, H);
    buf_printf(&o, "<text x=\"%d\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">", W / 2);
    svgplot_escape(&o, p->title);
    buf_printf(&o, "</text>\n");
    if (!points) {
        buf_printf(&o, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"#666666\">", W / 2, H / 2);
        svgplot_escape(&o, p->empty ? p->empty : "no data");
        buf_printf(&o, "</text>\n</svg>\n");
        return o.data;
    }
    /* x range */
    if (p->xlog2) {
        f.x0 = floor(xmin) - 0.5;
        f.x1 = ceil(xmax) + 0.5;
    } else if (xmax > xmin) {
        double pad = (xmax - xmin) * 0.04;
        f.x0 = xmin - (p->xint ? fmax(pad, 0.5) : pad);
        f.x1 = xmax + (p->xint ? fmax(pad, 0.5) : pad);
    } else {
        f.x0 = xmin - 1;
        f.x1 = xmax + 1;
    }
    double yt[2][16];
    int nyt[2];
    for (int a = 0; a < 2; a++)
        nyt[a] = y_axis(ymax[a], yt[a], 16, &f.ymax[a]);

    /* grid and y tick labels (left axis; the right one only labels) */
    char lab[48];
    double ystep = nyt[0] > 1 ? yt[0][1] - yt[0][0] : 1;
    for (int k = 0; k < nyt[0]; k++) {
        double y = py(&f, 0, yt[0][k]);
        buf_printf(&o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>", f.l, y, f.r, y);
        tick_label(lab, sizeof lab, yt[0][k], ystep, false);
        buf_printf(&o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", f.l - 6, y + 4, lab);
    }
    if (y2) {
        double s2 = nyt[1] > 1 ? yt[1][1] - yt[1][0] : 1;
        for (int k = 0; k < nyt[1]; k++) {
            double y = py(&f, 1, yt[1][k]);
            tick_label(lab, sizeof lab, yt[1][k], s2, false);
            buf_printf(&o,
                       "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333333\"/>"
                       "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"start\">%s</text>\n",
                       f.r, y, f.r + 4, y, f.r + 6, y + 4, lab);
        }
    }
    /* x ticks */
    double xt[64];
    int nxt = 0;
    if (p->xlog2) {
        for (double e = ceil(f.x0); e <= f.x1 && nxt < 64; e++)
            xt[nxt++] = pow(2, e);
    } else {
        nxt = svgplot_ticks(f.x0, f.x1, 8, xt, 64);
        if (p->xint) { /* whole numbers only, at least a step of one */
            int m = 0;
            for (int k = 0; k < nxt; k++)
                if (xt[k] == floor(xt[k]) && (nxt < 2 || xt[1] - xt[0] >= 1))
                    xt[m++] = xt[k];
            nxt = m;
        }
    }
    double xstep = nxt > 1 && !p->xlog2 ? xt[1] - xt[0] : 1;
    for (int k = 0; k < nxt; k++) {
        double x = px(&f, xt[k]);
        tick_label(lab, sizeof lab, xt[k], xstep, p->xlog2);
        buf_printf(&o,
                   "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333333\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                   x, f.b, x, f.b + 4, x, f.b + 17, lab);
    }
    buf_printf(&o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333333\"/>\n",
               f.l, f.t, f.r - f.l, f.b - f.t);
    /* axis labels */
    buf_printf(&o, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", (f.l + f.r) / 2, H - 10);
    svgplot_escape(&o, p->xlabel);
    buf_printf(&o, "</text>\n<text transform=\"translate(16 %.1f) rotate(-90)\" text-anchor=\"middle\">",
               (f.t + f.b) / 2);
    svgplot_escape(&o, p->ylabel);
    buf_printf(&o, "</text>\n");
    if (y2) {
        buf_printf(&o, "<text transform=\"translate(%d %.1f) rotate(90)\" text-anchor=\"middle\">", W - 12,
                   (f.t + f.b) / 2);
        svgplot_escape(&o, p->y2label);
        buf_printf(&o, "</text>\n");
    }
    /* series, and their legend entries in a row under the title */
    double lx = f.l;
    for (size_t s = 0; s < p->n_series; s++) {
        const svgplot_series_t *S = &p->series[s];
        int ax = S->axis == 1;
        char col[32];
        color_of(col, sizeof col, S->color, s);
        buf_printf(&o, "<g class=\"series\" data-series=\"%zu\">", s);
        if (S->line) {
            bool pen = false;
            buf_printf(&o, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" d=\"", col);
            for (size_t i = 0; i < S->n; i++) {
                if (!point_ok(p, S->x[i], S->y[i]))
                    continue;
                buf_printf(&o, "%s%.1f %.1f", pen ? "L" : "M", px(&f, S->x[i]), py(&f, ax, S->y[i]));
                pen = true;
            }
            buf_printf(&o, "\"/>");
        }
        for (size_t i = 0; i < S->n; i++)
            if (point_ok(p, S->x[i], S->y[i]))
                marker(&o, S->marker, px(&f, S->x[i]), py(&f, ax, S->y[i]), col);
        buf_printf(&o, "</g>\n");
        if (S->name && *S->name) {
            marker(&o, S->marker, lx + 4, 42, col);
            buf_printf(&o, "<text x=\"%.1f\" y=\"46\">", lx + 12);
            svgplot_escape(&o, S->name);
            if (y2)
                buf_printf(&o, " (%s)", ax ? "right" : "left");
            buf_printf(&o, "</text>\n");
            /* an estimate of the text's width: 7 px per character */
            lx += 12 + 7.0 * (double)(strlen(S->name) + (y2 ? 8 : 0)) + 18;
        }
    }
    buf_printf(&o, "</svg>\n");
    return o.data;
}

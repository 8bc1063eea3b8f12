/*
 * tune_plot.h — the tuner's plots from a tuning history (tune-ROLE.json,
 * as tune_run writes it), as SVG documents (svgplot.h). Pure. The retuning
 * log (tune_report_write) stores them beside the Markdown; the dashboard
 * asks the gateway for the same ones (GET /roles/NAME/tune?plot=...).
 */
#ifndef VARIET_TUNE_PLOT_H
#define VARIET_TUNE_PLOT_H

#include <jansson.h>

/* t/s per trial, in load order: generation (left axis), long-prompt
 * prefill (right axis), and a cross on the floor for each load that did
 * not run (oom, infeasible, failed, tight). Caller frees; never NULL (a
 * history without trials gives a plot saying so). */
char *tune_plot_trials(const json_t *history);

/* The context frontier: for each context a trial ran at (its load report's
 * n_ctx, else its -c), the best generation t/s and the best long-prompt
 * prefill t/s of the trials that ran ("ok"), x in powers of two. Caller
 * frees; never NULL. */
char *tune_plot_frontier(const json_t *history);

/* The context a history record ran at (load.n_ctx, else its -c / --ctx-size
 * argument), 0 when unknown. */
double tune_plot_trial_ctx(const json_t *rec);

#endif

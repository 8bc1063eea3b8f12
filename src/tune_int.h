/*
 * tune_int.h — private to the tuner's files (tune_space.c, tune_search.c,
 * tune_report.c, tune_trial.c, tune_sim.c). Not for commands.
 */
#ifndef VARIET_TUNE_INT_H
#define VARIET_TUNE_INT_H

#include "tune.h"

/* A copy of a NULL-terminated argument vector (args_free frees it). */
char **tune__copy_args(char *const *a, size_t n);

/* argv with opt set (value NULL removes it); frees the old vector. */
char **tune__set(char **argv, size_t *n, int opt, const char *value);

/* The planner's options for args with the role's companions attached
 * (roleplan_opts when s->rp is set). 0 or -EINVAL with err. */
int tune__opts(const tune_setup_t *s, char *const *args, size_t n, plan_opts_t *po, char *err, size_t errlen);

/* The smallest -ncmoe with which args fit on the GPUs by the planner
 * (no margin), or -1 when none does. */
int64_t tune__min_ncmoe(const tune_setup_t *s, char *const *args, size_t n);

/* Whether args map the model file (llama-server's default load: no
 * --no-mmap, no load mode that reads it in). */
bool tune__maps_weights(char *const *a, size_t n);

/* The per-slot context of args (for sizing the long prompt); 0 unknown. */
uint64_t tune__slot_ctx(const tune_setup_t *s, char *const *args, size_t n);

/* A history record read back into a measurement (resume, replay). */
void tune__meas_from_record(const json_t *rec, tune_meas_t *m);

/* Statistics over doubles (pure): median of n values (n >= 1). */
double tune__median(double *v, int n);

#endif

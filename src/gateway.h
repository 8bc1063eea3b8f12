/*
 * gateway.h — `variet serve`: the OpenAI-compatible HTTP gateway that routes
 * each request by its "model" (role name or alias) to that role's
 * llama-server, starting it on demand and stopping least-recently-used idle
 * roles when the memory budget / max-loaded limit says they cannot coexist.
 *
 * One libevent loop runs everything: the HTTP server, upstream proxy
 * connections (streamed chunk by chunk), backend supervision, timers.
 */
#ifndef VARIET_GATEWAY_H
#define VARIET_GATEWAY_H

#include "registry.h"

struct event_base;
typedef struct gateway gateway_t;

/* Build a gateway for `reg` (ownership moves to the gateway) and bind its
 * listening socket. `llama_server` is the executable to run. 0 or -errno
 * with a message in err: -EINVAL when the configuration itself is unusable
 * (a role's model missing, unreadable or malformed; an unknown host),
 * others when the machine refuses (address in use, ...). */
int gateway_new(struct event_base *base, registry_t *reg, const char *llama_server, gateway_t **out,
                char *err, size_t errlen);
/* Port actually bound (useful with port 0). */
int gateway_port(const gateway_t *g);
/* Replace the registry (SIGHUP). Roles that vanished or changed are stopped
 * once idle; new ones are added. Ownership of `reg` moves on success. */
int gateway_reload(gateway_t *g, registry_t *reg, char *err, size_t errlen);
/* Begin an orderly stop (SIGINT, SIGTERM): requests waiting for a role and
 * those that arrive get 503; every role that keeps context saves its slots
 * (all within _engine.kv_save_timeout; a save that fails or times out is
 * logged and counted). done(arg) is called from the loop once no save is
 * in flight, at once when none was needed; then gateway_free. Requests in
 * flight go on until then. A second call does nothing. */
void gateway_shutdown(gateway_t *g, void (*done)(void *arg), void *arg);
/* Stop every backend (synchronously) and free. */
void gateway_free(gateway_t **g);

#endif

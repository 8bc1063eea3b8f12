/*
 * gw_status.c — what the gateway shows of its roles (see gw_int.h):
 * GET /v1/models (OpenAI's list: id, state, context length, aliases) and
 * GET /status (each role in full: scheduling fields, backend, memory
 * planned and measured per device, the last load report, context kept
 * across swaps, counters; the saved-slot store).
 */
#include <stdlib.h>
#include <unistd.h>

#include "gw_int.h"
#include "loadlog.h"
#include "util.h"

/* {"CPU": bytes, "CUDA0": bytes, ...} */
static json_t *dev_json(const gateway_t *g, const uint64_t *v)
{
    json_t *o = json_object();
    json_object_set_new(o, "CPU", json_integer((json_int_t)v[0]));
    for (int k = 0; k < g->n_gpu; k++)
        json_object_set_new(o, g->gpus[k].name, json_integer((json_int_t)v[k + 1]));
    return o;
}

static json_t *role_json(gw_role_t *r, bool full)
{
    const reg_role_t *d = r->def;
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(r->name));
    json_object_set_new(o, "object", json_string("model"));
    json_object_set_new(o, "owned_by", json_string("variet"));
    json_object_set_new(o, "created", json_integer((json_int_t)r->g->started_wall));
    json_object_set_new(o, "display_name", json_string(d->display_name));
    json_object_set_new(o, "state", json_string(gw__role_state(r)));
    json_object_set_new(o, "measured_tps", json_real(d->measured_tps));
    json_object_set_new(o, "context_length", json_integer(r->ctx_len));
    json_t *al = json_array();
    for (size_t i = 0; i < d->n_aliases; i++)
        json_array_append_new(al, json_string(d->aliases[i]));
    json_object_set_new(o, "aliases", al);
    if (!full)
        return o;
    json_object_set_new(o, "model_path", json_string(d->model_path));
    json_object_set_new(o, "priority", json_integer(d->priority));
    json_object_set_new(o, "pin", json_boolean(d->pin));
    json_object_set_new(o, "min_resident_s", json_real(d->min_resident_s));
    json_object_set_new(o, "max_concurrent", json_integer(gw__role_limit(r)));
    json_object_set_new(o, "queue_size", json_integer(gw__role_queue_size(r)));
    json_object_set_new(o, "pid", json_integer(backend_pid(r->be)));
    json_object_set_new(o, "port", json_integer(backend_state(r->be) == BE_STOPPED ? 0 : backend_port(r->be)));
    double ra = backend_ready_at(r->be);
    json_object_set_new(o, "uptime_s", json_real(backend_state(r->be) == BE_READY && ra > 0 ? now_s() - ra : 0));
    json_object_set_new(o, "inflight", json_integer(r->inflight));
    json_object_set_new(o, "queued", json_integer(r->n_queued));
    /* the backend running, or the one that would start next */
    gw__role_mem_refresh(r);
    bool v = backend_state(r->be) == BE_STOPPED ? gw__role_vision_next(r) : r->vision;
    const gw_mem_t *mem = &r->mem_by[v];
    json_object_set_new(o, "memory_estimate_bytes", json_integer((json_int_t)r->mem_total));
    json_object_set_new(o, "memory_plan_bytes", dev_json(r->g, mem->plan));
    json_object_set_new(o, "memory_measured_bytes", mem->measured ? dev_json(r->g, mem->meas) : json_null());
    if (r->has_mmproj) {
        bool od = d->mmproj_mode == REG_MMPROJ_ON_DEMAND;
        json_t *mp = json_pack("{s:s,s:b,s:s,s:I}", "mode", od ? "on_demand" : "always", "loaded",
                               backend_state(r->be) != BE_STOPPED && r->vision, "backend",
                               backend_state(r->be) == BE_STOPPED ? "none" : r->vision ? "projector" : "text",
                               "switches", (json_int_t)r->switches);
        if (od) {
            /* what each backend takes: the projector's share is what a text backend frees */
            for (int k = 0; k < 2; k++) {
                const gw_mem_t *m = &r->mem_by[k];
                json_object_set_new(mp, k ? "projector_backend" : "text_backend",
                                    json_pack("{s:o,s:o}", "plan_bytes", dev_json(r->g, m->plan), "measured_bytes",
                                              m->measured ? dev_json(r->g, m->meas) : json_null()));
            }
        }
        json_object_set_new(o, "mmproj", mp);
    }
    json_object_set_new(o, "loads", json_integer((json_int_t)r->m.loads));
    json_object_set_new(o, "images", json_pack("{s:I,s:I}", "requests", (json_int_t)r->m.image_requests, "images",
                                               (json_int_t)r->m.images));
    const loadlog_t *lr = backend_report(r->be);
    if (r->m.loads || lr->n_dev || lr->error[0]) {
        json_t *l = json_object();
        json_object_set_new(l, "seconds", json_real(r->m.last_load_s));
        json_object_set_new(l, "n_ctx", json_integer(lr->n_ctx));
        json_object_set_new(l, "n_batch", json_integer(lr->n_batch));
        json_object_set_new(l, "n_ubatch", json_integer(lr->n_ubatch));
        json_object_set_new(l, "flash_attn", json_string(lr->flash_attn));
        if (lr->pipeline_parallel >= 0)
            json_object_set_new(l, "pipeline_parallel", json_boolean(lr->pipeline_parallel));
        json_object_set_new(l, "mmproj", lr->mmproj[0] ? json_string(lr->mmproj) : json_null());
        json_object_set_new(l, "mmproj_device", lr->mmproj_device[0] ? json_string(lr->mmproj_device) : json_null());
        json_t *devs = json_array();
        for (int i = 0; i < lr->n_dev; i++) {
            const loadlog_dev_t *dv = &lr->dev[i];
            json_array_append_new(devs, json_pack("{s:s,s:f,s:f,s:f,s:f,s:f,s:f}", "device", dv->name, "model_mib",
                                                  dv->model_mib, "kv_mib", dv->kv_mib, "rs_mib", dv->rs_mib,
                                                  "compute_mib", dv->compute_mib, "output_mib", dv->output_mib,
                                                  "mmproj_mib", dv->mmproj_mib));
        }
        json_object_set_new(l, "devices", devs);
        if (lr->oom)
            json_object_set_new(l, "oom", json_pack("{s:s,s:f}", "device", lr->oom_device, "mib", lr->oom_mib));
        json_object_set_new(o, "last_load", l);
    }
    json_t *kv = json_object();
    json_object_set_new(kv, "kept", json_boolean(gw__kv_active(r)));
    if (!r->kv.on)
        json_object_set_new(kv, "reason", json_string(r->kv.off));
    else if (!gw__kv_active(r))
        json_object_set_new(kv, "reason", json_string("not kept while the projector is loaded (llama-server "
                                                      "refuses slot save/restore then); kept again once a text "
                                                      "backend runs (mmproj_mode on_demand)"));
    else
        json_object_set_new(kv, "dir", json_string(r->kv.dir));
    /* what each slot holds now: a conversation of so many tokens, or nothing known */
    json_t *slots = json_array();
    for (int i = 0; i < r->kv.n_slots; i++) {
        const gw_kv_slot_t *sl = &r->kv.slots[i];
        json_array_append_new(slots, json_pack("{s:i,s:b,s:I,s:s?}", "id", i, "busy", sl->busy, "tokens",
                                               (json_int_t)(sl->body ? sl->tokens : 0), "restored",
                                               sl->restored[0] ? sl->restored : NULL));
    }
    json_object_set_new(kv, "slots", slots);
    json_object_set_new(kv, "saves", json_integer((json_int_t)r->m.kv_saves));
    json_object_set_new(kv, "save_failures", json_integer((json_int_t)r->m.kv_save_failures));
    json_object_set_new(kv, "restores_verified", json_integer((json_int_t)r->m.kv_restores));
    json_object_set_new(kv, "restore_failures", json_integer((json_int_t)r->m.kv_restore_failures));
    json_object_set_new(kv, "last_saved_tokens", json_integer((json_int_t)r->kv.saved_tokens));
    json_object_set_new(kv, "last_restore_tokens", json_integer((json_int_t)r->kv.last_restore_tokens));
    json_object_set_new(kv, "last_restore_cache_n", json_integer((json_int_t)r->kv.last_cache_n));
    json_object_set_new(kv, "last_error", r->kv.error[0] ? json_string(r->kv.error) : json_null());
    json_object_set_new(o, "kv", kv);
    const char *e = r->failed ? r->fail_reason : backend_error(r->be);
    char *ec = e && *e ? gw__utf8_clean(xstrdup(e)) : NULL;
    json_object_set_new(o, "last_error", ec ? json_string(ec) : json_null());
    free(ec);
    return o;
}

void gw__models_reply(gateway_t *g, httpd_req_t *req)
{
    json_t *data = json_array();
    for (size_t i = 0; i < g->n_roles; i++)
        if (!g->roles[i]->retired)
            json_array_append_new(data, role_json(g->roles[i], false));
    gw__send_json(req, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
}

void gw__status_reply(gateway_t *g, httpd_req_t *req)
{
    json_t *roles = json_object();
    for (size_t i = 0; i < g->n_roles; i++)
        if (!g->roles[i]->retired)
            json_object_set_new(roles, g->roles[i]->name, role_json(g->roles[i], true));
    json_t *o = json_pack("{s:i,s:f,s:s,s:i,s:o}", "pid", (int)getpid(), "uptime_s", now_s() - g->started,
                          "config", g->reg->path ? g->reg->path : "", "port", g->port, "roles", roles);
    json_object_set_new(o, "llama_server", json_string(g->exe));
    json_object_set_new(o, "kv_store", json_pack("{s:I,s:I,s:I}", "bytes", (json_int_t)g->kv_bytes, "max",
                                                 (json_int_t)g->reg->engine.kv_store_max, "evicted",
                                                 (json_int_t)g->m.kv_evicted));
    gw__send_json(req, 200, o);
}

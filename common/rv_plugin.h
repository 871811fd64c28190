/* rv_plugin: the ABI of sources, operators and sinks, and the runtime
 * context they call back into.
 *
 * Each plugin is one `const rv_plugin` (named in the registry) holding its name, kind, ABI
 * version, a config table (see rv_config.h) describing its YAML keys and
 * config struct, the size of its private state (allocated zeroed by the
 * runtime, one per parallel instance) and callbacks. Plugins are listed in
 * one hand-written registry (taskmanager/rv_registry.c).
 *
 * Keys common to every node (id, type, input/inputs, parallelism, key_by,
 * and for sources schema, event_time, on_error) are handled by the job
 * spec, not by the plugin's table.
 *
 * Threads: plan() runs wherever a job is validated (any thread, possibly
 * many times). All other callbacks of one instance run on that instance's
 * subtask thread, one at a time, so plugin code takes no locks. */
#ifndef RV_PLUGIN_H
#define RV_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rv_batch.h"
#include "rv_config.h"
#include "rv_err.h"
#include "rv_yaml.h"

#define RV_PLUGIN_ABI 1

/* Watermark meaning "end of time": every event-time window fires. */
#define RV_WATERMARK_MAX INT64_MAX
#define RV_WATERMARK_MIN INT64_MIN

typedef enum { RV_PLUGIN_SOURCE, RV_PLUGIN_OPERATOR, RV_PLUGIN_SINK } rv_plugin_kind;

#define RV_PLUGIN_KEYED 1u       /* requires key_by; a hash exchange precedes it */
#define RV_PLUGIN_MULTI_INPUT 2u /* accepts `inputs: [...]` (several inputs) */
#define RV_PLUGIN_STATEFUL 4u    /* gets keyed state: rv_ctx_state(); key_by optional */

/* Result of a source's poll(). */
typedef enum {
    RV_SRC_MORE = 0, /* emitted something, or may have more right away */
    RV_SRC_IDLE,     /* nothing available now (the runtime waits briefly) */
    RV_SRC_END,      /* bounded input exhausted */
    RV_SRC_FAILED,   /* rv_ctx_fail() was called */
} rv_src_status;

/* Planning: what plan() is given and what it must fill in. */
typedef struct rv_plan {
    /* in */
    const char *id;
    const void *config;     /* the config struct parsed from the table */
    const rv_ynode *node;   /* the node's YAML map (for positioned errors) */
    int ninputs;            /* 0 for sources */
    rv_schema *const *inputs;
    const char *const *input_ids;
    rv_schema *declared;    /* sources: the `schema` key, else NULL */
    const rv_schema *keys;  /* keyed operators: one field per key_by entry */
    /* Name of the event-time field carried by the input (the upstream
     * sources' event_time.field, if every input still has it as a
     * timestamp), else NULL. */
    const char *event_time_field;
    /* out */
    rv_schema *output;      /* set by plan() (sources and operators); reference moved */
    int max_parallelism;    /* 0: any; 1: this node must run with parallelism 1 */
    /* Operators: schema of the `<id>.late` side output (rows too late for
     * their window), or NULL when the operator has none (reference moved). */
    rv_schema *late_output;
} rv_plan;

typedef struct rv_op_ctx rv_op_ctx; /* owned by the runtime */
typedef struct rv_buf rv_buf;       /* rv_record.h */

/* The non-keyed state one instance of a node wrote into a checkpoint
 * (rv_plugin.snapshot), handed to restore(). */
typedef struct rv_op_state {
    int subtask;     /* the instance that wrote it */
    int parallelism; /* the node's parallelism when it was written */
    const void *data;
    size_t len;
} rv_op_state;
typedef struct rv_state rv_state;   /* taskmanager/state/rv_state.h */

typedef struct rv_plugin {
    const char *name; /* the `type:` in YAML */
    int abi;          /* RV_PLUGIN_ABI */
    rv_plugin_kind kind;
    unsigned flags;   /* RV_PLUGIN_* */
    const char *doc;  /* one paragraph for docs/jobspec.md */
    const rv_cfg_key *config;
    size_t nconfig;
    size_t config_size;
    size_t state_size;
    /* Optional: more reference text for docs/jobspec.md after the config
     * table (e.g. the keys of nested maps). */
    void (*doc_more)(FILE *out);

    /* Checks the config against the inputs and sets the output schema.
     * Errors should be positioned (rv_yerr). Required for sources and
     * operators; optional for sinks. */
    rv_err *(*plan)(rv_plan *p);
    /* Prepares an instance. state is zeroed memory of state_size. */
    rv_err *(*open)(void *state, rv_op_ctx *ctx);
    /* Operators and sinks: one input batch (borrowed; do not keep or change
     * it). `input` is the index in the node's inputs. */
    rv_code (*process)(void *state, rv_op_ctx *ctx, int input, const rv_batch *in);
    /* Sources: produce up to about one batch with rv_ctx_emit() and return
     * promptly (within ~20 ms when nothing is available). */
    rv_src_status (*poll)(void *state, rv_op_ctx *ctx);
    /* Event time advanced to wm (already the minimum over inputs). The
     * runtime forwards the watermark downstream after this returns. */
    rv_code (*on_watermark)(void *state, rv_op_ctx *ctx, int64_t wm);
    /* A processing-time timer set with rv_ctx_timer_at() fired. */
    rv_code (*on_timer)(void *state, rv_op_ctx *ctx, int64_t when_ms);
    /* All input has ended (after the final watermark): emit what is left;
     * sinks flush and finalise their output. */
    rv_code (*finish)(void *state, rv_op_ctx *ctx);
    /* Releases the instance's resources. Called once after open()
     * succeeded, also after failure or cancel. Must not emit. */
    void (*close)(void *state, rv_op_ctx *ctx);

    /* ---- Checkpoints (all optional; DESIGN.md §9) ----
     * Keyed state (RV_PLUGIN_STATEFUL) is checkpointed and restored by the
     * runtime; these hooks carry the rest: a source's position, a sink's
     * pre-committed output. */
    /* At checkpoint `id`'s barrier (sources: between two polls): append the
     * instance's non-keyed state to out, in a format of the plugin's own
     * that restore() reads back. Keep it small and fast: it runs on the
     * processing path. Two-phase-commit sinks pre-commit here: make what
     * they wrote so far durable but not yet visible, and list it. */
    rv_err *(*snapshot)(void *state, rv_op_ctx *ctx, uint64_t id, rv_buf *out);
    /* After open(), when the job resumes from a checkpoint or savepoint:
     * the states that instances of this node wrote into it (n may be 0; with
     * a changed parallelism each instance gets every old instance's state
     * and picks what is now its own). Sources rewind here; sinks commit what
     * the checkpoint pre-committed and discard what came after it. */
    rv_err *(*restore)(void *state, rv_op_ctx *ctx, const rv_op_state *states, int n);
    /* Checkpoint `id` (and so every earlier one) is complete: two-phase
     * sinks make what they pre-committed up to `id` visible. */
    rv_err *(*checkpoint_complete)(void *state, rv_op_ctx *ctx, uint64_t id);
} rv_plugin;

/* Registry (taskmanager/rv_registry.c). A source and a sink may share a
 * name (`file`), so lookups give the kind. */
const rv_plugin *rv_plugin_find(const char *name, rv_plugin_kind kind);
/* "source", "operator" or "sink". */
const char *rv_plugin_kind_name(rv_plugin_kind kind);
/* All plugins, NULL-terminated. */
const rv_plugin *const *rv_plugin_all(void);

/* ---- Runtime context, callable from an instance's own thread only ---- */

const void *rv_ctx_config(const rv_op_ctx *ctx);
const char *rv_ctx_id(const rv_op_ctx *ctx);  /* node id from the YAML */
const char *rv_ctx_tag(const rv_op_ctx *ctx); /* log tag "tm-0 window#2" */
int rv_ctx_subtask(const rv_op_ctx *ctx);     /* 0-based instance index */
int rv_ctx_parallelism(const rv_op_ctx *ctx);
int rv_ctx_max_parallelism(const rv_op_ctx *ctx); /* number of key groups */
int rv_ctx_ninputs(const rv_op_ctx *ctx);
rv_schema *rv_ctx_input_schema(const rv_op_ctx *ctx, int input);
rv_schema *rv_ctx_output_schema(const rv_op_ctx *ctx);
/* Keyed operators: key_by entries (expression source over the input
 * schema and output name) and their types as a schema. */
int rv_ctx_nkeys(const rv_op_ctx *ctx);
const char *rv_ctx_key_expr(const rv_op_ctx *ctx, int i);
const rv_schema *rv_ctx_key_schema(const rv_op_ctx *ctx);
/* The input's event-time field name (as rv_plan.event_time_field) or NULL. */
const char *rv_ctx_event_time_field(const rv_op_ctx *ctx);

/* Passes b downstream. Always takes ownership of one reference of b (an
 * operator may pass on its input unchanged with rv_ctx_emit(ctx,
 * rv_batch_ref((rv_batch *)in)): batches are read-only once emitted).
 * Returns RV_ERR_CANCELED when the job is being canceled. b must have the
 * output schema. Empty batches are dropped. */
rv_code rv_ctx_emit(rv_op_ctx *ctx, rv_batch *b);
/* Operators with a late output: sends b (the late_output schema) to the
 * `<id>.late` port (dropped when nothing reads it). Ownership as emit. */
rv_code rv_ctx_emit_late(rv_op_ctx *ctx, rv_batch *b);
/* RV_PLUGIN_STATEFUL operators: the instance's keyed state (rv_state.h),
 * opened by the runtime before open() with the job's `state` settings in
 * the task manager's state directory. The runtime calls
 * rv_state_maintain() after every callback of the operator, so state
 * pointers must not be kept across callbacks; a callback that touches much
 * state (firing many windows) calls rv_state_maintain() itself where it
 * holds no state pointers. */
rv_state *rv_ctx_state(rv_op_ctx *ctx);
/* Wall-clock milliseconds (processing time). */
int64_t rv_ctx_now_ms(const rv_op_ctx *ctx);
/* Current event-time watermark of this instance's input. */
int64_t rv_ctx_watermark(const rv_op_ctx *ctx);
/* Calls on_timer at or after processing time when_ms (one timer per
 * distinct time; setting an existing time again is a no-op). */
void rv_ctx_timer_at(rv_op_ctx *ctx, int64_t when_ms);
/* Fails the job with err (ownership taken; the first error wins). The
 * callback that called it should then return an error code. */
void rv_ctx_fail(rv_op_ctx *ctx, rv_err *err);
bool rv_ctx_canceled(const rv_op_ctx *ctx);
/* Whether the job takes checkpoints (`checkpointing:` is set). Two-phase
 * sinks publish only on checkpoint_complete() when it does, and at
 * finish() when it does not. */
bool rv_ctx_checkpointing(const rv_op_ctx *ctx);
/* Sources: a record that does not parse. Applies the node's on_error:
 * fail (calls rv_ctx_fail with reason and where, returns RV_ERR_INVALID),
 * skip (counts it, returns RV_OK) or dead_letter (counts it, sends raw
 * text and reason to the `<id>.dead_letter` output, returns RV_OK).
 * `where` names the place, e.g. "logs.json:17". */
rv_code rv_ctx_bad_record(rv_op_ctx *ctx, const char *raw, size_t len, const char *reason,
                          const char *where);
/* Sources: how many records were rejected so far by this instance. */
uint64_t rv_ctx_bad_records(const rv_op_ctx *ctx);

#endif

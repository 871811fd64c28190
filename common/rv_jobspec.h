/* rv_jobspec: a YAML job file parsed, validated and planned into the
 * logical graph.
 *
 * The job spec owns the YAML tree (configs point into it), one node per
 * source/operator/sink with its plugin, parsed config struct, resolved
 * inputs, parallelism, keys and output schema. Nodes are stored in
 * topological order. Every mistake is reported as "file:line:col:
 * message" with a hint. Immutable after parsing; shared read-only by every
 * subtask thread of the job (reference counted). */
#ifndef RV_JOBSPEC_H
#define RV_JOBSPEC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "rv_err.h"
#include "rv_plugin.h"
#include "rv_schema.h"
#include "rv_recovery_conf.h"
#include "rv_state_conf.h"
#include "rv_yaml.h"

typedef enum { RV_ON_ERROR_FAIL, RV_ON_ERROR_SKIP, RV_ON_ERROR_DEAD_LETTER } rv_on_error;

/* Output ports of a node: the main output and side outputs. */
enum { RV_PORT_MAIN = 0, RV_PORT_DEAD_LETTER = 1, RV_PORT_LATE = 2, RV_NPORTS = 3 };

typedef struct rv_input_ref {
    int node; /* index into rv_jobspec.nodes */
    int port; /* RV_PORT_* */
} rv_input_ref;

typedef struct rv_node {
    char *id;
    const rv_plugin *plugin;
    const rv_ynode *ynode; /* the node's YAML map */
    void *config;          /* plugin->config_size bytes */
    int parallelism;
    bool parallelism_set;  /* given explicitly in the YAML */
    bool single;           /* runs as one instance: its plugin requires it, or it follows such a node */
    int ninputs;
    rv_input_ref *inputs;
    /* keyed operators */
    int nkeys;
    char **key_exprs;      /* expression sources (point into the YAML tree) */
    rv_schema *key_schema; /* key names and types */
    /* sources */
    rv_schema *declared;
    bool has_event_time;
    int event_time_index;  /* field of `declared` */
    int64_t max_out_of_orderness_ms;
    int64_t idle_timeout_ms; /* 0 = never idle */
    rv_on_error on_error;
    /* planned */
    rv_schema *outputs[RV_NPORTS]; /* NULL where the port does not exist */
    char *event_time_field;        /* event-time field of the output, or NULL */
    char *input_event_time_field;  /* event-time field all inputs carry, or NULL */
} rv_node;

typedef struct rv_jobspec {
    char *name;
    int parallelism;
    int max_parallelism;
    int64_t buffer_timeout_ms;
    int channel_capacity; /* elements per local channel */
    rv_state_conf state;  /* keyed state backend and budget */
    rv_chk_conf checkpointing;
    rv_restart_conf restart;
    int nnodes;
    rv_node *nodes; /* topological order */
    rv_ydoc *doc;
    atomic_int refs;
} rv_jobspec;

/* Largest job file accepted (the control plane carries it whole). */
#define RV_JOBSPEC_MAX_BYTES (4u << 20)

/* Parses and validates job text. `file` names it in errors. */
rv_err *rv_jobspec_parse(const char *text, size_t len, const char *file, rv_jobspec **out);
rv_err *rv_jobspec_load(const char *path, rv_jobspec **out);
/* Sets every node's parallelism that was not given explicitly to p and
 * re-validates (before the spec is shared). */
rv_err *rv_jobspec_set_parallelism(rv_jobspec *js, int p);
rv_jobspec *rv_jobspec_ref(rv_jobspec *js);
void rv_jobspec_unref(rv_jobspec *js); /* accepts NULL */

/* Writes the Markdown table of the job-level keys. */
void rv_jobspec_doc(FILE *out);
/* Index of a node by id, or -1. */
int rv_jobspec_find(const rv_jobspec *js, const char *id);
/* "dead_letter", "late" ("" for the main port). */
const char *rv_port_name(int port);
/* Schema of a node's output port (NULL where the node has no such port). */
rv_schema *rv_jobspec_port_schema(const rv_jobspec *js, rv_input_ref ref);
/* Schema of dead-letter records: source, location, reason, raw, time. */
rv_schema *rv_dead_letter_schema(void);

#endif

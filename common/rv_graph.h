/* rv_graph: the job graph — the logical graph of a job spec cut into
 * tasks (chains of operators fused into one thread) and the edges between
 * tasks with their partitioning.
 *
 * Chaining: node B joins the chain of its input A when B has exactly one
 * input, it reads A's main output, A's main output has no other consumer,
 * both have the same parallelism, and B is not keyed (a keyed node needs a
 * hash exchange in front of it). Records inside a chain pass by pointer.
 * Every other edge crosses tasks through channels: `hash` (by key group)
 * into keyed nodes, `forward` between equal parallelism, `rebalance`
 * otherwise. The job graph is immutable and shared like the job spec. */
#ifndef RV_GRAPH_H
#define RV_GRAPH_H

#include <stdio.h>

#include "rv_jobspec.h"

typedef enum { RV_PART_FORWARD, RV_PART_HASH, RV_PART_REBALANCE, RV_PART_BROADCAST } rv_partitioning;

const char *rv_partitioning_name(rv_partitioning p);

/* An edge between two tasks. */
typedef struct rv_task_edge {
    int from_task, from_node, from_port; /* producer: a node of from_task's chain */
    int to_task, to_input;               /* consumer: input index of to_task's head node */
    rv_partitioning part;
} rv_task_edge;

typedef struct rv_task_def {
    int parallelism;
    int nnodes;
    int *nodes; /* node indices in chain order, head first */
} rv_task_def;

typedef struct rv_job_graph {
    rv_jobspec *spec; /* one reference */
    int ntasks;
    rv_task_def *tasks;
    int nedges;
    rv_task_edge *edges;
    int *task_of_node; /* node index -> task index */
} rv_job_graph;

/* Builds the job graph (takes a new reference to spec). */
rv_job_graph *rv_job_graph_build(rv_jobspec *spec);
void rv_job_graph_free(rv_job_graph *g);
/* Slots the job needs: its largest task parallelism (slot sharing: a slot
 * holds one instance of every task). */
int rv_job_graph_slots(const rv_job_graph *g);
/* Total number of subtasks (sum of task parallelism). */
int rv_job_graph_nsubtasks(const rv_job_graph *g);
/* Human-readable plan, and Graphviz. */
void rv_job_graph_print(const rv_job_graph *g, FILE *out);
void rv_job_graph_dot(const rv_job_graph *g, FILE *out);

#endif

/* rv_graph: chaining and partitioning of a job spec into a job graph. */
#include "rv_graph.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "rv_mem.h"

const char *rv_partitioning_name(rv_partitioning p)
{
    switch (p) {
    case RV_PART_FORWARD: return "forward";
    case RV_PART_HASH: return "hash";
    case RV_PART_REBALANCE: return "rebalance";
    case RV_PART_BROADCAST: return "broadcast";
    }
    return "?";
}

static int consumers_of(const rv_jobspec *js, int node, int port)
{
    int c = 0;
    for (int j = 0; j < js->nnodes; j++)
        for (int k = 0; k < js->nodes[j].ninputs; k++)
            if (js->nodes[j].inputs[k].node == node && js->nodes[j].inputs[k].port == port)
                c++;
    return c;
}

static bool chainable(const rv_jobspec *js, int b)
{
    const rv_node *nb = &js->nodes[b];
    if (nb->ninputs != 1 || nb->nkeys > 0 || nb->inputs[0].port != RV_PORT_MAIN)
        return false;
    const rv_node *na = &js->nodes[nb->inputs[0].node];
    return na->parallelism == nb->parallelism && consumers_of(js, nb->inputs[0].node, RV_PORT_MAIN) == 1;
}

rv_job_graph *rv_job_graph_build(rv_jobspec *js)
{
    rv_job_graph *g = rv_xcalloc(1, sizeof(*g));
    g->spec = rv_jobspec_ref(js);
    g->task_of_node = rv_xcalloc((size_t)js->nnodes, sizeof(int));
    /* Nodes are in topological order, so a chain's predecessor is placed
     * before its successor. */
    for (int i = 0; i < js->nnodes; i++) {
        if (chainable(js, i)) {
            int t = g->task_of_node[js->nodes[i].inputs[0].node];
            rv_task_def *td = &g->tasks[t];
            /* The input has no other consumer, so it is its chain's tail. */
            assert(td->nodes[td->nnodes - 1] == js->nodes[i].inputs[0].node);
            td->nodes = rv_xrealloc(td->nodes, (size_t)(td->nnodes + 1) * sizeof(int));
            td->nodes[td->nnodes++] = i;
            g->task_of_node[i] = t;
            continue;
        }
        g->tasks = rv_xrealloc(g->tasks, (size_t)(g->ntasks + 1) * sizeof(rv_task_def));
        rv_task_def *td = &g->tasks[g->ntasks];
        td->parallelism = js->nodes[i].parallelism;
        td->nnodes = 1;
        td->nodes = rv_xmalloc(sizeof(int));
        td->nodes[0] = i;
        g->task_of_node[i] = g->ntasks++;
    }
    for (int t = 0; t < g->ntasks; t++) {
        int head = g->tasks[t].nodes[0];
        const rv_node *n = &js->nodes[head];
        for (int k = 0; k < n->ninputs; k++) {
            const rv_node *src = &js->nodes[n->inputs[k].node];
            rv_task_edge e = {
                .from_task = g->task_of_node[n->inputs[k].node],
                .from_node = n->inputs[k].node,
                .from_port = n->inputs[k].port,
                .to_task = t,
                .to_input = k,
            };
            if (n->nkeys > 0)
                e.part = RV_PART_HASH;
            else if (src->parallelism == n->parallelism)
                e.part = RV_PART_FORWARD;
            else
                e.part = RV_PART_REBALANCE;
            g->edges = rv_xrealloc(g->edges, (size_t)(g->nedges + 1) * sizeof(rv_task_edge));
            g->edges[g->nedges++] = e;
        }
    }
    return g;
}

void rv_job_graph_free(rv_job_graph *g)
{
    if (!g)
        return;
    for (int t = 0; t < g->ntasks; t++)
        free(g->tasks[t].nodes);
    free(g->tasks);
    free(g->edges);
    free(g->task_of_node);
    rv_jobspec_unref(g->spec);
    free(g);
}

int rv_job_graph_slots(const rv_job_graph *g)
{
    int need = 0;
    for (int t = 0; t < g->ntasks; t++)
        if (g->tasks[t].parallelism > need)
            need = g->tasks[t].parallelism;
    return need;
}

int rv_job_graph_nsubtasks(const rv_job_graph *g)
{
    int n = 0;
    for (int t = 0; t < g->ntasks; t++)
        n += g->tasks[t].parallelism;
    return n;
}

static void chain_name(const rv_job_graph *g, int t, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (int k = 0; k < g->tasks[t].nnodes; k++)
        snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", k ? " -> " : "", g->spec->nodes[g->tasks[t].nodes[k]].id);
}

static const char *port_suffix(int port)
{
    static const char *const suffixes[RV_NPORTS] = {"", ".dead_letter", ".late"};
    return port > 0 && port < RV_NPORTS ? suffixes[port] : "";
}

void rv_job_graph_print(const rv_job_graph *g, FILE *out)
{
    const rv_jobspec *js = g->spec;
    fprintf(out, "job %s: %d tasks, %d subtasks, max_parallelism %d\n", js->name, g->ntasks, rv_job_graph_nsubtasks(g),
            js->max_parallelism);
    for (int t = 0; t < g->ntasks; t++) {
        char name[1024];
        chain_name(g, t, name, sizeof(name));
        fprintf(out, "task %d [parallelism %d]: %s\n", t, g->tasks[t].parallelism, name);
        for (int k = 0; k < g->tasks[t].nnodes; k++) {
            const rv_node *n = &js->nodes[g->tasks[t].nodes[k]];
            char desc[1024];
            if (n->outputs[RV_PORT_MAIN])
                fprintf(out, "    %s (%s) -> {%s}\n", n->id, n->plugin->name, rv_schema_describe(n->outputs[RV_PORT_MAIN], desc, sizeof(desc)));
            else
                fprintf(out, "    %s (%s)\n", n->id, n->plugin->name);
        }
        for (int e = 0; e < g->nedges; e++) {
            const rv_task_edge *ed = &g->edges[e];
            if (ed->to_task != t)
                continue;
            const rv_node *head = &js->nodes[g->tasks[t].nodes[0]];
            fprintf(out, "    input %d: %s%s from task %d, %s", ed->to_input, js->nodes[ed->from_node].id, port_suffix(ed->from_port),
                    ed->from_task, rv_partitioning_name(ed->part));
            if (ed->part == RV_PART_HASH) {
                fprintf(out, " by [");
                for (int k = 0; k < head->nkeys; k++)
                    fprintf(out, "%s%s", k ? ", " : "", head->key_exprs[k]);
                fprintf(out, "]");
            }
            fprintf(out, "\n");
        }
    }
}

void rv_job_graph_dot(const rv_job_graph *g, FILE *out)
{
    const rv_jobspec *js = g->spec;
    fprintf(out, "digraph \"%s\" {\n  rankdir=LR;\n  node [shape=box];\n", js->name);
    for (int t = 0; t < g->ntasks; t++) {
        fprintf(out, "  subgraph cluster_%d {\n    label=\"task %d (x%d)\";\n", t, t, g->tasks[t].parallelism);
        for (int k = 0; k < g->tasks[t].nnodes; k++) {
            const rv_node *n = &js->nodes[g->tasks[t].nodes[k]];
            fprintf(out, "    \"%s\" [label=\"%s\\n%s\"];\n", n->id, n->id, n->plugin->name);
        }
        for (int k = 1; k < g->tasks[t].nnodes; k++)
            fprintf(out, "    \"%s\" -> \"%s\" [label=\"chained\", style=bold];\n", js->nodes[g->tasks[t].nodes[k - 1]].id,
                    js->nodes[g->tasks[t].nodes[k]].id);
        fprintf(out, "  }\n");
    }
    for (int e = 0; e < g->nedges; e++) {
        const rv_task_edge *ed = &g->edges[e];
        fprintf(out, "  \"%s\" -> \"%s\" [label=\"%s%s\"];\n", js->nodes[ed->from_node].id, js->nodes[g->tasks[ed->to_task].nodes[0]].id,
                rv_partitioning_name(ed->part), port_suffix(ed->from_port));
    }
    fprintf(out, "}\n");
}

/* rv_savepoint_inspect: `rivulet savepoint inspect PATH` — what a savepoint
 * (or a checkpoint's chk-<n> directory) holds, read from its `_metadata`
 * without a coordinator: the job, then one line per stateful subtask
 * (key groups, keyed state bytes, operator state bytes, watermark, largest
 * event time of a source) and a total per node. The files are verified
 * against their recorded sizes and checksums; a damaged savepoint says what
 * is wrong and exits 1. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rv_checkpoint.h"
#include "rv_client.h"

static void node_totals(const rv_chk_meta *m, size_t from, size_t to)
{
    uint64_t bytes = 0, op = 0;
    uint32_t kgs = 0;
    for (size_t i = from; i < to; i++) {
        bytes += rv_chk_state_bytes(m->states[i]);
        op += m->states[i]->operator_state.len;
        kgs += m->states[i]->kg_end - m->states[i]->kg_first;
    }
    printf("  total %-13s %zu subtask(s), %u key groups, %" PRIu64 " bytes of keyed state, %" PRIu64
           " bytes of operator state\n",
           m->states[from]->node, to - from, kgs, bytes, op);
}

static int by_node_subtask(const void *a, const void *b)
{
    const rv_chk_state *x = *(rv_chk_state *const *)a, *y = *(rv_chk_state *const *)b;
    int c = strcmp(x->node, y->node);
    return c ? c : (x->subtask > y->subtask) - (x->subtask < y->subtask);
}

int rv_cli_savepoint_inspect(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "rivulet savepoint inspect: expected one savepoint directory\n");
        return 2;
    }
    const char *dir = argv[1];
    rv_chk_meta *m = NULL;
    rv_err *err = rv_chk_read_metadata(dir, &m);
    if (err) {
        fprintf(stderr, "rivulet savepoint inspect: %s\n", rv_err_msg(err));
        rv_err_free(err);
        return 1;
    }
    char when[40];
    rv_cli_format_time(m->time_ms, when, sizeof(when));
    printf("%s %" PRIu64 " of job %s (%s), taken %s, max_parallelism %u\n", m->savepoint ? "savepoint" : "checkpoint",
           m->id, m->job_id, m->job_name, when, (unsigned)m->max_parallelism);
    printf("%-16s %7s %11s %11s %14s %14s  %-24s  %-24s %s\n", "NODE", "SUBTASK", "PARALLELISM", "KEY GROUPS",
           "STATE BYTES", "OPERATOR BYTES", "WATERMARK", "MAX EVENT TIME", "FINISHED");
    /* Handles come in acknowledgement order: print them by node and subtask. */
    rv_chk_state **sorted = calloc(m->n_states + 1, sizeof(*sorted));
    size_t n = m->n_states;
    memcpy(sorted, m->states, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), by_node_subtask);
    for (size_t i = 0; i < n; i++) {
        const rv_chk_state *h = sorted[i];
        char wm[40], mx[40], kg[32];
        rv_cli_format_watermark(h->watermark, wm, sizeof(wm));
        rv_cli_format_watermark(h->max_event_time, mx, sizeof(mx));
        if (h->kg_end > h->kg_first)
            snprintf(kg, sizeof(kg), "%u-%u", (unsigned)h->kg_first, (unsigned)h->kg_end - 1);
        else
            snprintf(kg, sizeof(kg), "-");
        printf("%-16s %7u %11u %11s %14" PRIu64 " %14zu  %-24s  %-24s %s\n", h->node, (unsigned)h->subtask,
               (unsigned)h->parallelism, kg, rv_chk_state_bytes(h), h->operator_state.len, wm, mx,
               h->finished ? "yes" : "no");
    }
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && strcmp(sorted[j]->node, sorted[i]->node) == 0)
            j++;
        rv_chk_meta tmp = *m;
        tmp.states = sorted;
        node_totals(&tmp, i, j);
        i = j;
    }
    free(sorted);
    err = rv_chk_verify(dir, m);
    int rc = 0;
    if (err) {
        printf("DAMAGED: %s\n", rv_err_msg(err));
        rv_err_free(err);
        rc = 1;
    } else {
        printf("every state file is intact (sizes and checksums match)\n");
    }
    rv_chk_meta_free(m);
    return rc;
}

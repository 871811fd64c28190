/* socket: the `socket` source, JSON lines or CSV over TCP.
 *
 * listen mode binds host:port (port 0: an ephemeral port, logged) and
 * accepts any number of clients over time; every client is a stream of
 * lines with its own line numbers and, for CSV, its own header. It is
 * unbounded unless `until_closed` is set, in which case it ends once a first
 * client has connected and every client has closed. connect mode dials
 * host:port, retrying with backoff until connect_timeout, and ends when the
 * peer closes. Everything is non-blocking: a poll waits at most ~20 ms in
 * poll(2), and lines already buffered are read before waiting. One instance
 * only (max parallelism 1).
 *
 * Checkpoints: this source cannot replay what it received, so it does not
 * implement the snapshot/restore hooks and has no position in a
 * checkpoint. When a job with checkpointing recovers, the records this
 * source had received after the last completed checkpoint are lost (they
 * are not sent again by the peer), and after the restart the source
 * listens or connects afresh: delivery from this source is at-most-once,
 * even where the rest of the job is exactly-once. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "line_reader.h"
#include "rv_time.h" /* rv_now_ns */
#include "rv_log.h"
#include "rv_mem.h"
#include "rv_plugin.h"
#include "rv_record.h"

#define WAIT_MS 20
#define MAX_CONNS 1024
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000

enum { MODE_LISTEN, MODE_CONNECT };

typedef struct sock_config {
    char *host;
    int64_t port;
    int mode;
    int format; /* 0 json, 1 csv */
    char *delimiter;
    bool header;
    bool until_closed;
    int64_t connect_timeout;
    int64_t batch_size;
    int64_t max_line_bytes;
} sock_config;

/* One connected stream. */
typedef struct conn {
    int fd;
    rv_line_reader *lr;
    rv_line_decoder dec;
    uint64_t lineno;
    char peer[80];
} conn;

typedef struct sock_state {
    const sock_config *cfg;
    const char *tag;
    rv_schema *schema;
    rv_buf header;  /* CSV with header: false: the schema's columns */
    int lfd;        /* listen mode */
    conn **conns;
    size_t nconns, cap, rr;
    bool ever_connected;
    /* connect mode */
    struct sockaddr_storage addr;
    socklen_t alen;
    char addr_text[80];
    int cfd; /* connection in progress */
    int64_t deadline_ms, next_try_ms, backoff_ms;
    int last_errno;
    rv_batch *b;
    uint32_t batch;
} sock_state;

static const char *const modes[] = {"listen", "connect", NULL};

static const rv_cfg_key sock_keys[] = {
    {.name = "host", .type = RV_CFG_STRING, .def = "127.0.0.1", .offset = offsetof(sock_config, host),
     .doc = "Address to listen on (listen) or to connect to (connect)."},
    {.name = "port", .type = RV_CFG_INT, .offset = offsetof(sock_config, port), .flags = RV_CFG_REQUIRED,
     .min = 0, .max = 65535, .doc = "TCP port; 0 in listen mode picks a free port (logged)."},
    {.name = "mode", .type = RV_CFG_ENUM, .def = "listen", .offset = offsetof(sock_config, mode),
     .choices = modes, .doc = "`listen`: accept clients; `connect`: dial host:port."},
    {.name = "format", .type = RV_CFG_ENUM, .def = "json", .offset = offsetof(sock_config, format),
     .choices = rv_line_formats, .doc = "`json` (one object per line) or `csv`."},
    {.name = "delimiter", .type = RV_CFG_STRING, .def = ",", .offset = offsetof(sock_config, delimiter),
     .doc = "CSV field separator (one character)."},
    {.name = "header", .type = RV_CFG_BOOL, .def = "true", .offset = offsetof(sock_config, header),
     .doc = "CSV: the first line of each connection is a header; false: columns are in schema order."},
    {.name = "until_closed", .type = RV_CFG_BOOL, .def = "false",
     .offset = offsetof(sock_config, until_closed),
     .doc = "listen: end once a client has connected and all clients have closed (else never end)."},
    {.name = "connect_timeout", .type = RV_CFG_DURATION, .def = "10s",
     .offset = offsetof(sock_config, connect_timeout), .min = 1, .max = INT64_C(86400000),
     .doc = "connect: keep retrying this long before failing."},
    RV_LINE_SOURCE_KEYS(sock_config),
};

static rv_err *sock_plan(rv_plan *p)
{
    const sock_config *cfg = p->config;
    char *what = rv_xasprintf("source '%s'", p->id);
    rv_err *err = NULL;
    if (!p->declared)
        err = rv_yerr(p->node, RV_ERR_INVALID, "%s: missing required key 'schema'", what);
    else if (cfg->mode == MODE_CONNECT && cfg->port == 0)
        err = rv_yerr(rv_ymap_get_or_self(p->node, "port"), RV_ERR_INVALID,
                      "%s: port 0 (any free port) is only valid with mode: listen", what);
    else if (cfg->mode == MODE_CONNECT && rv_ymap_get(p->node, "until_closed"))
        err = rv_yerr(rv_ymap_get_or_self(p->node, "until_closed"), RV_ERR_INVALID,
                      "%s: 'until_closed' is for mode: listen; a connect source ends when the "
                      "peer closes", what);
    else if (!rv_csv_delimiter_parse(cfg->delimiter, &(char){0}))
        err = rv_yerr(rv_ymap_get_or_self(p->node, "delimiter"), RV_ERR_INVALID,
                      "%s: 'delimiter' must be one character other than '\"' and a line end",
                      what);
    else if (cfg->host[0] == '\0')
        err = rv_yerr(rv_ymap_get_or_self(p->node, "host"), RV_ERR_INVALID, "%s: 'host' is empty", what);
    if (!err) {
        p->output = rv_schema_ref(p->declared);
        p->max_parallelism = 1;
    }
    free(what);
    return err;
}

/* "1.2.3.4:5" or "[::1]:5". */
static void addr_format(const struct sockaddr *sa, socklen_t len, char *out, size_t cap)
{
    char host[64], port[16];
    if (getnameinfo(sa, len, host, sizeof(host), port, sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV)) {
        snprintf(out, cap, "?");
        return;
    }
    snprintf(out, cap, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

static rv_err *resolve(sock_state *st, bool passive, struct addrinfo **out)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", (int)st->cfg->port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    int rc = getaddrinfo(st->cfg->host, port, &hints, out);
    if (rc)
        return rv_err_new(RV_ERR_IO, "cannot resolve host '%s': %s", st->cfg->host,
                          gai_strerror(rc));
    return NULL;
}

static rv_err *start_listen(sock_state *st)
{
    struct addrinfo *ai = NULL;
    rv_err *err = resolve(st, true, &ai);
    if (err)
        return err;
    int e = 0;
    for (struct addrinfo *a = ai; a && st->lfd < 0; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 128) == 0) {
            st->lfd = fd;
        } else {
            e = errno;
            close(fd);
        }
    }
    freeaddrinfo(ai);
    if (st->lfd < 0)
        return rv_err_new(RV_ERR_IO, "cannot listen on %s:%d: %s", st->cfg->host,
                          (int)st->cfg->port, strerror(e));
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char text[80] = "?";
    if (getsockname(st->lfd, (struct sockaddr *)&ss, &len) == 0)
        addr_format((struct sockaddr *)&ss, len, text, sizeof(text));
    RV_LOG_INFO(st->tag, "listening on %s", text);
    return NULL;
}

static void sock_close(void *state, rv_op_ctx *ctx);

static rv_err *sock_open(void *state, rv_op_ctx *ctx)
{
    sock_state *st = state;
    st->cfg = rv_ctx_config(ctx);
    st->tag = rv_ctx_tag(ctx);
    st->schema = rv_ctx_output_schema(ctx);
    st->batch = (uint32_t)st->cfg->batch_size;
    st->lfd = st->cfd = -1;
    if (st->cfg->format == 1 && !st->cfg->header)
        rv_csv_format_header(st->schema, rv_line_delimiter(st->cfg->delimiter), &st->header);
    rv_err *err = NULL;
    if (st->cfg->mode == MODE_LISTEN) {
        err = start_listen(st);
    } else {
        struct addrinfo *ai = NULL;
        err = resolve(st, false, &ai);
        if (!err) {
            memcpy(&st->addr, ai->ai_addr, ai->ai_addrlen);
            st->alen = (socklen_t)ai->ai_addrlen;
            addr_format((struct sockaddr *)&st->addr, st->alen, st->addr_text, sizeof(st->addr_text));
            freeaddrinfo(ai);
            st->next_try_ms = rv_now_ms();
            st->deadline_ms = st->next_try_ms + st->cfg->connect_timeout;
            st->backoff_ms = BACKOFF_MIN_MS;
        }
    }
    if (err)
        sock_close(st, ctx);
    return err;
}

static void add_conn(sock_state *st, int fd, const char *peer)
{
    conn *c = rv_xcalloc(1, sizeof(*c));
    c->fd = fd;
    c->lr = rv_line_reader_new(fd, (size_t)st->cfg->max_line_bytes, false);
    rv_line_decoder_init(&c->dec, st->schema, st->cfg->format == 1, rv_line_delimiter(st->cfg->delimiter),
                         (size_t)st->cfg->max_line_bytes);
    const char *why = NULL;
    if (st->header.len)
        rv_line_decoder_restart(&c->dec, st->header.data, st->header.len, &why);
    if (why)
        RV_LOG_WARN(st->tag, "%s", why);
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    rv_xgrow((void **)&st->conns, &st->cap, st->nconns + 1, sizeof(conn *));
    st->conns[st->nconns++] = c;
    st->ever_connected = true;
    RV_LOG_DEBUG(st->tag, "connection from %s", peer);
}

static void drop_conn(sock_state *st, size_t k)
{
    conn *c = st->conns[k];
    rv_line_reader_free(c->lr);
    rv_line_decoder_fini(&c->dec);
    close(c->fd);
    free(c);
    st->conns[k] = st->conns[--st->nconns];
}

static void accept_all(sock_state *st)
{
    while (st->nconns < MAX_CONNS) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(st->lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                RV_LOG_WARN(st->tag, "accept: %s", strerror(errno));
            return;
        }
        char peer[80];
        addr_format((struct sockaddr *)&ss, len, peer, sizeof(peer));
        add_conn(st, fd, peer);
    }
}

/* Reads lines of connection k into the batch until it would block, the
 * batch is full or *budget lines were read. Returns false when the job must
 * fail; sets *gone when the connection ended (and was dropped). */
static bool read_conn(sock_state *st, rv_op_ctx *ctx, size_t k, uint32_t *budget, bool *gone)
{
    conn *c = st->conns[k];
    while (!rv_batch_is_full(st->b, st->batch) && *budget > 0) {
        const char *line;
        size_t len;
        rv_line_status ls = rv_line_next(c->lr, &line, &len);
        if (ls == RV_LINE_AGAIN)
            return true;
        if (ls == RV_LINE_EOF || ls == RV_LINE_ERROR) {
            if (ls == RV_LINE_ERROR) {
                if (st->cfg->mode == MODE_CONNECT) {
                    rv_ctx_fail(ctx, rv_err_new(RV_ERR_IO, "reading from %s: %s",
                                                c->peer, rv_line_reader_error(c->lr)));
                    return false;
                }
                RV_LOG_WARN(st->tag, "dropping client %s: %s", c->peer,
                            rv_line_reader_error(c->lr));
            }
            RV_LOG_DEBUG(st->tag, "%s closed after %llu lines", c->peer,
                         (unsigned long long)c->lineno);
            drop_conn(st, k);
            *gone = true;
            return true;
        }
        (*budget)--;
        c->lineno++;
        const char *reason = NULL;
        size_t raw_len = 0;
        if (rv_line_decode(&c->dec, ls, line, len, st->b, &reason, &raw_len) != RV_DEC_BAD)
            continue;
        char where[128];
        snprintf(where, sizeof(where), "socket %s line %llu", c->peer, (unsigned long long)c->lineno);
        if (rv_ctx_bad_record(ctx, line, raw_len, reason, where) != RV_OK)
            return false;
    }
    return true;
}

/* One pass over all connections, starting at a rotating one so that a busy
 * client cannot starve the others. Returns false when the job must fail. */
static bool read_all(sock_state *st, rv_op_ctx *ctx, bool *progress)
{
    if (st->lfd >= 0) {
        size_t before = st->nconns;
        accept_all(st);
        if (st->nconns != before)
            *progress = true;
    }
    uint32_t budget = 4 * st->batch;
    size_t n = st->nconns;
    size_t start = n ? st->rr % n : 0;
    st->rr++;
    /* Visit each connection once; drop_conn() moves the last one into the
     * dropped slot, so walk indices from high to low relative to start. */
    for (size_t v = 0; v < n && !rv_batch_is_full(st->b, st->batch) && budget > 0; v++) {
        size_t k = (start + n - 1 - v) % n;
        if (k >= st->nconns)
            continue;
        uint32_t b0 = budget;
        bool gone = false;
        if (!read_conn(st, ctx, k, &budget, &gone))
            return false;
        if (gone || budget != b0)
            *progress = true;
    }
    return true;
}

static void wait_io(sock_state *st)
{
    struct pollfd fds[MAX_CONNS + 1];
    nfds_t n = 0;
    /* At the connection limit pending clients wait in the backlog: do not
     * watch the listener, or poll would return at once and spin. */
    if (st->lfd >= 0 && st->nconns < MAX_CONNS)
        fds[n++] = (struct pollfd){.fd = st->lfd, .events = POLLIN};
    for (size_t k = 0; k < st->nconns; k++)
        fds[n++] = (struct pollfd){.fd = st->conns[k]->fd, .events = POLLIN};
    poll(n ? fds : NULL, n, WAIT_MS); /* with nothing to watch: a plain sleep */
}

/* Connect mode before the connection is up: one step of connecting.
 * Returns RV_SRC_MORE once connected. */
static rv_src_status connect_step(sock_state *st, rv_op_ctx *ctx)
{
    int64_t now = rv_now_ms();
    if (st->cfd < 0) {
        if (now < st->next_try_ms) {
            int64_t w = st->next_try_ms - now;
            poll(NULL, 0, (int)(w < WAIT_MS ? w : WAIT_MS));
            return RV_SRC_IDLE;
        }
        st->cfd = socket(st->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (st->cfd < 0) {
            rv_ctx_fail(ctx, rv_err_new(RV_ERR_IO, "socket: %s", strerror(errno)));
            return RV_SRC_FAILED;
        }
        if (connect(st->cfd, (struct sockaddr *)&st->addr, st->alen) != 0 && errno != EINPROGRESS) {
            st->last_errno = errno;
            goto retry;
        }
    }
    struct pollfd pfd = {.fd = st->cfd, .events = POLLOUT};
    int64_t left = st->deadline_ms - now;
    int r = poll(&pfd, 1, (int)(left < WAIT_MS ? (left > 0 ? left : 0) : WAIT_MS));
    if (r == 0) {
        if (rv_now_ms() < st->deadline_ms)
            return RV_SRC_IDLE;
        st->last_errno = ETIMEDOUT;
        goto retry;
    }
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    if (r < 0 || getsockopt(st->cfd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
        soerr = errno;
    if (soerr != 0) {
        st->last_errno = soerr;
        goto retry;
    }
    RV_LOG_INFO(st->tag, "connected to %s", st->addr_text);
    add_conn(st, st->cfd, st->addr_text);
    st->cfd = -1;
    return RV_SRC_MORE;
retry:
    close(st->cfd);
    st->cfd = -1;
    now = rv_now_ms();
    if (now >= st->deadline_ms) {
        rv_ctx_fail(ctx, rv_err_new(RV_ERR_IO, "cannot connect to %s within %lld ms: %s",
                                    st->addr_text, (long long)st->cfg->connect_timeout,
                                    strerror(st->last_errno)));
        return RV_SRC_FAILED;
    }
    st->next_try_ms = now + st->backoff_ms;
    if (st->next_try_ms > st->deadline_ms)
        st->next_try_ms = st->deadline_ms;
    st->backoff_ms = st->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : st->backoff_ms * 2;
    return RV_SRC_IDLE;
}

static rv_src_status sock_poll(void *state, rv_op_ctx *ctx)
{
    sock_state *st = state;
    if (st->cfg->mode == MODE_CONNECT && !st->ever_connected) {
        rv_src_status s = connect_step(st, ctx);
        if (s != RV_SRC_MORE)
            return s;
    }
    if (!st->b)
        st->b = rv_batch_new(st->schema, st->batch);
    bool bounded = st->cfg->mode == MODE_CONNECT || st->cfg->until_closed;
    bool progress = false;
    if (!read_all(st, ctx, &progress))
        return RV_SRC_FAILED;
    if (!progress && st->b->nrows == 0 && !(bounded && st->ever_connected && st->nconns == 0)) {
        wait_io(st);
        if (!read_all(st, ctx, &progress))
            return RV_SRC_FAILED;
    }
    if (st->b->nrows > 0) {
        rv_batch *b = st->b;
        st->b = NULL;
        if (rv_ctx_emit(ctx, b) != RV_OK)
            return RV_SRC_IDLE; /* canceled: the runtime stops polling */
        return RV_SRC_MORE;
    }
    if (bounded && st->ever_connected && st->nconns == 0)
        return RV_SRC_END;
    return progress ? RV_SRC_MORE : RV_SRC_IDLE;
}

static void sock_close(void *state, rv_op_ctx *ctx)
{
    sock_state *st = state;
    while (st->nconns)
        drop_conn(st, st->nconns - 1);
    free(st->conns);
    if (st->lfd >= 0)
        close(st->lfd);
    if (st->cfd >= 0)
        close(st->cfd);
    rv_batch_unref(st->b);
    rv_buf_fini(&st->header);
    memset(st, 0, sizeof(*st));
    st->lfd = st->cfd = -1;
}

const rv_plugin rv_source_socket = {
    .name = "socket",
    .abi = RV_PLUGIN_ABI,
    .kind = RV_PLUGIN_SOURCE,
    .doc = "Reads JSON lines or CSV over TCP. `mode: listen` binds host:port (port 0: a free "
           "port, logged at INFO as \"listening on ADDR:PORT\") and reads from any number of "
           "clients, each with its own CSV header; it never ends unless `until_closed: true`, "
           "then it ends once a client has connected and all have closed. `mode: connect` "
           "dials host:port, retrying until connect_timeout, and ends when the peer closes. "
           "Bad lines are located as `socket PEER line N`. Runs with parallelism 1.",
    .config = sock_keys,
    .nconfig = sizeof(sock_keys) / sizeof(sock_keys[0]),
    .config_size = sizeof(sock_config),
    .state_size = sizeof(sock_state),
    .plan = sock_plan,
    .open = sock_open,
    .poll = sock_poll,
    .close = sock_close,
};

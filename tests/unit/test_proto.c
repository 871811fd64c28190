/* Unit tests of rv_proto: every body round-trips; every validation rule
 * has a failing case with its exact message (and its boundary passes);
 * the version, body and size checks; and hostile input — every prefix of
 * valid messages, random bytes, mutated messages — never crashes, and
 * whatever is accepted satisfies an independent reference validator. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rv_proto.h"

/* ---- fixtures: one valid message of each body, fields all set ---- */

typedef struct fx {
    rv_envelope env;
    Rivulet__RegisterTm rtm;
    Rivulet__RegisterAck ack;
    Rivulet__Heartbeat hb;
    Rivulet__SubtaskMetrics m[2];
    Rivulet__SubtaskMetrics *mp[2];
    Rivulet__DeployJob dj;
    char *sets[2];
    Rivulet__TmAddress tma[2];
    Rivulet__TmAddress *tmap[2];
    Rivulet__Placement pl[3];
    Rivulet__Placement *plp[3];
    Rivulet__CancelJob cj;
    Rivulet__JobOnTmDone jd;
    Rivulet__ReleaseJob rj;
    Rivulet__SubmitJob sj;
    Rivulet__ListJobs lj;
    Rivulet__GetJob gj;
    Rivulet__CancelJobRequest cr;
    Rivulet__Reply rp;
    Rivulet__JobInfo ji[2];
    Rivulet__JobInfo *jip[2];
    Rivulet__SubtaskInfo si[2];
    Rivulet__SubtaskInfo *sip[2];
} fx;

static const Rivulet__Envelope__BodyCase all_bodies[] = {
    RIVULET__ENVELOPE__BODY_REGISTER_TM, RIVULET__ENVELOPE__BODY_REGISTER_ACK, RIVULET__ENVELOPE__BODY_HEARTBEAT,
    RIVULET__ENVELOPE__BODY_DEPLOY_JOB,  RIVULET__ENVELOPE__BODY_CANCEL_JOB,   RIVULET__ENVELOPE__BODY_JOB_DONE,
    RIVULET__ENVELOPE__BODY_RELEASE_JOB, RIVULET__ENVELOPE__BODY_SUBMIT_JOB,   RIVULET__ENVELOPE__BODY_LIST_JOBS,
    RIVULET__ENVELOPE__BODY_GET_JOB,     RIVULET__ENVELOPE__BODY_CANCEL_REQUEST, RIVULET__ENVELOPE__BODY_REPLY,
};
#define N_BODIES (sizeof(all_bodies) / sizeof(all_bodies[0]))

static void fx_init(fx *f, Rivulet__Envelope__BodyCase body)
{
    memset(f, 0, sizeof(*f));
    rv_proto_init(&f->env);
    f->env.request_id = 0x1234567890ULL;
    f->env.body_case = body;
    switch (body) {
    case RIVULET__ENVELOPE__BODY_REGISTER_TM:
        rivulet__register_tm__init(&f->rtm);
        f->rtm.name = "tm-host-1234";
        f->rtm.slots = 4;
        f->rtm.data_url = "tcp://10.0.0.7:7100";
        f->env.register_tm = &f->rtm;
        break;
    case RIVULET__ENVELOPE__BODY_REGISTER_ACK:
        rivulet__register_ack__init(&f->ack);
        f->ack.tm_index = 3;
        f->ack.heartbeat_interval_ms = 1000;
        f->env.register_ack = &f->ack;
        break;
    case RIVULET__ENVELOPE__BODY_HEARTBEAT:
    case RIVULET__ENVELOPE__BODY_JOB_DONE:
        for (int i = 0; i < 2; i++) {
            rivulet__subtask_metrics__init(&f->m[i]);
            f->m[i].job_id = i ? "job-b" : "job-a";
            f->m[i].task = 2u + (unsigned)i;
            f->m[i].subtask = 5u + (unsigned)i;
            f->m[i].records_in = 1000000007ULL * (unsigned)(i + 1);
            f->m[i].records_out = 99;
            f->m[i].bad_records = 3;
            f->m[i].watermark = -5 + i * 1700000000000LL;
            f->mp[i] = &f->m[i];
        }
        if (body == RIVULET__ENVELOPE__BODY_HEARTBEAT) {
            rivulet__heartbeat__init(&f->hb);
            f->hb.n_metrics = 2;
            f->hb.metrics = f->mp;
            f->env.heartbeat = &f->hb;
        } else {
            rivulet__job_on_tm_done__init(&f->jd);
            f->jd.job_id = "job-a";
            f->jd.state = RIVULET__JOB_ON_TM_DONE__STATE__FAILED;
            f->jd.error = "operator f: boom";
            f->jd.n_metrics = 2;
            f->jd.metrics = f->mp;
            f->env.job_done = &f->jd;
        }
        break;
    case RIVULET__ENVELOPE__BODY_DEPLOY_JOB:
        rivulet__deploy_job__init(&f->dj);
        f->dj.job_id = "job-7";
        f->dj.job_file = "examples/qps.yaml";
        f->dj.job_yaml = "name: qps\n";
        f->dj.parallelism = 2;
        f->sets[0] = "a.b=1";
        f->sets[1] = "c=";
        f->dj.n_set = 2;
        f->dj.set = f->sets;
        for (int i = 0; i < 2; i++) {
            rivulet__tm_address__init(&f->tma[i]);
            f->tma[i].name = i ? "tm-b" : "tm-a";
            f->tma[i].data_url = i ? "tcp://127.0.0.1:7001" : "inproc://tm-a";
            f->tmap[i] = &f->tma[i];
        }
        f->dj.n_tms = 2;
        f->dj.tms = f->tmap;
        for (int i = 0; i < 3; i++) {
            rivulet__placement__init(&f->pl[i]);
            f->pl[i].task = (unsigned)i;
            f->pl[i].subtask = (unsigned)i % 2;
            f->pl[i].tm_index = (unsigned)i % 2;
            f->plp[i] = &f->pl[i];
        }
        f->dj.n_placements = 3;
        f->dj.placements = f->plp;
        f->dj.your_index = 1;
        f->env.deploy_job = &f->dj;
        break;
    case RIVULET__ENVELOPE__BODY_CANCEL_JOB:
        rivulet__cancel_job__init(&f->cj);
        f->cj.job_id = "job-c";
        f->env.cancel_job = &f->cj;
        break;
    case RIVULET__ENVELOPE__BODY_RELEASE_JOB:
        rivulet__release_job__init(&f->rj);
        f->rj.job_id = "job-r";
        f->env.release_job = &f->rj;
        break;
    case RIVULET__ENVELOPE__BODY_SUBMIT_JOB:
        rivulet__submit_job__init(&f->sj);
        f->sj.job_file = "/home/u/top10.yaml";
        f->sj.job_yaml = "name: top10\nsources: []\n";
        f->sj.parallelism = 1024;
        f->sets[0] = "sources.gen.rate=5";
        f->sj.n_set = 1;
        f->sj.set = f->sets;
        f->env.submit_job = &f->sj;
        break;
    case RIVULET__ENVELOPE__BODY_LIST_JOBS:
        rivulet__list_jobs__init(&f->lj);
        f->lj.all = 1;
        f->env.list_jobs = &f->lj;
        break;
    case RIVULET__ENVELOPE__BODY_GET_JOB:
        rivulet__get_job__init(&f->gj);
        f->gj.job_id = "job-g";
        f->env.get_job = &f->gj;
        break;
    case RIVULET__ENVELOPE__BODY_CANCEL_REQUEST:
        rivulet__cancel_job_request__init(&f->cr);
        f->cr.job_id = "job-x";
        f->env.cancel_request = &f->cr;
        break;
    case RIVULET__ENVELOPE__BODY_REPLY:
        rivulet__reply__init(&f->rp);
        f->rp.ok = 1;
        f->rp.job_id = "job-1";
        for (int i = 0; i < 2; i++) {
            rivulet__subtask_info__init(&f->si[i]);
            f->si[i].task = 1;
            f->si[i].subtask = (unsigned)i;
            f->si[i].chain = "src -> filter";
            f->si[i].tm = "tm-a";
            f->si[i].records_in = 10u + (unsigned)i;
            f->si[i].records_out = 20u + (unsigned)i;
            f->sip[i] = &f->si[i];
            rivulet__job_info__init(&f->ji[i]);
            f->ji[i].job_id = i ? "job-2" : "job-1";
            f->ji[i].name = "qps";
            f->ji[i].state = i ? "FAILED" : "RUNNING";
            f->ji[i].start_time_ms = 1700000000000LL;
            f->ji[i].end_time_ms = i ? 1700000001000LL : 0;
            f->ji[i].error = i ? "lost tm-b" : "";
            f->jip[i] = &f->ji[i];
        }
        f->ji[0].n_subtasks = 2;
        f->ji[0].subtasks = f->sip;
        f->rp.n_jobs = 2;
        f->rp.jobs = f->jip;
        f->env.reply = &f->rp;
        break;
    default:
        cr_assert_fail("no fixture for body %d", (int)body);
    }
}

static void *pack(const rv_envelope *env, size_t *len)
{
    void *buf = NULL;
    rv_err *err = rv_proto_pack(env, &buf, len);
    cr_assert_null(err, "%s", rv_err_msg(err));
    return buf;
}

/* Packs env, unpacks it and returns the decoded copy (must be accepted). */
static rv_envelope *round_trip(const rv_envelope *env)
{
    size_t len;
    void *buf = pack(env, &len);
    rv_envelope *out = NULL;
    rv_err *err = rv_proto_unpack(buf, len, &out);
    free(buf);
    cr_assert_null(err, "%s", rv_err_msg(err));
    cr_assert_not_null(out);
    return out;
}

/* env must be refused with exactly code and message. */
static void expect_refused(const rv_envelope *env, rv_code code, const char *want)
{
    size_t len;
    void *buf = pack(env, &len);
    rv_envelope *out = (rv_envelope *)(uintptr_t)1; /* must stay untouched */
    rv_err *err = rv_proto_unpack(buf, len, &out);
    free(buf);
    cr_assert_not_null(err, "accepted, expected: %s", want);
    cr_assert_eq(rv_err_code(err), code, "%s", rv_err_msg(err));
    cr_assert_str_eq(rv_err_msg(err), want);
    cr_assert_eq(out, (rv_envelope *)(uintptr_t)1);
    rv_err_free(err);
}

static void expect_corrupt(const rv_envelope *env, const char *want)
{
    expect_refused(env, RV_ERR_CORRUPT, want);
}

static void expect_ok(const rv_envelope *env)
{
    rv_proto_free(round_trip(env));
}

static char *rep(char c, size_t n)
{
    char *s = malloc(n + 1);
    cr_assert_not_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* ---- round trips ---- */

Test(rv_proto, every_body_round_trips_field_by_field)
{
    fx f;
    for (size_t b = 0; b < N_BODIES; b++) {
        fx_init(&f, all_bodies[b]);
        rv_envelope *e = round_trip(&f.env);
        cr_assert_eq(e->version, 1);
        cr_assert_eq(e->request_id, 0x1234567890ULL);
        cr_assert_eq(e->body_case, all_bodies[b]);
        switch (all_bodies[b]) {
        case RIVULET__ENVELOPE__BODY_REGISTER_TM:
            cr_assert_str_eq(rv_proto_body_name(e), "register_tm");
            cr_assert_str_eq(e->register_tm->name, "tm-host-1234");
            cr_assert_eq(e->register_tm->slots, 4);
            cr_assert_str_eq(e->register_tm->data_url, "tcp://10.0.0.7:7100");
            break;
        case RIVULET__ENVELOPE__BODY_REGISTER_ACK:
            cr_assert_str_eq(rv_proto_body_name(e), "register_ack");
            cr_assert_eq(e->register_ack->tm_index, 3);
            cr_assert_eq(e->register_ack->heartbeat_interval_ms, 1000);
            break;
        case RIVULET__ENVELOPE__BODY_HEARTBEAT:
        case RIVULET__ENVELOPE__BODY_JOB_DONE: {
            Rivulet__SubtaskMetrics **m;
            size_t n;
            if (all_bodies[b] == RIVULET__ENVELOPE__BODY_HEARTBEAT) {
                cr_assert_str_eq(rv_proto_body_name(e), "heartbeat");
                m = e->heartbeat->metrics;
                n = e->heartbeat->n_metrics;
            } else {
                cr_assert_str_eq(rv_proto_body_name(e), "job_done");
                cr_assert_str_eq(e->job_done->job_id, "job-a");
                cr_assert_eq(e->job_done->state, RIVULET__JOB_ON_TM_DONE__STATE__FAILED);
                cr_assert_str_eq(e->job_done->error, "operator f: boom");
                m = e->job_done->metrics;
                n = e->job_done->n_metrics;
            }
            cr_assert_eq(n, 2);
            cr_assert_str_eq(m[0]->job_id, "job-a");
            cr_assert_str_eq(m[1]->job_id, "job-b");
            cr_assert_eq(m[1]->task, 3);
            cr_assert_eq(m[1]->subtask, 6);
            cr_assert_eq(m[1]->records_in, 2000000014ULL);
            cr_assert_eq(m[0]->records_out, 99);
            cr_assert_eq(m[0]->bad_records, 3);
            cr_assert_eq(m[0]->watermark, -5);
            cr_assert_eq(m[1]->watermark, 1699999999995LL);
            break;
        }
        case RIVULET__ENVELOPE__BODY_DEPLOY_JOB: {
            const Rivulet__DeployJob *d = e->deploy_job;
            cr_assert_str_eq(rv_proto_body_name(e), "deploy_job");
            cr_assert_str_eq(d->job_id, "job-7");
            cr_assert_str_eq(d->job_file, "examples/qps.yaml");
            cr_assert_str_eq(d->job_yaml, "name: qps\n");
            cr_assert_eq(d->parallelism, 2);
            cr_assert_eq(d->n_set, 2);
            cr_assert_str_eq(d->set[0], "a.b=1");
            cr_assert_str_eq(d->set[1], "c=");
            cr_assert_eq(d->n_tms, 2);
            cr_assert_str_eq(d->tms[0]->name, "tm-a");
            cr_assert_str_eq(d->tms[0]->data_url, "inproc://tm-a");
            cr_assert_str_eq(d->tms[1]->data_url, "tcp://127.0.0.1:7001");
            cr_assert_eq(d->n_placements, 3);
            cr_assert_eq(d->placements[2]->task, 2);
            cr_assert_eq(d->placements[2]->subtask, 0);
            cr_assert_eq(d->placements[1]->tm_index, 1);
            cr_assert_eq(d->your_index, 1);
            break;
        }
        case RIVULET__ENVELOPE__BODY_CANCEL_JOB:
            cr_assert_str_eq(rv_proto_body_name(e), "cancel_job");
            cr_assert_str_eq(e->cancel_job->job_id, "job-c");
            break;
        case RIVULET__ENVELOPE__BODY_RELEASE_JOB:
            cr_assert_str_eq(rv_proto_body_name(e), "release_job");
            cr_assert_str_eq(e->release_job->job_id, "job-r");
            break;
        case RIVULET__ENVELOPE__BODY_SUBMIT_JOB:
            cr_assert_str_eq(rv_proto_body_name(e), "submit_job");
            cr_assert_str_eq(e->submit_job->job_file, "/home/u/top10.yaml");
            cr_assert_str_eq(e->submit_job->job_yaml, "name: top10\nsources: []\n");
            cr_assert_eq(e->submit_job->parallelism, 1024);
            cr_assert_eq(e->submit_job->n_set, 1);
            cr_assert_str_eq(e->submit_job->set[0], "sources.gen.rate=5");
            break;
        case RIVULET__ENVELOPE__BODY_LIST_JOBS:
            cr_assert_str_eq(rv_proto_body_name(e), "list_jobs");
            cr_assert(e->list_jobs->all);
            break;
        case RIVULET__ENVELOPE__BODY_GET_JOB:
            cr_assert_str_eq(rv_proto_body_name(e), "get_job");
            cr_assert_str_eq(e->get_job->job_id, "job-g");
            break;
        case RIVULET__ENVELOPE__BODY_CANCEL_REQUEST:
            cr_assert_str_eq(rv_proto_body_name(e), "cancel_request");
            cr_assert_str_eq(e->cancel_request->job_id, "job-x");
            break;
        case RIVULET__ENVELOPE__BODY_REPLY: {
            const Rivulet__Reply *r = e->reply;
            cr_assert_str_eq(rv_proto_body_name(e), "reply");
            cr_assert(r->ok);
            cr_assert_str_eq(r->job_id, "job-1");
            cr_assert_eq(r->n_jobs, 2);
            cr_assert_str_eq(r->jobs[1]->job_id, "job-2");
            cr_assert_str_eq(r->jobs[1]->state, "FAILED");
            cr_assert_str_eq(r->jobs[1]->error, "lost tm-b");
            cr_assert_eq(r->jobs[1]->end_time_ms, 1700000001000LL);
            cr_assert_eq(r->jobs[1]->n_subtasks, 0);
            cr_assert_eq(r->jobs[0]->n_subtasks, 2);
            cr_assert_str_eq(r->jobs[0]->subtasks[1]->chain, "src -> filter");
            cr_assert_str_eq(r->jobs[0]->subtasks[1]->tm, "tm-a");
            cr_assert_eq(r->jobs[0]->subtasks[1]->subtask, 1);
            cr_assert_eq(r->jobs[0]->subtasks[1]->records_out, 21);
            break;
        }
        default:
            cr_assert_fail();
        }
        rv_proto_free(e);
    }
}

Test(rv_proto, init_sets_this_version_and_no_body)
{
    rv_envelope env;
    memset(&env, 0xab, sizeof(env));
    rv_proto_init(&env);
    cr_assert_eq(env.version, RV_PROTO_VERSION);
    cr_assert_eq(env.request_id, 0);
    cr_assert_eq(env.body_case, RIVULET__ENVELOPE__BODY__NOT_SET);
    cr_assert_str_eq(rv_proto_body_name(&env), "none");
    cr_assert_str_eq(rv_proto_body_name(NULL), "none");
    rv_proto_free(NULL);
    /* Version 1 and nothing else: tag 0x08, value 0x01. */
    size_t len;
    uint8_t *buf = pack(&env, &len);
    cr_assert_eq(len, 2);
    cr_assert_eq(buf[0], 0x08);
    cr_assert_eq(buf[1], 0x01);
    free(buf);
}

/* ---- envelope rules ---- */

Test(rv_proto, other_version_names_both_versions)
{
    fx f;
    fx_init(&f, RIVULET__ENVELOPE__BODY_LIST_JOBS);
    f.env.version = 2;
    expect_refused(&f.env, RV_ERR_INVALID, "protocol version 2 from peer, this build speaks version 1");
    f.env.version = 0;
    expect_refused(&f.env, RV_ERR_INVALID, "protocol version 0 from peer, this build speaks version 1");
}

Test(rv_proto, envelope_without_body_is_refused)
{
    rv_envelope env;
    rv_proto_init(&env);
    expect_corrupt(&env, "control message has no body");
    /* A body from a newer peer (unknown field 30) reads as no body. */
    const uint8_t newer[] = {0x08, 0x01, 0xf2, 0x01, 0x00};
    rv_envelope *out = NULL;
    rv_err *err = rv_proto_unpack(newer, sizeof(newer), &out);
    cr_assert_str_eq(rv_err_msg(err), "control message has no body");
    rv_err_free(err);
}

Test(rv_proto, bad_encoding_is_refused)
{
    const uint8_t junk[] = {0x0a, 0x05, 'a'}; /* a length past the end */
    rv_envelope *out = NULL;
    rv_err *err = rv_proto_unpack(junk, sizeof(junk), &out);
    cr_assert_eq(rv_err_code(err), RV_ERR_CORRUPT);
    cr_assert_str_eq(rv_err_msg(err), "control message of 3 bytes is not a valid protobuf envelope");
    cr_assert_null(out);
    rv_err_free(err);
    /* A field of the wrong wire type: version as a length-delimited field. */
    const uint8_t wrong[] = {0x0a, 0x01, 0x01};
    err = rv_proto_unpack(wrong, sizeof(wrong), &out);
    cr_assert_eq(rv_err_code(err), RV_ERR_CORRUPT);
    rv_err_free(err);
}

/* A valid list_jobs envelope padded to exactly n bytes with an unknown
 * bytes field (number 99), so only its size can make it invalid. */
static uint8_t *padded_envelope(size_t n)
{
    uint8_t *buf = malloc(n);
    cr_assert_not_null(buf);
    /* version 1, list_jobs {} (field 21, length 0), then field 99 bytes. */
    size_t head = 0;
    buf[head++] = 0x08;
    buf[head++] = 0x01;
    buf[head++] = 0xaa; /* (21 << 3) | 2 = 170 */
    buf[head++] = 0x01;
    buf[head++] = 0x00;
    buf[head++] = 0x9a; /* (99 << 3) | 2 = 794 */
    buf[head++] = 0x06;
    size_t payload = n - head - 4; /* a 4-byte varint length */
    cr_assert(payload < (1u << 28));
    buf[head++] = (uint8_t)(0x80 | (payload & 0x7f));
    buf[head++] = (uint8_t)(0x80 | ((payload >> 7) & 0x7f));
    buf[head++] = (uint8_t)(0x80 | ((payload >> 14) & 0x7f));
    buf[head++] = (uint8_t)((payload >> 21) & 0x7f);
    memset(buf + head, 'p', payload);
    return buf;
}

Test(rv_proto, oversize_is_refused_before_parsing)
{
    rv_envelope *out = NULL;
    uint8_t *at_limit = padded_envelope(RV_PROTO_MAX_MSG);
    rv_err *err = rv_proto_unpack(at_limit, RV_PROTO_MAX_MSG, &out);
    cr_assert_null(err, "%s", rv_err_msg(err));
    cr_assert_eq(out->body_case, RIVULET__ENVELOPE__BODY_LIST_JOBS);
    rv_proto_free(out);
    free(at_limit);

    uint8_t *over = padded_envelope(RV_PROTO_MAX_MSG + 1);
    out = NULL;
    err = rv_proto_unpack(over, RV_PROTO_MAX_MSG + 1, &out);
    cr_assert_eq(rv_err_code(err), RV_ERR_CORRUPT);
    cr_assert_str_eq(rv_err_msg(err), "control message of 8388609 bytes exceeds the limit of 8388608 bytes");
    cr_assert_null(out);
    rv_err_free(err);
    free(over);
}

Test(rv_proto, pack_refuses_what_no_receiver_would_accept)
{
    fx f;
    fx_init(&f, RIVULET__ENVELOPE__BODY_SUBMIT_JOB);
    char *yaml = rep('y', RV_PROTO_MAX_MSG);
    f.sj.job_yaml = yaml;
    void *buf = (void *)(uintptr_t)1;
    size_t len = 7;
    rv_err *err = rv_proto_pack(&f.env, &buf, &len);
    cr_assert_eq(rv_err_code(err), RV_ERR_INVALID);
    /* 8 MiB of yaml + its 4-byte length + tag; the rest of the message. */
    cr_assert(strncmp(rv_err_msg(err), "submit_job message of 83886", 27) == 0, "%s", rv_err_msg(err));
    cr_assert(strstr(rv_err_msg(err), " bytes exceeds the control message limit of 8388608 bytes") != NULL);
    cr_assert_eq(buf, (void *)(uintptr_t)1);
    cr_assert_eq(len, 7);
    rv_err_free(err);
    free(yaml);
}

/* ---- body rules: each with its exact message ---- */

#define BAD(body) "invalid " body " message: "

Test(rv_proto, register_tm_rules)
{
    fx f;
    char *n256 = rep('n', 256), *n257 = rep('n', 257);
    fx_init(&f, RIVULET__ENVELOPE__BODY_REGISTER_TM);
    f.rtm.name = "";
    expect_corrupt(&f.env, BAD("register_tm") "register_tm.name is empty");
    f.rtm.name = n257;
    expect_corrupt(&f.env, BAD("register_tm") "register_tm.name is 257 bytes, over the limit of 256");
    f.rtm.name = n256;
    expect_ok(&f.env);

    fx_init(&f, RIVULET__ENVELOPE__BODY_REGISTER_TM);
    f.rtm.slots = 0;
    expect_corrupt(&f.env, BAD("register_tm") "register_tm.slots = 0 is out of range 1..4096");
    f.rtm.slots = 4097;
    expect_corrupt(&f.env, BAD("register_tm") "register_tm.slots = 4097 is out of range 1..4096");
    f.rtm.slots = 4096;
    expect_ok(&f.env);
    f.rtm.slots = 1;
    expect_ok(&f.env);

    fx_init(&f, RIVULET__ENVELOPE__BODY_REGISTER_TM);
    f.rtm.data_url = "";
    expect_corrupt(&f.env, BAD("register_tm") "register_tm.data_url is empty");
    f.rtm.data_url = "localhost:7100";
    expect_corrupt(&f.env, BAD("register_tm") "register_tm.data_url \"localhost:7100\" is not a valid URL "
                                              "(tcp://host:port, ipc://path or inproc://name)");
    char *long_url = rep('h', 257);
    memcpy(long_url, "tcp://", 6);
    memcpy(long_url + 252, ":7100", 5);
    f.rtm.data_url = long_url;
    expect_corrupt(&f.env, BAD("register_tm") "register_tm.data_url is 257 bytes, over the limit of 256");
    long_url[251] = '\0';
    long_url[250] = ':'; /* 251 bytes, but no port */
    char want[512];
    snprintf(want, sizeof(want),
             BAD("register_tm") "register_tm.data_url \"%s\" is not a valid URL (tcp://host:port, ipc://path or "
                                "inproc://name)",
             long_url);
    expect_corrupt(&f.env, want);
    free(long_url);
    free(n256);
    free(n257);
}

Test(rv_proto, register_ack_rules)
{
    fx f;
    fx_init(&f, RIVULET__ENVELOPE__BODY_REGISTER_ACK);
    f.ack.tm_index = 65536;
    expect_corrupt(&f.env, BAD("register_ack") "register_ack.tm_index = 65536 is out of range 0..65535");
    f.ack.tm_index = 65535;
    expect_ok(&f.env);
    f.ack.heartbeat_interval_ms = 0;
    expect_corrupt(&f.env, BAD("register_ack") "register_ack.heartbeat_interval_ms = 0 is out of range 1..600000");
    f.ack.heartbeat_interval_ms = 600001;
    expect_corrupt(&f.env,
                   BAD("register_ack") "register_ack.heartbeat_interval_ms = 600001 is out of range 1..600000");
    f.ack.heartbeat_interval_ms = 600000;
    expect_ok(&f.env);
}

Test(rv_proto, heartbeat_and_job_done_metrics_rules)
{
    fx f;
    fx_init(&f, RIVULET__ENVELOPE__BODY_HEARTBEAT);
    f.m[1].job_id = "";
    expect_corrupt(&f.env, BAD("heartbeat") "heartbeat.metrics[1].job_id is empty");
    fx_init(&f, RIVULET__ENVELOPE__BODY_HEARTBEAT);
    f.m[0].task = 65536;
    expect_corrupt(&f.env, BAD("heartbeat") "heartbeat.metrics[0].task = 65536 is out of range 0..65535");
    f.m[0].task = 65535;
    f.m[0].subtask = 70000;
    expect_corrupt(&f.env, BAD("heartbeat") "heartbeat.metrics[0].subtask = 70000 is out of range 0..65535");
    f.m[0].subtask = 65535;
    expect_ok(&f.env);

    fx_init(&f, RIVULET__ENVELOPE__BODY_JOB_DONE);
    f.m[0].job_id = "";
    expect_corrupt(&f.env, BAD("job_done") "job_done.metrics[0].job_id is empty");
}

Test(rv_proto, repeated_counts_are_bounded)
{
    fx f;
    size_t n = RV_PROTO_MAX_ITEMS + 1;
    Rivulet__SubtaskMetrics **mp = malloc(n * sizeof(*mp));
    fx_init(&f, RIVULET__ENVELOPE__BODY_HEARTBEAT);
    for (size_t i = 0; i < n; i++)
        mp[i] = &f.m[0];
    f.hb.metrics = mp;
    f.hb.n_metrics = n;
    expect_corrupt(&f.env, BAD("heartbeat") "heartbeat.metrics has 65537 entries, over the limit of 65536");
    f.hb.n_metrics = n - 1;
    expect_ok(&f.env);
    free(mp);

    fx_init(&f, RIVULET__ENVELOPE__BODY_DEPLOY_JOB);
    Rivulet__Placement **pp = malloc(n * sizeof(*pp));
    for (size_t i = 0; i < n; i++)
        pp[i] = &f.pl[0];
    f.dj.placements = pp;
    f.dj.n_placements = n;
    expect_corrupt(&f.env, BAD("deploy_job") "deploy_job.placements has 65537 entries, over the limit of 65536");
    free(pp);

    fx_init(&f, RIVULET__ENVELOPE__BODY_DEPLOY_JOB);
    Rivulet__TmAddress **tp = malloc(n * sizeof(*tp));
    for (size_t i = 0; i < n; i++)
        tp[i] = &f.tma[0];
    f.dj.tms = tp;
    f.dj.n_tms = n;
    expect_corrupt(&f.env, BAD("deploy_job") "deploy_job.tms has 65537 entries, over the limit of 65536");
    free(tp);

    char **sets = malloc(n * sizeof(*sets));
    for (size_t i = 0; i < n; i++)
        sets[i] = "k=v";
    fx_init(&f, RIVULET__ENVELOPE__BODY_SUBMIT_JOB);
    f.sj.set = sets;
    f.sj.n_set = n;
    expect_corrupt(&f.env, BAD("submit_job") "submit_job.set has 65537 entries, over the limit of 65536");
    fx_init(&f, RIVULET__ENVELOPE__BODY_DEPLOY_JOB);
    f.dj.set = sets;
    f.dj.n_set = n;
    expect_corrupt(&f.env, BAD("deploy_job") "deploy_job.set has 65537 entries, over the limit of 65536");
    free(sets);

    Rivulet__JobInfo **jp = malloc(n * sizeof(*jp));
    fx_init(&f, RIVULET__ENVELOPE__BODY_REPLY);
    for (size_t i = 0; i < n; i++)
        jp[i] = &f.ji[1];
    f.rp.jobs = jp;
    f.rp.n_jobs = n;
    expect_corrupt(&f.env, BAD("reply") "reply.jobs has 65537 entries, over the limit of 65536");
    free(jp);

    Rivulet__SubtaskInfo **sp = malloc(n * sizeof(*sp));
    fx_init(&f, RIVULET__ENVELOPE__BODY_REPLY);
    for (size_t i = 0; i < n; i++)
        sp[i] = &f.si[0];
    f.ji[1].subtasks = sp;
    f.ji[1].n_subtasks = n;
    expect_corrupt(&f.env, BAD("reply") "reply.jobs[1].subtasks has 65537 entries, over the limit of 65536");
    free(sp);
}

Test(rv_proto, deploy_job_rules)
{
    fx f;
    char *n257 = rep('j', 257), *path4097 = rep('p', 4097), *path4096 = rep('p', 4096);
    fx_init(&f, RIVULET__ENVELOPE__BODY_DEPLOY_JOB);
    f.dj.job_id = "";
    expect_corrupt(&f.env, BAD("deploy_job") "deploy_job.job_id is empty");
    f.dj.job_id = n257;
    expect_corrupt(&f.env, BAD("deploy_job") "deploy_job.job_id is 257 bytes, over the limit of 256");

    fx_init(&f, RIVULET__ENVELOPE__BODY_DEPLOY_JOB);
    f.dj.job_file = path4097;
    expect_corrupt(&f.env, BAD("deploy_job") "deploy_job.job_file is 4097 bytes, over the limit of 4096");
    f.dj.job_file = path4096;
    expect_ok(&f.env);
    f.dj.job_file = ""; /* optional */
    expect_ok(&f.env);

    fx_init(&f, RIVULET__ENVELOPE__BODY_DEPLOY_JOB);
    f.dj.job_yaml = "";
    expect_corrupt(&f.env, BAD("deploy_job") "deploy_job.job_yaml is empty");

    fx_init(&f, RIVULET__ENVELOPE__BODY_DEPLOY_JOB);
    f.dj.parallelism = 1025;
    expect_corrupt(&f.env, BAD("deploy_job") "deploy_job.parallelism = 1025 is out of range 0..1024");
    f.dj.parallelism = 0;
    expect_ok(&f.env);

    fx_init(&f, RIVULET__ENVELOPE__BODY_DEPLOY_JOB);
    f.sets[1] = "noequals";
    expect_corrupt(&f.env, BAD("deploy_job") "deploy_job.set[1] \"noequals\" is not key=value");
    f.sets[1] = "=v";
    expect_corrupt(&f.env, BAD("deploy_job") "deploy_job.set[1] \"=v\" is not key=value");

    fx_init(&f, RIVULET__ENVELOPE__BODY_DEPLOY_JOB);
    f.tma[1].name = "";
    expect_corrupt(&f.env, BAD("deploy_job") "deploy_job.tms[1].name is empty");
    fx_init(&f, RIVULET__ENVELOPE__BODY_DEPLOY_JOB);
    f.tma[0].data_url = "tcp://x";
    expect_corrupt(&f.env, BAD("deploy_job") "deploy_job.tms[0].data_url \"tcp://x\" is not a valid URL "
                                             "(tcp://host:port, ipc://path or inproc://name)");

    fx_init(&f, RIVULET__ENVELOPE__BODY_DEPLOY_JOB);
    f.dj.your_index = 2;
    expect_corrupt(&f.env, BAD("deploy_job") "deploy_job.your_index = 2 names no task manager (tms has 2)");
    f.dj.n_tms = 0;
    f.dj.n_placements = 0;
    f.dj.your_index = 0;
    expect_corrupt(&f.env, BAD("deploy_job") "deploy_job.your_index = 0 names no task manager (tms has 0)");

    fx_init(&f, RIVULET__ENVELOPE__BODY_DEPLOY_JOB);
    f.pl[2].tm_index = 2;
    expect_corrupt(&f.env,
                   BAD("deploy_job") "deploy_job.placements[2].tm_index = 2 names no task manager (tms has 2)");
    fx_init(&f, RIVULET__ENVELOPE__BODY_DEPLOY_JOB);
    f.pl[0].task = 65536;
    expect_corrupt(&f.env, BAD("deploy_job") "deploy_job.placements[0].task = 65536 is out of range 0..65535");
    fx_init(&f, RIVULET__ENVELOPE__BODY_DEPLOY_JOB);
    f.pl[1].subtask = 65536;
    expect_corrupt(&f.env, BAD("deploy_job") "deploy_job.placements[1].subtask = 65536 is out of range 0..65535");
    f.pl[1].subtask = 65535;
    expect_ok(&f.env);
    free(n257);
    free(path4097);
    free(path4096);
}

Test(rv_proto, job_id_bodies_rules)
{
    fx f;
    char *n257 = rep('j', 257);
    fx_init(&f, RIVULET__ENVELOPE__BODY_CANCEL_JOB);
    f.cj.job_id = "";
    expect_corrupt(&f.env, BAD("cancel_job") "cancel_job.job_id is empty");
    f.cj.job_id = n257;
    expect_corrupt(&f.env, BAD("cancel_job") "cancel_job.job_id is 257 bytes, over the limit of 256");
    fx_init(&f, RIVULET__ENVELOPE__BODY_RELEASE_JOB);
    f.rj.job_id = "";
    expect_corrupt(&f.env, BAD("release_job") "release_job.job_id is empty");
    fx_init(&f, RIVULET__ENVELOPE__BODY_GET_JOB);
    f.gj.job_id = n257;
    expect_corrupt(&f.env, BAD("get_job") "get_job.job_id is 257 bytes, over the limit of 256");
    fx_init(&f, RIVULET__ENVELOPE__BODY_CANCEL_REQUEST);
    f.cr.job_id = "";
    expect_corrupt(&f.env, BAD("cancel_request") "cancel_request.job_id is empty");
    fx_init(&f, RIVULET__ENVELOPE__BODY_JOB_DONE);
    f.jd.job_id = "";
    expect_corrupt(&f.env, BAD("job_done") "job_done.job_id is empty");
    free(n257);
}

Test(rv_proto, job_done_state_must_be_in_the_enum)
{
    fx f;
    fx_init(&f, RIVULET__ENVELOPE__BODY_JOB_DONE);
    f.jd.state = (Rivulet__JobOnTmDone__State)3;
    expect_corrupt(&f.env, BAD("job_done") "job_done.state = 3 is not FINISHED, FAILED or CANCELED");
    f.jd.state = (Rivulet__JobOnTmDone__State)-1;
    expect_corrupt(&f.env, BAD("job_done") "job_done.state = -1 is not FINISHED, FAILED or CANCELED");
    f.jd.state = RIVULET__JOB_ON_TM_DONE__STATE__CANCELED;
    expect_ok(&f.env);
    f.jd.state = RIVULET__JOB_ON_TM_DONE__STATE__FINISHED;
    expect_ok(&f.env);
}

Test(rv_proto, submit_job_rules)
{
    fx f;
    fx_init(&f, RIVULET__ENVELOPE__BODY_SUBMIT_JOB);
    f.sj.job_yaml = "";
    expect_corrupt(&f.env, BAD("submit_job") "submit_job.job_yaml is empty");
    char *yaml = rep('y', RV_PROTO_MAX_YAML + 1);
    f.sj.job_yaml = yaml;
    expect_corrupt(&f.env, BAD("submit_job") "submit_job.job_yaml is 4194305 bytes, over the limit of 4194304");
    yaml[RV_PROTO_MAX_YAML] = '\0';
    expect_ok(&f.env);
    free(yaml);

    fx_init(&f, RIVULET__ENVELOPE__BODY_SUBMIT_JOB);
    f.sj.parallelism = 1025;
    expect_corrupt(&f.env, BAD("submit_job") "submit_job.parallelism = 1025 is out of range 0..1024");
    fx_init(&f, RIVULET__ENVELOPE__BODY_SUBMIT_JOB);
    f.sets[0] = "x";
    expect_corrupt(&f.env, BAD("submit_job") "submit_job.set[0] \"x\" is not key=value");
    char *path = rep('p', 4097);
    fx_init(&f, RIVULET__ENVELOPE__BODY_SUBMIT_JOB);
    f.sj.job_file = path;
    expect_corrupt(&f.env, BAD("submit_job") "submit_job.job_file is 4097 bytes, over the limit of 4096");
    free(path);
    /* A long bad set item is quoted only in part. */
    char *item = rep('k', 100);
    fx_init(&f, RIVULET__ENVELOPE__BODY_SUBMIT_JOB);
    f.sets[0] = item;
    expect_corrupt(&f.env, BAD("submit_job") "submit_job.set[0] \""
                                             "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
                                             "\" is not key=value");
    free(item);
}

Test(rv_proto, reply_rules)
{
    fx f;
    char *n257 = rep('j', 257);
    fx_init(&f, RIVULET__ENVELOPE__BODY_REPLY);
    f.rp.job_id = n257;
    expect_corrupt(&f.env, BAD("reply") "reply.job_id is 257 bytes, over the limit of 256");
    f.rp.job_id = ""; /* a reply to list or get carries no job id */
    expect_ok(&f.env);
    fx_init(&f, RIVULET__ENVELOPE__BODY_REPLY);
    f.ji[0].job_id = "";
    expect_corrupt(&f.env, BAD("reply") "reply.jobs[0].job_id is empty");
    free(n257);
}

/* ---- hostile input ---- */

/* The reference: the rules restated independently of rv_proto.c. */
static bool ref_name(const char *s) { return s[0] && strlen(s) <= 256; }

static bool ref_url(const char *s)
{
    return ref_name(s) && (strncmp(s, "tcp://", 6) == 0 || strncmp(s, "inproc://", 9) == 0 ||
                           strncmp(s, "ipc://", 6) == 0);
}

static bool ref_metrics(Rivulet__SubtaskMetrics **m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!ref_name(m[i]->job_id) || m[i]->task > 65535 || m[i]->subtask > 65535)
            return false;
    return n <= 65536;
}

static bool ref_sets(char **set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (set[i][0] == '=' || !strchr(set[i], '='))
            return false;
    return n <= 65536;
}

static bool ref_valid(const rv_envelope *e)
{
    if (e->version != 1)
        return false;
    switch (e->body_case) {
    case RIVULET__ENVELOPE__BODY_REGISTER_TM:
        return ref_name(e->register_tm->name) && e->register_tm->slots >= 1 && e->register_tm->slots <= 4096 &&
               ref_url(e->register_tm->data_url);
    case RIVULET__ENVELOPE__BODY_REGISTER_ACK:
        return e->register_ack->tm_index < 65536 && e->register_ack->heartbeat_interval_ms >= 1 &&
               e->register_ack->heartbeat_interval_ms <= 600000;
    case RIVULET__ENVELOPE__BODY_HEARTBEAT: return ref_metrics(e->heartbeat->metrics, e->heartbeat->n_metrics);
    case RIVULET__ENVELOPE__BODY_DEPLOY_JOB: {
        const Rivulet__DeployJob *d = e->deploy_job;
        if (!ref_name(d->job_id) || !d->job_yaml[0] || strlen(d->job_yaml) > RV_PROTO_MAX_YAML ||
            strlen(d->job_file) > 4096 || d->parallelism > 1024 || !ref_sets(d->set, d->n_set) ||
            d->your_index >= d->n_tms)
            return false;
        for (size_t i = 0; i < d->n_tms; i++)
            if (!ref_name(d->tms[i]->name) || !ref_url(d->tms[i]->data_url))
                return false;
        for (size_t i = 0; i < d->n_placements; i++)
            if (d->placements[i]->tm_index >= d->n_tms || d->placements[i]->task > 65535 ||
                d->placements[i]->subtask > 65535)
                return false;
        return true;
    }
    case RIVULET__ENVELOPE__BODY_CANCEL_JOB: return ref_name(e->cancel_job->job_id);
    case RIVULET__ENVELOPE__BODY_JOB_DONE:
        return ref_name(e->job_done->job_id) && (unsigned)e->job_done->state <= 2 &&
               ref_metrics(e->job_done->metrics, e->job_done->n_metrics);
    case RIVULET__ENVELOPE__BODY_RELEASE_JOB: return ref_name(e->release_job->job_id);
    case RIVULET__ENVELOPE__BODY_SUBMIT_JOB:
        return e->submit_job->job_yaml[0] && strlen(e->submit_job->job_yaml) <= RV_PROTO_MAX_YAML &&
               strlen(e->submit_job->job_file) <= 4096 && e->submit_job->parallelism <= 1024 &&
               ref_sets(e->submit_job->set, e->submit_job->n_set);
    case RIVULET__ENVELOPE__BODY_LIST_JOBS: return true;
    case RIVULET__ENVELOPE__BODY_GET_JOB: return ref_name(e->get_job->job_id);
    case RIVULET__ENVELOPE__BODY_CANCEL_REQUEST: return ref_name(e->cancel_request->job_id);
    case RIVULET__ENVELOPE__BODY_REPLY:
        if (strlen(e->reply->job_id) > 256)
            return false;
        for (size_t i = 0; i < e->reply->n_jobs; i++)
            if (!ref_name(e->reply->jobs[i]->job_id))
                return false;
        return true;
    default: return false;
    }
}

/* Unpacks buf; if accepted, the result must satisfy the reference. */
static bool try_unpack(const uint8_t *buf, size_t len)
{
    rv_envelope *e = NULL;
    rv_err *err = rv_proto_unpack(buf, len, &e);
    if (err) {
        cr_assert(rv_err_code(err) == RV_ERR_CORRUPT || rv_err_code(err) == RV_ERR_INVALID);
        cr_assert_null(e);
        rv_err_free(err);
        return false;
    }
    cr_assert(ref_valid(e), "accepted an invalid %s message", rv_proto_body_name(e));
    rv_proto_free(e);
    return true;
}

Test(rv_proto, every_prefix_of_valid_messages_is_safe)
{
    fx f;
    size_t accepted = 0, refused = 0;
    for (size_t b = 0; b < N_BODIES; b++) {
        fx_init(&f, all_bodies[b]);
        size_t len;
        uint8_t *buf = pack(&f.env, &len);
        for (size_t n = 0; n < len; n++) {
            /* A copy of exactly n bytes, so ASan sees any read past it. */
            uint8_t *cut = malloc(n ? n : 1);
            memcpy(cut, buf, n);
            if (try_unpack(cut, n))
                accepted++;
            else
                refused++;
            free(cut);
        }
        cr_assert(try_unpack(buf, len), "the whole %zu-byte message is accepted", len);
        free(buf);
    }
    /* Prefixes that end between fields can be valid messages; most are not. */
    cr_assert_gt(refused, accepted);
    cr_assert_gt(refused, 0);
}

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

Test(rv_proto, random_bytes_never_crash)
{
    uint64_t seed = 0x5eed5eed12345678ULL;
    uint8_t *buf = malloc(512);
    size_t accepted = 0;
    for (int i = 0; i < 10000; i++) {
        size_t n = next_rand(&seed) % 512;
        for (size_t k = 0; k < n; k++)
            buf[k] = (uint8_t)next_rand(&seed);
        /* Half the inputs start like an envelope so the parser gets deeper. */
        if (i % 2 && n >= 3) {
            buf[0] = 0x08;
            buf[1] = 0x01;
        }
        accepted += try_unpack(buf, n);
    }
    free(buf);
    cr_assert_lt(accepted, 10000);
}

Test(rv_proto, mutated_messages_never_crash_and_accepted_ones_are_valid)
{
    uint64_t seed = 0x0123456789abcdefULL;
    fx f;
    size_t accepted = 0;
    for (int i = 0; i < 10000; i++) {
        fx_init(&f, all_bodies[(size_t)i % N_BODIES]);
        size_t len;
        uint8_t *buf = pack(&f.env, &len);
        int flips = 1 + (int)(next_rand(&seed) % 4);
        for (int k = 0; k < flips; k++)
            buf[next_rand(&seed) % len] = (uint8_t)next_rand(&seed);
        accepted += try_unpack(buf, len);
        free(buf);
    }
    /* Some mutations hit only values and must still be checked and accepted. */
    cr_assert_gt(accepted, 0);
    cr_assert_lt(accepted, 10000);
}

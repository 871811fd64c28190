/* rv_proto: control-plane messages on the wire — packing and validated
 * unpacking of rivulet.Envelope (proto/rivulet.proto, compiled by
 * protoc-c).
 *
 * Every received message goes through rv_proto_unpack, which rejects
 * anything a peer could get wrong or forge: a bad protobuf encoding, a
 * message over RV_PROTO_MAX_MSG, another protocol version (the error names
 * both versions), an envelope without a body, and bodies whose fields are
 * out of range (empty ids, ids or names longer than RV_PROTO_MAX_NAME,
 * slots of 0 or above 4096, placements naming unknown task managers,
 * more than RV_PROTO_MAX_ITEMS repeated items, a YAML text over
 * RV_PROTO_MAX_YAML, ...). Callers may then trust every field. Thread-safe
 * (no shared state). */
#ifndef RV_PROTO_H
#define RV_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "rivulet.pb-c.h"
#include "rv_err.h"

#define RV_PROTO_VERSION 1
#define RV_PROTO_MAX_MSG (8u << 20)  /* bytes of one control message */
#define RV_PROTO_MAX_YAML (4u << 20) /* bytes of a job file */
#define RV_PROTO_MAX_NAME 256        /* bytes of an id, name or URL */
#define RV_PROTO_MAX_ITEMS 65536     /* entries of a repeated field */

typedef Rivulet__Envelope rv_envelope;

/* Initialises env as an empty envelope of this protocol version. */
void rv_proto_init(rv_envelope *env);
/* Serialises env into a new buffer (*buf, freed with free()). */
rv_err *rv_proto_pack(const rv_envelope *env, void **buf, size_t *len);
/* Parses and validates buf[0..len). On success *out is owned by the
 * caller (rv_proto_free). Errors are RV_ERR_CORRUPT (encoding, limits,
 * fields) or RV_ERR_INVALID (version), with a message saying what. */
rv_err *rv_proto_unpack(const void *buf, size_t len, rv_envelope **out);
void rv_proto_free(rv_envelope *env); /* accepts NULL */
/* The body's name for logs ("register_tm", "deploy_job", ...). */
const char *rv_proto_body_name(const rv_envelope *env);

#endif

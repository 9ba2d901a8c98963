/*
 * msg: the message catalogue.
 *
 * A message is one msgpack map with the key "t" naming its type and the
 * type's fields beside it.  Bodies are handled as jansson objects: msg_pack
 * turns a type plus a json object of fields into frame bytes; msg_unpack
 * turns frame bytes into a type plus a json object whose fields have been
 * checked against the catalogue below (every required field present with
 * the right type, every optional field, when present, of the right type).
 * Unknown fields are ignored (forward compatibility); an unknown type, a
 * missing or mistyped field, trailing bytes, or bytes that are not msgpack
 * are errors with a reason.  Handlers can therefore json_object_get() a
 * required field and use it without checking again.
 *
 * Supervisor <-> worker (pipe):
 *   config    S->W  name:str agent:obj [secrets:obj] [state_dir:str]
 *                   [api_key_error:str]
 *   ready     W->S  tools:arr [pid:int]
 *   run       S->W  run_id:int attempt:int session_id:str run_count:int kwargs:obj
 *   run_ack   W->S  run_id:int
 *   cancel    S->W  run_id:int [reason:str]
 *   event     W->S  type:str payload:obj [run_id:int]
 *   mem_store W->S  memory_type:str role:str content:str [metadata:obj]
 *   mem_query W->S  req_id:int memory_type:str limit:int [query:str]
 *   mem_recall W->S req_id:int query:str limit:int [memory_types:arr]
 *   mem_reply S->W  req_id:int items:arr [error:str] [degraded:bool] [reason:str]
 *   result    W->S  run_id:int ok:bool [result:any] [error:str] [retryable:bool]
 *                   [retry_after_ms:int] [cancelled:bool] [usage:obj]
 *   log       W->S  level:str msg:str
 *   shutdown  S->W  (no fields)
 *
 * agentctl <-> agentd (control socket):
 *   request   C->S  cmd:str [agent:str] [args:obj]
 *   response  S->C  ok:bool [error:str] [code:int] [data:any] [cursor:int]
 *   record    S->C  event:obj   (one stored event, for `events -f`)
 *
 * mem_query reads the newest `limit` items of a type (the query is not
 * used); mem_recall is query_both_memory_types (store.h): the items most
 * related to the query among memory_types (default episodic and
 * long_term), each with its score; `degraded` says words alone ranked
 * them, and `reason` why.  Either answers in a mem_reply with its req_id.
 *
 * A response's `code` (when not ok) is one of enum resp_code below.  The
 * commands and their args are proto/cmd.h's catalogue.
 *
 * `events` args: [limit:int] [after:int] [follow:bool] [session_id:str]
 * [type:str] (the last two: only events of that session, of that type).
 * Without `after`, the newest `limit` (default 20) events; with it, those
 * with a larger id (at most `limit`, default all).  The answer is cut to a
 * page that fits a frame; a page cut short has `cursor`, the id to ask
 * `after` next (a client that does not know cursor just reads the first
 * page).  `follow` takes effect with the page that has no cursor: record
 * frames follow from the next event on.  `run` args: [kwargs:obj], at
 * most VALUE_DEPTH_MAX deep and KWARGS_MAX bytes (common/limits.h).
 */
#ifndef AGENTD_MSG_H
#define AGENTD_MSG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum msg_type {
	MSG_CONFIG = 0,
	MSG_READY,
	MSG_RUN,
	MSG_RUN_ACK,
	MSG_CANCEL,
	MSG_EVENT,
	MSG_MEM_STORE,
	MSG_MEM_QUERY,
	MSG_MEM_REPLY,
	MSG_MEM_RECALL,
	MSG_RESULT,
	MSG_LOG,
	MSG_SHUTDOWN,
	MSG_REQUEST,
	MSG_RESPONSE,
	MSG_RECORD,
	MSG__COUNT
};

/* A response's code: one list for agentd and agentctl, and, through
 * their tables, agentctl's exit codes and the HTTP API's statuses.  A new
 * code goes at the end; a client that does not know it takes it for
 * RESP_REFUSED. */
enum resp_code {
	RESP_OK = 0,
	RESP_REFUSED = 1,        /* a valid request not done, said why: a skipped run, a
	                          * reload the file refuses, a peer agentd does not serve */
	RESP_BAD_REQUEST = 2,    /* malformed, an unknown command, args out of bounds */
	RESP_UNKNOWN_AGENT = 3,
	RESP_UNAVAILABLE = 4,    /* agentd cannot answer it now: a store query failed */
	RESP_PRECONDITION = 5,   /* a write whose if_match is not the agent's ETag now */
	RESP__COUNT
};

const char *msg_type_name(enum msg_type t);

/* "config" -> MSG_CONFIG; -1 when unknown. */
int msg_type_lookup(const char *name);

/*
 * Encode: a frame (4-byte length + msgpack map {"t": name, ...fields}) is
 * appended to out.  fields may be NULL for no fields; it is not consumed.
 * Returns 0, or -1 if fields is not an object.
 */
struct buf;
int msg_pack(enum msg_type t, const json_t *fields, struct buf *out);

/* Encode the msgpack map only (no frame header) into a malloc'd buffer. */
int msg_pack_body(enum msg_type t, const json_t *fields, char **data, size_t *len);

/*
 * Decode one frame payload (the msgpack bytes, no header).  On success
 * returns 0, *t and *fields (a new reference; the "t" key removed).  On
 * failure returns -1 and writes a reason into err.
 */
int msg_unpack(const uint8_t *p, size_t len, enum msg_type *t, json_t **fields,
    char *err, size_t errlen);

/*
 * The bounds of common/limits.h on what a worker sends (event payloads, a
 * run's result with its usage, memory content and metadata): 0, or -1
 * with what is over which bound in err.  agentd checks every message from
 * a worker with it, and the worker every message before it sends it.
 */
int msg_check_bounds(enum msg_type t, const json_t *fields, char *err, size_t errlen);

#endif

/*
 * limits: the one set of bounds on what enters agentd, shared by every
 * program and every entry point (the config file, the control socket, a
 * worker's pipe, the HTTP API).
 *
 * The rule: a bound is checked where input enters, against these numbers,
 * so that nothing accepted can fail later.  That only holds if the bounds
 * agree with each other, so they are derived from one another here rather
 * than chosen at each entry point:
 *
 *   - Every value a user or a peer supplies (an agent's spec, a run's
 *     kwargs, an event payload, memory metadata, a run's result, a control
 *     request's args) nests at most VALUE_DEPTH_MAX containers.  agentd
 *     wraps such a value in at most VALUE_ENVELOPE_DEPTH more levels when
 *     it sends it on (a `record` frame: map -> event -> payload -> value),
 *     so a value accepted at its entry always fits the wire's bound,
 *     MSG_DEPTH_MAX, wherever it goes next.
 *   - Sizes are compact-JSON bytes.  An agent's spec travels in one
 *     `config` frame with its secrets; an event travels in one `record`
 *     frame and in a page of `events`; each bound leaves room in
 *     FRAME_MAX for what is sent with it.
 */
#ifndef AGENTD_LIMITS_H
#define AGENTD_LIMITS_H

#define FRAME_MAX (4u << 20)             /* one frame's payload, both ways */

#define MSG_DEPTH_MAX 32                 /* containers in one message, the map included */
#define VALUE_ENVELOPE_DEPTH 8           /* levels agentd may add around a value */
#define VALUE_DEPTH_MAX (MSG_DEPTH_MAX - VALUE_ENVELOPE_DEPTH)

#define CONFIG_FILE_MAX (16u << 20)      /* a configuration file */
/* Nodes of a configuration's YAML tree, every node an alias adds included
 * (an alias is expanded: a copy of its anchor): beyond any real file (a
 * thousand agents of 250 nodes each), and small enough (~30 MB at ~120
 * bytes a node) that an alias bomb is refused long before it strains
 * agentd, even on a reload beside the running configuration.  Aliases are
 * counted too, as go-yaml does, so a flood of tiny ones is named as such. */
#define CONFIG_NODES_MAX (1u << 18)
#define CONFIG_ALIASES_MAX (1u << 14)
#define SPEC_MAX (1u << 20)              /* one agent's spec, as sent to its worker */
#define SECRETS_MAX (256u << 10)         /* the secrets sent with it */
#define KWARGS_MAX (256u << 10)          /* a run's kwargs from a request */
#define EVENT_PAYLOAD_MAX (1u << 20)     /* one event's payload (a run's result included) */
#define MEMORY_CONTENT_MAX (256u << 10)  /* one memory item's content */
#define CTL_REQUEST_MAX (1u << 20)       /* one control request frame */

/*
 * On the wire a value may take more bytes than its compact JSON: msgpack
 * gives every float 9 bytes, where JSON can say "1.0," in 4; nothing else
 * grows (a header byte or two for a long string or container, where JSON
 * spends two on quotes or brackets).  So n JSON bytes take at most
 * WIRE_BYTES(n) in a frame.
 */
#define WIRE_BYTES(n) ((n) / 4 * 9 + 64)

/* The largest event agentd stores: a payload from a worker (or a run's
 * result) with the few fields agentd adds, or a run's start, whose kwargs
 * are the agent's task_config (part of its spec) with the request's kwargs
 * over it.  A record frame, and a page of `events`, hold one. */
#define EVENT_ENVELOPE_MAX (64u << 10)
#define EVENT_MAX ((EVENT_PAYLOAD_MAX > SPEC_MAX + KWARGS_MAX ? EVENT_PAYLOAD_MAX : \
    SPEC_MAX + KWARGS_MAX) + EVENT_ENVELOPE_MAX)
/* An answer to `events` is cut to pages of this many JSON bytes (or one
 * event, when that is larger); agentctl asks for the next page. */
#define EVENTS_PAGE_MAX (512u << 10)

/* Memory items in one answer (a worker's context, `agentctl memory`): the
 * newest that fit this many JSON bytes (the newest always). */
#define MEMORY_REPLY_MAX (1u << 20)

/* Recall (query_both_memory_types: the recall tool, agentctl memory
 * --query, a run's context): a query's text, and the hits one answer holds
 * (the best that fit MEMORY_REPLY_MAX, the best always). */
#define RECALL_QUERY_MAX (8u << 10)
#define RECALL_LIMIT_MAX 50

/* Embeddings.  What of a memory item is embedded: its first 8 KiB (about
 * 2000 tokens), within the context of the small local models too (512
 * tokens cut the rest, 2048 and more take it whole); what decides whether
 * a memory is related is nearly always at its start.  Vectors of up to
 * EMBED_DIM_MAX coordinates (text-embedding-3-large has 3072), at most
 * EMBED_BATCH_MAX texts in one request (OpenAI takes 2048), and an answer
 * of at most EMBED_REPLY_MAX bytes (64 vectors of 3072 floats are 5 MB of
 * JSON). */
#define EMBED_INPUT_MAX (8u << 10)
#define EMBED_DIM_MAX 8192
#define EMBED_BATCH_MAX 256
#define EMBED_REPLY_MAX (32u << 20)

/* A remote vector store's answer: a search's hits (at most 200 candidates,
 * ids and scores, a few KiB), a collection's description, the list of
 * collections (one per model and dimension) -- never vectors or content,
 * which agentd does not ask back. */
#define VSTORE_REPLY_MAX (1u << 20)

/* The control socket: connections at once (followers included; one more
 * is told why and closed), and how long a client that is not following
 * may take to complete its next request frame (one that stops mid-frame
 * holds a buffer of up to CTL_REQUEST_MAX). */
#define CTL_CLIENTS_MAX 64
#define CTL_IDLE_MS 10000

/* A filter's text in a request (an event type, a session id, a memory
 * type): longer than any name agentd makes, so a longer one matches
 * nothing and is refused as what it is. */
#define FILTER_MAX 512

/*
 * The HTTP listener.  A request's body holds at most an agent's spec
 * (SPEC_MAX compact, and room for a person's indentation) or a run's
 * kwargs; its request line and headers fit the memory each connection is
 * given (MHD's pool: what is left of it buffers the body as it arrives and
 * the headers of the answer).  At most HTTP_CLIENTS_MAX connections per
 * listener, streams included (one more is closed at once); one that does
 * nothing for HTTP_IDLE_MS is closed -- a stream waiting for events is not
 * idle.  A bearer token is at most HTTP_TOKEN_MAX bytes, and at least
 * HTTP_TOKEN_MIN, so that it cannot be guessed.
 */
#define HTTP_BODY_MAX (2 * SPEC_MAX)
#define HTTP_CONN_MEMORY (64u << 10)
#define HTTP_CLIENTS_MAX 64
#define HTTP_IDLE_MS 10000
#define HTTP_TOKEN_MIN 16
#define HTTP_TOKEN_MAX 4096

/* Agents created over the API.  Each is a worker process and a config in
 * the state db that is read back whole at every start, so a client that
 * creates in a loop must meet a bound before the host's process table or
 * agentd's start time does: 1024, as many as a file of agents holds in
 * practice (the benchmarks run 1000). */
#define API_AGENTS_MAX 1024

/* The dashboard.  A browser's login is a session (its id in an HttpOnly
 * cookie, and a CSRF token for its forms): at most HTTP_SESSIONS_MAX at
 * once (a new one pushes out the oldest), each good for HTTP_SESSION_MS.
 * The page shows every agent, so what it shows of each is bounded: its
 * newest DASH_EVENTS events and DASH_STDERR stderr lines, and DASH_TEXT_MAX
 * bytes of any one text (an error, a stderr line, an event's payload); and
 * it is rendered as it is sent, DASH_ROWS_PER_PASS agents each pass of the
 * loop, so that 1000 agents never hold the loop for long. */
#define HTTP_SESSIONS_MAX 64
#define HTTP_SESSION_MS (12 * 3600 * 1000LL)
#define DASH_EVENTS 3
#define DASH_STDERR 5
#define DASH_ROWS_PER_PASS 20
#define DASH_TEXT_MAX 240

/* What agentd holds in memory while its state db takes no writes (a full
 * disk, an I/O error): at most this many events (and never more than
 * event_retention, what the log would keep of them) and this many bytes of
 * events and memory rows together.  Past them the newest are dropped,
 * counted, and reported as events_dropped once the db takes writes again.
 * Room for several of the largest events and memory items at once. */
#define STORE_PENDING_EVENTS 10000
#define STORE_PENDING_BYTES (16u << 20)

/* The most tokens one model request may say it used (a worker's
 * model_request event): a larger count is a worker's lie, left out of
 * /metrics's counters, which it could otherwise wrap. */
#define TOKENS_PER_REQUEST_MAX (1ll << 32)

_Static_assert(SPEC_MAX + SECRETS_MAX + (64u << 10) <= FRAME_MAX,
    "a config frame must hold the largest spec with its secrets");
_Static_assert(EVENT_PAYLOAD_MAX + (64u << 10) <= FRAME_MAX,
    "a record frame must hold the largest event");
_Static_assert(WIRE_BYTES(EVENT_MAX > EVENTS_PAGE_MAX ? EVENT_MAX : EVENTS_PAGE_MAX) +
    (64u << 10) <= FRAME_MAX, "a page of events, or the largest event, must fit a frame");
_Static_assert(2 * MEMORY_CONTENT_MAX + (64u << 10) <= MEMORY_REPLY_MAX &&
    WIRE_BYTES(MEMORY_REPLY_MAX) + (64u << 10) <= FRAME_MAX,
    "an answer must hold the largest memory item, and fit a frame");
_Static_assert(KWARGS_MAX <= HTTP_BODY_MAX && SPEC_MAX <= HTTP_BODY_MAX,
    "a request body must hold the largest kwargs and the largest spec");
_Static_assert(KWARGS_MAX + (64u << 10) <= CTL_REQUEST_MAX,
    "a request frame must hold the largest kwargs");
_Static_assert(STORE_PENDING_BYTES >= 8 * (EVENT_MAX + MEMORY_CONTENT_MAX),
    "the pending bound must hold several of the largest writes");
_Static_assert(VALUE_DEPTH_MAX > 0, "the envelope leaves no room for values");

#endif

/*
 * limits: the one set of bounds on what enters agentd, shared by every
 * program and every entry point (the config file, the control socket, a
 * worker's pipe, later the HTTP API).
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
#define SPEC_MAX (1u << 20)              /* one agent's spec, as sent to its worker */
#define SECRETS_MAX (256u << 10)         /* the secrets sent with it */
#define KWARGS_MAX (256u << 10)          /* a run's kwargs from a request */
#define EVENT_PAYLOAD_MAX (1u << 20)     /* one event's payload (a run's result included) */
#define MEMORY_CONTENT_MAX (256u << 10)  /* one memory item's content */
#define CTL_REQUEST_MAX (1u << 20)       /* one control request frame */

_Static_assert(SPEC_MAX + SECRETS_MAX + (64u << 10) <= FRAME_MAX,
    "a config frame must hold the largest spec with its secrets");
_Static_assert(EVENT_PAYLOAD_MAX + (64u << 10) <= FRAME_MAX,
    "a record frame must hold the largest event");
_Static_assert(VALUE_DEPTH_MAX > 0, "the envelope leaves no room for values");

#endif

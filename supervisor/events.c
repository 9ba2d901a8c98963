/*
 * events: stamping and publishing.
 *
 * Every event gets its identity here and nowhere else: a UUID event_id, the
 * agent's next sequence number (persisted with the agent's state, so it
 * keeps growing across restarts of agentd), the agent's name and a
 * wall-clock timestamp.  It is then appended to the event store (inside the
 * loop pass's transaction) and pushed to every `agentctl events -f`
 * follower, in that order, so a follower never sees an event the store
 * does not have; the HTTP API's event streams read it from the store once
 * it is committed (sse.c).  Before any of that it is redacted with every
 * secret agentd knows (secrets.c): this is the one door to the event log,
 * Redis, the followers and the streams, for agentd's own events as for
 * workers'.
 */
#include <stdlib.h>
#include <string.h>
#include "common/jsonmp.h"
#include "common/log.h"
#include "common/redact.h"
#include "common/util.h"
#include "supervisor/relay.h"
#include "supervisor/store.h"
#include "supervisor/sup.h"

void
event_emit(struct agent *a, const char *type, json_t *payload)
{
	struct event ev = { 0 };

	if (payload == NULL)	/* json_pack failed: a bug, but never lose the event */
		payload = json_object();
	/* Consumers read by session (the seed's per-session streams): every
	 * event says which session it belongs to. */
	if (json_object_get(payload, "session_id") == NULL)
		json_object_set_new(payload, "session_id", json_string(a->st.session_id));
	uuid4(ev.event_id);
	ev.type = type;
	ev.agent_name = a->name;
	ev.seq = ++a->st.seq;
	ev.timestamp = wall_ms();
	char *pj = json_dumps_short(payload, JSON_COMPACT);	/* once, for the store and the relay */
	if (pj && redact_hit_json(a->sup->secrets, pj, strlen(pj))) {
		/* Rare: a secret is in it.  The rest of the time the look is
		 * one pass over text made anyway. */
		payload = sup_redact(a->sup, payload);
		free(pj);
		pj = json_dumps_short(payload, JSON_COMPACT);
	}
	ev.payload = payload;
	ev.payload_json = pj;
	int rc = store_event_append(a->sup->store, &ev);
	if (rc < 0)
		log_agent(LL_ERROR, a->name, "event %s (seq %lld) could not be stored",
		    type, (long long)ev.seq);
	else if (rc == 0)	/* 1: past the store's bound, counted for events_dropped */
		relay_offer(a->sup->relay, &ev, pj ? pj : "{}");
	free(pj);
	agent_save_later(a);	/* the seq, in this pass's commit */
	events_followers_publish(a->sup, &ev);
	http_events_published(a->sup, &ev);
	json_decref(payload);
}

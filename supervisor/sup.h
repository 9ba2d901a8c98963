/*
 * sup: the supervisor's internal model.
 *
 * One process, one thread, one epoll set (loop.c).  Every piece of state has
 * one owner:
 *   struct sup     the running config, the agents, the store, the control
 *                  socket and its clients; global shutdown state.
 *   struct agent   one per configured agent: its worker process (pid, pipe,
 *                  stderr pipe), its schedule, its current run, its restart
 *                  history and its persisted counters (struct agent_state).
 * Time is owned by the deadline heap (timer.c): every wait (schedule,
 * backoff, ack, run timeout, kill grace) is a struct timer embedded in the
 * object it belongs to, so nothing polls and nothing wakes without reason.
 */
#ifndef AGENTD_SUP_H
#define AGENTD_SUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>
#include "conf/config.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "supervisor/loop.h"
#include "supervisor/metrics.h"
#include "supervisor/store.h"

enum wstate {
	W_STOPPED = 0,   /* no process, none coming (restart: never, or removed) */
	W_STARTING,      /* spawned, config sent, waiting for `ready` */
	W_IDLE,          /* ready, no run on the worker */
	W_RUNNING,       /* a run attempt is on the worker */
	W_STOPPING,      /* asked to exit (shutdown sent / killed), waiting for SIGCHLD */
	W_BACKOFF,       /* waiting on restart_timer */
	W_FATAL,         /* crash budget spent: waits for `agentctl restart` */
	W_WAITING,       /* no worker: its start failed for want of host resources
	                  * (descriptors, processes, memory); tried again on
	                  * restart_timer, outside the crash budget */
	W_RETRYING,      /* idle, and a run waits on retry_timer for its next attempt */
	W__COUNT
};

/* What became of a request for a run. */
enum run_outcome {
	RUN_STARTED,     /* a new run began */
	RUN_QUEUED,      /* it waits behind the current one (overlap: queue) */
	RUN_RETRY_NOW,   /* the current run's waiting attempt goes now */
	RUN_SKIPPED,     /* not run: agent->skip_reason says why */
};

/* What to do once a worker we asked to stop has exited. */
enum after_exit { AFTER_NONE = 0, AFTER_RESPAWN, AFTER_REMOVE, AFTER_STAY_DOWN };

#define STDERR_KEEP 10      /* lines of a worker's stderr kept for its exit event */
#define RESTART_HISTORY 64  /* restart timestamps remembered for the budget */
#define QUEUE_MAX 16        /* overlap: queue keeps at most this many runs waiting */

struct run {
	int64_t run_id;          /* = run_count at its start */
	int attempt;             /* 1-based */
	int64_t started_wall;    /* the run's start (first attempt) */
	int64_t started_us;      /* the same, monotonic (its duration) */
	int64_t attempt_mono;    /* the current attempt's dispatch */
	int64_t attempt_us;      /* the same, in microseconds */
	json_t *kwargs;          /* given to the task, echoed in started event */
	bool manual;
	bool dispatched;         /* the current attempt is on the worker */
	bool acked;
	bool timed_out;          /* run_timeout passed: failure is "timeout" */
	char *cancel_reason;     /* non-NULL once a cancel was sent */
	int64_t retry_after_ms;  /* server-suggested delay of the last failure */
	int64_t retry_at;        /* wall ms the next attempt is due, while retry_timer runs */
};

struct agent {
	struct sup *sup;
	char *name;
	struct agent_conf *conf;       /* owned copy */
	struct agent_state st;         /* persisted counters */
	struct agent_metrics m;        /* the rest, since agentd started (metrics.h) */
	char *dir;                     /* <state_dir>/agents/<name> */

	enum wstate state;
	int64_t state_mono;            /* when it went into it (readiness) */
	bool was_up;                   /* a worker of it was ready since agentd started */
	enum after_exit after;
	pid_t pid;
	int64_t spawned_mono;
	int64_t spawned_wall;
	struct watch io;               /* the socketpair end */
	struct frame_reader rd;
	struct wqueue wq;
	struct watch errio;            /* the worker's stdout+stderr pipe */
	char errline[1024];
	size_t errlen;
	bool errcut;                   /* errline lost bytes past its end */
	char *errkeep[STDERR_KEEP];    /* ring of last stderr lines */
	unsigned errkeep_next;
	char *fault;                   /* why we killed it (protocol fault...) */
	char *cgroup;                  /* cgroup name, NULL when none */
	bool ready_seen;               /* this worker has sent `ready` */
	json_t *tools;                 /* from `ready` */
	json_t *mcp;                   /* server -> its last mcp_server_status */
	char *last_error;
	char skip_reason[200];         /* why the last requested run did not run */
	char *key_error;               /* the model key it needs and cannot have, or NULL */
	struct mem_recall recall;      /* the worker's recall being answered */
	json_int_t recall_req;         /* ... its req_id */
	bool last_failed;              /* the last finished run failed */
	int64_t last_duration_ms;      /* its last attempt's; -1: none finished yet */
	bool unsaved;                  /* st changed since agent_save */

	struct run *cur;
	int queued;
	int64_t sched_at_wall;         /* the scheduled instant the sched timer waits for */

	int64_t restarts[RESTART_HISTORY]; /* mono ms of recent unplanned restarts */
	unsigned nrestarts;
	int backoff_step;              /* consecutive quick crashes */
	int start_failures;            /* consecutive starts the host had no room for */

	struct timer sched_timer;      /* next scheduled run */
	struct timer restart_timer;    /* backoff before respawn */
	struct timer ack_timer;        /* ready / run_ack deadline */
	struct timer run_timer;        /* run_timeout */
	struct timer kill_timer;       /* grace after cancel/shutdown, then SIGKILL */
	struct timer retry_timer;      /* delay before the next attempt */

	bool in_list;

	/* Ownership (apiagents.c): the file's, or created over the API. */
	bool api;                      /* owner "api" */
	json_t *given;                 /* api: its config as given (export, merge patches) */
	char *etag;                    /* api: the digest of given */
	char *conf_error;              /* api: its stored config no longer loads: why; not started */
};

struct ctl_client;

struct sup {
	struct config *cfg;
	char *config_path;
	struct store *store;
	struct relay *relay;       /* Redis: events, memory and state lanes as configured */
	struct redact *secrets;    /* every secret agentd knows (secrets.c) */
	struct agent **agents;
	size_t nagents;

	struct watch sigw;
	struct watch ctlw;
	int ctl_fd;
	int ctl_spare;             /* held back to tell clients we are out of descriptors */
	struct timer ctl_pause;    /* the listener rests after accept failed for want of resources */
	int64_t ctl_pause_ms;      /* ... this long, doubling while it keeps failing */
	struct ctl_client *clients;
	size_t nclients;
	struct timer log_timer;    /* tells the counts of rate-limited log lines */
	struct http *http;         /* the HTTP API (http.c), NULL when it has no listener */

	bool stopping;             /* graceful stop in progress */
	struct timer stop_timer;   /* grace for the whole shutdown */
	int exit_code;
	char *worker_path;
	char *self_path;
	int cgroup_mode;           /* 0 none, 1 v1, 2 v2 (cgroup.c) */
	int lock_fd;               /* state_dir's lock, held until exit (statedir.c) */
};

/* agent.c */
/* NULL when its saved state cannot be read (logged). */
struct agent *agent_new(struct sup *s, const struct agent_conf *conf);
void agent_free(struct agent *a);
void agent_start(struct agent *a);           /* first spawn + schedule */
void agent_on_readable(struct agent *a);
void agent_on_exit(struct agent *a, int status);
enum run_outcome agent_request_run(struct agent *a, bool manual, json_t *kwargs);
int agent_pause(struct agent *a);
int agent_resume(struct agent *a);
void agent_restart_cmd(struct agent *a);
void agent_stop(struct agent *a, enum after_exit after, const char *why);
void agent_replace_conf(struct agent *a, const struct agent_conf *conf);
json_t *agent_status_json(const struct agent *a);
const char *wstate_name(enum wstate s);
void agent_save(struct agent *a);
/* Save at the pass's commit instead (sup_save_unsaved): for the sequence
 * number every event advances. */
void agent_save_later(struct agent *a);

/* events.c */
void event_emit(struct agent *a, const char *type, json_t *payload);  /* steals payload */
void events_followers_publish(struct sup *s, const struct event *ev);

/* secrets.c */
void secrets_open(struct sup *s);            /* the set, the global sources, the log */
void secrets_close(struct sup *s);
/* Adds `redact` (the agent's other secrets) to the secrets object a
 * worker is sent, and learns all of them. */
void secrets_for_worker(struct agent *a, json_t *secrets);
/* v with every secret agentd knows redacted (steals v). */
json_t *sup_redact(const struct sup *s, json_t *v);

/* spawn.c */
int worker_spawn(struct agent *a, int *sockfd, int *errfd, char *err, size_t errlen);
/* SIGKILL every process of a dead worker's session, its group included. */
void worker_kill_session(pid_t sid);

/* statedir.c: lock state_dir for agentd's life (a second agentd on it is
 * refused, naming the holder); the lock's descriptor, or -1 with err. */
int state_dir_claim(const char *dir, char *err, size_t errlen);

/* cgroup.c */
int cgroup_detect(void);                      /* 0 none, 1 v1, 2 v2 */
/* The worker's cgroup with its limits: 0 and *out (NULL when none applies),
 * or -1 with err and errno at the cause. */
int cgroup_prepare(int mode, const char *name, const struct limits *l, char **out,
    char *err, size_t errlen);
int cgroup_enter(int mode, const char *cg);   /* from the child, before exec */
void cgroup_release(int mode, const char *cg);/* kill leftovers and remove */
bool cgroup_oom_killed(int mode, const char *cg);
void cgroup_cleanup(int mode);                /* at exit: remove our base */

/* ctl.c */
int ctl_listen(struct sup *s);
void ctl_close(struct sup *s);
/* A unix socket listening at path, mode 0600 (a stale socket file from a
 * dead agentd replaced, a live one refused): its fd, or -1 logged, what
 * naming the socket. */
int unix_listen(const char *what, const char *path);
/* The peer of a unix socket connection (SO_PEERCRED into *cr): 1 when it
 * may use agentd's sockets (agentd's own uid, or root), 0 when not, -1
 * when it cannot be told. */
struct ucred;
int peer_allowed_uid(int fd, struct ucred *cr);

/* http.c: the HTTP API's listeners (agentd.http.listen) on the loop. */
int http_open(struct sup *s);
void http_close(struct sup *s);
/* An event was stored: the streams that want it read it once committed. */
void http_events_published(struct sup *s, const struct event *ev);
/* After a commit: the streams with news to send go on. */
void http_pump(struct sup *s);

/* apiagents.c */
/* The API's agents from the state db, after the file's (not started yet):
 * -1 when the table cannot be read. */
int api_agents_load(struct sup *s);
/* 0 when nc defines no agent the API owns; else -1 with what to do. */
int api_agents_reload_check(struct sup *s, const struct config *nc, char **errtext);

/* sup.c */
struct agent *sup_find(struct sup *s, const char *name);
struct agent *sup_add_agent(struct sup *s, const struct agent_conf *c);
struct agent *sup_find_pid(struct sup *s, pid_t pid);
void sup_remove_agent(struct sup *s, struct agent *a);
int sup_reload(struct sup *s, json_t **report, char **errtext);
void sup_begin_stop(struct sup *s, const char *why);
void sup_check_stopped(struct sup *s);
/* Hold the signals the loop handles from the start, so one sent while
 * agentd is still starting waits for the loop instead of killing it. */
int sup_block_signals(void);
int sup_run(struct sup *s);

#endif

/*
 * new_files: the seed's "check for new files", with a watermark that
 * survives the worker.
 *
 * A file is new when its mtime is after the watermark: the newest mtime
 * reported so far.  Comparing against the wall clock of the previous scan
 * instead would lose files: the kernel stamps mtimes from a coarse clock
 * that can trail CLOCK_REALTIME by a tick.  Files that share the
 * watermark's exact mtime are told apart by a set of hashes of the paths
 * already reported at that instant ("at_since"), so a file written in the
 * same tick as the last reported one, but after the scan, is still found.
 *
 * A run reports at most max_files files (and about OUTPUT_BUDGET bytes of
 * them, so a result always fits in a frame): the oldest new ones, by mtime
 * then path, and the watermark moves only to the last of them, so the
 * rest come in the next runs instead of being skipped.  A bounded max-heap
 * keeps the oldest max_files while scanning, so memory does not grow with
 * the tree.  The watermark never moves past the time of the scan: a file
 * dated in the future is reported (again) until the clock passes it,
 * rather than hiding every file written before then.
 *
 * The first run (no state, or state for other directories/types) reports
 * every matching file: that is the seed's "check for new files" from a
 * standing start.  Files given an old mtime after the fact (cp -p, tar)
 * are not new by this definition.
 *
 * Only regular files are reported (symlinks to them too); symlinked
 * directories are not entered, so the walk cannot loop.  The walk keeps a
 * stack of paths rather than open directories, so a deep tree costs no
 * descriptors, and it checks for a cancel every CHECK_EVERY entries.
 * Unreadable directories are listed in "errors" and the scan goes on; it
 * fails only when none of the given directories can be read.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "common/log.h"
#include "common/util.h"
#include "worker/tools.h"

#define MAX_FILES_DEFAULT 1000
#define MAX_FILES_LIMIT 10000
#define OUTPUT_BUDGET (1u << 20)   /* bytes of paths per result, roughly */
#define MAX_DIRECTORIES 256
#define MAX_DEPTH 64
#define MAX_ERRORS 50
#define CHECK_EVERY 256

struct entry {
	int64_t mtime;   /* ns since the epoch */
	int64_t size;
	char *path;
};

struct scan {
	/* arguments */
	const json_t *dirs;
	const json_t *types;
	bool recursive;
	size_t max_files;
	/* previous state */
	bool have_since;
	int64_t since;
	json_t *at_since;    /* object: path hash -> true */
	/* results */
	struct entry *heap;  /* max-heap of the oldest new files */
	size_t nheap;
	uint64_t scanned, total_new, ticks;
	json_t *errors;
	const struct tool_ctx *ctx;
	bool cancelled;
};

static uint64_t
fnv1a(const void *p, size_t n, uint64_t h)
{
	const unsigned char *s = p;
	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

#define FNV_INIT 0xcbf29ce484222325ULL

static void
path_hash(const char *path, char out[17])
{
	snprintf(out, 17, "%016" PRIx64, fnv1a(path, strlen(path), FNV_INIT));
}

static void
add_error(struct scan *s, const char *path, const char *msg)
{
	if (json_array_size(s->errors) >= MAX_ERRORS)
		return;
	json_array_append_new(s->errors, json_pack("{s:o, s:s}", "path",
	    json_string_lossy(path), "error", msg));
}

/* ---- arguments ------------------------------------------------------------ */

static int
string_array(const json_t *a, const char *name, bool required, char *err, size_t errlen)
{
	size_t i;
	json_t *v;

	if (a == NULL || json_is_null(a)) {
		if (required)
			snprintf(err, errlen, "%s is required", name);
		return required ? -1 : 0;
	}
	if (!json_is_array(a)) {
		snprintf(err, errlen, "%s must be an array of strings", name);
		return -1;
	}
	json_array_foreach(a, i, v) {
		if (!json_is_string(v)) {
			snprintf(err, errlen, "%s[%zu] must be a string", name, i);
			return -1;
		}
	}
	return 0;
}

static int
parse_args(struct scan *s, const json_t *args, char *err, size_t errlen)
{
	json_t *v;
	size_t i;

	s->dirs = json_object_get(args, "directories");
	s->types = json_object_get(args, "file_types");
	if (string_array(s->dirs, "directories", true, err, errlen) < 0 ||
	    string_array(s->types, "file_types", false, err, errlen) < 0)
		return -1;
	if (json_array_size(s->dirs) == 0 || json_array_size(s->dirs) > MAX_DIRECTORIES) {
		snprintf(err, errlen, "directories must list 1 to %d paths", MAX_DIRECTORIES);
		return -1;
	}
	json_array_foreach(s->dirs, i, v) {
		if (json_string_length(v) == 0 || json_string_length(v) >= PATH_MAX) {
			snprintf(err, errlen, "directories[%zu] must be a path", i);
			return -1;
		}
	}
	v = json_object_get(args, "recursive");
	if (v && !json_is_null(v) && !json_is_boolean(v)) {
		snprintf(err, errlen, "recursive must be true or false");
		return -1;
	}
	s->recursive = json_is_true(v);
	v = json_object_get(args, "max_files");
	s->max_files = MAX_FILES_DEFAULT;
	if (v && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > MAX_FILES_LIMIT) {
			snprintf(err, errlen, "max_files must be an integer from 1 to %d",
			    MAX_FILES_LIMIT);
			return -1;
		}
		s->max_files = (size_t)json_integer_value(v);
	}
	return 0;
}

/* A suffix matches case-insensitively; "txt" means ".txt". */
static bool
type_matches(const struct scan *s, const char *name)
{
	size_t i, n = strlen(name);
	json_t *v;

	if (json_array_size(s->types) == 0)
		return true;
	json_array_foreach(s->types, i, v) {
		const char *t = json_string_value(v);
		size_t tn = json_string_length(v);
		bool dot = tn > 0 && t[0] != '.';
		if (tn + dot > n)
			continue;
		if (dot && name[n - tn - 1] != '.')
			continue;
		if (strcasecmp(name + n - tn, t) == 0)
			return true;
	}
	return false;
}

/* ---- state ---------------------------------------------------------------- */

/* Identifies what is watched: other directories or types start over. */
static void
scan_key(const struct scan *s, char out[17])
{
	json_t *k = json_pack("{s:O, s:O, s:b}", "directories", s->dirs,
	    "file_types", s->types ? s->types : json_null(), "recursive", s->recursive);
	char *txt = json_dumps(k, JSON_COMPACT | JSON_SORT_KEYS);
	snprintf(out, 17, "%016" PRIx64, fnv1a(txt, strlen(txt), FNV_INIT));
	free(txt);
	json_decref(k);
}

static void
state_path(const struct tool_ctx *ctx, char *out, size_t outlen)
{
	const char *dir = ctx && ctx->state_dir ? ctx->state_dir : ".";
	snprintf(out, outlen, "%s/%s", dir, NEW_FILES_STATE);
}

static void
load_state(struct scan *s, const char *path, const char *key)
{
	json_error_t je;
	json_t *st, *h, *since, *at;

	s->at_since = json_object();
	st = json_load_file(path, 0, &je);
	if (st == NULL) {
		if (access(path, F_OK) == 0)
			log_warn("new_files: %s: %s (starting over)", path, je.text);
		return;
	}
	h = json_object_get(st, "directories-hash");
	since = json_object_get(st, "since");
	at = json_object_get(st, "at_since");
	if (!json_is_string(h) || !json_is_integer(since) ||
	    (at && !json_is_array(at))) {
		log_warn("new_files: %s: not a watermark (starting over)", path);
	} else if (strcmp(json_string_value(h), key) == 0) {
		size_t i;
		json_t *v;
		s->have_since = true;
		s->since = json_integer_value(since);
		json_array_foreach(at, i, v)
			if (json_is_string(v))
				json_object_set_new(s->at_since, json_string_value(v),
				    json_true());
	}
	json_decref(st);
}

/*
 * The new watermark: the newest reported mtime (never past now), and the
 * hashes of the reported files at exactly that mtime -- plus the previous
 * set when the watermark did not move.  Sorted entries in, oldest first.
 */
static int
save_state(const struct scan *s, const char *key, int64_t now, char *err, size_t errlen)
{
	int64_t since = s->nheap ? s->heap[s->nheap - 1].mtime : s->since;
	json_t *at = json_array();
	char h[17];

	if (since > now)
		since = now;
	if (s->have_since && since == s->since) {
		const char *k;
		json_t *v;
		json_object_foreach(s->at_since, k, v)
			json_array_append_new(at, json_string(k));
	}
	for (size_t i = s->nheap; i-- > 0 && s->heap[i].mtime >= since;) {
		if (s->heap[i].mtime != since)
			continue;
		path_hash(s->heap[i].path, h);
		json_array_append_new(at, json_string(h));
	}
	json_t *st = json_pack("{s:s, s:I, s:o}", "directories-hash", key,
	    "since", (json_int_t)since, "at_since", at);
	char *txt = json_dumps(st, JSON_COMPACT);
	int rc = tool_state_save(s->ctx, NEW_FILES_STATE, txt);
	if (rc < 0)
		snprintf(err, errlen, "cannot save the watermark: %s", strerror(errno));
	free(txt);
	json_decref(st);
	return rc;
}

/* ---- the heap of the oldest new files ------------------------------------- */

static int
entry_cmp(const struct entry *a, const struct entry *b)
{
	if (a->mtime != b->mtime)
		return a->mtime < b->mtime ? -1 : 1;
	return strcmp(a->path, b->path);
}

static int
entry_qsort(const void *a, const void *b)
{
	return entry_cmp(a, b);
}

static void
heap_swap(struct entry *h, size_t i, size_t j)
{
	struct entry t = h[i];
	h[i] = h[j];
	h[j] = t;
}

static void
heap_up(struct entry *h, size_t i)
{
	while (i > 0 && entry_cmp(&h[(i - 1) / 2], &h[i]) < 0) {
		heap_swap(h, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
heap_down(struct entry *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && entry_cmp(&h[l], &h[m]) > 0)
			m = l;
		if (r < n && entry_cmp(&h[r], &h[m]) > 0)
			m = r;
		if (m == i)
			return;
		heap_swap(h, i, m);
		i = m;
	}
}

static void
heap_offer(struct scan *s, const char *path, const struct stat *st)
{
	struct entry e = {
		(int64_t)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec,
		(int64_t)st->st_size, (char *)path,
	};

	if (s->nheap < s->max_files) {
		if (s->heap == NULL)
			s->heap = xcalloc(s->max_files, sizeof(*s->heap));
		e.path = xstrdup(path);
		s->heap[s->nheap] = e;
		heap_up(s->heap, s->nheap++);
	} else if (entry_cmp(&e, &s->heap[0]) < 0) {
		free(s->heap[0].path);
		e.path = xstrdup(path);
		s->heap[0] = e;
		heap_down(s->heap, s->nheap, 0);
	}
}

/* ---- the walk ------------------------------------------------------------- */

static bool
is_new(const struct scan *s, const char *path, const struct stat *st)
{
	int64_t m = (int64_t)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
	char h[17];

	if (!s->have_since || m > s->since)
		return true;
	if (m < s->since)
		return false;
	path_hash(path, h);
	return json_object_get(s->at_since, h) == NULL;
}

struct dirstack {
	char **path;
	int *depth;
	size_t n, cap;
};

static void
push_dir(struct dirstack *ds, char *path, int depth)
{
	if (ds->n == ds->cap) {
		ds->cap = ds->cap ? ds->cap * 2 : 16;
		ds->path = xrealloc(ds->path, ds->cap * sizeof(*ds->path));
		ds->depth = xrealloc(ds->depth, ds->cap * sizeof(*ds->depth));
	}
	ds->path[ds->n] = path;
	ds->depth[ds->n++] = depth;
}

static char *
join(const char *dir, const char *name)
{
	size_t dn = strlen(dir), nn = strlen(name);
	bool slash = dn > 0 && dir[dn - 1] == '/';
	char *p = xmalloc(dn + nn + 2);
	memcpy(p, dir, dn);
	if (!slash)
		p[dn++] = '/';
	memcpy(p + dn, name, nn + 1);
	return p;
}

static bool
check_cancel(struct scan *s)
{
	if (++s->ticks % CHECK_EVERY == 0 && tool_interrupted(s->ctx))
		s->cancelled = true;
	return s->cancelled;
}

static void
visit(struct scan *s, struct dirstack *ds, const char *dir, int depth,
    int dfd, const struct dirent *de)
{
	struct stat st;
	char *path;

	if (fstatat(dfd, de->d_name, &st, 0) < 0)
		return;	/* gone meanwhile, or a dangling symlink */
	if (S_ISDIR(st.st_mode)) {
		struct stat lst;
		bool link = de->d_type == DT_LNK || (de->d_type == DT_UNKNOWN &&
		    fstatat(dfd, de->d_name, &lst, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISLNK(lst.st_mode));
		if (!s->recursive || link)
			return;
		path = join(dir, de->d_name);
		if (depth + 1 > MAX_DEPTH) {
			add_error(s, path, "too deep: not entered");
			free(path);
			return;
		}
		push_dir(ds, path, depth + 1);
		return;
	}
	if (!S_ISREG(st.st_mode))
		return;
	s->scanned++;
	if (!type_matches(s, de->d_name))
		return;
	path = join(dir, de->d_name);
	if (is_new(s, path, &st)) {
		s->total_new++;
		heap_offer(s, path, &st);
	}
	free(path);
}

/* Walk one given directory; -1 with err when it cannot be read at all. */
static int
walk(struct scan *s, const char *top, char *err, size_t errlen)
{
	struct dirstack ds = { 0 };
	int rc = 0;

	push_dir(&ds, xstrdup(top), 0);
	while (ds.n > 0 && !s->cancelled) {
		char *dir = ds.path[--ds.n];
		int depth = ds.depth[ds.n];
		DIR *d = opendir(dir);
		struct dirent *de;

		if (d == NULL) {
			if (depth == 0) {
				snprintf(err, errlen, "%s", strerror(errno));
				rc = -1;
			} else
				add_error(s, dir, strerror(errno));
			free(dir);
			continue;
		}
		while (!check_cancel(s) && (de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			visit(s, &ds, dir, depth, dirfd(d), de);
		}
		closedir(d);
		free(dir);
	}
	while (ds.n > 0)
		free(ds.path[--ds.n]);
	free(ds.path);
	free(ds.depth);
	return rc;
}

/* ---- the tool ------------------------------------------------------------- */

static void
iso_ns(int64_t ns, char *out, size_t outlen)
{
	int64_t ms = ns / 1000000;
	if (ms == 0)
		snprintf(out, outlen, "1970-01-01T00:00:00.000Z");
	else
		iso8601(ms, out, outlen);
}

static json_t *
build_output(struct scan *s, bool truncated)
{
	json_t *files = json_array();
	char ts[40];

	for (size_t i = 0; i < s->nheap; i++) {
		iso_ns(s->heap[i].mtime, ts, sizeof(ts));
		json_array_append_new(files, json_pack("{s:o, s:I, s:s}",
		    "path", json_string_lossy(s->heap[i].path),
		    "size", (json_int_t)s->heap[i].size, "mtime", ts));
	}
	json_t *since = json_null();
	if (s->have_since) {
		iso_ns(s->since, ts, sizeof(ts));
		since = json_string(ts);
	}
	json_t *out = json_pack("{s:o, s:I, s:I, s:o, s:o, s:b}",
	    "new_files", files, "count", (json_int_t)s->nheap,
	    "scanned", (json_int_t)s->scanned, "directories", json_deep_copy(s->dirs),
	    "since", since, "truncated", truncated);
	if (json_array_size(s->errors))
		json_object_set(out, "errors", s->errors);
	return out;
}

/*
 * Keep the result within a frame: past OUTPUT_BUDGET bytes of paths, the
 * newest of the reported files are left for the next run (the watermark
 * is computed from what is kept).
 */
static void
cut_to_budget(struct scan *s)
{
	size_t bytes = 0, keep;

	for (keep = 0; keep < s->nheap; keep++) {
		bytes += strlen(s->heap[keep].path) + 64;
		if (bytes > OUTPUT_BUDGET && keep > 0)
			break;
	}
	for (size_t i = keep; i < s->nheap; i++)
		free(s->heap[i].path);
	s->nheap = keep;
}

static void
scan_free(struct scan *s)
{
	for (size_t i = 0; i < s->nheap; i++)
		free(s->heap[i].path);
	free(s->heap);
	json_decref(s->at_since);
	json_decref(s->errors);
}

static bool
listed_before(const json_t *dirs, size_t i)
{
	const char *d = json_string_value(json_array_get(dirs, i));
	for (size_t j = 0; j < i; j++)
		if (strcmp(json_string_value(json_array_get(dirs, j)), d) == 0)
			return true;
	return false;
}

int
tool_new_files(const struct tool_ctx *ctx, const json_t *args, json_t **out,
    char *err, size_t errlen)
{
	struct scan s = { 0 };
	char key[17], spath[PATH_MAX], why[256], first[PATH_MAX + 300] = "";
	size_t i, readable = 0;
	int64_t now = wall_ms() * 1000000LL;
	json_t *v;

	s.ctx = ctx;
	s.errors = json_array();
	if (parse_args(&s, args, err, errlen) < 0) {
		json_decref(s.errors);
		return -1;
	}
	scan_key(&s, key);
	state_path(ctx, spath, sizeof(spath));
	load_state(&s, spath, key);

	json_array_foreach(s.dirs, i, v) {
		const char *dir = json_string_value(v);
		if (listed_before(s.dirs, i))
			continue;	/* walked already: one report per file */
		if (walk(&s, dir, why, sizeof(why)) < 0) {
			add_error(&s, dir, why);
			if (first[0] == '\0')
				snprintf(first, sizeof(first), "%s: %s", dir, why);
		} else
			readable++;
		if (s.cancelled)
			break;
	}
	if (s.cancelled) {
		snprintf(err, errlen, "cancelled");
		scan_free(&s);
		return -1;
	}
	if (readable == 0) {
		snprintf(err, errlen, "no directory could be read (%s)", first);
		scan_free(&s);
		return -1;
	}
	if (s.nheap > 1)
		qsort(s.heap, s.nheap, sizeof(*s.heap), entry_qsort);
	cut_to_budget(&s);
	if (s.nheap > 0 && save_state(&s, key, now, why, sizeof(why)) < 0) {
		log_warn("new_files: %s: %s", spath, why);
		add_error(&s, spath, why);
	}
	*out = build_output(&s, s.total_new > s.nheap);
	scan_free(&s);
	return 0;
}

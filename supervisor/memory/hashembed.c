/*
 * hashembed: the built-in embedder, `hash` -- feature hashing of word
 * n-grams, for recall with no embedding model (none ships in a package
 * these machines can install) and for tests.
 *
 * A text's features are its words (lower-cased runs of letters and
 * digits; any byte of a UTF-8 sequence counts as a letter), the pairs of
 * neighbouring words, and the character trigrams of each word (of "^word$"),
 * so "postgres" is near "postgresql" and "restart" near "restarted".  Each
 * feature is hashed (FNV-1a) to one of `dimensions` coordinates with a
 * sign from another bit of the hash, so collisions cancel rather than pile
 * up (Weinberger et al., 2009).  A handful of English function words carry
 * no weight.  The vector is normalized.
 *
 * It is deterministic -- the same text gives the same vector in every
 * process, forever (the model name carries a version: HASH_MODEL) -- and
 * lexical: it knows nothing of meaning, so "disk full" is not near "no
 * space left".  Semantic recall needs a real embedding model.
 */
#include <ctype.h>
#include <math.h>
#include <string.h>
#include "common/limits.h"
#include "common/util.h"
#include "supervisor/memory/memory.h"

#define WORD_MAX 64
#define W_WORD 1.0f
#define W_PAIR 0.7f
#define W_TRIGRAMS 1.0f     /* all of a word's trigrams together: as much as the word */

static const char *const stopwords[] = {
	"a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "for", "from", "has",
	"have", "i", "in", "is", "it", "its", "of", "on", "or", "that", "the", "this", "to",
	"was", "were", "will", "with",
};

static bool
stopword(const char *w)
{
	for (size_t i = 0; i < ARRAY_LEN(stopwords); i++)
		if (strcmp(w, stopwords[i]) == 0)
			return true;
	return false;
}

static uint64_t
fnv(uint64_t h, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
	return h;
}

static void
feature(float *v, int dim, char kind, const char *a, size_t n, const char *b, size_t m,
    float w)
{
	uint64_t h = fnv(1469598103934665603ULL, &kind, 1);
	h = fnv(h, a, n);
	if (b) {
		h = fnv(h, " ", 1);
		h = fnv(h, b, m);
	}
	v[(h >> 1) % (uint64_t)dim] += (h & 1) ? w : -w;
}

static void
trigrams(float *v, int dim, const char *w, size_t n)
{
	char t[WORD_MAX + 2];
	size_t len = n + 2;
	t[0] = '^';
	memcpy(t + 1, w, n);
	t[n + 1] = '$';
	if (len < 4)
		return;	/* a word of one or two characters is all in its own feature */
	float each = W_TRIGRAMS / sqrtf((float)(len - 2));
	for (size_t i = 0; i + 3 <= len; i++)
		feature(v, dim, 'c', t + i, 3, NULL, 0, each);
}

static bool
word_byte(unsigned char c)
{
	return isalnum(c) || c >= 0x80;
}

void
text_words(const char *text, size_t len, word_fn fn, void *ctx)
{
	char word[WORD_MAX + 1];
	size_t i = 0;

	while (i < len) {
		while (i < len && !word_byte((unsigned char)text[i]))
			i++;
		size_t n = 0;
		while (i < len && word_byte((unsigned char)text[i])) {
			if (n < WORD_MAX)
				word[n++] = (char)tolower((unsigned char)text[i]);
			i++;
		}
		word[n] = '\0';
		if (n > 0 && !stopword(word) && !fn(ctx, word, n))
			return;
	}
}

struct features {
	float *v;
	int dim;
	char prev[WORD_MAX + 1];
	size_t plen;
};

static bool
add_word(void *ctx, const char *word, size_t n)
{
	struct features *f = ctx;
	feature(f->v, f->dim, 'w', word, n, NULL, 0, W_WORD);
	if (f->plen)
		feature(f->v, f->dim, 'p', f->prev, f->plen, word, n, W_PAIR);
	trigrams(f->v, f->dim, word, n);
	memcpy(f->prev, word, n + 1);
	f->plen = n;
	return true;
}

void
hash_embed(const char *text, size_t len, float *v, int dim)
{
	struct features f = { .v = v, .dim = dim };
	memset(v, 0, (size_t)dim * sizeof(float));
	text_words(text, len < EMBED_INPUT_MAX ? len : EMBED_INPUT_MAX, add_word, &f);
	vec_normalize(v, dim);
}

/*
 * argschema: the JSON Schema subset a command tool's arguments are held to
 * (local_tools[].inputSchema), as one table of keywords that both the
 * loader and the worker's validator read, so a schema can only use what is
 * enforced: a keyword outside the table is refused at load with its
 * position, never accepted and ignored.
 *
 * Enforced: type (a name or a list of them; an integer is also a number
 * with no fraction), enum, pattern, minLength/maxLength (in characters,
 * not bytes), minimum/maximum, properties, required, additionalProperties
 * (true or false), items (one schema for every item).  Accepted as the
 * annotations they are: description, title, default, examples, $comment,
 * $schema.  Every string argument is also refused if it holds a NUL byte
 * (an argv element cannot carry one: the program would see less than the
 * schema checked).  Keywords apply to values of their type, as JSON Schema
 * says (a pattern says nothing about a number).
 *
 * `pattern` is a POSIX extended regular expression (regcomp, in the
 * C.UTF-8 locale so `.` and brackets count characters), not ECMA-262's
 * dialect, which JSON Schema names.  Where the two read the same text
 * differently the loader refuses the pattern instead of guessing:
 *   - escapes are only \ before punctuation (\. \- \/ \( ...); \d \w \s \b
 *     and backreferences are refused (write [0-9], [[:alnum:]_], [[:space:]]);
 *   - inside [...], a backslash is only \\; a class may not start with ]
 *     (ECMA's [] and [^] mean something else);
 *   - lookaround, (?:...), named groups and a { that is not a bound fail to
 *     compile and are refused.
 * `.` is given ECMA's meaning (any character but \n, \r, U+2028, U+2029),
 * and ^ $ match only at the ends of the string.  POSIX classes such as
 * [[:digit:]] are an extension ECMA-262 lacks.  Lazy quantifiers (*?)
 * compile as greedy ones, which matches the same strings.
 */
#ifndef AGENTD_ARGSCHEMA_H
#define AGENTD_ARGSCHEMA_H

#include <jansson.h>
#include <stddef.h>

/* At load: 0, or -1 with err and at (a JSON pointer to the offending
 * keyword, "/properties/name/pattern", so the loader can show its line). */
int argschema_check(const json_t *schema, char *err, size_t errlen, char *at, size_t atlen);

/* At run time: 0 when args (an object) satisfies the schema (checked at
 * load), else -1 with err naming the argument and the broken keyword. */
int argschema_validate(const json_t *schema, const json_t *args, char *err, size_t errlen);

#endif

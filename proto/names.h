/* The grammar of the names a request creates: queues, topics and
 * subscriptions (docs/queue.md, "Names"). Part of the protocol, so the node
 * (which enforces it) and libraftmq (which checks early, as a courtesy)
 * share this one definition; the Python client has the same rule in
 * raftmq/names.py.
 *
 * A name is 1 to PROTO_NAME_MAX bytes of ASCII letters, digits, '.', '_'
 * and '-'. ':' is reserved: it joins TOPIC:SUBSCRIPTION, the name of a
 * subscription's queue. '*', '>' and '#' are reserved for routing patterns.
 * Names that exist already (created before the grammar, or subscription
 * queues) are not checked where a request only refers to them. */
#ifndef RAFTMQ_PROTO_NAMES_H
#define RAFTMQ_PROTO_NAMES_H

#include <stddef.h>

#define PROTO_NAME_MAX 255

/* The rule in one phrase, for error sentences. */
#define PROTO_NAME_RULE                                                  \
	"names are 1 to 255 bytes of letters, digits, '.', '_' and '-' " \
	"(docs/queue.md)"

/* A name for an error sentence, in double quotes and shortened so that the
 * reason after it always fits: a name over PROTO_QUOTE_KEEP + 8 bytes keeps
 * its first PROTO_QUOTE_KEEP bytes (whole UTF-8 characters) and "…" marks
 * the cut. `name` borrowed; writes into buf (PROTO_QUOTE_SIZE bytes) and
 * returns it. */
#define PROTO_QUOTE_KEEP 40
#define PROTO_QUOTE_SIZE (PROTO_QUOTE_KEEP + 8 + 3)
const char *proto_name_quote(const char *name, char *buf);

/* Checks a new queue, topic or subscription name (`name`, borrowed, NUL
 * terminated). Returns 0, or -1 with one sentence in why (truncated to
 * whylen) naming the first bad byte and its position (1 = first byte), or
 * the length. */
int proto_name_check(const char *name, char *why, size_t whylen);

#endif /* RAFTMQ_PROTO_NAMES_H */

/* The name grammar of proto/names.h. */
#include "names.h"

#include <stdio.h>
#include <string.h>

const char *proto_name_quote(const char *name, char *buf)
{
	size_t n = strlen(name), k = PROTO_QUOTE_KEEP;
	if (n <= PROTO_QUOTE_KEEP + 8) {
		snprintf(buf, PROTO_QUOTE_SIZE, "\"%s\"", name);
		return buf;
	}
	/* Back to the start of a character: never half of one. */
	while (k > 0 && ((unsigned char)name[k] & 0xc0) == 0x80) {
		k--;
	}
	snprintf(buf, PROTO_QUOTE_SIZE, "\"%.*s\xe2\x80\xa6\"", (int)k, name);
	return buf;
}

int proto_name_check(const char *name, char *why, size_t whylen)
{
	size_t n = strlen(name), i;
	if (n == 0) {
		snprintf(why, whylen, "the name is empty; %s", PROTO_NAME_RULE);
		return -1;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '-') {
			continue;
		}
		if (c == ':') {
			snprintf(why, whylen,
				 "':' at position %zu is reserved for "
				 "subscription queues (TOPIC:SUBSCRIPTION); %s",
				 i + 1, PROTO_NAME_RULE);
		} else if (c == '*' || c == '>' || c == '#') {
			snprintf(why, whylen,
				 "'%c' at position %zu is reserved for routing "
				 "patterns; %s",
				 c, i + 1, PROTO_NAME_RULE);
		} else if (c == ' ') {
			snprintf(why, whylen,
				 "a space at position %zu is not allowed; %s",
				 i + 1, PROTO_NAME_RULE);
		} else if (c > 0x20 && c < 0x7f) {
			snprintf(why, whylen,
				 "'%c' at position %zu is not allowed; %s", c,
				 i + 1, PROTO_NAME_RULE);
		} else {
			snprintf(
				why, whylen,
				"byte 0x%02x at position %zu is not allowed "
				"(%s); %s",
				c, i + 1,
				c >= 0x80 ? "not ASCII" : "a control character",
				PROTO_NAME_RULE);
		}
		return -1;
	}
	if (n > PROTO_NAME_MAX) {
		snprintf(why, whylen,
			 "the name is %zu bytes long, over the limit of %d; %s",
			 n, PROTO_NAME_MAX, PROTO_NAME_RULE);
		return -1;
	}
	return 0;
}

/* Checks on client frames that protobuf-c does not make.
 *
 * protobuf-c 1.4 decodes a `string` field without checking that it is UTF-8
 * and hands it over as a NUL-terminated C string, so "a\0b" arrives as "a".
 * Both are dangerous for a broker: a queue named with invalid UTF-8 makes
 * every later QueueList unreadable by the protobuf libraries of other
 * languages (they refuse the whole frame), and a name cut at its NUL
 * silently addresses another queue. So every string field of a frame, at
 * any depth, is checked on the wire bytes after a successful unpack: it must
 * be UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF) and
 * contain no NUL. Other languages' protobuf libraries refuse such a frame
 * as undecodable, so raftmq answers it with MALFORMED.
 *
 * The walk reads the wire format with the message descriptors: a
 * length-delimited field is a string (checked), a message (walked) or
 * anything else (skipped). It runs only on bytes protobuf-c has already
 * accepted, but still checks every length it reads. */
#include <stdio.h>
#include <string.h>

#include "node_int.h"

#define MAX_DEPTH 16

static int read_varint(const uint8_t *p, size_t len, size_t *off, uint64_t *v)
{
	uint64_t r = 0;
	unsigned shift;
	for (shift = 0; shift < 64 && *off < len; shift += 7) {
		uint8_t b = p[(*off)++];
		r |= (uint64_t)(b & 0x7f) << shift;
		if ((b & 0x80) == 0) {
			*v = r;
			return 0;
		}
	}
	return -1;
}

/* Length of the valid UTF-8 prefix of p[0..len) without NUL: len if it is
 * all valid. */
static size_t utf8_valid_prefix(const uint8_t *p, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint8_t c = p[i];
		size_t n, k;
		uint32_t cp;
		if (c == 0) {
			return i;
		}
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return i; /* continuation byte, 0xc0/0xc1, 0xf5.. */
		}
		if (len - i - 1 < n) {
			return i; /* truncated sequence */
		}
		for (k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80) {
				return i;
			}
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
			return i; /* overlong, surrogate or out of range */
		}
		i += n + 1;
	}
	return len;
}

static int walk(const ProtobufCMessageDescriptor *desc, const uint8_t *p,
		size_t len, int depth, char *path, size_t pathlen, char *err,
		size_t errlen)
{
	size_t off = 0;
	if (depth > MAX_DEPTH) {
		snprintf(err, errlen, "messages nested too deep");
		return -1;
	}
	while (off < len) {
		uint64_t tag, v;
		unsigned wire;
		const ProtobufCFieldDescriptor *f;
		if (read_varint(p, len, &off, &tag) != 0) {
			snprintf(err, errlen, "bad field tag");
			return -1;
		}
		wire = (unsigned)(tag & 7);
		switch (wire) {
		case 0: /* varint */
			if (read_varint(p, len, &off, &v) != 0) {
				snprintf(err, errlen, "bad varint");
				return -1;
			}
			continue;
		case 1: /* 64-bit */
		case 5: /* 32-bit */
			if (len - off < (wire == 1 ? 8u : 4u)) {
				snprintf(err, errlen, "truncated field");
				return -1;
			}
			off += wire == 1 ? 8 : 4;
			continue;
		case 2:
			break;
		default:
			snprintf(err, errlen, "unsupported wire type %u", wire);
			return -1;
		}
		if (read_varint(p, len, &off, &v) != 0 || v > len - off) {
			snprintf(err, errlen, "bad field length");
			return -1;
		}
		f = tag >> 3 <= UINT32_MAX
			    ? protobuf_c_message_descriptor_get_field(
				      desc, (unsigned)(tag >> 3))
			    : NULL;
		if (f != NULL && f->type == PROTOBUF_C_TYPE_STRING) {
			size_t ok = utf8_valid_prefix(p + off, (size_t)v);
			if (ok != v) {
				snprintf(err, errlen,
					 "string field %s.%s %s at byte %zu; "
					 "strings must be UTF-8 without NUL",
					 path, f->name,
					 p[off + ok] == 0
						 ? "contains a NUL byte"
						 : "is not valid UTF-8",
					 ok);
				return -1;
			}
		} else if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE) {
			size_t used = strlen(path);
			int rv;
			snprintf(path + used, pathlen - used, ".%s", f->name);
			rv = walk(f->descriptor, p + off, (size_t)v, depth + 1,
				  path, pathlen, err, errlen);
			path[used] = '\0';
			if (rv != 0) {
				return rv;
			}
		}
		off += (size_t)v;
	}
	return 0;
}

int node_codec_check_strings(const uint8_t *frame, size_t len, char *err,
			     size_t errlen)
{
	char path[256] = "Envelope";
	return walk(&raftmq__client__v1__envelope__descriptor, frame, len, 0,
		    path, sizeof path, err, errlen);
}

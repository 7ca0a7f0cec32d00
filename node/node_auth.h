/* Client authentication and permissions (docs/operations.md,
 * "Authentication and TLS").
 *
 * A client proves who it is with the token in its Hello; the node keeps only
 * SHA-256 digests of tokens (from token_sha256, or hashed from token_file at
 * start) and compares digests in constant time. A user's permissions are
 * name prefixes per action; see struct node_user in node_config.h. */
#ifndef RAFTMQ_NODE_AUTH_H
#define RAFTMQ_NODE_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "node_config.h"

enum node_perm {
	NODE_PERM_PUBLISH,
	NODE_PERM_CONSUME,
	NODE_PERM_CONFIGURE,
};

/* Reads the token_file of every user that has one and stores the digest of
 * its token in the user (cfg is the server's own copy). A file's content is
 * the token; a trailing newline (CR/LF) is not part of it. Returns 0, or -1
 * with a sentence in err (unreadable or empty file, two users with the same
 * token). Warns when a token file is readable by group or others. */
int node_auth_init(struct node_config *cfg, char *err, size_t errlen);

/* Reads a token file (path borrowed): its content is the token; a trailing
 * newline (CR/LF) is not part of it. Writes the token (not NUL-terminated)
 * into buf (cap bytes) and its length into *len. Returns 0, or -1 with a
 * sentence in err naming the config key and whose it is ("user 'shop':
 * cannot read token_file PATH: ..."; whose may be ""): unreadable, empty,
 * or longer than cap or 4096 bytes. Warns when the file is readable by
 * group or others. */
int node_auth_read_token(const char *path, const char *whose, const char *key,
			 char *buf, size_t cap, size_t *len, char *err,
			 size_t errlen);

/* The user whose token is `token` (len bytes, borrowed), or NULL. Every
 * user's digest is compared, in constant time, whatever matches. The
 * result points into cfg (borrowed for as long as cfg lives). */
const struct node_user *node_auth_check(const struct node_config *cfg,
					const char *token, size_t len);

/* Whether user `u` (borrowed) may do `perm` on the queue or topic `name`:
 * one of the user's prefixes for that action starts `name`. */
bool node_auth_allows(const struct node_user *u, enum node_perm perm,
		      const char *name);

/* Whether `name` is visible to `u` in lists and info: any permission on it. */
bool node_auth_visible(const struct node_user *u, const char *name);

/* "publish", "consume" or "configure". */
const char *node_auth_perm_name(enum node_perm perm);

#endif /* RAFTMQ_NODE_AUTH_H */

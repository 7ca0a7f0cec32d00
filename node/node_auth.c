/* Client authentication and permissions.
 *
 * Tokens. The config holds, per user, the SHA-256 of the token (given as
 * token_sha256, or computed here from token_file at start), never a plain
 * token in memory longer than it takes to hash it. A Hello's token is
 * hashed and compared with every user's digest using CRYPTO_memcmp, and the
 * loop does not stop at a match, so neither the token's bytes nor which
 * user matched shows in the time taken. Hashing first also makes the
 * comparison length-independent.
 *
 * Permissions. A user has three prefix lists (publish, consume, configure)
 * and an admin flag. A name is allowed when one of the list's prefixes
 * starts it; "*" matches every name. A subscription queue is named
 * "TOPIC:SUBSCRIPTION", so a prefix that covers a topic covers its
 * subscription queues too. */
#include "node_auth.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "node_log.h"

/* Tokens longer than this are refused when read from a file (a token is a
 * random string, not a document). */
#define TOKEN_FILE_MAX 4096

static int sha256(const void *data, size_t len, unsigned char out[32])
{
	unsigned int n = 0;

	if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 ||
	    n != 32) {
		return -1;
	}
	return 0;
}

int node_auth_read_token(const char *path, const char *whose, const char *key,
			 char *buf, size_t cap, size_t *len, char *err,
			 size_t errlen)
{
	char tmp[TOKEN_FILE_MAX + 2];
	const char *sep = whose[0] != '\0' ? ": " : "";
	size_t max = cap < TOKEN_FILE_MAX ? cap : TOKEN_FILE_MAX;
	struct stat st;
	size_t n;
	FILE *f;

	f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errlen, "%s%scannot read %s %s: %s", whose, sep,
			 key, path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077) != 0) {
		NODE_WARN(
			"%s %s%s%s is readable by others (mode %03o); chmod "
			"600 it",
			key, path, whose[0] != '\0' ? " of " : "", whose,
			(unsigned)(st.st_mode & 0777));
	}
	n = fread(tmp, 1, sizeof(tmp) - 1, f);
	fclose(f);
	while (n > 0 && (tmp[n - 1] == '\n' || tmp[n - 1] == '\r')) {
		n--;
	}
	if (n > max) {
		OPENSSL_cleanse(tmp, sizeof(tmp));
		snprintf(err, errlen,
			 "%s%s%s %s is over %zu bytes; it should hold only the "
			 "token",
			 whose, sep, key, path, max);
		return -1;
	}
	if (n == 0) {
		snprintf(err, errlen, "%s%s%s %s is empty", whose, sep, key,
			 path);
		return -1;
	}
	memcpy(buf, tmp, n);
	OPENSSL_cleanse(tmp, sizeof(tmp));
	*len = n;
	return 0;
}

static int hash_file(struct node_user *u, char *err, size_t errlen)
{
	char buf[TOKEN_FILE_MAX], whose[NODE_USER_NAME_MAX + 16];
	size_t len;

	snprintf(whose, sizeof(whose), "user '%s'", u->name);
	if (node_auth_read_token(u->token_file, whose, "token_file", buf,
				 sizeof(buf), &len, err, errlen) != 0) {
		return -1;
	}
	if (sha256(buf, len, u->token_sha256) != 0) {
		OPENSSL_cleanse(buf, sizeof(buf));
		snprintf(err, errlen, "user '%s': SHA-256 failed", u->name);
		return -1;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	u->has_sha256 = true;
	return 0;
}

int node_auth_init(struct node_config *cfg, char *err, size_t errlen)
{
	size_t i, j;

	for (i = 0; i < cfg->n_users; i++) {
		struct node_user *u = &cfg->users[i];
		if (u->token_file[0] != '\0' &&
		    hash_file(u, err, errlen) != 0) {
			return -1;
		}
	}
	for (i = 0; i < cfg->n_users; i++) {
		for (j = 0; j < i; j++) {
			if (CRYPTO_memcmp(cfg->users[i].token_sha256,
					  cfg->users[j].token_sha256,
					  32) == 0) {
				snprintf(err, errlen,
					 "users '%s' and '%s' have the same "
					 "token",
					 cfg->users[j].name,
					 cfg->users[i].name);
				return -1;
			}
		}
	}
	if (!cfg->auth && cfg->n_users > 0) {
		NODE_WARN(
			"%zu users are defined but auth is off: every "
			"client may do everything",
			cfg->n_users);
	}
	return 0;
}

const struct node_user *node_auth_check(const struct node_config *cfg,
					const char *token, size_t len)
{
	const struct node_user *found = NULL;
	unsigned char digest[32];
	size_t i;

	if (len == 0 || sha256(token, len, digest) != 0) {
		return NULL;
	}
	for (i = 0; i < cfg->n_users; i++) {
		const struct node_user *u = &cfg->users[i];
		/* No early exit: the time does not depend on which user. */
		if (CRYPTO_memcmp(digest, u->token_sha256, 32) == 0 &&
		    u->has_sha256) {
			found = u;
		}
	}
	return found;
}

static bool prefix_match(const char *list, const char *name)
{
	const char *p = list;
	size_t nlen = strlen(name);

	while (*p != '\0') {
		const char *comma = strchr(p, ',');
		size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		const char *item = p;
		while (len > 0 && (*item == ' ' || *item == '\t')) {
			item++;
			len--;
		}
		while (len > 0 &&
		       (item[len - 1] == ' ' || item[len - 1] == '\t')) {
			len--;
		}
		if (len == 1 && item[0] == '*') {
			return true;
		}
		if (len > 0 && len <= nlen && memcmp(item, name, len) == 0) {
			return true;
		}
		if (comma == NULL) {
			break;
		}
		p = comma + 1;
	}
	return false;
}

bool node_auth_allows(const struct node_user *u, enum node_perm perm,
		      const char *name)
{
	const char *list = perm == NODE_PERM_PUBLISH   ? u->publish
			   : perm == NODE_PERM_CONSUME ? u->consume
						       : u->configure;
	return name != NULL && prefix_match(list, name);
}

bool node_auth_visible(const struct node_user *u, const char *name)
{
	return node_auth_allows(u, NODE_PERM_PUBLISH, name) ||
	       node_auth_allows(u, NODE_PERM_CONSUME, name) ||
	       node_auth_allows(u, NODE_PERM_CONFIGURE, name);
}

const char *node_auth_perm_name(enum node_perm perm)
{
	return perm == NODE_PERM_PUBLISH   ? "publish"
	       : perm == NODE_PERM_CONSUME ? "consume"
					   : "configure";
}

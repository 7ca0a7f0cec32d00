/* node_auth: token digests (token_file hashing, constant-time lookup over
 * every user) and the prefix rules of permissions. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node_auth.h"

static struct node_config cfg;
static char err[512];

static void setup(void)
{
	node_config_defaults(&cfg);
	err[0] = '\0';
}

TestSuite(auth, .init = setup);

/* SHA-256("secret"), as `printf %s secret | sha256sum` prints it. */
static const unsigned char secret_sha[32] = {
	0x2b, 0xb8, 0x0d, 0x53, 0x7b, 0x1d, 0xa3, 0xe3, 0x8b, 0xd3, 0x03,
	0x61, 0xaa, 0x85, 0x56, 0x86, 0xbd, 0xe0, 0xea, 0xcd, 0x71, 0x62,
	0xfe, 0xf6, 0xa2, 0x5f, 0xe9, 0x7b, 0xf5, 0x27, 0xa2, 0x5b};

static struct node_user *add_user(const char *name)
{
	struct node_user *u = &cfg.users[cfg.n_users++];
	memset(u, 0, sizeof(*u));
	snprintf(u->name, sizeof(u->name), "%s", name);
	return u;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	chmod(path, 0600);
}

Test(auth, token_sha256_and_token_file)
{
	char path[] = "/tmp/raftmq-auth-XXXXXX";
	int fd = mkstemp(path);
	struct node_user *a, *b;

	cr_assert_geq(fd, 0);
	close(fd);
	write_file(path, "file-token\n");
	a = add_user("a");
	memcpy(a->token_sha256, secret_sha, 32);
	a->has_sha256 = true;
	b = add_user("b");
	snprintf(b->token_file, sizeof(b->token_file), "%s", path);
	cr_assert_eq(node_auth_init(&cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert(b->has_sha256);
	cr_assert_eq(node_auth_check(&cfg, "secret", 6), &cfg.users[0]);
	/* the trailing newline of the file is not part of the token */
	cr_assert_eq(node_auth_check(&cfg, "file-token", 10), &cfg.users[1]);
	cr_assert_null(node_auth_check(&cfg, "file-token\n", 11));
	cr_assert_null(node_auth_check(&cfg, "secre", 5));
	cr_assert_null(node_auth_check(&cfg, "", 0));
	/* same token in the file as a's digest: refused */
	write_file(path, "secret");
	b->has_sha256 = false;
	cr_assert_eq(node_auth_init(&cfg, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "users 'a' and 'b' have the same token");
	write_file(path, "\n");
	cr_assert_eq(node_auth_init(&cfg, err, sizeof(err)), -1);
	cr_assert(strstr(err, "is empty") != NULL, "%s", err);
	unlink(path);
	cr_assert_eq(node_auth_init(&cfg, err, sizeof(err)), -1);
	cr_assert(strstr(err, "user 'b': cannot read token_file") != NULL, "%s",
		  err);
}

Test(auth, prefixes)
{
	struct node_user *u = add_user("u");

	snprintf(u->publish, sizeof(u->publish), "orders., logs.app");
	snprintf(u->consume, sizeof(u->consume), "*");
	cr_assert(node_auth_allows(u, NODE_PERM_PUBLISH, "orders.eu"));
	cr_assert(node_auth_allows(u, NODE_PERM_PUBLISH, "orders."));
	cr_assert(!node_auth_allows(u, NODE_PERM_PUBLISH, "orders"));
	cr_assert(node_auth_allows(u, NODE_PERM_PUBLISH, "logs.app"));
	cr_assert(node_auth_allows(u, NODE_PERM_PUBLISH, "logs.app2"));
	cr_assert(!node_auth_allows(u, NODE_PERM_PUBLISH, "logs.ap"));
	cr_assert(!node_auth_allows(u, NODE_PERM_PUBLISH, "payments"));
	cr_assert(node_auth_allows(u, NODE_PERM_CONSUME, "anything"));
	cr_assert(!node_auth_allows(u, NODE_PERM_CONFIGURE, "orders.eu"));
	cr_assert(!node_auth_allows(u, NODE_PERM_CONFIGURE, NULL));
	/* a topic prefix covers its subscription queues */
	cr_assert(node_auth_allows(u, NODE_PERM_PUBLISH, "orders.t:sub"));
	cr_assert(node_auth_visible(u, "payments")); /* consume = * */
	u->consume[0] = '\0';
	cr_assert(!node_auth_visible(u, "payments"));
	cr_assert(node_auth_visible(u, "orders.x"));
	cr_assert_str_eq(node_auth_perm_name(NODE_PERM_CONFIGURE), "configure");
}

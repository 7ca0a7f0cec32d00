/* Permissions of a request (auth = on): what its kind's descriptor says it
 * needs (struct node_kind.access and .grant), checked against the session's
 * user (node_auth.c) before anything else, on followers too. A refusal is
 * PERMISSION_DENIED naming the permission that is missing. */
#include <stdio.h>

#include "node_auth.h"
#include "names.h"
#include "node_int.h"

/* Checks one grant; answers PERMISSION_DENIED when it is missing. */
static bool allow(struct node_session *s, uint64_t corr,
		  const struct node_grant *g)
{
	const struct node_user *u = s->user;
	char name[PROTO_QUOTE_SIZE];
	const char *list;
	enum node_perm perm;

	proto_name_quote(g->name != NULL ? g->name : "", name);

	if (g->perm == NODE_PERM_VISIBLE) {
		if (node_auth_visible(u, g->name != NULL ? g->name : "")) {
			return true;
		}
		node_error(s, corr, EC(PERMISSION_DENIED),
			   "user \"%s\" has no permission on %s %s", u->name,
			   g->what, name);
		return false;
	}
	perm = (enum node_perm)g->perm;
	if (node_auth_allows(u, perm, g->name != NULL ? g->name : "")) {
		return true;
	}
	list = perm == NODE_PERM_PUBLISH   ? u->publish
	       : perm == NODE_PERM_CONSUME ? u->consume
					   : u->configure;
	if (list[0] == '\0') {
		node_error(s, corr, EC(PERMISSION_DENIED),
			   "user \"%s\" may not %s %s %s (it has no %s "
			   "permission)",
			   u->name, node_auth_perm_name(perm), g->what, name,
			   node_auth_perm_name(perm));
	} else {
		node_error(s, corr, EC(PERMISSION_DENIED),
			   "user \"%s\" may not %s %s %s (its %s "
			   "prefixes are %s)",
			   u->name, node_auth_perm_name(perm), g->what, name,
			   node_auth_perm_name(perm), list);
	}
	return false;
}

bool node_permitted(struct node_session *s, const struct node_kind *k,
		    const Envelope *env)
{
	uint64_t corr = env->correlation_id;
	struct node_grant g;
	size_t i;

	switch (k->access) {
	case NODE_ACCESS_ANYONE:
	case NODE_ACCESS_USER:
		return true;
	case NODE_ACCESS_ADMIN:
		if (s->user->admin) {
			return true;
		}
		node_error(s, corr, EC(PERMISSION_DENIED),
			   "user \"%s\" may not see or change the cluster "
			   "(%s needs admin = true)",
			   s->user->name, k->name);
		return false;
	case NODE_ACCESS_NAMED:
		for (i = 0; k->grant(env, i, &g); i++) {
			if (!allow(s, corr, &g)) {
				return false;
			}
		}
		return true;
	case NODE_ACCESS_UNSET:
	default:
		break;
	}
	/* node_kind_of() never returns such a kind; refuse all the same. */
	node_error(s, corr, EC(PERMISSION_DENIED),
		   "request %s has no stated permission", k->name);
	return false;
}

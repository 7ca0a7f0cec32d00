/* consensus/ error codes and the translation of libraft's RAFT_* codes: the
 * only place that knows both. */
#include "cons_int.h"

static const char *const errors[] = {
	[0] = "success",
	[CONS_ENOMEM] = "out of memory",
	[CONS_ENOTLEADER] = "this node is not the leader",
	[CONS_ELEADERSHIPLOST] =
		"leadership lost before the entry committed: outcome unknown",
	[CONS_ESHUTDOWN] = "the node is shutting down",
	[CONS_EBUSY] = "a membership change is already in progress",
	[CONS_EBADID] = "unknown, duplicate or invalid member",
	[CONS_EIO] = "disk or network error",
	[CONS_EINVAL] = "invalid argument",
	[CONS_ETOOBIG] =
		"log entry over the " CONS_STR(CONS_MAX_ENTRY_MIB) " MiB limit",
	[CONS_ECORRUPT] = "corrupt data dir or snapshot",
	[CONS_ENOSPACE] = "not enough disk space",
	[CONS_ENOLEADER] = "no leader is known",
	[CONS_ENOTFOUND] = "no such body in this node's store",
};

const char *cons_strerror(int code)
{
	if (code < 0 || (size_t)code >= sizeof errors / sizeof errors[0] ||
	    errors[code] == NULL) {
		return "unknown error";
	}
	return errors[code];
}

int cons__translate(int rv)
{
	switch (rv) {
	case 0:
		return 0;
	case RAFT_NOMEM:
		return CONS_ENOMEM;
	case RAFT_NOTLEADER:
		return CONS_ENOTLEADER;
	case RAFT_LEADERSHIPLOST:
		return CONS_ELEADERSHIPLOST;
	case RAFT_SHUTDOWN:
	case RAFT_CANCELED:
		return CONS_ESHUTDOWN;
	case RAFT_CANTCHANGE:
	case RAFT_BUSY:
		return CONS_EBUSY;
	case RAFT_BADID:
	case RAFT_DUPLICATEID:
	case RAFT_DUPLICATEADDRESS:
	case RAFT_BADROLE:
	case RAFT_NOTFOUND:
		return CONS_EBADID;
	case RAFT_TOOBIG:
		return CONS_ETOOBIG;
	case RAFT_CORRUPT:
	case RAFT_MALFORMED:
		return CONS_ECORRUPT;
	case RAFT_NOSPACE:
		return CONS_ENOSPACE;
	case RAFT_INVALID:
		return CONS_EINVAL;
	default:
		return CONS_EIO;
	}
}

"""The grammar of the names a request creates (queues, topics,
subscriptions), as in proto/names.h and docs/queue.md ("Names"): 1 to 255
bytes of ASCII letters, digits, '.', '_' and '-'. ':' is reserved for
subscription queues (TOPIC:SUBSCRIPTION); '*', '>' and '#' for routing
patterns. The node enforces it; checking here only saves a round trip."""

NAME_MAX = 255
RULE = ("names are 1 to 255 bytes of letters, digits, '.', '_' and '-' "
        "(docs/queue.md)")
_ALLOWED = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     b"0123456789._-")


def quote(name):
    """name in double quotes, shortened as the node does in its
    sentences: over 48 bytes, the first 40 (whole characters) and '…'."""
    b = name.encode() if isinstance(name, str) else bytes(name)
    if len(b) <= 48:
        return '"%s"' % b.decode(errors="replace")
    return '"%s…"' % b[:40].decode(errors="ignore")


def name_problem(name):
    """Why `name` is not a valid new name (one sentence), or None."""
    b = name.encode() if isinstance(name, str) else bytes(name)
    if not b:
        return "the name is empty; " + RULE
    for i, c in enumerate(b):
        if c in _ALLOWED:
            continue
        pos = i + 1
        if c == ord(":"):
            why = ("':' at position %d is reserved for subscription queues "
                   "(TOPIC:SUBSCRIPTION)" % pos)
        elif c in b"*>#":
            why = "'%c' at position %d is reserved for routing patterns" % (
                c, pos)
        elif c == ord(" "):
            why = "a space at position %d is not allowed" % pos
        elif 0x20 < c < 0x7f:
            why = "'%c' at position %d is not allowed" % (c, pos)
        else:
            why = "byte 0x%02x at position %d is not allowed (%s)" % (
                c, pos, "not ASCII" if c >= 0x80 else "a control character")
        return why + "; " + RULE
    if len(b) > NAME_MAX:
        return "the name is %d bytes long, over the limit of %d; %s" % (
            len(b), NAME_MAX, RULE)
    return None

/* The timer heap: an intrusive pairing heap of messages (the node sits in
 * their side struct, struct q_msg_ext) keyed by (due, queue id, seq). Keys
 * are unique, so the order in which timers fire depends only on the keys,
 * never on the heap's shape (which differs after a snapshot load).
 * Intrusive, so arming a timer never allocates (the side struct is reserved
 * before the command mutates anything). */
#include "q_int.h"

int q__timer_less(const struct q_hnode *a, const struct q_hnode *b)
{
	const struct q_msg_ext *xe =
		Q__CONTAINER_OF(a, struct q_msg_ext, timer);
	const struct q_msg_ext *ye =
		Q__CONTAINER_OF(b, struct q_msg_ext, timer);
	const struct q_msg *x = xe->msg, *y = ye->msg;
	if (xe->due != ye->due) {
		return xe->due < ye->due;
	}
	if (x->queue->id != y->queue->id) {
		return x->queue->id < y->queue->id;
	}
	return x->seq < y->seq;
}

/* Links two roots; returns the new root. */
static struct q_hnode *meld(struct q_hnode *a, struct q_hnode *b)
{
	if (a == NULL) {
		return b;
	}
	if (b == NULL) {
		return a;
	}
	if (q__timer_less(b, a)) {
		struct q_hnode *t = a;
		a = b;
		b = t;
	}
	/* b becomes a's first child. */
	b->prev = a;
	b->sibling = a->child;
	if (a->child != NULL) {
		a->child->prev = b;
	}
	a->child = b;
	a->sibling = NULL;
	a->prev = NULL;
	return a;
}

/* Two-pass pairing of a sibling list; iterative so deep lists cannot
 * overflow the stack. */
static struct q_hnode *merge_pairs(struct q_hnode *first)
{
	struct q_hnode *paired = NULL; /* pairs, linked backwards by sibling */
	struct q_hnode *result = NULL;
	while (first != NULL) {
		struct q_hnode *a = first;
		struct q_hnode *b = a->sibling;
		struct q_hnode *m;
		first = b != NULL ? b->sibling : NULL;
		a->sibling = a->prev = NULL;
		if (b != NULL) {
			b->sibling = b->prev = NULL;
		}
		m = meld(a, b);
		m->sibling = paired;
		paired = m;
	}
	while (paired != NULL) {
		struct q_hnode *next = paired->sibling;
		paired->sibling = NULL;
		result = meld(result, paired);
		paired = next;
	}
	return result;
}

void q__heap_insert(struct q_heap *h, struct q_hnode *n)
{
	n->child = n->sibling = n->prev = NULL;
	h->root = meld(h->root, n);
	h->count++;
}

struct q_hnode *q__heap_min(const struct q_heap *h)
{
	return h->root;
}

void q__heap_remove(struct q_heap *h, struct q_hnode *n)
{
	struct q_hnode *sub;
	if (n == h->root) {
		h->root = merge_pairs(n->child);
	} else {
		/* Cut n (with its subtree) out of its parent's child list. */
		if (n->prev->child == n) {
			n->prev->child = n->sibling;
		} else {
			n->prev->sibling = n->sibling;
		}
		if (n->sibling != NULL) {
			n->sibling->prev = n->prev;
		}
		sub = merge_pairs(n->child);
		h->root = meld(h->root, sub);
	}
	n->child = n->sibling = n->prev = NULL;
	h->count--;
}

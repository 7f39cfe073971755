/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* A bounded read position in a packet's linear data. */
#ifndef __BPFNET_LIB_CURSOR_H
#define __BPFNET_LIB_CURSOR_H

struct cursor {
	void *pos;      /* the next header */
	void *end;      /* skb->data_end */
	__u32 off;      /* offset of pos from the start of the frame */
	__u32 need;     /* after a failed cursor_has: frame bytes wanted */
};

/* A cursor at the start of @skb's frame. Packet pointers, hence the cursor,
 * die after any helper that may change the packet: make a new one then. */
static __always_inline struct cursor cursor_start(struct __sk_buff *skb)
{
	struct cursor c = {
		.pos = (void *)(long)skb->data,
		.end = (void *)(long)skb->data_end,
	};
	return c;
}

/* True if @len bytes can be read at @c->pos. Otherwise records in @c->need
 * how long the frame would have to be, and returns 0. */
static __always_inline int cursor_has(struct cursor *c, __u32 len)
{
	if (c->pos + len > c->end) {
		c->need = c->off + len;
		return 0;
	}
	return 1;
}

/* Moves @c past @len bytes; the caller must have checked them with
 * cursor_has. */
static __always_inline void cursor_skip(struct cursor *c, __u32 len)
{
	c->pos += len;
	c->off += len;
}

#endif /* __BPFNET_LIB_CURSOR_H */

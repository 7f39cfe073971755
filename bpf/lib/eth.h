/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef __BPFNET_LIB_ETH_H
#define __BPFNET_LIB_ETH_H

#include "lib/common.h"
#include "lib/cursor.h"
#include "lib/wire.h"

/* Returns the Ethernet header of @skb, or NULL if the linear data is shorter
 * than one. Pointers into the packet die after any helper that may change it. */
static __always_inline struct wire_eth *eth_hdr_get(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct wire_eth *eth = data;

	if ((void *)(eth + 1) > data_end)
		return NULL;
	return eth;
}

/* True for group (broadcast and multicast) addresses: I/G bit set. @mac
 * must point at 6 readable bytes (a checked Ethernet header). */
static __always_inline int eth_is_multicast(const __u8 *mac)
{
	return mac[0] & 1;
}

/* Copies a 6-byte MAC; @dst and @src must each have 6 bytes. */
static __always_inline void eth_copy(__u8 *dst, const __u8 *src)
{
	__builtin_memcpy(dst, src, ETH_ALEN);
}

/* True if the 6-byte MACs @a and @b are equal (no memcmp in BPF). */
static __always_inline int eth_equal(const __u8 *a, const __u8 *b)
{
	return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) |
		(a[3] ^ b[3]) | (a[4] ^ b[4]) | (a[5] ^ b[5])) == 0;
}

/* True for the VLAN TPIDs bpfnet handles (@proto in network order). */
static __always_inline int eth_is_vlan(__be16 proto)
{
	return proto == bpf_htons(ETH_P_8021Q) ||
	       proto == bpf_htons(ETH_P_8021AD);
}

/* Reads an Ethernet header and at most one VLAN tag (802.1Q or 802.1ad) in
 * the packet at @c and moves past them; a tag the receive path moved into
 * skb metadata is not seen here (see vlan_get_outer). Stores the ethertype
 * that follows (network order) in @proto. Needs no prior check: every read
 * is bounded by @c. Returns 0, or -1 if the frame ends inside the headers
 * (@c->need says how long it would have to be). */
static __always_inline int eth_parse(struct cursor *c, __be16 *proto)
{
	struct wire_vlan *vh;
	struct wire_eth *eth;

	if (!cursor_has(c, sizeof(*eth)))
		return -1;
	eth = c->pos;
	*proto = eth->proto;
	cursor_skip(c, sizeof(*eth));
	if (!eth_is_vlan(*proto))
		return 0;
	if (!cursor_has(c, sizeof(*vh)))
		return -1;
	vh = c->pos;
	*proto = vh->proto;
	cursor_skip(c, sizeof(*vh));
	return 0;
}

#endif /* __BPFNET_LIB_ETH_H */

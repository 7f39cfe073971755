/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef __BPFNET_LIB_ETH_H
#define __BPFNET_LIB_ETH_H

#include "lib/common.h"

/* Returns the Ethernet header of @skb, or NULL if the linear data is shorter
 * than one. Pointers into the packet die after any helper that may change it. */
static __always_inline struct ethhdr *eth_hdr_get(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return NULL;
	return eth;
}

/* True for group (broadcast and multicast) addresses: I/G bit set. */
static __always_inline int eth_is_multicast(const __u8 *mac)
{
	return mac[0] & 1;
}

/* Copies a 6-byte MAC; @dst and @src must each have 6 bytes. */
static __always_inline void eth_copy(__u8 *dst, const __u8 *src)
{
	__builtin_memcpy(dst, src, ETH_ALEN);
}

#endif /* __BPFNET_LIB_ETH_H */

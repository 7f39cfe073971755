/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* struct bpfnet_ip: an IPv4 (IPv4-mapped) or IPv6 address, network order. */
#ifndef __BPFNET_LIB_IP_H
#define __BPFNET_LIB_IP_H

#include "bpfnet.h"

/* True if @ip holds an IPv4-mapped address (::ffff:a.b.c.d). */
static __always_inline int ip_is_v4(const struct bpfnet_ip *ip)
{
	return ip->addr[0] == 0 && ip->addr[1] == 0 &&
	       ip->addr[2] == bpf_htonl(0x0000ffff);
}

/* True if @ip is all zeros (unset). */
static __always_inline int ip_is_zero(const struct bpfnet_ip *ip)
{
	return (ip->addr[0] | ip->addr[1] | ip->addr[2] | ip->addr[3]) == 0;
}

/* Stores IPv4 @v4 (network order) in @ip as IPv4-mapped. */
static __always_inline void ip_set_v4(struct bpfnet_ip *ip, __be32 v4)
{
	ip->addr[0] = 0;
	ip->addr[1] = 0;
	ip->addr[2] = bpf_htonl(0x0000ffff);
	ip->addr[3] = v4;
}

/* True if @a and @b are the same address (both in bpfnet_ip form). */
static __always_inline int ip_equal(const struct bpfnet_ip *a,
				    const struct bpfnet_ip *b)
{
	return a->addr[0] == b->addr[0] && a->addr[1] == b->addr[1] &&
	       a->addr[2] == b->addr[2] && a->addr[3] == b->addr[3];
}

#endif /* __BPFNET_LIB_IP_H */

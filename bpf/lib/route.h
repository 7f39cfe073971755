/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The underlay's next hop for an outer packet: bpf_fib_lookup. */
#ifndef __BPFNET_LIB_ROUTE_H
#define __BPFNET_LIB_ROUTE_H

#include "lib/common.h"
#include "lib/ip.h"

#define ROUTE_AF_INET  2
#define ROUTE_AF_INET6 10

/* struct bpf_fib_lookup as in the uapi since 4.18 (64 bytes); our own copy
 * so that no field access is a CO-RE relocation: later kernels moved smac
 * and dmac into an anonymous union. */
struct route_fib {
	__u8 family;
	__u8 l4_protocol;
	__be16 sport;
	__be16 dport;
	__u16 tot_len;          /* in: 0, no MTU check; out: mtu_result */
	__u32 ifindex;          /* in: the output device; out: the next hop's */
	__be32 flowinfo;        /* tos (IPv4) or flow info (IPv6); out: metric */
	__be32 src[4];          /* IPv4: src[0] */
	__be32 dst[4];          /* in: destination; out: next hop */
	__be16 h_vlan_proto;
	__be16 h_vlan_TCI;
	__u8 smac[6];
	__u8 dmac[6];
};

/* Looks up the route from @local to @remote (bpfnet_ip, network order, one
 * family) as if sent by this host out of @ifindex, and its neighbour.
 * Returns a BPF_FIB_LKUP_RET_* code: on BPF_FIB_LKUP_RET_SUCCESS, @r holds
 * the MACs and the output ifindex; on BPF_FIB_LKUP_RET_NO_NEIGH, the output
 * ifindex and the next hop (r->dst). The caller must have checked that
 * @local and @remote are of one family (ip_is_v4). */
static __always_inline long route_lookup(struct __sk_buff *skb, struct route_fib *r,
					 __u32 ifindex, const struct bpfnet_ip *local,
					 const struct bpfnet_ip *remote)
{
	__builtin_memset(r, 0, sizeof(*r));
	r->l4_protocol = IPPROTO_UDP;
	r->ifindex = ifindex;
	if (ip_is_v4(remote)) {
		r->family = ROUTE_AF_INET;
		r->src[0] = local->addr[3];
		r->dst[0] = remote->addr[3];
	} else {
		r->family = ROUTE_AF_INET6;
		__builtin_memcpy(r->src, local->addr, 16);
		__builtin_memcpy(r->dst, remote->addr, 16);
	}
	return bpf_fib_lookup(skb, (void *)r, sizeof(*r), BPF_FIB_LOOKUP_OUTPUT);
}

#endif /* __BPFNET_LIB_ROUTE_H */

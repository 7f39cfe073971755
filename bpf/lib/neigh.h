/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ARP and ND suppression: tenant IP bindings {vni, ip} -> MAC, an LRU hash
 * of struct br_neigh_key -> struct br_neigh_val (include/bridge.h).
 *
 * neigh_answer (on a port's egress) turns a broadcast ARP request, or a
 * multicast neighbour solicitation, for a bound IP into the reply in place
 * (ARP reply; neighbour advertisement with the solicited and override flags
 * and the target link-layer option, checksum recomputed); the caller sends
 * it back into the port. neigh_learn learns bindings from ARP and ND: on
 * the tunnel's ingress those of remote tenants, on a port's egress those of
 * this host's tenants (BR_NEIGH_F_LOCAL: never answered, their owner answers
 * itself on the tenant's bridge).
 *
 * Flags: a static binding is never aged nor overwritten; a route binding
 * (BR_NEIGH_F_ROUTE, routes_set) is never aged, and learning that the IP
 * moved to another MAC changes the MAC and keeps the flag (the next
 * routes_set settles it); a local claim replaces any binding but a static
 * one, and the tunnel's next claim for it makes it remote again.
 *
 * Never answered: gratuitous ARP (spa == tpa), ARP probes (spa 0.0.0.0),
 * duplicate address detection (NS from ::), unicast requests (a host
 * checking that its neighbour is alive must reach it). */
#ifndef __BPFNET_LIB_NEIGH_H
#define __BPFNET_LIB_NEIGH_H

#include "lib/common.h"
#include "lib/eth.h"
#include "lib/fdb.h"
#include "lib/ip.h"
#include "lib/wire.h"
#include "bridge.h"

/* What neigh_answer did, for the caller's counters. */
enum neigh_answered {
	NEIGH_PASS = 0,         /* not a request bpfnet answers: forward as is */
	NEIGH_ARP_UNKNOWN,      /* ARP request, no binding: forward (flood) */
	NEIGH_ND_UNKNOWN,       /* NS, no binding: forward (flood) */
	NEIGH_ARP_REPLY,        /* rewritten into the ARP reply */
	NEIGH_ND_REPLY,         /* rewritten into the neighbour advertisement */
	NEIGH_ARP_LOCAL,        /* ARP request for a tenant of this host: drop */
	NEIGH_ND_LOCAL,         /* NS for a tenant of this host: drop */
};

#define BR_NEIGH_F_NO_AGEING (BR_NEIGH_F_STATIC | BR_NEIGH_F_ROUTE)

/* The frame sizes a reply has: Ethernet + IPv6 + NA + target LL option. */
#define NEIGH_NA_LEN (ETH_HLEN + sizeof(struct wire_ip6) + sizeof(struct wire_nd) + \
		      sizeof(struct wire_nd_lladdr))

static __always_inline int arp_is_eth_ip4(const struct wire_arp *arp)
{
	return arp->htype == bpf_htons(1) && arp->ptype == bpf_htons(ETH_P_IP) &&
	       arp->hlen == ETH_ALEN && arp->plen == 4;
}

/* The binding of {@vni, @ip}, or NULL if none or a learned (or local) one
 * older than @ageing_s seconds (then deleted). */
static __always_inline struct br_neigh_val *neigh_get(void *neigh, __u32 vni,
						      const struct bpfnet_ip *ip,
						      __u32 ageing_s)
{
	struct br_neigh_key key = {};
	struct br_neigh_val *nv;

	key.vni = vni;
	key.ip = *ip;
	nv = bpf_map_lookup_elem(neigh, &key);
	if (!nv || (nv->flags & BR_NEIGH_F_NO_AGEING))
		return nv;
	if (stamp_older(bpf_ktime_get_coarse_ns(), nv->seen_ns, ageing_s)) {
		bpf_map_delete_elem(neigh, &key);
		return NULL;
	}
	return nv;
}

/* Learns {@vni, @ip} -> @mac unless a static binding holds it: a claim of
 * this host's tenant if @local (BR_NEIGH_F_LOCAL), else of a remote one (a
 * route binding's flag stays). Returns 1 if the binding is new or changed
 * (its MAC, or local to remote and back). */
static __always_inline int neigh_set(void *neigh, __u32 vni,
				     const struct bpfnet_ip *ip, const __u8 *mac,
				     int local)
{
	struct br_neigh_key key = {};
	struct br_neigh_val *old, val = {};

	if (eth_is_multicast(mac) || ip_is_zero(ip))
		return 0;
	key.vni = vni;
	key.ip = *ip;
	old = bpf_map_lookup_elem(neigh, &key);
	if (old && (old->flags & BR_NEIGH_F_STATIC))
		return 0;
	if (old && eth_equal(old->mac, mac) && !(old->flags & BR_NEIGH_F_LOCAL) == !local) {
		if (old->flags & BR_NEIGH_F_ROUTE)
			return 0; /* not aged */
		stamp_refresh(&old->seen_ns, bpf_ktime_get_coarse_ns());
		return 0;
	}
	eth_copy(val.mac, mac);
	val.seen_ns = bpf_ktime_get_ns();
	if (local)
		val.flags = BR_NEIGH_F_LOCAL;
	else if (old)
		val.flags = old->flags & BR_NEIGH_F_ROUTE;
	if (old)
		val.replies = old->replies;
	bpf_map_update_elem(neigh, &key, &val, BPF_ANY);
	return 1;
}

/* Ones' complement sum folded to 16 bits. */
static __always_inline __sum16 csum_fold32(__s64 sum)
{
	__u32 s = (__u32)sum;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__sum16)~s;
}

/* ARP request at @arp (inside the checked frame @eth) -> reply from @mac. */
static __always_inline void arp_reply_build(struct wire_eth *eth, struct wire_arp *arp,
					    const __u8 *mac)
{
	__u8 ip[4];

	eth_copy(eth->dst, eth->src);
	eth_copy(eth->src, mac);
	arp->op = bpf_htons(WIRE_ARP_REPLY);
	eth_copy(arp->tha, arp->sha);
	eth_copy(arp->sha, mac);
	__builtin_memcpy(ip, arp->tpa, 4);
	__builtin_memcpy(arp->tpa, arp->spa, 4);
	__builtin_memcpy(arp->spa, ip, 4);
}

static __always_inline int neigh_answer_arp(struct __sk_buff *skb, void *neigh, void *local,
					    __u32 vni, __u32 ageing_s, int answer)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct wire_eth *eth = data;
	struct wire_arp *arp = (void *)(eth + 1);
	struct br_neigh_val *nv;
	struct bpfnet_ip tip;
	__be32 spa, tpa;

	if ((void *)(arp + 1) > data_end)
		return NEIGH_PASS;
	if (!arp_is_eth_ip4(arp) || arp->op != bpf_htons(WIRE_ARP_REQUEST))
		return NEIGH_PASS;
	__builtin_memcpy(&spa, arp->spa, 4);
	__builtin_memcpy(&tpa, arp->tpa, 4);
	if (spa == 0 || spa == tpa)
		return NEIGH_PASS; /* probe or gratuitous */
	if (!answer)
		return NEIGH_ARP_UNKNOWN;
	ip_set_v4(&tip, tpa);
	nv = neigh_get(neigh, vni, &tip, ageing_s);
	if (!nv)
		return NEIGH_ARP_UNKNOWN;
	if (nv->flags & BR_NEIGH_F_LOCAL)
		return local_known(local, vni, nv->mac, ageing_s) ? NEIGH_ARP_LOCAL
								  : NEIGH_ARP_UNKNOWN;
	__sync_fetch_and_add(&nv->replies, 1);
	arp_reply_build(eth, arp, nv->mac);
	return NEIGH_ARP_REPLY;
}

/* The NS in @skb (Ethernet, IPv6 without extension headers, hop limit 255,
 * ICMPv6 135 code 0) -> NA from @mac, @skb resized to NEIGH_NA_LEN. */
static __always_inline int nd_na_build(struct __sk_buff *skb, const __u8 *mac)
{
	struct wire_nd_lladdr *opt;
	struct wire_eth *eth;
	struct wire_ip6 *ip6;
	struct wire_nd *nd;
	void *data, *data_end;
	__be32 pseudo[2];
	__u8 src[ETH_ALEN];
	__s64 sum;

	eth_copy(src, mac);
	if (skb->len != NEIGH_NA_LEN && bpf_skb_change_tail(skb, NEIGH_NA_LEN, 0))
		return -1;
	if (bpf_skb_pull_data(skb, NEIGH_NA_LEN))
		return -1;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	eth = data;
	ip6 = (void *)(eth + 1);
	nd = (void *)(ip6 + 1);
	opt = (void *)(nd + 1);
	if ((void *)(opt + 1) > data_end)
		return -1;
	eth_copy(eth->dst, eth->src);
	eth_copy(eth->src, src);
	ip6->ver_tc_flow = bpf_htonl(0x60000000);
	ip6->payload_len = bpf_htons(sizeof(*nd) + sizeof(*opt));
	ip6->nexthdr = WIRE_IPPROTO_ICMPV6;
	ip6->hop_limit = 255;
	__builtin_memcpy(ip6->daddr, ip6->saddr, 16);
	__builtin_memcpy(ip6->saddr, nd->target, 16);
	nd->type = WIRE_ND_NA;
	nd->code = 0;
	nd->check = 0;
	nd->flags = bpf_htonl(WIRE_ND_F_SOLICITED | WIRE_ND_F_OVERRIDE);
	opt->type = WIRE_ND_OPT_TGT_LL;
	opt->len = 1;
	eth_copy(opt->mac, src);
	/* pseudo-header (RFC 8200 8.1): addresses, upper-layer length, next header */
	pseudo[0] = bpf_htonl(sizeof(*nd) + sizeof(*opt));
	pseudo[1] = bpf_htonl(WIRE_IPPROTO_ICMPV6);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)ip6->saddr, 32, 0);
	sum = bpf_csum_diff(NULL, 0, pseudo, sizeof(pseudo), (__u32)sum);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)nd, sizeof(*nd) + sizeof(*opt), (__u32)sum);
	if (sum < 0)
		return -1;
	nd->check = csum_fold32(sum);
	return 0;
}

static __always_inline int neigh_answer_nd(struct __sk_buff *skb, void *neigh, void *local,
					   __u32 vni, __u32 ageing_s, int answer)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct wire_eth *eth = data;
	struct wire_ip6 *ip6 = (void *)(eth + 1);
	struct wire_nd *nd = (void *)(ip6 + 1);
	struct br_neigh_val *nv;
	struct bpfnet_ip tip;
	__u8 mac[ETH_ALEN];

	if ((void *)(nd + 1) > data_end)
		return NEIGH_PASS;
	if (ip6->nexthdr != WIRE_IPPROTO_ICMPV6 || ip6->hop_limit != 255 ||
	    nd->type != WIRE_ND_NS || nd->code != 0 ||
	    bpf_ntohs(ip6->payload_len) < sizeof(*nd))
		return NEIGH_PASS;
	if ((ip6->saddr[0] | ip6->saddr[1] | ip6->saddr[2] | ip6->saddr[3]) == 0)
		return NEIGH_PASS; /* duplicate address detection */
	if ((bpf_ntohl(nd->target[0]) >> 24) == 0xff)
		return NEIGH_PASS; /* a multicast target is invalid */
	if (!answer)
		return NEIGH_ND_UNKNOWN;
	__builtin_memcpy(tip.addr, nd->target, 16);
	nv = neigh_get(neigh, vni, &tip, ageing_s);
	if (!nv)
		return NEIGH_ND_UNKNOWN;
	if (nv->flags & BR_NEIGH_F_LOCAL)
		return local_known(local, vni, nv->mac, ageing_s) ? NEIGH_ND_LOCAL
								  : NEIGH_ND_UNKNOWN;
	eth_copy(mac, nv->mac);
	if (nd_na_build(skb, mac))
		return NEIGH_PASS; /* could not resize: let the request go */
	__sync_fetch_and_add(&nv->replies, 1);
	return NEIGH_ND_REPLY;
}

/* On a port's egress: answers a broadcast ARP request or a multicast NS for
 * a bound IP of @vni in place (the caller redirects the frame back into the
 * port); with @answer zero (suppression off) only classifies it (unknown).
 * A request for a binding of this host's tenants (BR_NEIGH_F_LOCAL) whose MAC
 * is still one of them (in @local, br_local, within the ageing time) is
 * *_LOCAL: the tenants' bridge has delivered it to its owner already, so the
 * caller keeps it off the tunnel, as the kernel's neigh_suppress does; a local
 * binding whose MAC is no longer here is unknown (it floods).
 * Packet pointers die here. Returns an enum neigh_answered. */
static __always_inline int neigh_answer(struct __sk_buff *skb, void *neigh, void *local,
					__u32 vni, __u32 ageing_s, int answer)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct wire_eth *eth = data;

	if ((void *)(eth + 1) > data_end || !eth_is_multicast(eth->dst))
		return NEIGH_PASS;
	if (eth->proto == bpf_htons(ETH_P_ARP))
		return neigh_answer_arp(skb, neigh, local, vni, ageing_s, answer);
	if (eth->proto == bpf_htons(ETH_P_IPV6))
		return neigh_answer_nd(skb, neigh, local, vni, ageing_s, answer);
	return NEIGH_PASS;
}

/* Learns the sender's binding from an ARP request or reply (announcements
 * too; never from 0.0.0.0), the target's from an NA with the target
 * link-layer option, and the sender's from an NS with the source link-layer
 * option: on the tunnel's ingress (@local zero) or, as this host's
 * tenants' claims, on a port's egress (@local 1). Reads only the linear
 * data. Returns 1 if a binding was learned or changed. */
static __always_inline int neigh_learn(struct __sk_buff *skb, void *neigh, __u32 vni,
				       int local)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct wire_eth *eth = data;
	struct wire_nd_lladdr *opt;
	struct wire_arp *arp;
	struct wire_ip6 *ip6;
	struct bpfnet_ip ip;
	struct wire_nd *nd;
	__be32 spa;

	if ((void *)(eth + 1) > data_end)
		return 0;
	if (eth->proto == bpf_htons(ETH_P_ARP)) {
		arp = (void *)(eth + 1);
		if ((void *)(arp + 1) > data_end || !arp_is_eth_ip4(arp))
			return 0;
		if (arp->op != bpf_htons(WIRE_ARP_REQUEST) &&
		    arp->op != bpf_htons(WIRE_ARP_REPLY))
			return 0;
		__builtin_memcpy(&spa, arp->spa, 4);
		ip_set_v4(&ip, spa);
		if (!spa)
			return 0;
		return neigh_set(neigh, vni, &ip, arp->sha, local);
	}
	if (eth->proto != bpf_htons(ETH_P_IPV6))
		return 0;
	ip6 = (void *)(eth + 1);
	nd = (void *)(ip6 + 1);
	opt = (void *)(nd + 1);
	if ((void *)(opt + 1) > data_end)
		return 0;
	if (ip6->nexthdr != WIRE_IPPROTO_ICMPV6 || ip6->hop_limit != 255 || nd->code != 0 ||
	    opt->len != 1)
		return 0;
	if (nd->type == WIRE_ND_NA && opt->type == WIRE_ND_OPT_TGT_LL)
		__builtin_memcpy(ip.addr, nd->target, 16);
	else if (nd->type == WIRE_ND_NS && opt->type == WIRE_ND_OPT_SRC_LL)
		__builtin_memcpy(ip.addr, ip6->saddr, 16);
	else
		return 0;
	if ((bpf_ntohl(ip.addr[0]) >> 24) == 0xff)
		return 0;
	return neigh_set(neigh, vni, &ip, opt->mac, local);
}

#endif /* __BPFNET_LIB_NEIGH_H */

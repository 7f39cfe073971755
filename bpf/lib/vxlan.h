/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* VXLAN (RFC 7348) encapsulation and decapsulation in the program, wire
 * compatible with the kernel's VXLAN device: the bridge's and the mesh's fast
 * path. What the program cannot do cleanly it leaves to the VXLAN device
 * (vxlan_encap returns VXLAN_TX_DEVICE; vxlan_rx_parse anything but
 * VXLAN_RX_OK), so the device path stays the fallback for every frame.
 *
 * Egress (vxlan_encap): bpf_skb_adjust_room with the ENCAP flags for IP
 * frames (so GSO frames stay segmentable: skb->encapsulation, the inner
 * offsets and SKB_GSO_UDP_TUNNEL are set; the kernel refuses non-IP frames
 * there), bpf_skb_change_head for the rest (ARP). Outer MACs from
 * bpf_fib_lookup, or bpf_redirect_neigh when the neighbour is not resolved
 * yet; a multicast group's MAC is mapped from the group (01:00:5e, 33:33).
 * Every helper and flag used here is in Linux 6.1 (adjust_room ENCAP flags
 * 5.2, ENCAP_L2_ETH 5.9, bpf_redirect_neigh 5.10, bpf_check_mtu 5.12); no
 * DECAP_L3 flag (6.3).
 */
#ifndef __BPFNET_LIB_VXLAN_H
#define __BPFNET_LIB_VXLAN_H

#include "lib/common.h"
#include "lib/csum.h"
#include "lib/cursor.h"
#include "lib/eth.h"
#include "lib/ip.h"
#include "lib/redirect.h"
#include "lib/route.h"
#include "lib/wire.h"
#include "encap.h"

#define VXLAN_TX_DEVICE (-1)    /* vxlan_encap: send it through the device */
#define VXLAN_TTL       64
#define IPPROTO_ICMPV6_ 58      /* vmlinux.h's enum lacks it */

/* uapi macros vmlinux.h cannot carry */
#define BPF_F_ADJ_ROOM_ENCAP_L2(len) (((__u64)(len) & 0xff) << 56)

/* The headers vxlan_encap writes at the front of the frame: outer Ethernet,
 * IP, UDP, VXLAN, then the frame's own Ethernet header again (the inner).
 * Built on the stack two bytes in, so that the IP header and everything
 * after it are 4-byte aligned (the verifier wants aligned stack access);
 * written to the packet from &eth, VXLAN_WIRE4/6 bytes. */
struct vxlan_hdr4 {
	__u8 pad[2];
	struct wire_eth eth;
	struct wire_ip4 ip;
	struct wire_udp udp;
	struct wire_vxlan vx;
	struct wire_eth inner;
};

struct vxlan_hdr6 {
	__u8 pad[2];
	struct wire_eth eth;
	struct wire_ip6 ip;
	struct wire_udp udp;
	struct wire_vxlan vx;
	struct wire_eth inner;
};

#define VXLAN_WIRE4 (ENCAP_HLEN4 + ETH_HLEN)    /* 64 */
#define VXLAN_WIRE6 (ENCAP_HLEN6 + ETH_HLEN)    /* 84 */
#define VXLAN_UDP6  (ETH_HLEN + 40)             /* outer UDP offset, IPv6 */

/* The IPv6 pseudo-header of the outer UDP checksum (RFC 8200 8.1). */
struct vxlan_pseudo6 {
	__be32 saddr[4];
	__be32 daddr[4];
	__be32 len;
	__be32 nexthdr;
};


/* True if @ip (bpfnet_ip) is a multicast group. */
static __always_inline int vxlan_is_group(const struct bpfnet_ip *ip)
{
	if (ip_is_v4(ip))
		return (bpf_ntohl(ip->addr[3]) & 0xf0000000) == 0xe0000000;
	return (bpf_ntohl(ip->addr[0]) >> 24) == 0xff;
}

/* Writes the MAC of multicast group @ip into @mac (RFC 1112 6.4: 01:00:5e
 * and the low 23 bits; RFC 2464 7: 33:33 and the low 32 bits). The caller
 * must have checked vxlan_is_group(@ip). */
static __always_inline void vxlan_group_mac(__u8 *mac, const struct bpfnet_ip *ip)
{
	__u32 a;

	if (ip_is_v4(ip)) {
		a = bpf_ntohl(ip->addr[3]);
		mac[0] = 0x01;
		mac[1] = 0x00;
		mac[2] = 0x5e;
		mac[3] = (a >> 16) & 0x7f;
	} else {
		a = bpf_ntohl(ip->addr[3]);
		mac[0] = 0x33;
		mac[1] = 0x33;
		mac[2] = a >> 24;
		mac[3] = a >> 16;
	}
	mac[4] = a >> 8;
	mac[5] = a;
}

/* The outer UDP source port for @skb, host order: from the inner flow hash,
 * spread over [@ec->sport_min, @ec->sport_max) as the kernel's
 * udp_flow_src_port does, so one flow keeps one port and flows spread over
 * ECMP paths and receive queues. As there (skb_get_hash), a hash the frame
 * carries already (a local socket's, or one computed earlier on its way)
 * is taken as it is; only a frame without one is dissected
 * (bpf_get_hash_recalc, which would recompute even a hash the frame
 * has). */
static __always_inline __u16 vxlan_sport(struct __sk_buff *skb,
					 const struct encap_cfg *ec)
{
	__u32 hash = skb->hash;
	__u32 min = ec->sport_min, max = ec->sport_max;

	if (!hash)
		hash = bpf_get_hash_recalc(skb);

	if (max <= min)
		return min;
	hash ^= hash << 16;
	return (((__u64)hash * (max - min)) >> 32) + min;
}

/* The IPv4 pseudo-header of an inner TCP/UDP checksum (RFC 793, 768), as
 * its partial sum's input. */
struct vxlan_pseudo4 {
	__be32 saddr;
	__be32 daddr;
	__u8 zero;
	__u8 protocol;
	__be16 len;
};

/* The inner frame's part of the outer UDP checksum on an IPv6 underlay,
 * from the frame before it is encapsulated (@len bytes, ethertype @proto in
 * network order): its IP header, plus for its L4 segment the complement of
 * that segment's pseudo-header sum, which is what a valid L4 segment sums to
 * (RFC 1071: it sums with its pseudo-header to 0xffff). That holds whether
 * the inner checksum is final already or still to be filled in by offload
 * (CHECKSUM_PARTIAL), which a program cannot tell apart; it is the kernel's
 * local checksum offload (lco_csum), with no pass over the payload.
 * Covered: IPv4 (no options, not a fragment) or IPv6 with TCP, UDP with a
 * checksum, ICMP or ICMPv6 right after the IP header, and no bytes after the
 * IP packet. Returns a partial sum (>= 0) for the outer checksum, or -1 for
 * any other frame, which the caller sends through the device (the kernel's
 * VXLAN device sums the whole packet). A function of its own (a BPF-to-BPF
 * call), so that its stack adds to vxlan_encap's only along the call
 * chain. */
static __noinline __s64 vxlan_csum6_inner(struct __sk_buff *skb, __u32 len, __be16 proto)
{
	struct vxlan_pseudo6 p6 = {};
	struct vxlan_pseudo4 p4 = {};
	struct wire_ip6 ip6;
	struct wire_ip4 ip4;
	__be16 ucheck = 0;
	__s64 hdr, ps;
	__u8 l4;

	if (proto == bpf_htons(ETH_P_IP)) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip4, sizeof(ip4)))
			return -1;
		if (ip4.ver_ihl != 0x45 ||
		    (ip4.frag_off & bpf_htons(WIRE_IP4_MF | WIRE_IP4_OFFSET)) ||
		    bpf_ntohs(ip4.tot_len) + ETH_HLEN != len)
			return -1;
		l4 = ip4.protocol;
		if (l4 == IPPROTO_UDP) {
			if (bpf_skb_load_bytes(skb, ETH_HLEN + sizeof(ip4) + 6, &ucheck, 2) ||
			    !ucheck)
				return -1;  /* no UDP checksum: nothing to rely on */
		} else if (l4 != IPPROTO_TCP && l4 != IPPROTO_ICMP) {
			return -1;
		}
		hdr = csum_add_buf(&ip4, sizeof(ip4), 0);
		/* ICMP has no pseudo-header: a valid message sums to 0xffff,
		 * which adds nothing */
		if (l4 == IPPROTO_ICMP)
			return hdr;
		p4.saddr = ip4.saddr;
		p4.daddr = ip4.daddr;
		p4.protocol = l4;
		p4.len = bpf_htons(bpf_ntohs(ip4.tot_len) - sizeof(ip4));
		ps = csum_add_buf(&p4, sizeof(p4), 0);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6)))
			return -1;
		l4 = ip6.nexthdr;
		if ((l4 != IPPROTO_TCP && l4 != IPPROTO_UDP && l4 != IPPROTO_ICMPV6_) ||
		    bpf_ntohs(ip6.payload_len) + sizeof(ip6) + ETH_HLEN != len)
			return -1;
		hdr = csum_add_buf(&ip6, sizeof(ip6), 0);
		__builtin_memcpy(p6.saddr, ip6.saddr, 16);
		__builtin_memcpy(p6.daddr, ip6.daddr, 16);
		p6.len = bpf_htonl(bpf_ntohs(ip6.payload_len));
		p6.nexthdr = bpf_htonl(l4);
		ps = csum_add_buf(&p6, sizeof(p6), 0);
	} else {
		return -1;
	}
	if (hdr < 0 || ps < 0)
		return -1;
	return (__u64)csum_fold(hdr) + (__u16)~csum_fold(ps);
}

/* vxlan_next_hop's @nh->nh_family when the kernel is to route the frame
 * itself (bpf_redirect_neigh with no next hop). */
#define VXLAN_NH_ROUTE 0xffff

/* Finds the outer MACs for @dst (bpfnet_ip, network order) and writes them
 * into @oeth: a group's are mapped; a VTEP's come from the FIB and the
 * neighbour table (bpf_fib_lookup from @ec's local address out of its
 * underlay). Returns the ifindex to redirect to. With @nh->nh_family set
 * the frame must go by bpf_redirect_neigh instead: to next hop @nh, whose
 * neighbour entry is not resolved yet; or, VXLAN_NH_ROUTE, routed by the
 * kernel, which is what happens when bpf_fib_lookup will not answer
 * (forwarding is off on the underlay: the helper refuses then, even for
 * output lookups) or when skb->mark is set (policy routing by mark, which
 * the 6.1 helper cannot take). Only IP frames may take bpf_redirect_neigh
 * (it drops anything else). Returns -1 if there is no way but the device.
 * A function of its own so that its stack is not vxlan_encap's. */
static __noinline int vxlan_next_hop(struct __sk_buff *skb, const struct encap_cfg *ec,
				     const struct bpfnet_ip *dst, struct wire_eth *oeth,
				     struct redirect_nh *nh)
{
	__be16 proto = skb->protocol;
	int ip_inner = proto == bpf_htons(ETH_P_IP) || proto == bpf_htons(ETH_P_IPV6);
	struct route_fib r;
	long rc;

	if (vxlan_is_group(dst)) {
		vxlan_group_mac(oeth->dst, dst);
		eth_copy(oeth->src, ec->src_mac);
		return ec->underlay;
	}
	if (skb->mark) {
		rc = BPF_FIB_LKUP_RET_FWD_DISABLED;
		r.ifindex = ec->underlay;
	} else {
		rc = route_lookup(skb, &r, ec->underlay, &ec->local, dst);
	}
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		eth_copy(oeth->dst, r.dmac);
		eth_copy(oeth->src, r.smac);
		return r.ifindex;
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH && ip_inner) {
		/* the kernel resolves the neighbour and queues meanwhile */
		nh->nh_family = r.family;
		__builtin_memcpy(nh->nh, r.dst, 16);
		return r.ifindex;
	}
	if (rc == BPF_FIB_LKUP_RET_FWD_DISABLED && ip_inner) {
		nh->nh_family = VXLAN_NH_ROUTE;
		return ec->underlay;
	}
	return -1;
}

/* Encapsulates @skb (a frame leaving a tenant port, its Ethernet header at
 * the start) for VNI @vni (host order) to VTEP or group @dst (bpfnet_ip,
 * network order) and redirects it out of the underlay. @ec must be the
 * function's encap_cfg with ENCAP_F_NATIVE set; @st its per-CPU
 * encap_stats (may be NULL). Returns TC_ACT_REDIRECT, TC_ACT_SHOT (too big
 * for the underlay, counted drop_mtu; or a helper failed after the frame was
 * changed, drop_encap), or VXLAN_TX_DEVICE with the frame untouched: it is
 * not one the program handles (another family than the underlay, a VLAN tag
 * in skb metadata, GSO or non-IP on an IPv6 underlay, an inner frame the
 * IPv6 checksum does not cover, no route), and the caller sends it through
 * the VXLAN device. Packet pointers are dead afterwards. Not inlined: its
 * stack then adds to the caller's only along the call chain. The union h
 * is zeroed whole, so the tail padding of struct vxlan_hdr6 summed into the
 * IPv6 checksum is zero. */
static __noinline int vxlan_encap(struct __sk_buff *skb, const struct encap_cfg *ec,
				       struct encap_stats *st,
				       const struct bpfnet_ip *dst, __u32 vni)
{
	__u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L4_UDP |
		      BPF_F_ADJ_ROOM_ENCAP_L2_ETH |
		      BPF_F_ADJ_ROOM_ENCAP_L2(ETH_HLEN);
	int v6 = !!(ec->flags & ENCAP_F_IPV6);
	__be16 proto = skb->protocol;
	__u32 len = skb->len, out_if = ec->underlay, mtu_len = 0, hlen;
	int ip_inner = proto == bpf_htons(ETH_P_IP) || proto == bpf_htons(ETH_P_IPV6);
	int gso = skb->gso_size != 0;
	struct vxlan_pseudo6 ph = {};
	struct redirect_nh nh = {};
	__s64 isum = 0;
	union {
		struct vxlan_hdr4 v4;
		struct vxlan_hdr6 v6;
	} h;
	struct wire_eth *oeth = &h.v4.eth; /* at the same place in both */
	struct wire_udp *udp;
	struct wire_vxlan *vx;
	long rc;

	__builtin_memset(&h, 0, sizeof(h));
	if (v6 == ip_is_v4(dst) || skb->vlan_present)
		return VXLAN_TX_DEVICE;
	if (gso && !ip_inner)
		return VXLAN_TX_DEVICE;
	if (v6 && (gso || !ip_inner))
		return VXLAN_TX_DEVICE;
	if (v6) {
		isum = vxlan_csum6_inner(skb, len, proto);
		if (isum < 0)
			return VXLAN_TX_DEVICE;
	}
	hlen = v6 ? ENCAP_HLEN6 : ENCAP_HLEN4;
	if (!gso) {
		rc = bpf_check_mtu(skb, out_if, &mtu_len, hlen, 0);
		if (rc == BPF_MTU_CHK_RET_FRAG_NEEDED) {
			if (st)
				st->drop_mtu += 1;
			return TC_ACT_SHOT;
		}
		if (rc)
			return VXLAN_TX_DEVICE;
	}

	/* the outer MACs, before anything changes */
	rc = vxlan_next_hop(skb, ec, dst, oeth, &nh);
	if (rc < 0)
		return VXLAN_TX_DEVICE;
	out_if = rc;
	if (bpf_skb_load_bytes(skb, 0, v6 ? &h.v6.inner : &h.v4.inner, ETH_HLEN))
		return VXLAN_TX_DEVICE;

	if (v6) {
		oeth->proto = bpf_htons(ETH_P_IPV6);
		h.v6.ip.ver_tc_flow = bpf_htonl(0x60000000);
		h.v6.ip.payload_len = bpf_htons(len + sizeof(struct wire_udp) +
						sizeof(struct wire_vxlan));
		h.v6.ip.nexthdr = IPPROTO_UDP;
		h.v6.ip.hop_limit = VXLAN_TTL;
		__builtin_memcpy(h.v6.ip.saddr, ec->local.addr, 16);
		__builtin_memcpy(h.v6.ip.daddr, dst->addr, 16);
		udp = &h.v6.udp;
		vx = &h.v6.vx;
		udp->len = h.v6.ip.payload_len;
		flags |= BPF_F_ADJ_ROOM_ENCAP_L3_IPV6;
	} else {
		oeth->proto = bpf_htons(ETH_P_IP);
		h.v4.ip.ver_ihl = 0x45;
		h.v4.ip.tot_len = bpf_htons(len + hlen - ETH_HLEN);
		h.v4.ip.frag_off = bpf_htons(WIRE_IP4_DF);
		h.v4.ip.ttl = VXLAN_TTL;
		h.v4.ip.protocol = IPPROTO_UDP;
		h.v4.ip.saddr = ec->local.addr[3];
		h.v4.ip.daddr = dst->addr[3];
		rc = csum_add_buf(&h.v4.ip, sizeof(h.v4.ip), 0);
		if (rc < 0)
			return VXLAN_TX_DEVICE;
		h.v4.ip.check = ~csum_fold(rc);
		udp = &h.v4.udp;
		vx = &h.v4.vx;
		udp->len = bpf_htons(len + hlen - ETH_HLEN - sizeof(struct wire_ip4));
		flags |= BPF_F_ADJ_ROOM_ENCAP_L3_IPV4;
	}
	udp->source = bpf_htons(vxlan_sport(skb, ec));
	udp->dest = ec->dstport;
	udp->check = 0;         /* IPv4: none (RFC 7348 5) */
	vx->flags = bpf_htonl(WIRE_VXLAN_I);
	vx->vni = bpf_htonl(vni << 8);
	if (v6) {
		/* pseudo-header + UDP + VXLAN + inner Ethernet (30 bytes and
		 * the struct's 2 zero bytes of tail padding) + the inner part */
		__builtin_memcpy(ph.saddr, h.v6.ip.saddr, 16);
		__builtin_memcpy(ph.daddr, h.v6.ip.daddr, 16);
		ph.len = bpf_htonl(bpf_ntohs(udp->len));
		ph.nexthdr = bpf_htonl(IPPROTO_UDP);
		rc = csum_add_buf(&ph, sizeof(ph), 0);
		if (rc >= 0)
			rc = csum_add_buf(&h.v6.udp, 32, rc);
		if (rc < 0)
			return VXLAN_TX_DEVICE;
		udp->check = ~csum_fold((__u64)csum_fold(rc) + (__u64)isum);
		if (!udp->check)
			udp->check = 0xffff; /* RFC 8200 8.1: zero is sent as all ones */
	}

	if (ip_inner) {
		/* room after the Ethernet header, which becomes the outer one */
		if (bpf_skb_adjust_room(skb, hlen, BPF_ADJ_ROOM_MAC, flags))
			return VXLAN_TX_DEVICE;  /* refused: frame unchanged */
		if (v6)
			rc = bpf_skb_store_bytes(skb, 0, &h.v6.eth, VXLAN_WIRE6, 0);
		else
			rc = bpf_skb_store_bytes(skb, 0, &h.v4.eth, VXLAN_WIRE4, 0);
	} else {
		/* adjust_room takes only IP frames: push at the head, and the
		 * frame's own Ethernet header is the inner one already */
		if (bpf_skb_change_head(skb, hlen, 0))
			return VXLAN_TX_DEVICE;
		rc = bpf_skb_store_bytes(skb, 0, &h.v4.eth, ENCAP_HLEN4, 0);
		if (st)
			st->encap_l2 += 1;
	}
	if (rc) {
		if (st)
			st->drop_encap += 1;
		return TC_ACT_SHOT;
	}
	if (gso) {
		/* the segments, outer headers included, must fit the underlay */
		mtu_len = 0;
		if (bpf_check_mtu(skb, out_if, &mtu_len, 0, BPF_MTU_CHK_SEGS)) {
			if (st)
				st->drop_mtu += 1;
			return TC_ACT_SHOT;
		}
	}
	if (st)
		st->encap += 1;
	if (nh.nh_family == VXLAN_NH_ROUTE)
		return redirect_neigh_to(skb, out_if, NULL);
	if (nh.nh_family)
		return redirect_neigh_to(skb, out_if, &nh);
	return redirect_to(skb, out_if, 0);
}

/* The egress programs' path choice: with native encapsulation on in @ec,
 * vxlan_encap's verdict; VXLAN_TX_DEVICE when the frame is to go through
 * the VXLAN device (native off, or a frame vxlan_encap leaves to it), with
 * tx_device and tx_fallback counted in @st (may be NULL). */
static __always_inline int vxlan_tx(struct __sk_buff *skb, const struct encap_cfg *ec,
				    struct encap_stats *st, const struct bpfnet_ip *dst,
				    __u32 vni)
{
	int ret;

	if (ec && (ec->flags & ENCAP_F_NATIVE)) {
		ret = vxlan_encap(skb, ec, st, dst, vni);
		if (ret != VXLAN_TX_DEVICE)
			return ret;
		if (st)
			st->tx_fallback += 1;
	}
	if (st)
		st->tx_device += 1;
	return VXLAN_TX_DEVICE;
}

/* What vxlan_rx_parse found. */
enum vxlan_rx {
	VXLAN_RX_OK = 0,        /* VXLAN for us the program may decapsulate */
	VXLAN_RX_NOT_OURS,      /* not VXLAN to our port and address */
	VXLAN_RX_GSO,           /* ours, but a GSO/GRO frame: the device's */
	VXLAN_RX_FRAG,          /* ours, but an IP fragment: the device's */
	VXLAN_RX_TCP,           /* ours, but TCP inside: the device's, as the
				 * flow's GSO/GRO frames are (one path per flow
				 * keeps its segments in order) */
	VXLAN_RX_UNSURE,        /* ours, but something the program leaves to
				 * the device (IPv4 options, trailing bytes,
				 * VXLAN flags, an IPv6 underlay) */
};

/* True if the inner frame at @c (its Ethernet header, untagged) is IPv4 or
 * IPv6 carrying TCP. A frame too short to tell is not. */
static __always_inline int vxlan_inner_is_tcp(struct cursor *c)
{
	struct wire_eth *eth;
	struct wire_ip4 *ip4;
	struct wire_ip6 *ip6;

	if (!cursor_has(c, sizeof(*eth) + sizeof(*ip6)))
		return 0;
	eth = c->pos;
	ip4 = (void *)(eth + 1);
	ip6 = (void *)(eth + 1);
	if (eth->proto == bpf_htons(ETH_P_IP))
		return ip4->protocol == IPPROTO_TCP;
	if (eth->proto == bpf_htons(ETH_P_IPV6))
		return ip6->nexthdr == IPPROTO_TCP;
	return 0;
}

/* The IPv6 part of vxlan_rx_parse, @c at the Ethernet header: VXLAN to our
 * port (no extension headers) is left to the device, which verifies the
 * UDP checksum IPv6 requires; a program can not tell a checksum still to be
 * completed by offload from a wrong one. Returns VXLAN_RX_UNSURE or
 * VXLAN_RX_NOT_OURS. */
static __always_inline int vxlan_rx_parse6(struct cursor *c, const struct encap_cfg *ec)
{
	struct wire_ip6 *ip6;
	struct wire_udp *udp;

	cursor_skip(c, sizeof(struct wire_eth));
	if (!cursor_has(c, sizeof(*ip6) + sizeof(*udp)))
		return VXLAN_RX_NOT_OURS;
	ip6 = c->pos;
	if (ip6->nexthdr != IPPROTO_UDP)
		return VXLAN_RX_NOT_OURS;
	cursor_skip(c, sizeof(*ip6));
	udp = c->pos;
	return udp->dest == ec->dstport ? VXLAN_RX_UNSURE : VXLAN_RX_NOT_OURS;
}

/* Parses the frame received on the underlay (@skb at tc ingress) as VXLAN
 * to @ec's port and local address (or a multicast group). On VXLAN_RX_OK
 * stores the VNI (host order) in @vni and the sender in @remote
 * (bpfnet_ip). Needs no prior check: every read is bounded. Returns an enum
 * vxlan_rx. */
static __always_inline int vxlan_rx_parse(struct __sk_buff *skb, const struct encap_cfg *ec,
					  __u32 *vni, struct bpfnet_ip *remote)
{
	struct cursor c = cursor_start(skb);
	struct wire_vxlan *vx;
	struct wire_udp *udp;
	struct wire_eth *eth;
	struct wire_ip4 *ip;
	__u32 daddr;

	if (!cursor_has(&c, sizeof(*eth) + sizeof(*ip) + sizeof(*udp) + sizeof(*vx)))
		return VXLAN_RX_NOT_OURS;
	eth = c.pos;
	if (eth->proto == bpf_htons(ETH_P_IPV6))
		return vxlan_rx_parse6(&c, ec);
	if (eth->proto != bpf_htons(ETH_P_IP))
		return VXLAN_RX_NOT_OURS;
	cursor_skip(&c, sizeof(*eth));
	ip = c.pos;
	if ((ip->ver_ihl >> 4) != 4 || ip->protocol != IPPROTO_UDP)
		return VXLAN_RX_NOT_OURS;
	daddr = bpf_ntohl(ip->daddr);
	if (ip->daddr != ec->local.addr[3] && (daddr & 0xf0000000) != 0xe0000000)
		return VXLAN_RX_NOT_OURS;
	if (ip->frag_off & bpf_htons(WIRE_IP4_MF | WIRE_IP4_OFFSET))
		return VXLAN_RX_FRAG;   /* later fragments have no UDP header */
	if (ip->ver_ihl != 0x45)
		return VXLAN_RX_UNSURE; /* options: the UDP header is elsewhere */
	cursor_skip(&c, sizeof(*ip));
	udp = c.pos;
	if (udp->dest != ec->dstport)
		return VXLAN_RX_NOT_OURS;
	if (skb->gso_size)
		return VXLAN_RX_GSO;
	cursor_skip(&c, sizeof(*udp));
	vx = c.pos;
	if (vx->flags != bpf_htonl(WIRE_VXLAN_I) || (vx->vni & bpf_htonl(0xff)) ||
	    bpf_ntohs(ip->tot_len) + ETH_HLEN != skb->len ||
	    skb->len < ENCAP_HLEN4 + ETH_HLEN)
		return VXLAN_RX_UNSURE;
	cursor_skip(&c, sizeof(*vx));
	if (vxlan_inner_is_tcp(&c))
		return VXLAN_RX_TCP;
	*vni = bpf_ntohl(vx->vni) >> 8;
	ip_set_v4(remote, ip->saddr);
	return VXLAN_RX_OK;
}

/* Counts in @st (may be NULL) why a frame for us was left to the device:
 * @why is vxlan_rx_parse's result (not VXLAN_RX_OK or _NOT_OURS). */
static __always_inline void vxlan_rx_fallback(struct encap_stats *st, int why)
{
	if (!st)
		return;
	if (why == VXLAN_RX_GSO)
		st->rx_fallback_gso += 1;
	else if (why == VXLAN_RX_FRAG)
		st->rx_fallback_frag += 1;
	else if (why == VXLAN_RX_TCP)
		st->rx_fallback_tcp += 1;
	else
		st->rx_fallback += 1;
}

/* Strips the outer headers of a frame vxlan_rx_parse took (VXLAN_RX_OK):
 * afterwards the inner Ethernet frame starts at the front. skb->protocol
 * still names the outer family; a redirect into a device's receive path
 * sets it again from the inner header (eth_type_trans). Returns 0; -1 if
 * a helper refused with the frame unchanged (the caller passes it to the
 * device); -2 if the frame was changed and then a helper failed (the caller
 * drops it). Packet pointers are dead afterwards. */
static __always_inline int vxlan_decap(struct __sk_buff *skb)
{
	struct wire_eth inner;

	if (bpf_skb_load_bytes(skb, ENCAP_HLEN4, &inner, sizeof(inner)))
		return -1;
	/* removes outer IPv4 + UDP + VXLAN + inner Ethernet after the outer
	 * Ethernet header, then the inner Ethernet header overwrites that */
	if (bpf_skb_adjust_room(skb, -ENCAP_HLEN4, BPF_ADJ_ROOM_MAC, 0))
		return -1;
	if (bpf_skb_store_bytes(skb, 0, &inner, sizeof(inner), 0))
		return -2;
	return 0;
}

/* The kernel's answer to what vxlan_encap needs at run time, for the
 * control plane to probe (BPF_PROG_TEST_RUN on an IPv4 frame; the verifier
 * has checked the helpers exist when the object loaded): bpf_check_mtu,
 * bpf_skb_adjust_room with the ENCAP flags for an IPv4 outer header
 * (skb->mark 4) or an IPv6 one (skb->mark 6), bpf_skb_change_head. Returns
 * 0 if all work, else a bit for each that failed: 1 check_mtu, 2
 * adjust_room, 4 change_head. */
static __always_inline int vxlan_probe(struct __sk_buff *skb)
{
	__u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L4_UDP |
		      BPF_F_ADJ_ROOM_ENCAP_L2_ETH | BPF_F_ADJ_ROOM_ENCAP_L2(ETH_HLEN);
	__u32 mtu = 0;
	int bad = 0;

	flags |= skb->mark == 6 ? BPF_F_ADJ_ROOM_ENCAP_L3_IPV6 : BPF_F_ADJ_ROOM_ENCAP_L3_IPV4;
	if (bpf_check_mtu(skb, 0, &mtu, 0, 0) < 0)
		bad |= 1;
	if (bpf_skb_adjust_room(skb, skb->mark == 6 ? ENCAP_HLEN6 : ENCAP_HLEN4,
				BPF_ADJ_ROOM_MAC, flags))
		bad |= 2;
	if (bpf_skb_change_head(skb, ENCAP_HLEN4, 0))
		bad |= 4;
	return bad;
}

#endif /* __BPFNET_LIB_VXLAN_H */

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* monitor: VXLAN tunnel analytics on an underlay device (the seed's "tunnel
 * analytics with BPF").
 *
 * monitor_ingress / monitor_egress (tc ingress and egress of the underlay):
 *   parse Ethernet (one VLAN tag), outer IPv4 or IPv6, UDP to the configured
 *   port, VXLAN, inner Ethernet (one VLAN tag), inner IPv4 or IPv6, and count
 *   the frame in mon_flows under {outer_sip, outer_dip, vni, inner_sip,
 *   inner_dip}: rx on ingress, tx on egress, packets and skb->len bytes.
 *   Any VXLAN is counted, bpfnet's bridge and mesh or a kernel-native VXLAN
 *   device alike, unicast or to a multicast group (the seed skipped
 *   multicast; a flood is tunnel traffic an operator wants to see).
 *
 * The monitor only reads: every frame is passed on with TC_ACT_UNSPEC (the
 * next program on the hook, if any, decides; none: the frame goes on; under
 * tcx the same value is TCX_NEXT), and is
 * counted in exactly one of mon_stats' vxlan, other, fragment, malformed and
 * no_room.
 *
 * One parser, no tail calls. The seed parsed outer and inner headers with one
 * bcc cursor state machine, entered twice through a prog array and carrying
 * its state across the tail call in skb->cb[]. Here mon_eth() and mon_ip()
 * are always-inline helpers called once for the outer and once for the inner
 * headers: the whole parse is straight-line code with no loop (one VLAN tag
 * at most, IPv6 extension headers not followed, so at most MON_HDR_MAX
 * bytes), every header checked against data_end before it is read, and the
 * verifier walks it in a few hundred instructions. Tail calls would add a
 * prog array to fill at load, a state hand-over through cb[] and a silent
 * failure mode (an empty slot skips counting) for no gain.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/common.h"
#include "lib/cursor.h"
#include "lib/eth.h"
#include "lib/ip.h"
#include "lib/stats.h"
#include "lib/wire.h"
#include "monitor.h"

#define MON_EEXIST     17         /* errno EEXIST: vmlinux.h has no macros */

/* mon_cfg: [0] -> struct mon_cfg. The control plane writes it at load,
 * before the filters are attached. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct mon_cfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, 1);
} mon_cfg SEC(".maps");

/* mon_flows: struct mon_flow_key -> struct mon_flow_val. Written by the data
 * path only; the control plane reads it (stats, ui).
 *
 * LRU, so a new flow is always counted: when the table is full the least
 * recently used entries make room (how many went is in `status`: inserts,
 * mon_stats.new_flow, minus live entries).
 *
 * Exact counts across CPUs with one shared value and atomic adds, rather
 * than BPF_MAP_TYPE_LRU_PERCPU_HASH: LRU maps are preallocated, and a
 * per-CPU value costs 32 bytes x possible CPUs x MON_FLOWS_MAX up front
 * (128 MiB on a 64-CPU host, for 65536 flows) against about 10 MiB here
 * whatever the CPU count; and a reader gets one value per flow instead of
 * summing a row per CPU. The price, a cache line shared by the CPUs that
 * count one flow at the same instant, is small next to parsing the frame.
 * A first insert races with another CPU's first insert: BPF_NOEXIST makes
 * the loser add into the winner's entry instead of overwriting it.
 * One limit: when the table is full, an entry can be evicted and reused
 * while another CPU still adds to it, so under eviction pressure a few
 * counts may land in the newer flow. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct mon_flow_key);
	__type(value, struct mon_flow_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, MON_FLOWS_MAX);
} mon_flows SEC(".maps");

/* mon_stats: [0] -> per-CPU struct mon_stats. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct mon_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, 1);
} mon_stats SEC(".maps");

/* What mon_parse() found. */
enum mon_result {
	MON_OK = 0,     /* VXLAN: the key is filled */
	MON_OTHER,      /* not VXLAN to our port */
	MON_FRAGMENT,   /* a later IPv4 fragment: no UDP header to read */
	MON_MALFORMED,  /* an invalid header */
	MON_SHORT,      /* a header runs past data_end (see cursor.need) */
};

/* Reads an Ethernet header and at most one VLAN tag at @c (eth_parse).
 * Returns MON_OK or MON_SHORT. */
static __always_inline int mon_eth(struct cursor *c, __be16 *proto)
{
	return eth_parse(c, proto) ? MON_SHORT : MON_OK;
}

/* Reads the IPv4 or IPv6 header of ethertype @proto (network order) at @c:
 * stores its source and destination in @src and @dst (network order, IPv4
 * mapped), its protocol in @l4, and moves past it (IPv4 options included;
 * IPv6 extension headers are not followed: @l4 is then their type).
 * Returns MON_OK, MON_OTHER (not IP; nothing stored), MON_MALFORMED (wrong
 * version, IHL below 5), MON_SHORT, or MON_FRAGMENT (a later IPv4 fragment:
 * addresses stored, no L4 header follows). */
static __always_inline int mon_ip(struct cursor *c, __be16 proto,
				  struct bpfnet_ip *src, struct bpfnet_ip *dst,
				  __u8 *l4)
{
	struct wire_ip6 *ip6;
	struct wire_ip4 *ip;
	__u32 hlen;

	if (proto == bpf_htons(ETH_P_IP)) {
		if (!cursor_has(c, sizeof(*ip)))
			return MON_SHORT;
		ip = c->pos;
		if ((ip->ver_ihl >> 4) != 4 || (ip->ver_ihl & 0xf) < 5)
			return MON_MALFORMED;
		hlen = (ip->ver_ihl & 0xf) * 4;
		if (!cursor_has(c, hlen))
			return MON_SHORT;
		ip_set_v4(src, ip->saddr);
		ip_set_v4(dst, ip->daddr);
		*l4 = ip->protocol;
		cursor_skip(c, hlen);
		if (ip->frag_off & bpf_htons(WIRE_IP4_OFFSET))
			return MON_FRAGMENT;
		return MON_OK;
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		if (!cursor_has(c, sizeof(*ip6)))
			return MON_SHORT;
		ip6 = c->pos;
		if ((bpf_ntohl(ip6->ver_tc_flow) >> 28) != 6)
			return MON_MALFORMED;
		__builtin_memcpy(src->addr, ip6->saddr, 16);
		__builtin_memcpy(dst->addr, ip6->daddr, 16);
		*l4 = ip6->nexthdr;
		cursor_skip(c, sizeof(*ip6));
		return MON_OK;
	}
	return MON_OTHER;
}

/* Parses the frame in @skb's linear data as VXLAN to UDP port @port (host
 * order) and fills @key (zeroed by the caller) in packet order, not yet
 * normalized. Returns an enum mon_result; on MON_SHORT, @need is the frame
 * length the parser wanted. Packet pointers are re-read from @skb here, so
 * it may be called again after bpf_skb_pull_data(). */
static __always_inline int mon_parse(struct __sk_buff *skb, __u16 port,
				     struct mon_flow_key *key, __u32 *need)
{
	struct cursor c = cursor_start(skb);
	struct wire_vxlan *vx;
	struct wire_udp *udp;
	__be16 proto = 0;
	__u8 l4 = 0;
	int ret;

	ret = mon_eth(&c, &proto);
	if (ret != MON_OK)
		goto out;
	ret = mon_ip(&c, proto, &key->outer_sip, &key->outer_dip, &l4);
	if (ret != MON_OK)
		goto out;
	if (l4 != IPPROTO_UDP) {
		ret = MON_OTHER;
		goto out;
	}
	if (!cursor_has(&c, sizeof(*udp) + sizeof(*vx))) {
		ret = MON_SHORT;
		/* too short for VXLAN, but the port decides if it is ours */
		if (cursor_has(&c, sizeof(*udp)) &&
		    ((struct wire_udp *)c.pos)->dest != bpf_htons(port))
			ret = MON_OTHER;
		goto out;
	}
	udp = c.pos;
	if (udp->dest != bpf_htons(port)) {
		ret = MON_OTHER;
		goto out;
	}
	cursor_skip(&c, sizeof(*udp));
	vx = c.pos;
	if (!(vx->flags & bpf_htonl(WIRE_VXLAN_I))) {
		ret = MON_MALFORMED;
		goto out;
	}
	key->vni = bpf_ntohl(vx->vni) >> 8;
	cursor_skip(&c, sizeof(*vx));

	ret = mon_eth(&c, &proto);
	if (ret != MON_OK)
		goto out;
	ret = mon_ip(&c, proto, &key->inner_sip, &key->inner_dip, &l4);
	/* a non-IP inner frame counts with zero inner addresses; an inner
	 * fragment still names its hosts */
	if (ret == MON_OTHER || ret == MON_FRAGMENT)
		ret = MON_OK;
out:
	*need = c.need;
	return ret;
}

/* Compares two addresses as 128-bit numbers (network order in memory):
 * negative, zero or positive as @a is below, equal to or above @b. */
static __always_inline int mon_ip_cmp(const struct bpfnet_ip *a,
				      const struct bpfnet_ip *b)
{
	__u32 x, y;
	int i;

#pragma unroll
	for (i = 0; i < 4; i++) {
		x = bpf_ntohl(a->addr[i]);
		y = bpf_ntohl(b->addr[i]);
		if (x != y)
			return x < y ? -1 : 1;
	}
	return 0;
}

/* Orders @key so that both directions of a conversation give one key: the
 * lower outer address first (the seed's swap_ipkey), the inner pair swapped
 * along; equal outer addresses order the inner pair instead. */
static __always_inline void mon_key_order(struct mon_flow_key *key)
{
	struct bpfnet_ip t;
	int cmp = mon_ip_cmp(&key->outer_sip, &key->outer_dip);

	if (cmp < 0 || (cmp == 0 && mon_ip_cmp(&key->inner_sip,
					       &key->inner_dip) <= 0))
		return;
	t = key->outer_sip;
	key->outer_sip = key->outer_dip;
	key->outer_dip = t;
	t = key->inner_sip;
	key->inner_sip = key->inner_dip;
	key->inner_dip = t;
}

/* Adds one frame of @len bytes to @key's entry (rx if @rx, else tx),
 * creating the entry if needed. */
static __always_inline void mon_count(const struct mon_flow_key *key,
				      __u64 len, int rx)
{
	struct mon_flow_val *v, init = {};
	long err;

	v = bpf_map_lookup_elem(&mon_flows, key);
	if (!v) {
		if (rx) {
			init.rx_pkts = 1;
			init.rx_bytes = len;
		} else {
			init.tx_pkts = 1;
			init.tx_bytes = len;
		}
		err = bpf_map_update_elem(&mon_flows, key, &init, BPF_NOEXIST);
		if (!err) {
			stats_inc(mon_stats, new_flow);
			stats_inc(mon_stats, vxlan);
			return;
		}
		/* another CPU inserted it first: add into its entry */
		v = err == -MON_EEXIST ? bpf_map_lookup_elem(&mon_flows, key) : NULL;
		if (!v) {
			stats_inc(mon_stats, no_room);
			return;
		}
	}
	if (rx) {
		__sync_fetch_and_add(&v->rx_pkts, 1);
		__sync_fetch_and_add(&v->rx_bytes, len);
	} else {
		__sync_fetch_and_add(&v->tx_pkts, 1);
		__sync_fetch_and_add(&v->tx_bytes, len);
	}
	stats_inc(mon_stats, vxlan);
}

static __always_inline int mon_handle(struct __sk_buff *skb, int rx)
{
	struct mon_flow_key key;
	__u16 port = MON_DEFAULT_PORT;
	struct mon_cfg *cfg;
	__u32 zero = 0, need = 0, len = skb->len;
	int ret;

	cfg = bpf_map_lookup_elem(&mon_cfg, &zero);
	if (cfg && cfg->port)
		port = cfg->port;
	__builtin_memset(&key, 0, sizeof(key));
	ret = mon_parse(skb, port, &key, &need);
	if (ret == MON_SHORT && need <= len) {
		/* the headers are in the frame but not all in its linear part
		 * (paged or GRO data): pull them in once and parse again */
		if (!bpf_skb_pull_data(skb, len < MON_HDR_MAX ? len : MON_HDR_MAX)) {
			stats_inc(mon_stats, pulled);
			__builtin_memset(&key, 0, sizeof(key));
			ret = mon_parse(skb, port, &key, &need);
		}
	}
	switch (ret) {
	case MON_OK:
		mon_key_order(&key);
		mon_count(&key, len, rx);
		break;
	case MON_OTHER:
		stats_inc(mon_stats, other);
		break;
	case MON_FRAGMENT:
		stats_inc(mon_stats, fragment);
		break;
	default:
		stats_inc(mon_stats, malformed);
		break;
	}
	return TC_ACT_UNSPEC;
}

SEC("tc")
int monitor_ingress(struct __sk_buff *skb)
{
	return mon_handle(skb, 1);
}

SEC("tc")
int monitor_egress(struct __sk_buff *skb)
{
	return mon_handle(skb, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

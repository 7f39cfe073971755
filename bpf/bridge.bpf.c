// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* bridge: a distributed L2 bridge over VXLAN with multicast flooding.
 *
 * bridge_ingress (tc ingress of the external VXLAN device): the tunnel key's
 *   VNI picks the tenant port; the sender {src_mac, port} is learned as
 *   {remote VTEP, vni}; the frame is redirected into the port (no clone), so
 *   the port's Linux bridge receives it as if from a wire.
 * bridge_egress (tc egress of each tenant port): {dst_mac, port} gives the
 *   remote VTEP; unknown, broadcast and multicast destinations go to the
 *   VNI's multicast group. With native encapsulation (br_encap) the program
 *   writes the outer headers and redirects out of the underlay
 *   (lib/vxlan.h); otherwise, or for a frame the program leaves to it, the
 *   tunnel key is set and the frame redirected to the VXLAN device's egress.
 *   A broadcast ARP request or a neighbour solicitation for a bound IP
 *   (br_neigh) is answered in place and sent back into the port instead
 *   (lib/neigh.h), unless suppression is off (BR_CFG_F_NO_SUPPRESS). The
 *   source MAC of every frame is recorded as a tenant of this host
 *   (br_local), and the IPs it claims in ARP and ND as local bindings.
 * bridge_decap (tc ingress of the underlay, with native encapsulation):
 *   VXLAN for us that the program can take (not GSO, not a fragment, a
 *   known VNI, an allowed sender) is decapsulated and handled as
 *   bridge_ingress does; everything else goes on to the stack, hence the
 *   VXLAN device and bridge_ingress.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/common.h"
#include "lib/eth.h"
#include "lib/fdb.h"
#include "lib/neigh.h"
#include "lib/redirect.h"
#include "lib/stats.h"
#include "lib/tunnel.h"
#include "lib/vxlan.h"
#include "bridge.h"
#include "encap.h"

/* br_cfg: [0] -> struct br_cfg. Control plane writes it at load. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct br_cfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, 1);
} br_cfg SEC(".maps");

/* br_vni: vni -> port. Provisioned by `vni add`; full: `vni add` fails. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct br_vni_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, BR_VNI_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} br_vni SEC(".maps");

/* br_port: port ifindex -> vni. Provisioned with br_vni. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct br_port_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, BR_VNI_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} br_port SEC(".maps");

/* br_fdb: {mac, port} -> {remote, vni, counters}. Learned by bridge_ingress;
 * LRU, so when full the least recently used entry makes room. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct br_fdb_key);
	__type(value, struct br_fdb_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, BR_FDB_MAX);
} br_fdb SEC(".maps");

/* br_neigh: {vni, tenant IP} -> MAC. Provisioned by `neigh add` (static) or
 * learned by bridge_ingress from ARP and ND; answers ARP and ND on the port. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct br_neigh_key);
	__type(value, struct br_neigh_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, BR_NEIGH_MAX);
} br_neigh SEC(".maps");

/* br_local: {vni, mac} -> last seen. Learned by bridge_egress: the tenant
 * MACs of this host (Bridge.local_macs, published by the agent). LRU. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct br_local_key);
	__type(value, struct br_local_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, BR_LOCAL_MAX);
} br_local SEC(".maps");

/* br_allow: {vni, remote} -> 1. Provisioned by `vni add --allow`. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct br_allow_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, BR_ALLOW_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} br_allow SEC(".maps");

/* br_stats: [0] -> per-CPU struct br_stats. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct br_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, 1);
} br_stats SEC(".maps");

/* br_encap: [0] -> struct encap_cfg. Control plane writes it at load. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct encap_cfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, 1);
} br_encap SEC(".maps");

/* br_encap_stats: [0] -> per-CPU struct encap_stats. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct encap_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, 1);
} br_encap_stats SEC(".maps");

/* br_supp_stats: [0] -> per-CPU struct br_supp_stats. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct br_supp_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, 1);
} br_supp_stats SEC(".maps");

/* br_local_last: [0] -> per-CPU struct br_local_last (lib/fdb.h, local_learn). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct br_local_last);
	__uint(max_entries, 1);
} br_local_last SEC(".maps");

/* br_route_stats: [0] -> per-CPU struct br_route_stats. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct br_route_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, 1);
} br_route_stats SEC(".maps");

static __always_inline struct br_cfg *br_cfg_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&br_cfg, &zero);
}

/* Counts what fdb_learn did. A MAC new or moved on the tunnel side is no
 * tenant of this host any more (br_local forgets it). */
static __always_inline void br_learn(const __u8 *mac, __u32 port,
				     const struct bpfnet_ip *remote, __u32 vni)
{
	switch (fdb_learn(&br_fdb, mac, port, remote, vni)) {
	case FDB_REFRESHED:
		return;
	case FDB_NEW:
		stats_inc(br_stats, learn);
		break;
	case FDB_ROUTE_MOVED:
		stats_inc(br_route_stats, route_move);
		/* fall through */
	case FDB_MOVED:
		stats_inc(br_stats, move);
		break;
	case FDB_CONFLICT:
		stats_inc(br_supp_stats, static_conflict);
		return;
	}
	if (local_forget(&br_local, vni, mac))
		stats_inc(br_route_stats, local_moved);
}

/* The VNI's port for a frame from @remote (network order) on @vni (host
 * order), if the VNI has one and its allow list (if any) has @remote.
 * Otherwise NULL, and *@why is the drop_* counter's index: 1 unknown VNI,
 * 2 sender denied. */
static __always_inline struct br_vni_val *br_rx_port(__u32 vni,
						     const struct bpfnet_ip *remote,
						     int *why)
{
	struct br_vni_val *vport;
	struct br_allow_key ak;

	vport = bpf_map_lookup_elem(&br_vni, &vni);
	if (!vport || !vport->port) { /* port 0: `vni add` still under way */
		*why = 1;
		return NULL;
	}
	if (vport->flags & BR_VNI_F_ALLOW_LIST) {
		__builtin_memset(&ak, 0, sizeof(ak));
		ak.vni = vni;
		ak.remote = *remote;
		if (!bpf_map_lookup_elem(&br_allow, &ak)) {
			*why = 2;
			return NULL;
		}
	}
	return vport;
}

/* Learns the sender of the (decapsulated) frame in @skb and redirects it
 * into @port. Returns the verdict. */
static __always_inline int br_deliver(struct __sk_buff *skb, __u32 port,
				      const struct bpfnet_ip *remote, __u32 vni)
{
	struct wire_eth *eth = eth_hdr_get(skb);

	if (!eth) {
		stats_inc(br_stats, drop_short);
		return TC_ACT_SHOT;
	}
	if (!eth_is_multicast(eth->src))
		br_learn(eth->src, port, remote, vni);
	if (neigh_learn(skb, &br_neigh, vni, 0))
		stats_inc(br_supp_stats, neigh_learn);
	stats_inc(br_stats, rx);
	return redirect_to(skb, port, BPF_F_INGRESS);
}

SEC("tc")
int bridge_ingress(struct __sk_buff *skb)
{
	struct br_vni_val *vport;
	struct bpfnet_ip remote;
	int why = 0;
	__u32 vni;

	if (tunnel_get(skb, &vni, &remote)) {
		stats_inc(br_stats, drop_no_tunnel);
		return TC_ACT_SHOT;
	}
	vport = br_rx_port(vni, &remote, &why);
	if (!vport) {
		if (why == 2)
			stats_inc(br_stats, drop_vtep_denied);
		else
			stats_inc(br_stats, drop_unknown_vni);
		return TC_ACT_SHOT;
	}
	return br_deliver(skb, vport->port, &remote, vni);
}

SEC("tc")
int bridge_decap(struct __sk_buff *skb)
{
	struct encap_stats *st;
	struct br_vni_val *vport;
	struct encap_cfg *ec;
	struct bpfnet_ip remote;
	__u32 zero = 0, vni = 0, port;
	int why = 0, ret;

	ec = bpf_map_lookup_elem(&br_encap, &zero);
	if (!ec || !(ec->flags & ENCAP_F_NATIVE))
		return TC_ACT_UNSPEC;
	st = bpf_map_lookup_elem(&br_encap_stats, &zero);
	ret = vxlan_rx_parse(skb, ec, &vni, &remote);
	if (ret == VXLAN_RX_NOT_OURS)
		return TC_ACT_UNSPEC;
	if (ret == VXLAN_RX_OK) {
		vport = br_rx_port(vni, &remote, &why);
		if (!vport)
			ret = VXLAN_RX_UNSURE; /* the device's program counts the drop */
	}
	if (ret != VXLAN_RX_OK) {
		vxlan_rx_fallback(st, ret);
		return TC_ACT_UNSPEC;
	}
	port = vport->port;
	ret = vxlan_decap(skb);
	if (ret) {
		if (ret == -1) {
			vxlan_rx_fallback(st, VXLAN_RX_UNSURE);
			return TC_ACT_UNSPEC;
		}
		if (st)
			st->drop_encap += 1;
		return TC_ACT_SHOT;
	}
	if (st)
		st->decap += 1;
	return br_deliver(skb, port, &remote, vni);
}

SEC("tc")
int bridge_egress(struct __sk_buff *skb)
{
	const struct bpfnet_ip *dst = NULL;
	struct br_vni_val *vport;
	struct br_port_val *pv;
	struct br_fdb_val *fv;
	struct br_cfg *cfg;
	struct wire_eth *eth;
	struct encap_stats *st;
	struct encap_cfg *ec;
	__u32 port = skb->ifindex, zero = 0;
	int aged = 0, na, ret;

	cfg = br_cfg_get();
	if (!cfg || !cfg->vxlan_ifindex) {
		stats_inc(br_stats, drop_no_config);
		return TC_ACT_SHOT;
	}
	pv = bpf_map_lookup_elem(&br_port, &port);
	if (!pv)
		return TC_ACT_UNSPEC; /* not a port of ours: leave it alone */
	vport = bpf_map_lookup_elem(&br_vni, &pv->vni);
	if (!vport)
		return TC_ACT_UNSPEC;
	eth = eth_hdr_get(skb);
	if (!eth) {
		stats_inc(br_stats, drop_short);
		return TC_ACT_SHOT;
	}
	if (!eth_is_multicast(eth->src) &&
	    local_learn(&br_local, &br_local_last, pv->vni, eth->src))
		stats_inc(br_route_stats, local_learn);
	if (neigh_learn(skb, &br_neigh, pv->vni, 1))
		stats_inc(br_route_stats, local_neigh);
	/* (a request for a tenant of this host is *_LOCAL: kept off the tunnel) */
	na = neigh_answer(skb, &br_neigh, &br_local, pv->vni, cfg->ageing_s,
			  !(cfg->flags & BR_CFG_F_NO_SUPPRESS));
	switch (na) {
	case NEIGH_ARP_REPLY:
		stats_inc(br_supp_stats, arp_reply);
		return redirect_to(skb, port, BPF_F_INGRESS);
	case NEIGH_ND_REPLY:
		stats_inc(br_supp_stats, nd_reply);
		return redirect_to(skb, port, BPF_F_INGRESS);
	case NEIGH_ARP_UNKNOWN:
		stats_inc(br_supp_stats, arp_flood);
		break;
	case NEIGH_ND_UNKNOWN:
		stats_inc(br_supp_stats, nd_flood);
		break;
	case NEIGH_ARP_LOCAL:
		stats_inc(br_route_stats, arp_local);
		return TC_ACT_SHOT;
	case NEIGH_ND_LOCAL:
		stats_inc(br_route_stats, nd_local);
		return TC_ACT_SHOT;
	}
	eth = eth_hdr_get(skb); /* after neigh_answer: the frame may have changed */
	if (!eth) {
		stats_inc(br_stats, drop_short);
		return TC_ACT_SHOT;
	}
	if (!eth_is_multicast(eth->dst)) {
		fv = fdb_lookup(&br_fdb, eth->dst, port, cfg->ageing_s, &aged);
		if (fv)
			dst = &fv->remote;
		else if (aged)
			stats_inc(br_stats, aged);
	}
	if (dst) {
		stats_inc(br_stats, tx);
	} else {
		dst = &vport->group;
		stats_inc(br_stats, flood);
	}
	ec = bpf_map_lookup_elem(&br_encap, &zero);
	st = bpf_map_lookup_elem(&br_encap_stats, &zero);
	ret = vxlan_tx(skb, ec, st, dst, pv->vni);
	if (ret != VXLAN_TX_DEVICE)
		return ret;
	if (tunnel_set(skb, dst, &cfg->local, pv->vni)) {
		stats_inc(br_stats, drop_tunnel_key);
		return TC_ACT_SHOT;
	}
	return redirect_to(skb, cfg->vxlan_ifindex, 0);
}

/* Run by the control plane at load (BPF_PROG_TEST_RUN), never attached:
 * may this kernel take the native path? See vxlan_probe. */
SEC("tc")
int bridge_probe(struct __sk_buff *skb)
{
	return vxlan_probe(skb);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

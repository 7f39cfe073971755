// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* bridge: a distributed L2 bridge over VXLAN with multicast flooding.
 *
 * bridge_ingress (tc ingress of the external VXLAN device): the tunnel key's
 *   VNI picks the tenant port; the sender {src_mac, port} is learned as
 *   {remote VTEP, vni}; the frame is redirected into the port (no clone), so
 *   the port's Linux bridge receives it as if from a wire.
 * bridge_egress (tc egress of each tenant port): {dst_mac, port} gives the
 *   remote VTEP; unknown, broadcast and multicast destinations go to the
 *   VNI's multicast group. The tunnel key is set and the frame redirected to
 *   the VXLAN device's egress.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/common.h"
#include "lib/eth.h"
#include "lib/fdb.h"
#include "lib/redirect.h"
#include "lib/stats.h"
#include "lib/tunnel.h"
#include "bridge.h"

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

static __always_inline struct br_cfg *br_cfg_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&br_cfg, &zero);
}

/* Counts what fdb_learn did. */
static __always_inline void br_learn(const __u8 *mac, __u32 port,
				     const struct bpfnet_ip *remote, __u32 vni)
{
	switch (fdb_learn(&br_fdb, mac, port, remote, vni)) {
	case FDB_NEW:
		stats_inc(br_stats, learn);
		break;
	case FDB_MOVED:
		stats_inc(br_stats, move);
		break;
	}
}

SEC("tc")
int bridge_ingress(struct __sk_buff *skb)
{
	struct br_vni_val *vport;
	struct bpfnet_ip remote;
	struct br_allow_key ak;
	struct wire_eth *eth;
	__u32 vni;

	if (tunnel_get(skb, &vni, &remote)) {
		stats_inc(br_stats, drop_no_tunnel);
		return TC_ACT_SHOT;
	}
	vport = bpf_map_lookup_elem(&br_vni, &vni);
	if (!vport || !vport->port) { /* port 0: `vni add` still under way */
		stats_inc(br_stats, drop_unknown_vni);
		return TC_ACT_SHOT;
	}
	if (vport->flags & BR_VNI_F_ALLOW_LIST) {
		__builtin_memset(&ak, 0, sizeof(ak));
		ak.vni = vni;
		ak.remote = remote;
		if (!bpf_map_lookup_elem(&br_allow, &ak)) {
			stats_inc(br_stats, drop_vtep_denied);
			return TC_ACT_SHOT;
		}
	}
	eth = eth_hdr_get(skb);
	if (!eth) {
		stats_inc(br_stats, drop_short);
		return TC_ACT_SHOT;
	}
	if (!eth_is_multicast(eth->src))
		br_learn(eth->src, vport->port, &remote, vni);
	stats_inc(br_stats, rx);
	return redirect_to(skb, vport->port, BPF_F_INGRESS);
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
	__u32 port = skb->ifindex;
	int aged = 0;

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
	if (tunnel_set(skb, dst, &cfg->local, pv->vni)) {
		stats_inc(br_stats, drop_tunnel_key);
		return TC_ACT_SHOT;
	}
	return redirect_to(skb, cfg->vxlan_ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

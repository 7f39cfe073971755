// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* gateway: a physical-to-virtual gateway between a VLAN trunk and workers.
 *
 * gw_phys2virt (tc ingress of the trunk): a tagged frame whose source MAC is
 *   a client goes to that client's worker port, whatever VLAN it came on:
 *   the tag {trunk, TCI, TPID} is learned for the worker on every frame (a
 *   client that moves to another VLAN is followed at once), the tag is
 *   popped and the frame redirected to the worker port (no clone).
 * gw_virt2phys (tc ingress of each worker port): the worker's frame gets
 *   its client's learned tag pushed back (802.1Q or 802.1ad, PCP kept) and is
 *   redirected out of the trunk.
 * Untagged frames, unknown MACs and workers whose client was never seen are
 * passed on untouched, never dropped: TC_ACT_UNSPEC, so a later program on
 * the hook (tcx chain or next cls_bpf filter) still sees them, and without
 * one the stack gets them.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/common.h"
#include "lib/redirect.h"
#include "lib/eth.h"
#include "lib/stats.h"
#include "lib/vlan.h"
#include "gateway.h"

/* gw_cfg: [0] -> struct gw_cfg. Control plane writes it at load; the data
 * path does not read it (the trunk is learned with each client). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct gw_cfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, 1);
} gw_cfg SEC(".maps");

/* gw_clients: client MAC -> worker. Provisioned by `client add`; full:
 * `client add` fails. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct gw_client_key);
	__type(value, struct gw_client_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, GW_CLIENT_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} gw_clients SEC(".maps");

/* gw_vlan_fdb: worker ifindex -> learned tag and counters. Learned by
 * gw_phys2virt, read by gw_virt2phys, deleted by `client del`. Only
 * clients' frames learn and each client has its own worker, so there are
 * at most GW_CLIENT_MAX keys; LRU all the same, so learning never fails. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u32);
	__type(value, struct gw_vlan_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, GW_CLIENT_MAX);
} gw_vlan_fdb SEC(".maps");

/* gw_stats: [0] -> per-CPU struct gw_stats. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct gw_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, 1);
} gw_stats SEC(".maps");

/* Learns that @worker's client is reached on @trunk with tag @tci (host
 * order) / @proto (network order), and counts one received frame of @len
 * bytes. The steady state is atomic adds on the entry; a new or moved
 * client gets a whole new value (counters carried over), so gw_virt2phys
 * never sees a half-written tag. */
static __always_inline void gw_learn(__u32 worker, __u32 trunk, __u16 tci,
				     __be16 proto, __u32 len, __u64 now)
{
	struct gw_vlan_val *old, val = {};

	old = bpf_map_lookup_elem(&gw_vlan_fdb, &worker);
	if (old && old->trunk == trunk && old->vlan_tci == tci &&
	    old->vlan_proto == proto) {
		__sync_fetch_and_add(&old->rx_pkts, 1);
		__sync_fetch_and_add(&old->rx_bytes, len);
		/* one write a second is enough for an age */
		if (now - old->seen_ns > NSEC_PER_SEC)
			old->seen_ns = now;
		return;
	}
	val.trunk = trunk;
	val.vlan_tci = tci;
	val.vlan_proto = proto;
	val.rx_pkts = 1;
	val.rx_bytes = len;
	val.seen_ns = now;
	if (old) {
		val.rx_pkts += old->rx_pkts;
		val.rx_bytes += old->rx_bytes;
		val.tx_pkts = old->tx_pkts;
		val.tx_bytes = old->tx_bytes;
		stats_inc(gw_stats, move);
	} else {
		stats_inc(gw_stats, learn);
	}
	bpf_map_update_elem(&gw_vlan_fdb, &worker, &val, BPF_ANY);
}

SEC("tc")
int gw_phys2virt(struct __sk_buff *skb)
{
	struct gw_client_key ck = {};
	struct gw_client_val *client;
	struct wire_eth *eth;
	__be16 proto = 0;
	__u16 tci = 0;
	__u32 worker;
	int tagged;

	eth = eth_hdr_get(skb);
	if (!eth) {
		stats_inc(gw_stats, drop_short);
		return TC_ACT_SHOT;
	}
	tagged = vlan_get_outer(skb, eth, (void *)(long)skb->data_end, &tci,
				&proto);
	if (tagged < 0) {
		stats_inc(gw_stats, drop_short);
		return TC_ACT_SHOT;
	}
	if (!tagged) {
		stats_inc(gw_stats, pass_untagged);
		return TC_ACT_UNSPEC;
	}
	eth_copy(ck.mac, eth->src);
	client = bpf_map_lookup_elem(&gw_clients, &ck);
	if (!client || (client->flags & GW_CLIENT_F_PENDING)) {
		stats_inc(gw_stats, pass_unknown);
		return TC_ACT_UNSPEC;
	}
	worker = client->worker;
	/* eth is dead from here on: the pop may move the packet */
	if (bpf_skb_vlan_pop(skb)) {
		stats_inc(gw_stats, drop_vlan_pop);
		return TC_ACT_SHOT;
	}
	gw_learn(worker, skb->ifindex, tci, proto, skb->len, bpf_ktime_get_ns());
	stats_inc(gw_stats, rx);
	return redirect_to(skb, worker, 0);
}

SEC("tc")
int gw_virt2phys(struct __sk_buff *skb)
{
	__u32 worker = skb->ifindex;
	struct gw_vlan_val *v;
	__u32 trunk, len;
	__be16 proto;
	__u16 tci;

	v = bpf_map_lookup_elem(&gw_vlan_fdb, &worker);
	if (!v) {
		stats_inc(gw_stats, pass_unlearned);
		return TC_ACT_UNSPEC;
	}
	trunk = v->trunk;
	tci = v->vlan_tci;
	proto = v->vlan_proto;
	len = skb->len;
	if (vlan_push(skb, proto, tci)) {
		stats_inc(gw_stats, drop_vlan_push);
		return TC_ACT_SHOT;
	}
	__sync_fetch_and_add(&v->tx_pkts, 1);
	__sync_fetch_and_add(&v->tx_bytes, len);
	stats_inc(gw_stats, tx);
	return redirect_to(skb, trunk, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

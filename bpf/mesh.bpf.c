// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* mesh: a distributed L2 bridge over VXLAN without multicast. Each remote
 * VTEP of a VNI gets its own port (a veth pair) in the VNI's Linux bridge, so
 * the bridge itself floods broadcast and unknown unicast to every peer, one
 * copy each, and learns which port (hence which peer) a MAC sits behind.
 *
 * mesh_ingress (tc ingress of the external VXLAN device): the tunnel key's
 *   {vni, remote} picks the peer's port; the frame is redirected into it (no
 *   clone), as if it came from a wire. Unknown {vni, remote}: dropped.
 * mesh_egress (tc egress of each port): port -> {remote, vni}; the tunnel key
 *   is set and the frame redirected to the VXLAN device's egress. A frame
 *   that entered the bridge through one of our ports came from the tunnel and
 *   is dropped (split horizon): the sending peer reaches every peer itself.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/common.h"
#include "lib/redirect.h"
#include "lib/stats.h"
#include "lib/tunnel.h"
#include "mesh.h"

/* mesh_cfg: [0] -> struct mesh_cfg. Control plane writes it at load. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct mesh_cfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, 1);
} mesh_cfg SEC(".maps");

/* mesh_peers: {vni, remote} -> {port, rx counters}. Provisioned by
 * `peer add` (port 0 until the port exists); full: `peer add` fails. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct mesh_peer_key);
	__type(value, struct mesh_peer_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, MESH_PEER_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} mesh_peers SEC(".maps");

/* mesh_ports: port ifindex -> {remote, vni, tx counters}. Provisioned with
 * mesh_peers, one entry per peer entry. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct mesh_port_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, MESH_PEER_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} mesh_ports SEC(".maps");

/* mesh_vnis: vni -> {bridge, flags}. Control plane only: the data
 * path never reads it; pinned so that `peer add/del` and `unload` know which
 * bridge each VNI uses and whether bpfnet created it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct mesh_vni_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, MESH_VNI_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} mesh_vnis SEC(".maps");

/* mesh_stats: [0] -> per-CPU struct mesh_stats. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct mesh_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, 1);
} mesh_stats SEC(".maps");

SEC("tc")
int mesh_ingress(struct __sk_buff *skb)
{
	struct mesh_peer_key key;
	struct mesh_peer_val *peer;

	__builtin_memset(&key, 0, sizeof(key));
	if (tunnel_get(skb, &key.vni, &key.remote)) {
		stats_inc(mesh_stats, drop_no_tunnel);
		return TC_ACT_SHOT;
	}
	peer = bpf_map_lookup_elem(&mesh_peers, &key);
	if (!peer || !peer->port) { /* port 0: `peer add` still making it */
		stats_inc(mesh_stats, drop_unknown_peer);
		return TC_ACT_SHOT;
	}
	__sync_fetch_and_add(&peer->rx_pkts, 1);
	__sync_fetch_and_add(&peer->rx_bytes, skb->len);
	stats_inc(mesh_stats, rx);
	return redirect_to(skb, peer->port, BPF_F_INGRESS);
}

SEC("tc")
int mesh_egress(struct __sk_buff *skb)
{
	struct mesh_port_val *pv;
	struct mesh_cfg *cfg;
	__u32 port = skb->ifindex;
	__u32 from = skb->ingress_ifindex;
	__u32 zero = 0;

	cfg = bpf_map_lookup_elem(&mesh_cfg, &zero);
	if (!cfg || !cfg->vxlan_ifindex) {
		stats_inc(mesh_stats, drop_no_config);
		return TC_ACT_SHOT;
	}
	pv = bpf_map_lookup_elem(&mesh_ports, &port);
	if (!pv)
		return TC_ACT_UNSPEC; /* not a port of ours: leave it alone */
	/* The bridge received the frame on one of our ports, so mesh_ingress
	 * put it there: it came from a peer, which sent it to every peer that
	 * should have it. Sending it on would duplicate it, and loop. */
	if (from && bpf_map_lookup_elem(&mesh_ports, &from)) {
		stats_inc(mesh_stats, drop_split_horizon);
		return TC_ACT_SHOT;
	}
	if (tunnel_set(skb, &pv->remote, &cfg->local, pv->vni)) {
		stats_inc(mesh_stats, drop_tunnel_key);
		return TC_ACT_SHOT;
	}
	__sync_fetch_and_add(&pv->tx_pkts, 1);
	__sync_fetch_and_add(&pv->tx_bytes, skb->len);
	stats_inc(mesh_stats, tx);
	return redirect_to(skb, cfg->vxlan_ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

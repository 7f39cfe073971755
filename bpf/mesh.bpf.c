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
 *   With native encapsulation (mesh_encap) the program writes the outer
 *   headers and redirects out of the underlay (lib/vxlan.h); otherwise, or
 *   for a frame the program leaves to it, through the VXLAN device.
 * mesh_decap (tc ingress of the underlay, with native encapsulation): VXLAN
 *   for us from a known {vni, remote} that the program can take (not GSO,
 *   not a fragment) is decapsulated and redirected into the peer's port;
 *   everything else goes on to the VXLAN device and mesh_ingress.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/common.h"
#include "lib/redirect.h"
#include "lib/stats.h"
#include "lib/tunnel.h"
#include "lib/vxlan.h"
#include "encap.h"
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

/* mesh_encap: [0] -> struct encap_cfg. Control plane writes it at load. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct encap_cfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, 1);
} mesh_encap SEC(".maps");

/* mesh_encap_stats: [0] -> per-CPU struct encap_stats. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct encap_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__uint(max_entries, 1);
} mesh_encap_stats SEC(".maps");

/* Counts a frame from @peer and redirects it into the peer's port. */
static __always_inline int mesh_deliver(struct __sk_buff *skb, struct mesh_peer_val *peer)
{
	__sync_fetch_and_add(&peer->rx_pkts, 1);
	__sync_fetch_and_add(&peer->rx_bytes, skb->len);
	stats_inc(mesh_stats, rx);
	return redirect_to(skb, peer->port, BPF_F_INGRESS);
}

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
	return mesh_deliver(skb, peer);
}

SEC("tc")
int mesh_decap(struct __sk_buff *skb)
{
	struct mesh_peer_val *peer = NULL;
	struct mesh_peer_key key;
	struct encap_stats *st;
	struct encap_cfg *ec;
	__u32 zero = 0;
	int ret;

	ec = bpf_map_lookup_elem(&mesh_encap, &zero);
	if (!ec || !(ec->flags & ENCAP_F_NATIVE))
		return TC_ACT_UNSPEC;
	st = bpf_map_lookup_elem(&mesh_encap_stats, &zero);
	__builtin_memset(&key, 0, sizeof(key));
	ret = vxlan_rx_parse(skb, ec, &key.vni, &key.remote);
	if (ret == VXLAN_RX_NOT_OURS)
		return TC_ACT_UNSPEC;
	if (ret == VXLAN_RX_OK) {
		peer = bpf_map_lookup_elem(&mesh_peers, &key);
		if (!peer || !peer->port)
			ret = VXLAN_RX_UNSURE; /* the device's program counts the drop */
	}
	if (ret == VXLAN_RX_OK && peer) {
		ret = vxlan_decap(skb);
		if (!ret) {
			if (st)
				st->decap += 1;
			return mesh_deliver(skb, peer);
		}
		if (ret != -1) {
			if (st)
				st->drop_encap += 1;
			return TC_ACT_SHOT;
		}
		ret = VXLAN_RX_UNSURE;
	}
	vxlan_rx_fallback(st, ret);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int mesh_egress(struct __sk_buff *skb)
{
	struct mesh_port_val *pv;
	struct mesh_cfg *cfg;
	__u32 port = skb->ifindex;
	__u32 from = skb->ingress_ifindex;
	__u32 zero = 0, len;
	struct encap_stats *st;
	struct encap_cfg *ec;
	int ret;

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
	len = skb->len;
	ec = bpf_map_lookup_elem(&mesh_encap, &zero);
	st = bpf_map_lookup_elem(&mesh_encap_stats, &zero);
	ret = vxlan_tx(skb, ec, st, &pv->remote, pv->vni);
	if (ret == TC_ACT_REDIRECT)
		goto sent;
	if (ret != VXLAN_TX_DEVICE)
		return ret;
	if (tunnel_set(skb, &pv->remote, &cfg->local, pv->vni)) {
		stats_inc(mesh_stats, drop_tunnel_key);
		return TC_ACT_SHOT;
	}
	ret = redirect_to(skb, cfg->vxlan_ifindex, 0);
sent:
	__sync_fetch_and_add(&pv->tx_pkts, 1);
	__sync_fetch_and_add(&pv->tx_bytes, len);
	stats_inc(mesh_stats, tx);
	return ret;
}

/* Run by the control plane at load (BPF_PROG_TEST_RUN), never attached:
 * may this kernel take the native path? See vxlan_probe. */
SEC("tc")
int mesh_probe(struct __sk_buff *skb)
{
	return vxlan_probe(skb);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

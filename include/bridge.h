/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The bridge's maps: shared by bpf/bridge.bpf.c and python/bpfnet/abi.py.
 * A changed layout is a new map name (see README, "Upgrades"). */
#ifndef __BPFNET_BRIDGE_H
#define __BPFNET_BRIDGE_H

#include "bpfnet.h"

#define BR_FDB_MAX   65536
#define BR_VNI_MAX   4096
#define BR_ALLOW_MAX 16384
#define BR_NEIGH_MAX 65536
#define BR_LOCAL_MAX 65536

/* br_cfg[0]: written by the control plane at load. */
struct br_cfg {
	__u32 vxlan_ifindex;    /* the external (collect_md) VXLAN device */
	__u32 ageing_s;         /* FDB entries older than this are unknown */
	__u32 flags;            /* BR_CFG_F_* */
	__u32 pad;
	struct bpfnet_ip group; /* default flood group */
	struct bpfnet_ip local; /* local VTEP address, zero: routing picks */
	__u64 fdb_removed;      /* FDB entries the control plane deleted (flush,
				 * vni del): with br_stats.learn and .aged this
				 * tells how many the LRU evicted */
};

#define BR_CFG_F_VXLAN_CREATED (1U << 0) /* bpfnet created the VXLAN device */
#define BR_CFG_F_NO_SUPPRESS   (1U << 1) /* `load bridge --suppress off`: ARP/ND
					  * requests are never answered (zero,
					  * as an older cfg has it: on) */

/* br_vni: VNI (host order) -> tenant port; provisioned by `vni add`. */
struct br_vni_val {
	__u32 port;             /* ifindex of the port (bridge side of a veth pair) */
	__u32 bridge;           /* ifindex of the Linux bridge the port is in */
	__u32 flags;            /* BR_VNI_F_* */
	__u32 pad;
	struct bpfnet_ip group; /* flood group for this VNI */
};

#define BR_VNI_F_ALLOW_LIST     (1U << 0) /* only br_allow VTEPs may send */
#define BR_VNI_F_BRIDGE_CREATED (1U << 1) /* bpfnet created the bridge */
#define BR_VNI_F_FILTER_ADDED   (1U << 2) /* bpfnet listed the VNI in the VXLAN
					   * device's VNI filter (control plane) */

/* br_port: port ifindex -> VNI; provisioned by `vni add`. */
struct br_port_val {
	__u32 vni;
	__u32 pad;
};

/* br_fdb: {mac, port} -> {remote VTEP, vni}; learned by the data path, or
 * static (BR_FDB_F_STATIC, `fdb add`): never aged, never relearned, or a
 * route (BR_FDB_F_ROUTE, the agent's routes_set): never aged; learning moves
 * it to the VTEP a frame from its MAC came through (the flag stays). */
struct br_fdb_key {
	__u8 mac[6];
	__u8 pad[2];
	__u32 port;             /* ifindex */
};

struct br_fdb_val {
	struct bpfnet_ip remote;
	__u32 vni;
	__u32 flags;            /* BR_FDB_F_* (was padding: same layout) */
	__u64 rx_pkts;          /* frames learned from this MAC */
	__u64 tx_pkts;          /* frames sent to this MAC */
	__u64 seen_ns;          /* CLOCK_MONOTONIC of the last frame from it
				 * (static: of the `fdb add`) */
};

#define BR_FDB_F_STATIC (1U << 0) /* provisioned: not aged, not relearned */
#define BR_FDB_F_ROUTE  (1U << 1) /* a MAC/IP route from the cluster: not aged,
				   * relearned (moved) by the data path */

/* br_neigh: {vni, tenant IP} -> MAC, for answering ARP requests and IPv6
 * neighbour solicitations on the port (suppression). Static entries come
 * from the control plane (`neigh add`, `fdb add --ip`); others are learned
 * from ARP and ND seen from the tunnel and age like the FDB. LRU. */
struct br_neigh_key {
	__u32 vni;
	__u32 pad;
	struct bpfnet_ip ip;    /* IPv4 stored IPv4-mapped */
};

struct br_neigh_val {
	__u8 mac[6];
	__u16 flags;            /* BR_NEIGH_F_* */
	__u32 pad;
	__u64 replies;          /* requests answered with this binding */
	__u64 seen_ns;          /* CLOCK_MONOTONIC when learned or added */
};

#define BR_NEIGH_F_STATIC (1U << 0) /* provisioned: not aged, not relearned */
#define BR_NEIGH_F_ROUTE  (1U << 1) /* from a route (routes_set): not aged */
#define BR_NEIGH_F_LOCAL  (1U << 2) /* claimed by a tenant of this host (seen on
				     * a port's egress): never answered, ages */

/* br_local: {vni, mac} -> last seen; the tenant MACs of this host: sources
 * of frames from the tenant's bridge through the VNI's port toward the
 * tunnel. LRU; refreshed at most once a second; forgotten when the MAC is
 * learned from the tunnel (it moved away). */
struct br_local_key {
	__u32 vni;
	__u8 mac[6];
	__u8 pad[2];
};

struct br_local_val {
	__u64 seen_ns;          /* CLOCK_MONOTONIC of the last frame from it */
	__u64 first_ns;         /* when it was first seen (or seen again after
				 * it was forgotten) */
};

/* br_allow: {vni, remote} present = that VTEP may send into the VNI. */
struct br_allow_key {
	__u32 vni;
	__u32 pad;
	struct bpfnet_ip remote;
};

/* br_stats[0]: per-CPU counters, one field each, so that `bpftool map dump`
 * names them. Every TC_ACT_SHOT path bumps one drop_* field first. */
struct br_stats {
	__u64 rx;               /* decapsulated frames delivered to a port */
	__u64 tx;               /* frames sent to a known remote */
	__u64 flood;            /* frames sent to the flood group */
	__u64 learn;            /* new FDB entries */
	__u64 move;             /* MACs that moved to another VTEP */
	__u64 aged;             /* stale entries dropped on lookup */
	__u64 drop_no_tunnel;   /* ingress without tunnel metadata */
	__u64 drop_unknown_vni; /* ingress for a VNI with no port */
	__u64 drop_vtep_denied; /* sender not in the VNI's allow list */
	__u64 drop_short;       /* frame shorter than Ethernet */
	__u64 drop_no_config;   /* programs attached before configuration */
	__u64 drop_tunnel_key;  /* bpf_skb_set_tunnel_key failed */
};

/* br_supp_stats[0]: per-CPU counters of static entries and ARP/ND
 * suppression. A map of its own, so that a br_stats pinned by an older
 * bpfnet is reused as is on upgrade; `status` shows both as one set. */
struct br_supp_stats {
	__u64 static_conflict;  /* a static MAC's frame from another VTEP or VNI */
	__u64 arp_reply;        /* ARP requests answered on the port */
	__u64 nd_reply;         /* neighbour solicitations answered on the port */
	__u64 arp_flood;        /* ARP requests flooded: no binding */
	__u64 nd_flood;         /* neighbour solicitations flooded: no binding */
	__u64 neigh_learn;      /* bindings learned or changed from the tunnel */
};

/* br_local_last[0]: per-CPU, the last source bridge_egress looked up in
 * br_local and when (coarse clock): the next frame from it within a second
 * skips the lookup. Not pinned: the programs' scratch state. */
struct br_local_last {
	struct br_local_key key;
	__u64 stamp_ns;
};

/* br_route_stats[0]: per-CPU counters of local learning and route entries
 * (a map of its own, as br_supp_stats). */
struct br_route_stats {
	__u64 local_learn;      /* new br_local entries: a tenant MAC of this host */
	__u64 local_neigh;      /* local bindings learned or changed on egress */
	__u64 local_moved;      /* br_local entries forgotten: the MAC came
				 * from the tunnel */
	__u64 route_move;       /* route entries moved by learning (also in move) */
	__u64 arp_local;        /* ARP requests for a local binding: not answered */
	__u64 nd_local;         /* neighbour solicitations for a local binding */
};

#endif /* __BPFNET_BRIDGE_H */

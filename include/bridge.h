/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The bridge's maps: shared by bpf/bridge.bpf.c and python/bpfnet/abi.py.
 * A changed layout is a new map name (see README, "Upgrades"). */
#ifndef __BPFNET_BRIDGE_H
#define __BPFNET_BRIDGE_H

#include "bpfnet.h"

#define BR_FDB_MAX   65536
#define BR_VNI_MAX   4096
#define BR_ALLOW_MAX 16384

/* br_cfg[0]: written by the control plane at load. */
struct br_cfg {
	__u32 vxlan_ifindex;    /* the external (collect_md) VXLAN device */
	__u32 ageing_s;         /* FDB entries older than this are unknown */
	__u32 flags;            /* BR_CFG_F_* */
	__u32 pad;
	struct bpfnet_ip group; /* default flood group */
	struct bpfnet_ip local; /* local VTEP address, zero: routing picks */
};

#define BR_CFG_F_VXLAN_CREATED (1U << 0) /* bpfnet created the VXLAN device */

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

/* br_port: port ifindex -> VNI; provisioned by `vni add`. */
struct br_port_val {
	__u32 vni;
	__u32 pad;
};

/* br_fdb: {mac, port} -> {remote VTEP, vni}; learned by the data path. */
struct br_fdb_key {
	__u8 mac[6];
	__u8 pad[2];
	__u32 port;             /* ifindex */
};

struct br_fdb_val {
	struct bpfnet_ip remote;
	__u32 vni;
	__u32 pad;
	__u64 rx_pkts;          /* frames learned from this MAC */
	__u64 tx_pkts;          /* frames sent to this MAC */
	__u64 seen_ns;          /* CLOCK_MONOTONIC of the last frame from it */
};

/* br_allow: {vni, remote} present = that VTEP may send into the VNI. */
struct br_allow_key {
	__u32 vni;
	__u32 pad;
	struct bpfnet_ip remote;
};

/* br_stats: per-CPU counters, index = enum br_stat. */
enum br_stat {
	BR_STAT_RX = 0,             /* decapsulated frames delivered to a port */
	BR_STAT_TX,                 /* frames sent to a known remote */
	BR_STAT_FLOOD,              /* frames sent to the flood group */
	BR_STAT_LEARN,              /* new FDB entries */
	BR_STAT_MOVE,               /* MACs that moved to another VTEP */
	BR_STAT_AGED,               /* stale entries dropped on lookup */
	BR_DROP_NO_TUNNEL,          /* ingress without tunnel metadata */
	BR_DROP_UNKNOWN_VNI,        /* ingress for a VNI with no port */
	BR_DROP_VTEP_DENIED,        /* sender not in the VNI's allow list */
	BR_DROP_SHORT,              /* frame shorter than Ethernet */
	BR_DROP_NO_CONFIG,          /* programs attached before configuration */
	BR_DROP_TUNNEL_KEY,         /* bpf_skb_set_tunnel_key failed */
	__BR_STAT_MAX,
};

#endif /* __BPFNET_BRIDGE_H */

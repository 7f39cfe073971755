/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The mesh's maps: shared by bpf/mesh.bpf.c and python/bpfnet/abi.py.
 * A changed layout is a new map name (see README, "Upgrades"). */
#ifndef __BPFNET_MESH_H
#define __BPFNET_MESH_H

#include "bpfnet.h"

#define MESH_PEER_MAX 4096 /* {vni, peer} pairs, hence ports, per namespace */
#define MESH_VNI_MAX  4096

/* mesh_cfg[0]: written by the control plane at load and at `peer add`. */
struct mesh_cfg {
	__u32 vxlan_ifindex;    /* the external (collect_md) VXLAN device */
	__u32 flags;            /* MESH_CFG_F_* */
	__u32 next_port;        /* next port number N: ports are bmp<N>/bmq<N> */
	__u32 dstport;          /* VXLAN UDP port, host order (for status) */
	struct bpfnet_ip local; /* local VTEP address, zero: routing picks */
};

#define MESH_CFG_F_VXLAN_CREATED (1U << 0) /* bpfnet created the VXLAN device */

/* mesh_peers: {vni, remote VTEP} -> the port frames from it enter.
 * Provisioned by `peer add` (intent first: written with port 0, which the
 * data path treats as unknown, before the port exists); rx counters kept by
 * the data path. */
struct mesh_peer_key {
	__u32 vni;              /* host order */
	__u32 pad;
	struct bpfnet_ip remote;
};

struct mesh_peer_val {
	__u32 port;             /* ifindex of bmp<N>, the bridge side of a veth pair */
	__u32 id;               /* N of bmp<N> */
	__u64 rx_pkts;          /* frames from this peer delivered into the port */
	__u64 rx_bytes;
};

/* mesh_ports: port ifindex -> {remote VTEP, vni} frames leaving it go to.
 * Provisioned with mesh_peers; tx counters kept by the data path. */
struct mesh_port_val {
	struct bpfnet_ip remote;
	__u32 vni;              /* host order */
	__u32 pad;
	__u64 tx_pkts;          /* frames tunnelled to this peer */
	__u64 tx_bytes;
};

/* mesh_vnis: VNI -> its Linux bridge. Control plane only (the data path never
 * reads it): the state of a short-lived bpfnetctl lives in pins. Written
 * before the bridge is made (intent first), so a killed `peer add` leaves
 * what `peer del` and `unload` need to clear it. */
struct mesh_vni_val {
	__u32 bridge;           /* ifindex of the VNI's Linux bridge, 0: not yet */
	__u32 flags;            /* MESH_VNI_F_* */
};

#define MESH_VNI_F_BRIDGE_CREATED (1U << 0) /* bpfnet created the bridge */
#define MESH_VNI_F_FILTER_ADDED   (1U << 1) /* bpfnet listed the VNI in the VXLAN
					     * device's VNI filter */

/* mesh_stats[0]: per-CPU counters, one field each, so that `bpftool map dump`
 * names them. Every TC_ACT_SHOT path bumps one drop_* field first. */
struct mesh_stats {
	__u64 rx;                 /* frames from a peer redirected into its port */
	__u64 tx;                 /* frames tunnelled to a peer */
	__u64 drop_no_tunnel;     /* ingress without tunnel metadata */
	__u64 drop_unknown_peer;  /* ingress from a {vni, remote} with no port */
	__u64 drop_split_horizon; /* a frame from the tunnel bridged to another peer */
	__u64 drop_no_config;     /* programs attached before configuration */
	__u64 drop_tunnel_key;    /* bpf_skb_set_tunnel_key failed */
};

#endif /* __BPFNET_MESH_H */

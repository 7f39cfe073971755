/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The tunnel monitor's maps: shared by bpf/monitor.bpf.c and
 * python/bpfnet/abi.py. A changed layout is a new map name (see README,
 * "Upgrades"). */
#ifndef __BPFNET_MONITOR_H
#define __BPFNET_MONITOR_H

#include "bpfnet.h"

#define MON_FLOWS_MAX    65536
#define MON_DEFAULT_PORT 4789 /* IANA VXLAN port; mon_cfg.port 0 means this */

/* Longest header stack the parser reads: Ethernet + one VLAN tag + IPv4 with
 * options + UDP + VXLAN + inner Ethernet + one VLAN tag + IPv6. */
#define MON_HDR_MAX (14 + 4 + 60 + 8 + 8 + 14 + 4 + 40)

/* mon_cfg[0]: written by the control plane at load. */
struct mon_cfg {
	__u32 ifindex;          /* the underlay device the programs are on */
	__u16 port;             /* VXLAN UDP destination port, host order */
	__u16 pad;
};

/* mon_flows key: one tunnelled conversation. Ordered so that both directions
 * meet in one entry: outer_sip <= outer_dip (as numbers, network order
 * compared byte by byte), and when the outer pair is equal, inner_sip <=
 * inner_dip; the inner pair is swapped along with the outer one. IPv4 is
 * stored IPv4-mapped; the inner pair is zero for a non-IP inner frame. */
struct mon_flow_key {
	struct bpfnet_ip outer_sip;
	struct bpfnet_ip outer_dip;
	__u32 vni;              /* host order */
	struct bpfnet_ip inner_sip;
	struct bpfnet_ip inner_dip;
};

/* mon_flows value: frames and bytes (skb->len: from the outer Ethernet
 * header on, no FCS) seen leaving (tx, tc egress) and arriving (rx, tc
 * ingress) on the monitored device. */
struct mon_flow_val {
	__u64 tx_pkts;
	__u64 tx_bytes;
	__u64 rx_pkts;
	__u64 rx_bytes;
};

/* mon_stats[0]: per-CPU counters. The monitor never drops: every frame is
 * passed on, counted in exactly one of vxlan, other, fragment, malformed,
 * no_room. */
struct mon_stats {
	__u64 vxlan;            /* VXLAN frames counted in mon_flows */
	__u64 new_flow;         /* entries the data path inserted in mon_flows */
	__u64 other;            /* not IP/UDP to the VXLAN port: not counted */
	__u64 fragment;         /* later IPv4 fragments (no UDP header): not counted */
	__u64 malformed;        /* truncated or invalid headers: not counted */
	__u64 no_room;          /* mon_flows refused the insert: not counted */
	__u64 pulled;           /* headers were outside the linear data: pulled in */
};

#endif /* __BPFNET_MONITOR_H */

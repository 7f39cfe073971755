/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The gateway's maps: shared by bpf/gateway.bpf.c and python/bpfnet/abi.py.
 * A changed layout is a new map name (see README, "Upgrades"). */
#ifndef __BPFNET_GATEWAY_H
#define __BPFNET_GATEWAY_H

#include "bpfnet.h"

/* Clients, and so workers: one worker per client. */
#define GW_CLIENT_MAX 4096

/* gw_cfg[0]: written by the control plane at load. */
struct gw_cfg {
	__u32 trunk;            /* ifindex of the trunk (the user's device) */
	__u32 pad;
};

/* gw_clients: client MAC -> its worker; provisioned by `client add`. */
struct gw_client_key {
	__u8 mac[6];
	__u8 pad[2];
};

struct gw_client_val {
	__u32 worker;           /* ifindex of the worker port (host side of its veth) */
	__u32 flags;            /* GW_CLIENT_F_* */
};

/* `client add` writes the entry first, as intent, then attaches the way
 * back, then clears this flag: until then the data path treats the MAC as no
 * client, and a command killed half-way leaves an entry that names the port
 * to clean up. */
#define GW_CLIENT_F_PENDING (1U << 0)

/* gw_vlan_fdb: worker ifindex -> where its client was last seen, learned by
 * phys2virt on every frame, plus the client's traffic counters. Bytes are
 * counted untagged (the frame as the worker sends or receives it). */
struct gw_vlan_val {
	__u32 trunk;            /* ifindex the client's frames arrive on */
	__u16 vlan_tci;         /* host order: PCP (3 bits), DEI, VID (12 bits) */
	__be16 vlan_proto;      /* network order: ETH_P_8021Q or ETH_P_8021AD */
	__u64 rx_pkts;          /* trunk -> worker */
	__u64 rx_bytes;
	__u64 tx_pkts;          /* worker -> trunk */
	__u64 tx_bytes;
	__u64 seen_ns;          /* CLOCK_MONOTONIC of the last frame from the client */
};

/* gw_stats[0]: per-CPU counters, one field each, so that `bpftool map dump`
 * names them. Every TC_ACT_SHOT path bumps one drop_* field first; frames
 * the gateway does not own are passed to the stack and counted as pass_*. */
struct gw_stats {
	__u64 rx;               /* trunk -> worker: frames steered, tag popped */
	__u64 tx;               /* worker -> trunk: frames tagged and sent */
	__u64 learn;            /* clients learned (their first tagged frame) */
	__u64 move;             /* clients seen on another VLAN, TPID or trunk */
	__u64 pass_untagged;    /* untagged frames on the trunk */
	__u64 pass_unknown;     /* tagged frames from a MAC that is no client (yet) */
	__u64 pass_unlearned;   /* worker frames before its client was seen */
	__u64 drop_short;       /* frame or VLAN header truncated */
	__u64 drop_vlan_pop;    /* bpf_skb_vlan_pop failed */
	__u64 drop_vlan_push;   /* bpf_skb_vlan_push failed */
};

#endif /* __BPFNET_GATEWAY_H */

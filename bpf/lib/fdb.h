/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The bridge's learned forwarding table: {mac, port} -> {remote VTEP, vni},
 * an LRU hash of struct br_fdb_key -> struct br_fdb_val (include/bridge.h).
 *
 * Time: a new or moved entry is stamped with bpf_ktime_get_ns(); a known one
 * is refreshed from the coarse clock (CLOCK_MONOTONIC as of the last tick, a
 * few ms behind, on the same timeline). The coarse clock reads no clock
 * source: bridge_egress on an FDB hit went from 199 to 186 ns under
 * BPF_PROG_TEST_RUN (5 x 1M runs, A/B). Ageing counts seconds; comparisons
 * are signed, since a precise stamp may be ahead of the coarse clock. */
#ifndef __BPFNET_LIB_FDB_H
#define __BPFNET_LIB_FDB_H

#include "lib/common.h"
#include "lib/eth.h"
#include "lib/ip.h"
#include "bridge.h"

/* What fdb_learn did, for the caller's counters. */
enum fdb_learned {
	FDB_REFRESHED = 0,      /* known entry, same VTEP */
	FDB_NEW,                /* first frame from this MAC on this port */
	FDB_MOVED,              /* the MAC moved to another VTEP or VNI */
	FDB_CONFLICT,           /* a static entry's MAC from another VTEP or
				 * VNI: the entry is kept, the frame passes */
	FDB_ROUTE_MOVED,        /* a route entry's MAC from another VTEP or
				 * VNI: moved as a learned one, still a route */
};

#define BR_FDB_F_NO_AGEING (BR_FDB_F_STATIC | BR_FDB_F_ROUTE)

/* Learns {@mac, @port} -> {@remote, @vni} in @fdb (a BPF_MAP_TYPE_LRU_HASH
 * of br_fdb_key -> br_fdb_val). A MAC seen from a new VTEP (it moved) is
 * relearned at once; its counters carry over. A static entry
 * (BR_FDB_F_STATIC) is never relearned: a frame from its MAC through another
 * VTEP is a conflict, as the kernel bridge counts a move of a static entry
 * (the frame is still delivered). A route entry (BR_FDB_F_ROUTE) moves as a
 * learned one does and keeps its flag (the control plane's next routes_set
 * settles it); its age counts from the routes_set or the move. @mac must point at 6 readable
 * bytes of a unicast source address (the caller skips group addresses with
 * eth_is_multicast); @remote is in network order. Returns an enum
 * fdb_learned. */
static __always_inline int fdb_learn(void *fdb, const __u8 *mac, __u32 port,
				     const struct bpfnet_ip *remote, __u32 vni)
{
	struct br_fdb_key key = {};
	struct br_fdb_val *old, val = {};

	eth_copy(key.mac, mac);
	key.port = port;
	old = bpf_map_lookup_elem(fdb, &key);
	if (old && (old->vni != vni || !ip_equal(&old->remote, remote)) &&
	    (old->flags & BR_FDB_F_STATIC))
		return FDB_CONFLICT;
	if (old && (old->flags & BR_FDB_F_STATIC)) {
		__sync_fetch_and_add(&old->rx_pkts, 1);
		return FDB_REFRESHED;
	}
	if (old && old->vni == vni && ip_equal(&old->remote, remote)) {
		__sync_fetch_and_add(&old->rx_pkts, 1);
		if (old->flags & BR_FDB_F_ROUTE)
			return FDB_REFRESHED; /* not aged */
		stamp_refresh(&old->seen_ns, bpf_ktime_get_coarse_ns());
		return FDB_REFRESHED;
	}
	val.remote = *remote;
	val.vni = vni;
	val.rx_pkts = 1;
	val.seen_ns = bpf_ktime_get_ns();
	if (old) {
		val.rx_pkts += old->rx_pkts;
		val.tx_pkts = old->tx_pkts;
		val.flags = old->flags & BR_FDB_F_ROUTE;
	}
	bpf_map_update_elem(fdb, &key, &val, BPF_ANY);
	if (!old)
		return FDB_NEW;
	return val.flags ? FDB_ROUTE_MOVED : FDB_MOVED;
}

/* Looks up {@mac, @port} in @fdb for a frame about to be sent to it and
 * counts it (tx_pkts). A learned entry older than @ageing_s seconds is
 * deleted and *@aged set; a static or route one never ages. @mac must point
 * at 6 readable bytes of a unicast destination.
 * Returns the entry (its remote is the VTEP to send to), or NULL: unknown or
 * aged, so the caller floods. */
static __always_inline struct br_fdb_val *fdb_lookup(void *fdb, const __u8 *mac,
						     __u32 port, __u32 ageing_s,
						     int *aged)
{
	struct br_fdb_key key = {};
	struct br_fdb_val *fv;

	eth_copy(key.mac, mac);
	key.port = port;
	fv = bpf_map_lookup_elem(fdb, &key);
	if (!fv)
		return NULL;
	if (!(fv->flags & BR_FDB_F_NO_AGEING) &&
	    stamp_older(bpf_ktime_get_coarse_ns(), fv->seen_ns, ageing_s)) {
		bpf_map_delete_elem(fdb, &key);
		*aged = 1;
		return NULL;
	}
	__sync_fetch_and_add(&fv->tx_pkts, 1);
	return fv;
}

/* The tenant MACs of this host, br_local (an LRU hash of br_local_key ->
 * br_local_val): records {@vni, @mac} as seen now, on a port's egress. A
 * known entry costs one lookup; its stamp is rewritten at most once a
 * second (coarse clock), as fdb_learn's. @last (a one-entry per-CPU array
 * of struct br_local_last) remembers the last source looked up: the same
 * one again within a second costs no lookup, so a flow's frames read only
 * per-CPU memory (br_local's stamp then lags at most two seconds; an entry
 * deleted meanwhile comes back within one). @mac: 6 readable bytes of a
 * unicast source address. Returns 1 if the entry is new. */
static __always_inline int local_learn(void *local, void *last, __u32 vni, const __u8 *mac)
{
	struct br_local_key key = {};
	struct br_local_val *old, val = {};
	struct br_local_last *l;
	__u32 zero = 0;
	__u64 now;

	now = bpf_ktime_get_coarse_ns();
	l = bpf_map_lookup_elem(last, &zero);
	if (l && l->key.vni == vni && eth_equal(l->key.mac, mac) &&
	    (__s64)(now - l->stamp_ns) < (__s64)NSEC_PER_SEC)
		return 0;
	key.vni = vni;
	eth_copy(key.mac, mac);
	if (l) {
		l->key = key;
		l->stamp_ns = now;
	}
	old = bpf_map_lookup_elem(local, &key);
	if (old) {
		stamp_refresh(&old->seen_ns, now);
		return 0;
	}
	val.seen_ns = val.first_ns = bpf_ktime_get_ns();
	bpf_map_update_elem(local, &key, &val, BPF_ANY);
	return 1;
}

/* Whether {@vni, @mac} is a tenant of this host: in br_local and seen within
 * @ageing_s seconds (what local_macs() lists). */
static __always_inline int local_known(void *local, __u32 vni, const __u8 *mac, __u32 ageing_s)
{
	struct br_local_key key = {};
	struct br_local_val *v;

	key.vni = vni;
	eth_copy(key.mac, mac);
	v = bpf_map_lookup_elem(local, &key);
	return v && !stamp_older(bpf_ktime_get_coarse_ns(), v->seen_ns, ageing_s);
}

/* Forgets {@vni, @mac} in br_local (the MAC came from the tunnel: it is a
 * remote tenant now). Returns 1 if it was there. */
static __always_inline int local_forget(void *local, __u32 vni, const __u8 *mac)
{
	struct br_local_key key = {};

	key.vni = vni;
	eth_copy(key.mac, mac);
	return bpf_map_delete_elem(local, &key) == 0;
}

#endif /* __BPFNET_LIB_FDB_H */

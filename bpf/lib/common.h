/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Constants vmlinux.h lacks (it carries no macros), defined once, and the
 * seen-stamp arithmetic every learning table shares. */
#ifndef __BPFNET_LIB_COMMON_H
#define __BPFNET_LIB_COMMON_H

#define TC_ACT_UNSPEC (-1)
#define TC_ACT_OK     0
#define TC_ACT_SHOT   2
#define TC_ACT_REDIRECT 7

#define ETH_ALEN      6
#define ETH_HLEN      14
#define ETH_P_IP      0x0800
#define ETH_P_IPV6    0x86DD
#define ETH_P_8021Q   0x8100
#define ETH_P_8021AD  0x88A8
#define ETH_P_ARP     0x0806

#define NSEC_PER_SEC 1000000000ULL

/* Whether a stamp taken at @then (ns) is more than @secs seconds before @now.
 * Signed: a stamp a little ahead of @now (a precise stamp read against the
 * coarse clock) is not old. */
static __always_inline int stamp_older(__u64 now, __u64 then, __u64 secs)
{
	return (__s64)(now - then) > (__s64)(secs * NSEC_PER_SEC);
}

/* Rewrites the seen stamp *@seen with @now at most once a second: one write
 * a second is enough for ageing, and a flow's frames otherwise only read it. */
static __always_inline void stamp_refresh(__u64 *seen, __u64 now)
{
	if (stamp_older(now, *seen, 1))
		*seen = now;
}

#ifndef likely
#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif

#endif /* __BPFNET_LIB_COMMON_H */

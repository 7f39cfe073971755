/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Constants vmlinux.h lacks (it carries no macros), defined once. */
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

#ifndef likely
#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif

#endif /* __BPFNET_LIB_COMMON_H */

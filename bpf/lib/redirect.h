/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Redirects that prog tests can see. */
#ifndef __BPFNET_LIB_REDIRECT_H
#define __BPFNET_LIB_REDIRECT_H

#include "lib/common.h"

/* Redirects @skb to @ifindex (BPF_F_INGRESS in @flags: into its receive
 * path). The target and flags are first stored in cb[0] and cb[1]: the
 * BPF_PROG_TEST_RUN ctx returns cb, while the redirect itself is not followed
 * there, so this is how prog tests see where a frame went. One store each,
 * into scratch space tc programs own. The caller needs no check: any ifindex
 * is accepted here and a wrong one drops in the kernel. Returns
 * TC_ACT_REDIRECT (or TC_ACT_SHOT for flags the helper refuses). */
static __always_inline long redirect_to(struct __sk_buff *skb, __u32 ifindex,
					__u64 flags)
{
	skb->cb[0] = ifindex;
	skb->cb[1] = (__u32)flags;
	return bpf_redirect(ifindex, flags);
}

/* cb[1] of a redirect through the neighbour subsystem (redirect_neigh_to). */
#define REDIRECT_F_NEIGH (1U << 16)

/* struct bpf_redir_neigh as in the uapi of every kernel since 5.11; our own
 * copy, so no CO-RE relocation against the running kernel is needed. */
struct redirect_nh {
	__u32 nh_family;        /* AF_INET or AF_INET6 */
	__be32 nh[4];           /* next hop, network order (IPv4: nh[0]) */
};

/* Redirects @skb out of @ifindex through the neighbour subsystem: the
 * kernel fills the Ethernet header for next hop @nh (resolving it first if
 * need be), or routes the packet itself when @nh is NULL. The caller must
 * have checked that skb->protocol is IPv4 or IPv6 (the helper drops anything
 * else). Records @ifindex and REDIRECT_F_NEIGH in cb[0], cb[1] as
 * redirect_to does. Returns TC_ACT_REDIRECT. */
static __always_inline long redirect_neigh_to(struct __sk_buff *skb, __u32 ifindex,
					      struct redirect_nh *nh)
{
	skb->cb[0] = ifindex;
	skb->cb[1] = REDIRECT_F_NEIGH;
	return bpf_redirect_neigh(ifindex, (void *)nh, nh ? sizeof(*nh) : 0, 0);
}

#endif /* __BPFNET_LIB_REDIRECT_H */

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

#endif /* __BPFNET_LIB_REDIRECT_H */

/*
 * kmt_test_support.h: kernel calls only the tests make, kept out of the library.
 */
#ifndef KMT_TEST_SUPPORT_H
#define KMT_TEST_SUPPORT_H

#include <stdint.h>

/* DRM_IOCTL_VGEM_FENCE_ATTACH: a new unsignalled write fence on vgem buffer `handle`.
 * Returns 0, or -1 with errno set. */
int kmt_vgem_fence_attach(int fd, uint32_t handle, uint32_t *out_fence);

/* DRM_IOCTL_VGEM_FENCE_SIGNAL. Returns 0, or -1 with errno set. */
int kmt_vgem_fence_signal(int fd, uint32_t fence);

#endif /* KMT_TEST_SUPPORT_H */

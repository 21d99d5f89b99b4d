/* vgem fences a test attaches to a buffer and signals by hand. */
#include "kmt_test_support.h"

#include <sys/ioctl.h>
#include <drm.h>

/* vgem_drm.h (in the kernel's uapi; neither Debian 12's libdrm nor its linux-libc-dev ships it). */
struct kmt_drm_vgem_fence_attach {
    uint32_t handle;
    uint32_t flags; /* VGEM_FENCE_WRITE: 1 */
    uint32_t out_fence;
    uint32_t pad;
};

struct kmt_drm_vgem_fence_signal {
    uint32_t fence;
    uint32_t flags;
};

#define KMT_DRM_IOCTL_VGEM_FENCE_ATTACH DRM_IOWR(DRM_COMMAND_BASE + 0x01, struct kmt_drm_vgem_fence_attach)
#define KMT_DRM_IOCTL_VGEM_FENCE_SIGNAL DRM_IOW(DRM_COMMAND_BASE + 0x02, struct kmt_drm_vgem_fence_signal)

int kmt_vgem_fence_attach(int fd, uint32_t handle, uint32_t *out_fence) {
    struct kmt_drm_vgem_fence_attach request = { .handle = handle, .flags = 1 };
    int result = ioctl(fd, KMT_DRM_IOCTL_VGEM_FENCE_ATTACH, &request);
    if (result == 0) *out_fence = request.out_fence;
    return result;
}

int kmt_vgem_fence_signal(int fd, uint32_t fence) {
    struct kmt_drm_vgem_fence_signal request = { .fence = fence };
    return ioctl(fd, KMT_DRM_IOCTL_VGEM_FENCE_SIGNAL, &request);
}

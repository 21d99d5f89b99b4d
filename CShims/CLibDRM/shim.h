#ifndef KMT_CLIBDRM_SHIM_H
#define KMT_CLIBDRM_SHIM_H
/* libdrm, and its copies of the kernel's DRM uapi (drm.h with drm_mode.h, virtgpu_drm.h): the
 * structs the kernel layer passes to ioctls. Request numbers are function-like macros Swift
 * cannot import; CKMTShims exports them. */
#include <xf86drm.h>
#include <virtgpu_drm.h>
#endif

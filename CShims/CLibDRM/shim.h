#ifndef KMT_CLIBDRM_SHIM_H
#define KMT_CLIBDRM_SHIM_H
#include <xf86drm.h>
#endif

#ifndef KMT_BENCH_LIBDRM_SHIM_H
#define KMT_BENCH_LIBDRM_SHIM_H
#include <xf86drm.h>
#endif

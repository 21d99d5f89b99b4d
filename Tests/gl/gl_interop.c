/*
 * gl_interop.c - a real GL producer and consumer in two processes, through the
 * installed libd3dkmt, on a 3D (virgl) virtio-gpu: what DXVK-on-GL-style
 * runtimes and compositors do with D3DKMT shared resources.
 *
 *   parent (A)                                 child (B)
 *   allocation 0: made by the library (GBM)
 *   allocation 1: a GL texture EGL exported
 *     (EGL_MESA_image_dma_buf_export), wrapped
 *   allocation 2: a GBM bo's gbm_bo_get_fd (a
 *     read-only dma-buf), wrapped; A's CPU
 *     writes it through Lock2 (virgl transfer)
 *   acquire key 0; GLES renders both;
 *   EGL native fence -> the keyed mutex's
 *     value 1 and the sync object's value 1
 *     (the CPU does not wait)
 *   release key 1, fence 1          ------>    CPU-waits the sync object for 1 (GPU done)
 *                                              acquire key 1 -> fence 1; its sync_file
 *                                                -> eglWaitSyncKHR (the GPU waits)
 *                                              imports both dma-bufs (EGL_EXT_image_dma_buf_import,
 *                                                with the planes and modifier it was given),
 *                                                reads back, checks the pixels (also A's CPU's);
 *                                              renders new colours; native fence -> value 2;
 *                                              release key 0, fence 2
 *   acquire key 0 -> fence 2; GPU waits; <----
 *   reads back B's pixels through GL, and
 *   through D3DKMTLock2 (virgl transfers; the
 *   EGL export is a read-only dma-buf)
 *
 * Needs an adapter with D3DKMT_LINUX_ADAPTER_VIRGL_3D. Without one (the host)
 * it prints SKIP and exits 77, which scripts/test reports as skipped, never as
 * passed; with D3DKMT_REQUIRE_3D=1 (the virgl guest) a missing adapter fails.
 * Built by scripts/test against the installed library with -lEGL -lGLESv2
 * -lgbm.
 */
#define _GNU_SOURCE
#include "../c/support/kmt_test.h"

#include <EGL/egl.h>
#include <EGL/eglext.h>
#include <GLES2/gl2.h>
#include <GLES2/gl2ext.h>
#include <drm_fourcc.h>
#include <errno.h>
#include <fcntl.h>
#include <gbm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define WIDTH 64
#define HEIGHT 64
#define SKIP_STATUS 77

/* RGBA bytes in memory (DRM_FORMAT_ABGR8888 = GL_RGBA / GL_UNSIGNED_BYTE). */
static const uint8_t A_COLOR0[4] = { 0xff, 0x20, 0x00, 0xff };  /* A: allocation 0, whole */
static const uint8_t A_CORNER0[4] = { 0x00, 0xff, 0x40, 0xff }; /* A: allocation 0, 16x16 at 0,0 */
static const uint8_t A_COLOR1[4] = { 0x10, 0x30, 0xff, 0xff };  /* A: allocation 1 */
static const uint8_t B_COLOR0[4] = { 0x80, 0x00, 0x80, 0xff };  /* B: allocation 0 */
static const uint8_t B_COLOR1[4] = { 0xff, 0xff, 0x00, 0xff };  /* B: allocation 1 */
static const uint8_t CPU_COLOR2[4] = { 0x33, 0x66, 0x99, 0xff }; /* A's CPU: allocation 2 (Lock2) */

/* ------------------------------------------------------------------------ */
/* EGL and GLES on the adapter's render node                                */
/* ------------------------------------------------------------------------ */

typedef struct {
    int node;
    struct gbm_device *gbm;
    EGLDisplay display;
    EGLContext context;
    PFNEGLCREATEIMAGEKHRPROC createImage;
    PFNEGLDESTROYIMAGEKHRPROC destroyImage;
    PFNGLEGLIMAGETARGETTEXTURE2DOESPROC imageTargetTexture;
    PFNEGLCREATESYNCKHRPROC createSync;
    PFNEGLDESTROYSYNCKHRPROC destroySync;
    PFNEGLWAITSYNCKHRPROC waitSync;
    PFNEGLDUPNATIVEFENCEFDANDROIDPROC dupNativeFence;
    PFNEGLEXPORTDMABUFIMAGEQUERYMESAPROC exportQuery;
    PFNEGLEXPORTDMABUFIMAGEMESAPROC exportImage;
} gl_t;

static int has_extension(const char *list, const char *name)
{
    size_t length = strlen(name);
    for (const char *p = list; p && (p = strstr(p, name)); p += length)
        if ((p == list || p[-1] == ' ') && (p[length] == ' ' || p[length] == '\0'))
            return 1;
    return 0;
}

/* EGL on GBM on `render_node`, a GLES 2 context without surfaces. */
static int gl_start(gl_t *gl, const char *render_node)
{
    memset(gl, 0, sizeof *gl);
    gl->node = open(render_node, O_RDWR | O_CLOEXEC);
    CHECK(gl->node >= 0, "%s: open %s: %s", who, render_node, strerror(errno));
    if (gl->node < 0)
        return 0;
    gl->gbm = gbm_create_device(gl->node);
    CHECK(gl->gbm != NULL, "%s: gbm_create_device on %s", who, render_node);
    if (!gl->gbm)
        return 0;
    PFNEGLGETPLATFORMDISPLAYEXTPROC getPlatformDisplay =
        (PFNEGLGETPLATFORMDISPLAYEXTPROC)eglGetProcAddress("eglGetPlatformDisplayEXT");
    CHECK(getPlatformDisplay != NULL, "%s: eglGetPlatformDisplayEXT", who);
    if (!getPlatformDisplay)
        return 0;
    gl->display = getPlatformDisplay(EGL_PLATFORM_GBM_KHR, gl->gbm, NULL);
    EGLint major = 0, minor = 0;
    int ok = gl->display != EGL_NO_DISPLAY && eglInitialize(gl->display, &major, &minor);
    CHECK(ok, "%s: eglInitialize: 0x%x", who, eglGetError());
    if (!ok)
        return 0;
    const char *extensions = eglQueryString(gl->display, EGL_EXTENSIONS);
    static const char *needed[] = { "EGL_KHR_surfaceless_context", "EGL_EXT_image_dma_buf_import",
                                    "EGL_EXT_image_dma_buf_import_modifiers", "EGL_ANDROID_native_fence_sync",
                                    "EGL_KHR_wait_sync", "EGL_MESA_image_dma_buf_export",
                                    "EGL_KHR_gl_texture_2D_image" };
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++) {
        CHECK(has_extension(extensions, needed[i]), "%s: EGL has %s", who, needed[i]);
        if (!has_extension(extensions, needed[i]))
            return 0;
    }
    eglBindAPI(EGL_OPENGL_ES_API);
    static const EGLint config_attributes[] = { EGL_RENDERABLE_TYPE, EGL_OPENGL_ES2_BIT, EGL_NONE };
    EGLConfig config;
    EGLint configs = 0;
    ok = eglChooseConfig(gl->display, config_attributes, &config, 1, &configs) && configs == 1;
    CHECK(ok, "%s: eglChooseConfig: 0x%x", who, eglGetError());
    static const EGLint context_attributes[] = { EGL_CONTEXT_CLIENT_VERSION, 2, EGL_NONE };
    gl->context = eglCreateContext(gl->display, ok ? config : EGL_NO_CONFIG_KHR, EGL_NO_CONTEXT,
                                   context_attributes);
    ok = gl->context != EGL_NO_CONTEXT
         && eglMakeCurrent(gl->display, EGL_NO_SURFACE, EGL_NO_SURFACE, gl->context);
    CHECK(ok, "%s: a surfaceless GLES 2 context: 0x%x", who, eglGetError());
    if (!ok)
        return 0;
    gl->createImage = (PFNEGLCREATEIMAGEKHRPROC)eglGetProcAddress("eglCreateImageKHR");
    gl->destroyImage = (PFNEGLDESTROYIMAGEKHRPROC)eglGetProcAddress("eglDestroyImageKHR");
    gl->imageTargetTexture =
        (PFNGLEGLIMAGETARGETTEXTURE2DOESPROC)eglGetProcAddress("glEGLImageTargetTexture2DOES");
    gl->createSync = (PFNEGLCREATESYNCKHRPROC)eglGetProcAddress("eglCreateSyncKHR");
    gl->destroySync = (PFNEGLDESTROYSYNCKHRPROC)eglGetProcAddress("eglDestroySyncKHR");
    gl->waitSync = (PFNEGLWAITSYNCKHRPROC)eglGetProcAddress("eglWaitSyncKHR");
    gl->dupNativeFence = (PFNEGLDUPNATIVEFENCEFDANDROIDPROC)eglGetProcAddress("eglDupNativeFenceFDANDROID");
    gl->exportQuery = (PFNEGLEXPORTDMABUFIMAGEQUERYMESAPROC)eglGetProcAddress("eglExportDMABUFImageQueryMESA");
    gl->exportImage = (PFNEGLEXPORTDMABUFIMAGEMESAPROC)eglGetProcAddress("eglExportDMABUFImageMESA");
    ok = gl->createImage && gl->destroyImage && gl->imageTargetTexture && gl->createSync && gl->destroySync
         && gl->waitSync && gl->dupNativeFence && gl->exportQuery && gl->exportImage;
    CHECK(ok, "%s: the EGL/GLES extension entry points", who);
    if (ok)
        printf("%s: GL_RENDERER %s, GL_VERSION %s\n", who, (const char *)glGetString(GL_RENDERER),
               (const char *)glGetString(GL_VERSION));
    return ok;
}

static void gl_stop(gl_t *gl)
{
    if (gl->display != EGL_NO_DISPLAY) {
        eglMakeCurrent(gl->display, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
        if (gl->context != EGL_NO_CONTEXT)
            eglDestroyContext(gl->display, gl->context);
        eglTerminate(gl->display);
    }
    if (gl->gbm)
        gbm_device_destroy(gl->gbm);
    if (gl->node >= 0)
        close(gl->node);
}

/* A texture bound to an FBO, on an EGLImage (or a plain texture for image EGL_NO_IMAGE_KHR). */
typedef struct {
    EGLImageKHR image;
    GLuint texture, framebuffer;
} target_t;

static int target_make(gl_t *gl, target_t *t, EGLImageKHR image)
{
    t->image = image;
    glGenTextures(1, &t->texture);
    glBindTexture(GL_TEXTURE_2D, t->texture);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_NEAREST);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_NEAREST);
    if (image != EGL_NO_IMAGE_KHR)
        gl->imageTargetTexture(GL_TEXTURE_2D, image);
    else
        glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA, WIDTH, HEIGHT, 0, GL_RGBA, GL_UNSIGNED_BYTE, NULL);
    glGenFramebuffers(1, &t->framebuffer);
    glBindFramebuffer(GL_FRAMEBUFFER, t->framebuffer);
    glFramebufferTexture2D(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_TEXTURE_2D, t->texture, 0);
    GLenum complete = glCheckFramebufferStatus(GL_FRAMEBUFFER);
    CHECK(complete == GL_FRAMEBUFFER_COMPLETE, "%s: framebuffer on the image: 0x%x (GL error 0x%x)", who,
          complete, glGetError());
    return complete == GL_FRAMEBUFFER_COMPLETE;
}

static void target_free(gl_t *gl, target_t *t)
{
    glDeleteFramebuffers(1, &t->framebuffer);
    glDeleteTextures(1, &t->texture);
    if (t->image != EGL_NO_IMAGE_KHR)
        gl->destroyImage(gl->display, t->image);
}

static void fill(const target_t *t, const uint8_t color[4], int x, int y, int w, int h)
{
    glBindFramebuffer(GL_FRAMEBUFFER, t->framebuffer);
    glViewport(0, 0, WIDTH, HEIGHT);
    glEnable(GL_SCISSOR_TEST);
    glScissor(x, y, w, h);
    glClearColor(color[0] / 255.0f, color[1] / 255.0f, color[2] / 255.0f, color[3] / 255.0f);
    glClear(GL_COLOR_BUFFER_BIT);
    glDisable(GL_SCISSOR_TEST);
}

static int near(const uint8_t *pixel, const uint8_t color[4])
{
    for (int i = 0; i < 4; i++)
        if (abs((int)pixel[i] - (int)color[i]) > 1)
            return 0;
    return 1;
}

/* Reads the target back with glReadPixels and checks pixel (x, y). */
static void expect_gl_pixel(const target_t *t, int x, int y, const uint8_t color[4], const char *what)
{
    uint8_t pixel[4] = { 0 };
    glBindFramebuffer(GL_FRAMEBUFFER, t->framebuffer);
    glReadPixels(x, y, 1, 1, GL_RGBA, GL_UNSIGNED_BYTE, pixel);
    CHECK(near(pixel, color), "%s: %s at (%d,%d) through GL is %02x%02x%02x%02x, expected %02x%02x%02x%02x", who,
          what, x, y, pixel[0], pixel[1], pixel[2], pixel[3], color[0], color[1], color[2], color[3]);
}

/* An EGLImage of an allocation's dma-buf, with the layout D3DKMTLinuxQueryAllocationDesc2 gives. */
static EGLImageKHR import_allocation(gl_t *gl, D3DKMT_HANDLE hDevice, D3DKMT_HANDLE hAllocation, const char *what)
{
    D3DKMT_LINUX_ALLOCATION_DESC2 desc;
    memset(&desc, 0, sizeof desc);
    EXPECT_OK(D3DKMTLinuxQueryAllocationDesc2(hDevice, hAllocation, &desc));
    CHECK(desc.Width == WIDTH && desc.Height == HEIGHT && desc.Fourcc == DRM_FORMAT_ABGR8888 && desc.PlaneCount == 1,
          "%s: %s's layout: %ux%u fourcc 0x%x, %u planes", who, what, desc.Width, desc.Height, desc.Fourcc,
          desc.PlaneCount);
    int fd = -1;
    EXPECT_OK(D3DKMTLinuxExportAllocationDmaBuf(hDevice, hAllocation, &fd));
    if (fd < 0)
        return EGL_NO_IMAGE_KHR;
    EGLint attributes[32];
    int n = 0;
    attributes[n++] = EGL_WIDTH; attributes[n++] = (EGLint)desc.Width;
    attributes[n++] = EGL_HEIGHT; attributes[n++] = (EGLint)desc.Height;
    attributes[n++] = EGL_LINUX_DRM_FOURCC_EXT; attributes[n++] = (EGLint)desc.Fourcc;
    attributes[n++] = EGL_DMA_BUF_PLANE0_FD_EXT; attributes[n++] = fd;
    attributes[n++] = EGL_DMA_BUF_PLANE0_OFFSET_EXT; attributes[n++] = (EGLint)desc.Planes[0].Offset;
    attributes[n++] = EGL_DMA_BUF_PLANE0_PITCH_EXT; attributes[n++] = (EGLint)desc.Planes[0].Stride;
    if (desc.Modifier != DRM_FORMAT_MOD_INVALID) {
        attributes[n++] = EGL_DMA_BUF_PLANE0_MODIFIER_LO_EXT; attributes[n++] = (EGLint)(desc.Modifier & 0xffffffff);
        attributes[n++] = EGL_DMA_BUF_PLANE0_MODIFIER_HI_EXT; attributes[n++] = (EGLint)(desc.Modifier >> 32);
    }
    attributes[n++] = EGL_NONE;
    EGLImageKHR image = gl->createImage(gl->display, EGL_NO_CONTEXT, EGL_LINUX_DMA_BUF_EXT, NULL, attributes);
    CHECK(image != EGL_NO_IMAGE_KHR, "%s: EGL_EXT_image_dma_buf_import of %s (stride %u, modifier 0x%" PRIx64
          "): 0x%x", who, what, desc.Planes[0].Stride, (uint64_t)desc.Modifier, eglGetError());
    close(fd); /* EGL keeps its own reference */
    return image;
}

/* Flushes the GPU work so far and returns its EGL native fence as a sync_file. */
static int native_fence(gl_t *gl)
{
    EGLSyncKHR sync = gl->createSync(gl->display, EGL_SYNC_NATIVE_FENCE_ANDROID, NULL);
    CHECK(sync != EGL_NO_SYNC_KHR, "%s: eglCreateSyncKHR(EGL_SYNC_NATIVE_FENCE_ANDROID): 0x%x", who, eglGetError());
    if (sync == EGL_NO_SYNC_KHR)
        return -1;
    glFlush();
    int fd = gl->dupNativeFence(gl->display, sync);
    CHECK(fd >= 0, "%s: eglDupNativeFenceFDANDROID: 0x%x", who, eglGetError());
    gl->destroySync(gl->display, sync);
    return fd;
}

/* Makes the GPU wait for sync_file `fd` (EGL takes it). */
static void gpu_wait(gl_t *gl, int fd)
{
    EGLint attributes[] = { EGL_SYNC_NATIVE_FENCE_FD_ANDROID, fd, EGL_NONE };
    EGLSyncKHR sync = gl->createSync(gl->display, EGL_SYNC_NATIVE_FENCE_ANDROID, attributes);
    CHECK(sync != EGL_NO_SYNC_KHR, "%s: a native fence from the keyed mutex's sync_file: 0x%x", who, eglGetError());
    if (sync == EGL_NO_SYNC_KHR) {
        close(fd);
        return;
    }
    CHECK(gl->waitSync(gl->display, sync, 0) == EGL_TRUE, "%s: eglWaitSyncKHR: 0x%x", who, eglGetError());
    gl->destroySync(gl->display, sync);
}

/* The GPU of this process waits for the keyed mutex's fence value (no CPU wait). */
static void gpu_wait_for_mutex(gl_t *gl, D3DKMT_HANDLE hDevice, D3DKMT_HANDLE hMutex, UINT64 value)
{
    int fd = -1;
    EXPECT_OK(D3DKMTLinuxExportKeyedMutexSyncFile(hDevice, hMutex, value, &fd));
    if (fd >= 0)
        gpu_wait(gl, fd);
}

/* Hands the GPU work so far to the keyed mutex (value `value`) and the sync object (same value). */
static void gpu_signal(gl_t *gl, D3DKMT_HANDLE hDevice, D3DKMT_HANDLE hMutex, D3DKMT_HANDLE hSync, UINT64 value)
{
    int fd = native_fence(gl);
    if (fd < 0)
        return;
    int before = count_fds();
    EXPECT_OK(D3DKMTLinuxSignalKeyedMutexFromSyncFile(hDevice, hMutex, value, fd));
    EXPECT_OK(D3DKMTLinuxSignalSyncObjectFromSyncFile(hSync, value, fd));
    /* A value already on the timeline cannot be signalled again. */
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTLinuxSignalSyncObjectFromSyncFile(hSync, value, fd));
    CHECK(count_fds() == before, "%s: signalling from a sync_file leaves no descriptor behind", who);
    close(fd);
}

/* Lock2 of an allocation and a check of pixel (x, y): rows are `Stride` bytes apart. GL's row 0
 * is the first in memory. */
static void expect_locked_pixel(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE hAllocation, int x, int y,
                                const uint8_t color[4], const char *what)
{
    D3DKMT_LINUX_ALLOCATION_DESC2 desc;
    memset(&desc, 0, sizeof desc);
    EXPECT_OK(D3DKMTLinuxQueryAllocationDesc2(hDevice, hAllocation, &desc));
    /* A dma-buf with less guest memory than its image (a virgl texture lives on the host) cannot
     * be mapped: Lock2 must say so, not map short. */
    int fd = -1;
    EXPECT_OK(D3DKMTLinuxExportAllocationDmaBuf(hDevice, hAllocation, &fd));
    off_t bytes = fd >= 0 ? lseek(fd, 0, SEEK_END) : -1;
    if (fd >= 0)
        close(fd);
    uint8_t *p = NULL;
    NTSTATUS st = lock(hDevice, hAllocation, &p);
    if (bytes >= 0 && (UINT64)bytes < desc.Size) {
        char reason[512];
        D3DKMTLinuxGetLastFailure(reason, sizeof reason);
        CHECK(st == STATUS_NOT_SUPPORTED && strstr(reason, "cannot be mapped"),
              "%s: Lock2 of %s, whose dma-buf holds %lld of its %" PRIu64 " bytes: 0x%08" PRIX32 " (%s)", who, what,
              (long long)bytes, (uint64_t)desc.Size, (uint32_t)st, reason);
        printf("%s: Lock2 of %s: STATUS_NOT_SUPPORTED, as it must (%lld-byte dma-buf)\n", who, what,
               (long long)bytes);
        if (st == STATUS_SUCCESS)
            unlock(hDevice, hAllocation);
        return;
    }
    if (st != STATUS_SUCCESS) {
        char reason[512];
        D3DKMTLinuxGetLastFailure(reason, sizeof reason);
        CHECK(0, "%s: Lock2 of %s: 0x%08" PRIX32 " (%s)", who, what, (uint32_t)st, reason);
        return;
    }
    const uint8_t *pixel = p + desc.Planes[0].Offset + (size_t)y * desc.Planes[0].Stride + (size_t)x * 4;
    CHECK(near(pixel, color), "%s: %s at (%d,%d) through Lock2 is %02x%02x%02x%02x, expected %02x%02x%02x%02x",
          who, what, x, y, pixel[0], pixel[1], pixel[2], pixel[3], color[0], color[1], color[2], color[3]);
    EXPECT_OK(unlock(hDevice, hAllocation));
}

/* ------------------------------------------------------------------------ */
/* B                                                                        */
/* ------------------------------------------------------------------------ */

static int consumer(int argc, char **argv)
{
    int fd;
    LUID luid;
    D3DKMT_HANDLE hAdapter = 0, hDevice = 0;
    if (!child_args(argc, argv, &fd, &luid) || argc < 6 || !start_child("consumer", luid, &hAdapter, &hDevice))
        return 2;
    HANDLE h = D3DKMTLinuxFdToHandle(fd);
    gl_t gl;
    if (!gl_start(&gl, argv[5]))
        return test_finish();

    phase("consumer: opening the resource");
    open_buffers_t b;
    EXPECT_OK(query_for_open(hDevice, h, &b));
    CHECK(b.query.NumAllocations == 3, "consumer: the resource has 3 allocations (%u)", b.query.NumAllocations);
    prepare_open(hDevice, h, &b, 3, b.query.TotalPrivateDriverDataSize);
    b.open.PrivateRuntimeDataSize = b.query.PrivateRuntimeDataSize;         /* none */
    b.open.ResourcePrivateDriverDataSize = b.query.ResourcePrivateDriverDataSize;
    EXPECT_OK(D3DKMTOpenResourceFromNtHandle(&b.open));
    D3DKMT_HANDLE hMutex = b.open.hKeyedMutex, hSync = b.open.hSyncObject;
    D3DKMT_HANDLE hAllocations[3] = { b.allocs[0].hAllocation, b.allocs[1].hAllocation, b.allocs[2].hAllocation };

    phase("consumer: the CPU waits for A's GPU through the shared sync object");
    EXPECT_OK(sync_wait_bounded(hDevice, hSync, 1, 30000));

    phase("consumer: acquire key 1, the GPU waits for its fence value");
    UINT64 fence = 0;
    EXPECT_OK(km_acquire(hMutex, 1, -30000 * 10000LL, &fence, NULL, 0));
    CHECK(fence == 1, "consumer: acquired with fence value %" PRIu64 ", expected 1", (uint64_t)fence);
    gpu_wait_for_mutex(&gl, hDevice, hMutex, fence);

    phase("consumer: importing and reading back A's rendering");
    target_t targets[3];
    const char *names[3] = { "allocation 0 (GBM)", "allocation 1 (EGL export)",
                             "allocation 2 (gbm_bo_get_fd, written by A's CPU)" };
    for (int i = 0; i < 3; i++) {
        if (!target_make(&gl, &targets[i], import_allocation(&gl, hDevice, hAllocations[i], names[i])))
            return test_finish();
    }
    expect_gl_pixel(&targets[0], 40, 40, A_COLOR0, names[0]);
    expect_gl_pixel(&targets[0], 5, 5, A_CORNER0, names[0]);
    expect_gl_pixel(&targets[1], 10, 50, A_COLOR1, names[1]);
    expect_gl_pixel(&targets[2], 63, 63, CPU_COLOR2, names[2]);
    expect_gl_pixel(&targets[2], 0, 17, CPU_COLOR2, names[2]);

    phase("consumer: rendering and handing back with fence value 2");
    fill(&targets[0], B_COLOR0, 0, 0, WIDTH, HEIGHT);
    fill(&targets[1], B_COLOR1, 0, 0, WIDTH, HEIGHT);
    gpu_signal(&gl, hDevice, hMutex, hSync, 2);
    EXPECT_OK(km_release(hMutex, 0, 2, NULL, 0));

    for (int i = 0; i < 3; i++)
        target_free(&gl, &targets[i]);
    /* The GPU work was flushed before the release; the fences carry it after we are gone. */
    EXPECT_OK(destroy_resource(hDevice, b.open.hResource));
    free_open_buffers(&b);
    gl_stop(&gl);
    close(fd);
    destroy_device(hDevice);
    close_adapter(hAdapter);
    return test_finish();
}

/* ------------------------------------------------------------------------ */
/* A                                                                        */
/* ------------------------------------------------------------------------ */

/* The first adapter with virgl 3D: its LUID, its render node; 0 when there is none. */
static int find_3d_adapter(LUID *luid, char *render_node, size_t size)
{
    ULONG count = 0;
    D3DKMT_ADAPTERINFO *adapters = enum_adapters(&count);
    int found = 0;
    for (ULONG i = 0; i < count && !found; i++) {
        D3DKMT_LINUX_ADAPTER_INFO li;
        if (query_linux_info(adapters[i].hAdapter, &li) == STATUS_SUCCESS
            && (li.Flags & D3DKMT_LINUX_ADAPTER_VIRGL_3D)) {
            *luid = adapters[i].AdapterLuid;
            snprintf(render_node, size, "%s", li.RenderNode);
            found = 1;
        }
    }
    close_adapters(adapters, count);
    return found;
}

/* Wraps the dma-buf EGL exports for a new GL texture (EGL_MESA_image_dma_buf_export): the
 * allocation descriptor (version 2) says its layout as EGL reported it. */
static int export_gl_texture(gl_t *gl, target_t *t, D3DKMT_LINUX_ALLOCATION_DESC2 *desc)
{
    if (!target_make(gl, t, EGL_NO_IMAGE_KHR))
        return -1;
    t->image = gl->createImage(gl->display, gl->context, EGL_GL_TEXTURE_2D_KHR,
                               (EGLClientBuffer)(uintptr_t)t->texture, NULL);
    CHECK(t->image != EGL_NO_IMAGE_KHR, "producer: an EGLImage of a GL texture: 0x%x", eglGetError());
    int fourcc = 0, planes = 0, fd = -1;
    EGLint stride = 0, offset = 0;
    EGLuint64KHR modifier = DRM_FORMAT_MOD_INVALID;
    int ok = t->image != EGL_NO_IMAGE_KHR
             && gl->exportQuery(gl->display, t->image, &fourcc, &planes, &modifier)
             && planes == 1 && gl->exportImage(gl->display, t->image, &fd, &stride, &offset);
    CHECK(ok && fd >= 0, "producer: eglExportDMABUFImageMESA (%d planes): 0x%x", planes, eglGetError());
    if (!ok)
        return -1;
    int mode = fcntl(fd, F_GETFL);
    printf("producer: EGL exported fourcc 0x%x, stride %d, offset %d, modifier 0x%" PRIx64 ", %s dma-buf\n",
           fourcc, stride, offset, (uint64_t)modifier, (mode & O_ACCMODE) == O_RDONLY ? "read-only" : "read-write");
    memset(desc, 0, sizeof *desc);
    desc->Version = D3DKMT_LINUX_ALLOCATION_DESC_VERSION_2;
    desc->Width = WIDTH;
    desc->Height = HEIGHT;
    desc->Stride = (UINT)stride;
    desc->Fourcc = (UINT)fourcc;
    desc->Modifier = modifier;
    desc->DmaBufFd = fd;
    desc->PlaneCount = 1;
    desc->Planes[0].Offset = (UINT)offset;
    desc->Planes[0].Stride = (UINT)stride;
    return fd;
}

static int producer(const char *argv0)
{
    LUID luid;
    char render_node[64];
    phase("producer: finding a 3D adapter");
    if (!find_3d_adapter(&luid, render_node, sizeof render_node)) {
        const char *require = getenv("D3DKMT_REQUIRE_3D");
        if (require && strcmp(require, "1") == 0) {
            CHECK(0, "producer: no adapter with D3DKMT_LINUX_ADAPTER_VIRGL_3D, and D3DKMT_REQUIRE_3D=1");
            return test_finish();
        }
        printf("SKIP: gl_interop: no adapter with virgl 3D here (it runs in the virgl guest: scripts/vm-test)\n");
        return SKIP_STATUS;
    }
    D3DKMT_HANDLE hAdapter = 0, hDevice = 0;
    if (!open_device_by_luid(luid, &hAdapter, &hDevice))
        return test_finish();
    gl_t gl;
    if (!gl_start(&gl, render_node))
        return test_finish();

    phase("producer: allocating through GBM and wrapping an EGL export");
    target_t exported;
    struct {
        D3DKMT_LINUX_ALLOCATION_DESC2 desc;
        uint8_t tail[4];
    } data[3];
    memset(data, 0, sizeof data);
    data[0].desc.Version = D3DKMT_LINUX_ALLOCATION_DESC_VERSION_2;
    data[0].desc.Width = WIDTH;
    data[0].desc.Height = HEIGHT;
    data[0].desc.Fourcc = DRM_FORMAT_ABGR8888;
    data[0].desc.Modifier = DRM_FORMAT_MOD_INVALID; /* the driver chooses */
    data[0].desc.DmaBufFd = -1;
    int exported_fd = export_gl_texture(&gl, &exported, &data[1].desc);
    if (exported_fd < 0)
        return test_finish();
    /* Mesa's own GBM export: gbm_bo_get_fd gives a read-only dma-buf. */
    struct gbm_bo *bo = gbm_bo_create(gl.gbm, WIDTH, HEIGHT, GBM_FORMAT_ABGR8888,
                                      GBM_BO_USE_RENDERING | GBM_BO_USE_LINEAR);
    CHECK(bo != NULL, "producer: gbm_bo_create");
    if (!bo)
        return test_finish();
    int bo_fd = gbm_bo_get_fd(bo);
    CHECK(bo_fd >= 0 && (fcntl(bo_fd, F_GETFL) & O_ACCMODE) == O_RDONLY,
          "producer: gbm_bo_get_fd gives a read-only dma-buf (as Mesa 22.3 does)");
    data[2].desc.Version = D3DKMT_LINUX_ALLOCATION_DESC_VERSION_2;
    data[2].desc.Width = WIDTH;
    data[2].desc.Height = HEIGHT;
    data[2].desc.Stride = gbm_bo_get_stride(bo);
    data[2].desc.Fourcc = DRM_FORMAT_ABGR8888;
    data[2].desc.Modifier = gbm_bo_get_modifier(bo);
    data[2].desc.DmaBufFd = bo_fd;
    data[2].desc.PlaneCount = 1;
    data[2].desc.Planes[0].Offset = gbm_bo_get_offset(bo, 0);
    data[2].desc.Planes[0].Stride = gbm_bo_get_stride(bo);
    D3DDDI_ALLOCATIONINFO2 info[3];
    memset(info, 0, sizeof info);
    for (int i = 0; i < 3; i++) {
        memcpy(data[i].tail, "GL", 3);
        info[i].pPrivateDriverData = &data[i];
        info[i].PrivateDriverDataSize = sizeof data[i];
    }
    D3DKMT_CREATEALLOCATION create;
    memset(&create, 0, sizeof create);
    create.hDevice = hDevice;
    create.NumAllocations = 3;
    create.pAllocationInfo2 = info;
    create.Flags.CreateResource = create.Flags.CreateShared = create.Flags.NtSecuritySharing = 1;
    EXPECT_OK(D3DKMTCreateAllocation2(&create));
    close(exported_fd); /* the library keeps its own */
    close(bo_fd);
    D3DKMT_HANDLE hAllocations[3] = { info[0].hAllocation, info[1].hAllocation, info[2].hAllocation };

    phase("producer: the CPU writes Mesa's read-only GBM export through Lock2");
    uint8_t *cpu = NULL;
    NTSTATUS locked = lock(hDevice, hAllocations[2], &cpu);
    if (locked != STATUS_SUCCESS) {
        char reason[512];
        D3DKMTLinuxGetLastFailure(reason, sizeof reason);
        CHECK(0, "producer: a writable Lock2 of gbm_bo_get_fd's read-only dma-buf: 0x%08" PRIX32 " (%s)",
              (uint32_t)locked, reason);
    } else {
        for (int y = 0; y < HEIGHT; y++)
            for (int x = 0; x < WIDTH; x++)
                memcpy(cpu + data[2].desc.Planes[0].Offset + (size_t)y * data[2].desc.Stride + (size_t)x * 4,
                       CPU_COLOR2, 4);
        EXPECT_OK(unlock(hDevice, hAllocations[2]));
    }
    D3DKMT_LINUX_ALLOCATION_DESC2 made;
    memset(&made, 0, sizeof made);
    EXPECT_OK(D3DKMTLinuxQueryAllocationDesc2(hDevice, hAllocations[0], &made));
    printf("producer: GBM made %ux%u stride %u offset %u modifier 0x%" PRIx64 " (%" PRIu64 " bytes)\n", made.Width,
           made.Height, made.Planes[0].Stride, made.Planes[0].Offset, (uint64_t)made.Modifier, (uint64_t)made.Size);
    CHECK(made.Planes[0].Stride >= WIDTH * 4, "producer: GBM's stride %u holds a row", made.Planes[0].Stride);

    D3DKMT_HANDLE hMutex = 0, hSync = 0;
    EXPECT_OK(km_create(0, NULL, 0, &hMutex));
    EXPECT_OK(sync_create(hDevice, D3DDDI_MONITORED_FENCE, 0, &hSync, NULL));
    D3DKMT_HANDLE objects[3] = { create.hResource, hMutex, hSync };
    HANDLE shared = NULL;
    EXPECT_OK(D3DKMTShareObjects(3, objects, NULL, SHARED_ALLOCATION_ALL_ACCESS, &shared));

    phase("producer: rendering, then releasing with a GPU-signalled fence value");
    UINT64 fence = UINT64_MAX;
    EXPECT_OK(km_acquire(hMutex, 0, NO_TIMEOUT, &fence, NULL, 0));
    target_t ours;
    if (!target_make(&gl, &ours, import_allocation(&gl, hDevice, hAllocations[0], "allocation 0 (GBM)")))
        return test_finish();
    fill(&ours, A_COLOR0, 0, 0, WIDTH, HEIGHT);
    fill(&ours, A_CORNER0, 0, 0, 16, 16);
    fill(&exported, A_COLOR1, 0, 0, WIDTH, HEIGHT);
    gpu_signal(&gl, hDevice, hMutex, hSync, 1);
    EXPECT_OK(km_release(hMutex, 1, 1, NULL, 0));

    phase("producer: the consumer renders and hands back");
    pid_t child = spawn_child(argv0, "consumer", shared, luid, render_node, NULL, NULL, NULL);
    CHECK(child > 0, "producer: started the consumer");
    fence = 0;
    EXPECT_OK(km_acquire(hMutex, 0, -60000 * 10000LL, &fence, NULL, 0));
    CHECK(fence == 2, "producer: acquired with fence value %" PRIu64 ", expected 2", (uint64_t)fence);
    gpu_wait_for_mutex(&gl, hDevice, hMutex, fence);
    expect_gl_pixel(&ours, 5, 5, B_COLOR0, "allocation 0 (GBM)");
    expect_gl_pixel(&exported, 30, 30, B_COLOR1, "allocation 1 (EGL export)");
    check_child_exit("consumer", wait_child(child));

    phase("producer: CPU access to what the GPU rendered (Lock2)");
    EXPECT_OK(sync_wait_bounded(hDevice, hSync, 2, 30000));
    expect_locked_pixel(hDevice, hAllocations[0], 7, 9, B_COLOR0, "allocation 0 (GBM)");
    expect_locked_pixel(hDevice, hAllocations[1], 60, 3, B_COLOR1, "allocation 1 (EGL's read-only dma-buf)");

    target_free(&gl, &ours);
    target_free(&gl, &exported);
    gbm_bo_destroy(bo);
    close_handle(shared, "the shared handle");
    EXPECT_OK(destroy_resource(hDevice, create.hResource));
    EXPECT_OK(km_destroy(hMutex));
    EXPECT_OK(sync_destroy(hSync));
    gl_stop(&gl);
    destroy_device(hDevice);
    close_adapter(hAdapter);
    return test_finish();
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "consumer") == 0)
        return consumer(argc, argv);
    test_start(argc, argv, 120);
    return producer(argv[0]);
}

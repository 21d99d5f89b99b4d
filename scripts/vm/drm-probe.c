/*
 * drm-probe: report what the DRM drivers of this machine let us do for
 * D3DKMT-style sharing (dumb buffers, PRIME, dma-buf mmap and access modes,
 * virtio-gpu resources, syncobjs, syncobj eventfd, vgem fences, cross-driver
 * import). Meant for the test VM:
 *
 *   cc -O2 -o drm-probe scripts/vm/drm-probe.c $(pkg-config --cflags --libs libdrm)
 *   scripts/vm-test -- ./drm-probe
 *
 * Every fact is one line; failures print the errno name. The exit status is
 * 0 unless the probe itself could not run (no /dev/dri).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/dma-buf.h>
#include <xf86drm.h>
#include <xf86drmMode.h>
#include <virtgpu_drm.h>

/* Kernel uAPI that this libdrm's headers may predate. */
#ifndef DRM_IOCTL_SYNCOBJ_EVENTFD
struct probe_syncobj_eventfd {
	uint32_t handle;
	uint32_t flags;
	uint64_t point;
	int32_t fd;
	uint32_t pad;
};
#define DRM_IOCTL_SYNCOBJ_EVENTFD DRM_IOWR(0xCF, struct probe_syncobj_eventfd)
#define syncobj_eventfd_args probe_syncobj_eventfd
#else
#define syncobj_eventfd_args drm_syncobj_eventfd
#endif

/* vgem_drm.h */
struct probe_vgem_fence_attach {
	uint32_t handle;
	uint32_t flags; /* 1: write fence */
	uint32_t out_fence;
	uint32_t pad;
};
struct probe_vgem_fence_signal {
	uint32_t fence;
	uint32_t flags;
};
#define PROBE_IOCTL_VGEM_FENCE_ATTACH \
	DRM_IOWR(DRM_COMMAND_BASE + 0x1, struct probe_vgem_fence_attach)
#define PROBE_IOCTL_VGEM_FENCE_SIGNAL \
	DRM_IOW(DRM_COMMAND_BASE + 0x2, struct probe_vgem_fence_signal)

/* virtgpu_drm.h parameters newer than some libdrm headers. */
#define PROBE_VIRTGPU_PARAM_RESOURCE_BLOB 3
#define PROBE_VIRTGPU_PARAM_HOST_VISIBLE 4
#define PROBE_VIRTGPU_PARAM_CROSS_DEVICE 5
#define PROBE_VIRTGPU_PARAM_CONTEXT_INIT 6
#define PROBE_VIRTGPU_PARAM_SUPPORTED_CAPSET_IDS 7

#define VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM 1
#define PIPE_TEXTURE_2D 2
#define PIPE_BIND_RENDER_TARGET 0x2
#define PIPE_BIND_SAMPLER_VIEW 0x8
#define PIPE_BIND_SHARED 0x100000

#define WIDTH 1024
#define HEIGHT 768

static const char *en(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "E?";
}

/* Result of a call returning 0 / -1 with errno (or -errno as drm* does). */
static const char *res(int r)
{
	static char bufs[8][64];
	static unsigned next;
	char *buf = bufs[next++ % 8];
	if (r == 0)
		return "ok";
	int e = r < 0 && r != -1 ? -r : errno;
	snprintf(buf, 64, "FAIL %s (%d)", en(e), e);
	return buf;
}

static void fact(const char *scope, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void fact(const char *scope, const char *fmt, ...)
{
	va_list ap;
	printf("[%s] ", scope);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static const char *fd_target(int fd)
{
	static char buf[256];
	char path[64];
	ssize_t n;
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	n = readlink(path, buf, sizeof buf - 1);
	if (n < 0)
		return "?";
	buf[n] = 0;
	return buf;
}

static int same_file(int a, int b)
{
	struct stat sa, sb;
	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

static const char *fd_mode(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return "?";
	switch (fl & O_ACCMODE) {
	case O_RDONLY: return "O_RDONLY";
	case O_WRONLY: return "O_WRONLY";
	default: return "O_RDWR";
	}
}

struct drv {
	const char *name;
	char card[300], render[300];
	int cardfd, renderfd;
};

static void find_nodes(struct drv *d)
{
	DIR *dir = opendir("/dev/dri");
	struct dirent *e;
	d->card[0] = d->render[0] = 0;
	d->cardfd = d->renderfd = -1;
	if (!dir)
		return;
	while ((e = readdir(dir))) {
		char path[300];
		int fd;
		drmVersionPtr v;
		int render = strncmp(e->d_name, "renderD", 7) == 0;
		if (!render && strncmp(e->d_name, "card", 4) != 0)
			continue;
		snprintf(path, sizeof path, "/dev/dri/%s", e->d_name);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		v = drmGetVersion(fd);
		if (v && strcmp(v->name, d->name) == 0)
			snprintf(render ? d->render : d->card, sizeof d->card, "%s", path);
		if (v)
			drmFreeVersion(v);
		close(fd);
	}
	closedir(dir);
}

static void list_nodes(void)
{
	DIR *dir = opendir("/dev/dri");
	struct dirent *e;
	if (!dir) {
		fact("nodes", "no /dev/dri: %s", en(errno));
		return;
	}
	while ((e = readdir(dir))) {
		char path[300];
		struct stat st;
		int fd;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/dev/dri/%s", e->d_name);
		stat(path, &st);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			fact("nodes", "%s: open %s", path, en(errno));
			continue;
		}
		drmVersionPtr v = drmGetVersion(fd);
		char *dn = drmGetDeviceNameFromFd2(fd);
		fact("nodes", "%s: rdev %u:%u drmGetVersion name=%s version=%d.%d.%d desc=\"%s\" "
		     "drmGetNodeTypeFromFd=%d drmGetDeviceNameFromFd2=%s",
		     path, major(st.st_rdev), minor(st.st_rdev), v ? v->name : "?",
		     v ? v->version_major : 0, v ? v->version_minor : 0,
		     v ? v->version_patchlevel : 0, v ? v->desc : "?",
		     drmGetNodeTypeFromFd(fd), dn ? dn : "(null)");
		free(dn);
		if (v)
			drmFreeVersion(v);
		close(fd);
	}
	closedir(dir);
}

static void list_devices(void)
{
	drmDevicePtr devs[64];
	int n = drmGetDevices2(0, devs, 64);
	static const char *bus[] = { "PCI", "USB", "PLATFORM", "HOST1X" };
	if (n < 0) {
		fact("drmGetDevices2", "FAIL %s", en(-n));
		return;
	}
	fact("drmGetDevices2", "returned %d device(s)", n);
	for (int i = 0; i < n; i++) {
		drmDevicePtr d = devs[i];
		char nodes[400] = "";
		for (int t = 0; t < DRM_NODE_MAX; t++)
			if (d->available_nodes & (1 << t)) {
				strcat(nodes, " ");
				strcat(nodes, d->nodes[t]);
			}
		const char *b = d->bustype >= 0 && d->bustype < 4 ? bus[d->bustype] : "?";
		if (d->bustype == DRM_BUS_PCI) {
			fact("drmGetDevices2", "#%d bustype=%d (%s) businfo=%04x:%02x:%02x.%u "
			     "vendor=%04x device=%04x subvendor=%04x subdevice=%04x rev=%02x "
			     "available_nodes=0x%x:%s",
			     i, d->bustype, b, d->businfo.pci->domain, d->businfo.pci->bus,
			     d->businfo.pci->dev, d->businfo.pci->func,
			     d->deviceinfo.pci->vendor_id, d->deviceinfo.pci->device_id,
			     d->deviceinfo.pci->subvendor_id, d->deviceinfo.pci->subdevice_id,
			     d->deviceinfo.pci->revision_id, d->available_nodes, nodes);
		} else if (d->bustype == DRM_BUS_PLATFORM) {
			char compat[200] = "";
			for (char **c = d->deviceinfo.platform->compatible; c && *c; c++) {
				strcat(compat, " ");
				strncat(compat, *c, 60);
			}
			fact("drmGetDevices2", "#%d bustype=%d (%s) fullname=\"%s\" compatible:%s "
			     "available_nodes=0x%x:%s",
			     i, d->bustype, b, d->businfo.platform->fullname, compat,
			     d->available_nodes, nodes);
		} else {
			fact("drmGetDevices2", "#%d bustype=%d (%s) available_nodes=0x%x:%s", i,
			     d->bustype, b, d->available_nodes, nodes);
		}
	}
	drmFreeDevices(devs, n);
}

static void caps(struct drv *d, int fd, const char *node)
{
	static const struct { uint64_t cap; const char *name; } list[] = {
		{ DRM_CAP_PRIME, "PRIME" },
		{ DRM_CAP_SYNCOBJ, "SYNCOBJ" },
		{ DRM_CAP_SYNCOBJ_TIMELINE, "SYNCOBJ_TIMELINE" },
		{ DRM_CAP_DUMB_BUFFER, "DUMB_BUFFER" },
	};
	char line[400] = "";
	for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) {
		uint64_t v = 0;
		int r = drmGetCap(fd, list[i].cap, &v);
		char one[80];
		if (r)
			snprintf(one, sizeof one, " %s=%s", list[i].name, en(errno));
		else
			snprintf(one, sizeof one, " %s=%" PRIu64, list[i].name, v);
		strcat(line, one);
	}
	fact(d->name, "drmGetCap on %s:%s (PRIME bits: 1=import 2=export)", node, line);
}

static int create_dumb(int fd, uint32_t *handle, uint32_t *pitch, uint64_t *size)
{
	struct drm_mode_create_dumb c = { .width = WIDTH, .height = HEIGHT, .bpp = 32 };
	int r = drmIoctl(fd, DRM_IOCTL_MODE_CREATE_DUMB, &c);
	if (r == 0) {
		*handle = c.handle;
		*pitch = c.pitch;
		*size = c.size;
	}
	return r;
}

static void *map_fd(int fd, size_t size, int prot, int *err)
{
	void *p = mmap(NULL, size, prot, MAP_SHARED, fd, 0);
	*err = p == MAP_FAILED ? errno : 0;
	return p == MAP_FAILED ? NULL : p;
}

/* Dumb buffer on the primary node, PRIME both ways, dma-buf mmap coherence
 * and access modes. Returns a RDWR dma-buf fd of the buffer (for the
 * cross-driver tests), or -1. */
static int dumb_and_prime(struct drv *d)
{
	uint32_t h = 0, pitch = 0, h2 = 0, h3 = 0;
	uint64_t size = 0;
	int r, err, fd1 = -1, fd2 = -1, fdro = -1;
	char *p1 = NULL, *p2 = NULL, *p3 = NULL;

	r = create_dumb(d->renderfd, &h, &pitch, &size);
	fact(d->name, "CREATE_DUMB %dx%d bpp32 on render node %s: %s", WIDTH, HEIGHT, d->render,
	     r ? res(r) : "ok (unexpected)");

	r = create_dumb(d->cardfd, &h, &pitch, &size);
	fact(d->name, "CREATE_DUMB %dx%d bpp32 on primary node %s (root, %s): %s handle=%u pitch=%u size=%" PRIu64,
	     WIDTH, HEIGHT, d->card, drmIsMaster(d->cardfd) ? "master" : "not master", res(r),
	     h, pitch, size);
	for (int hh = 1; hh <= 4096; hh *= 4) {
		struct drm_mode_create_dumb c = { .width = WIDTH, .height = hh, .bpp = 32 };
		struct drm_mode_destroy_dumb dd;
		int rr = drmIoctl(d->cardfd, DRM_IOCTL_MODE_CREATE_DUMB, &c);
		fact(d->name, "  CREATE_DUMB 1024x%d bpp32 on primary: %s pitch=%u size=%llu", hh,
		     res(rr), c.pitch, (unsigned long long)c.size);
		if (rr == 0) {
			dd.handle = c.handle;
			drmIoctl(d->cardfd, DRM_IOCTL_MODE_DESTROY_DUMB, &dd);
		}
	}
	if (r)
		return -1;

	r = drmPrimeHandleToFD(d->cardfd, h, DRM_CLOEXEC | DRM_RDWR, &fd1);
	fact(d->name, "drmPrimeHandleToFD(primary, CLOEXEC|RDWR): %s fd -> %s, %s, lseek(SEEK_END)=%lld",
	     res(r), r ? "-" : fd_target(fd1), r ? "-" : fd_mode(fd1),
	     r ? -1LL : (long long)lseek(fd1, 0, SEEK_END));
	if (r)
		return -1;
	lseek(fd1, 0, SEEK_SET);

	r = drmPrimeFDToHandle(d->renderfd, fd1, &h2);
	fact(d->name, "drmPrimeFDToHandle(render, that fd): %s handle=%u", res(r), h2);
	r = drmPrimeFDToHandle(d->cardfd, fd1, &h3);
	fact(d->name, "drmPrimeFDToHandle(primary, that fd) (re-import into exporter): %s handle=%u (%s original %u)",
	     res(r), h3, h3 == h ? "same as" : "differs from", h);

	p1 = map_fd(fd1, size, PROT_READ | PROT_WRITE, &err);
	fact(d->name, "mmap(dma-buf fd, PROT_READ|PROT_WRITE, MAP_SHARED): %s",
	     p1 ? "ok" : en(err));
	if (p1) {
		struct dma_buf_sync s = { .flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW };
		r = ioctl(fd1, DMA_BUF_IOCTL_SYNC, &s);
		for (size_t i = 0; i < size; i += 4096)
			p1[i] = (char)(i / 4096 + 1);
		strcpy(p1, "written via map 1");
		s.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW;
		r |= ioctl(fd1, DMA_BUF_IOCTL_SYNC, &s);
		fact(d->name, "  write + read back via that map: %s; DMA_BUF_IOCTL_SYNC start/end: %s",
		     strcmp(p1, "written via map 1") == 0 ? "ok" : "MISMATCH", res(r));
	}

	if (h2) {
		r = drmPrimeHandleToFD(d->renderfd, h2, DRM_CLOEXEC | DRM_RDWR, &fd2);
		struct stat s1, s2;
		fstat(fd1, &s1);
		if (!r)
			fstat(fd2, &s2);
		fact(d->name, "drmPrimeHandleToFD(render, imported handle, RDWR): %s; same dma-buf file as the first export: %s",
		     res(r), r ? "-" : (s1.st_ino == s2.st_ino ? "yes (same inode)" : "no"));
		if (!r) {
			p2 = map_fd(fd2, size, PROT_READ | PROT_WRITE, &err);
			if (p2 && p1) {
				int same = strcmp(p2, "written via map 1") == 0;
				strcpy(p2 + 100, "written via map 2");
				fact(d->name, "  mmap of the re-export: ok; sees map-1 writes: %s; map 1 sees map-2 writes: %s",
				     same ? "yes" : "NO", strcmp(p1 + 100, "written via map 2") == 0 ? "yes" : "NO");
			} else {
				fact(d->name, "  mmap of the re-export: %s", en(err));
			}
		}
	}

	{
		struct drm_mode_map_dumb m = { .handle = h };
		r = drmIoctl(d->cardfd, DRM_IOCTL_MODE_MAP_DUMB, &m);
		if (!r) {
			p3 = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, d->cardfd, m.offset);
			fact(d->name, "MAP_DUMB + mmap(primary fd): %s; sees dma-buf map writes: %s",
			     p3 != MAP_FAILED ? "ok" : en(errno),
			     p3 != MAP_FAILED && p1 && strcmp(p3, "written via map 1") == 0 ? "yes" : "NO");
			if (p3 == MAP_FAILED)
				p3 = NULL;
		} else {
			fact(d->name, "MAP_DUMB on primary: %s", res(r));
		}
		struct drm_mode_map_dumb m2 = { .handle = h2 };
		r = drmIoctl(d->renderfd, DRM_IOCTL_MODE_MAP_DUMB, &m2);
		fact(d->name, "MAP_DUMB on render node (imported handle): %s", r ? res(r) : "ok");
	}

	/* A second export asking for read-only gets the same dma-buf file. */
	r = drmPrimeHandleToFD(d->cardfd, h, DRM_CLOEXEC, &fdro);
	fact(d->name, "drmPrimeHandleToFD(primary, CLOEXEC only) AFTER an RDWR export: %s, fd mode %s, same file: %s",
	     res(r), r ? "-" : fd_mode(fdro), r ? "-" : (same_file(fd1, fdro) ? "yes" : "no"));
	if (!r) {
		void *pw = map_fd(fdro, size, PROT_READ | PROT_WRITE, &err);
		fact(d->name, "  mmap(PROT_READ|PROT_WRITE, MAP_SHARED) of it: %s", pw ? "ok" : en(err));
		if (pw)
			munmap(pw, size);
	}
	if (p1) munmap(p1, size);
	if (p2) munmap(p2, size);
	if (p3) munmap(p3, size);
	if (fd2 >= 0) close(fd2);
	if (fdro >= 0) close(fdro);
	return fd1;
}

/* A buffer whose FIRST export is read-only (no DRM_RDWR). */
static void readonly_export(struct drv *d, struct drv *other)
{
	uint32_t h, pitch, hr = 0;
	uint64_t size;
	int err, r, fdro = -1, fd2 = -1, fd3 = -1;

	if (create_dumb(d->cardfd, &h, &pitch, &size))
		return;
	r = drmPrimeHandleToFD(d->cardfd, h, DRM_CLOEXEC, &fdro);
	fact(d->name, "fresh dumb buffer, first export without DRM_RDWR: %s, fd mode %s", res(r),
	     r ? "-" : fd_mode(fdro));
	if (r)
		return;
	void *pw = map_fd(fdro, size, PROT_READ | PROT_WRITE, &err);
	fact(d->name, "  mmap(PROT_READ|PROT_WRITE, MAP_SHARED): %s", pw ? "ok (NOT enforced)" : res(-err));
	if (pw)
		munmap(pw, size);
	pw = map_fd(fdro, size, PROT_WRITE, &err);
	fact(d->name, "  mmap(PROT_WRITE only, MAP_SHARED): %s", pw ? "ok (NOT enforced)" : res(-err));
	if (pw)
		munmap(pw, size);
	pw = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fdro, 0);
	fact(d->name, "  mmap(PROT_READ|PROT_WRITE, MAP_PRIVATE): %s",
	     pw != MAP_FAILED ? "ok" : res(-errno));
	if (pw != MAP_FAILED)
		munmap(pw, size);
	char *pr = map_fd(fdro, size, PROT_READ, &err);
	fact(d->name, "  mmap(PROT_READ, MAP_SHARED): %s", pr ? "ok" : res(-err));
	if (pr) {
		r = mprotect(pr, size, PROT_READ | PROT_WRITE);
		fact(d->name, "  mprotect(PROT_READ|PROT_WRITE) on it: %s", r ? res(r) : "ok (NOT enforced)");
	}
	struct dma_buf_sync sy = { .flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW };
	r = ioctl(fdro, DMA_BUF_IOCTL_SYNC, &sy);
	fact(d->name, "  DMA_BUF_IOCTL_SYNC(START|RW) on the read-only fd: %s", res(r));
	if (!r) {
		sy.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW;
		ioctl(fdro, DMA_BUF_IOCTL_SYNC, &sy);
	}
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fdro);
	int re = open(path, O_RDWR | O_CLOEXEC);
	fact(d->name, "  open(\"/proc/self/fd/N\", O_RDWR): %s", re >= 0 ? "ok (a way around read-only!)" : res(-errno));
	if (re >= 0)
		close(re);
	re = open(path, O_RDONLY | O_CLOEXEC);
	fact(d->name, "  open(\"/proc/self/fd/N\", O_RDONLY): %s", re >= 0 ? "ok" : res(-errno));
	if (re >= 0)
		close(re);

	r = drmPrimeHandleToFD(d->cardfd, h, DRM_CLOEXEC | DRM_RDWR, &fd2);
	fact(d->name, "  exporter exports the same handle again WITH DRM_RDWR: %s, fd mode %s, same file: %s",
	     res(r), r ? "-" : fd_mode(fd2), r ? "-" : (same_file(fdro, fd2) ? "yes" : "no"));
	{
		struct drm_mode_map_dumb m = { .handle = h };
		char *p3 = MAP_FAILED;
		if (drmIoctl(d->cardfd, DRM_IOCTL_MODE_MAP_DUMB, &m) == 0)
			p3 = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, d->cardfd, m.offset);
		fact(d->name, "  exporter's own MAP_DUMB mmap RW: %s%s", p3 != MAP_FAILED ? "ok" : res(-errno),
		     p3 != MAP_FAILED && pr ? (strcpy(p3, "x"), pr[0] == 'x' ? "; read-only map sees the write" : "; NOT seen") : "");
		if (p3 != MAP_FAILED)
			munmap(p3, size);
	}
	r = drmPrimeFDToHandle(d->renderfd, fdro, &hr);
	if (!r)
		r = drmPrimeHandleToFD(d->renderfd, hr, DRM_CLOEXEC | DRM_RDWR, &fd3);
	fact(d->name, "  import the read-only fd into render node, re-export WITH DRM_RDWR: %s, fd mode %s, same file: %s",
	     res(r), r ? "-" : fd_mode(fd3), r ? "-" : (same_file(fdro, fd3) ? "yes" : "no"));
	if (fd3 >= 0)
		close(fd3), fd3 = -1;
	if (other && other->renderfd >= 0) {
		errno = 0;
		r = drmPrimeFDToHandle(other->renderfd, fdro, &hr);
		fact(d->name, "  import it into %s: %s", other->name, res(r));
		if (!r) {
			r = drmPrimeHandleToFD(other->renderfd, hr, DRM_CLOEXEC | DRM_RDWR, &fd3);
			fact(d->name, "  re-export from %s WITH DRM_RDWR: %s, fd mode %s, same file: %s",
			     other->name, res(r), r ? "-" : fd_mode(fd3),
			     r ? "-" : (same_file(fdro, fd3) ? "yes" : "no"));
		}
		if (fd3 >= 0)
			close(fd3);
	}
	if (pr)
		munmap(pr, size);
	if (fd2 >= 0)
		close(fd2);
	close(fdro);
}

/* A process that is not root and not DRM master on the primary node. */
static void dumb_as_nobody(struct drv *d)
{
	int pfd[2];
	char msg[300] = "";
	if (pipe(pfd))
		return;
	pid_t pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		if (setgid(65534) || setuid(65534)) {
			dprintf(pfd[1], "setuid failed: %s", en(errno));
			_exit(1);
		}
		int fd = open(d->card, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			dprintf(pfd[1], "open %s: %s", d->card, en(errno));
			_exit(1);
		}
		uint32_t h, pitch;
		uint64_t size;
		int r = create_dumb(fd, &h, &pitch, &size);
		int e1 = errno;
		int dfd = -1;
		int r2 = r ? -1 : drmPrimeHandleToFD(fd, h, DRM_CLOEXEC | DRM_RDWR, &dfd);
		dprintf(pfd[1], "uid 65534, %s: CREATE_DUMB %s, PRIME export %s",
			drmIsMaster(fd) ? "master" : "not master",
			r ? en(e1) : "ok", r ? "-" : res(r2));
		_exit(0);
	}
	close(pfd[1]);
	ssize_t n = read(pfd[0], msg, sizeof msg - 1);
	if (n > 0)
		msg[n] = 0;
	close(pfd[0]);
	waitpid(pid, NULL, 0);
	fact(d->name, "primary node while root holds it open: %s", msg);
}

static void syncobjs(struct drv *d, int fd, const char *node)
{
	uint32_t h = 0, h2 = 0;
	int sfd = -1;
	int r = drmSyncobjCreate(fd, 0, &h);
	fact(d->name, "drmSyncobjCreate on %s: %s", node, res(r));
	if (r)
		return;
	r = drmSyncobjHandleToFD(fd, h, &sfd);
	fact(d->name, "  drmSyncobjHandleToFD: %s fd -> %s", res(r), r ? "-" : fd_target(sfd));
	if (!r) {
		r = drmSyncobjFDToHandle(fd, sfd, &h2);
		fact(d->name, "  drmSyncobjFDToHandle (same device): %s handle=%u", res(r), h2);
	}

	/* Timeline: signal/query/wait. */
	uint64_t pt = 5, v = 0;
	r = drmSyncobjTimelineSignal(fd, &h, &pt, 1);
	int rq = drmSyncobjQuery(fd, &h, &v, 1);
	fact(d->name, "  drmSyncobjTimelineSignal(point 5): %s; query: %s value=%" PRIu64, res(r),
	     res(rq), v);

	/* SYNCOBJ_EVENTFD: point 7 not yet signalled, then signal it. */
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct syncobj_eventfd_args ev = { .handle = h, .flags = 0, .point = 7, .fd = efd };
	r = drmIoctl(fd, DRM_IOCTL_SYNCOBJ_EVENTFD, &ev);
	if (r) {
		fact(d->name, "  DRM_IOCTL_SYNCOBJ_EVENTFD (timeline point 7): %s", res(r));
	} else {
		struct pollfd p = { .fd = efd, .events = POLLIN };
		int before = poll(&p, 1, 0);
		uint64_t pt7 = 7;
		drmSyncobjTimelineSignal(fd, &h, &pt7, 1);
		int after = poll(&p, 1, 1000);
		fact(d->name, "  DRM_IOCTL_SYNCOBJ_EVENTFD (timeline point 7): ok; readable before signal: %s, after: %s",
		     before > 0 ? "yes" : "no", after > 0 ? "yes" : "no");
	}
	/* Binary syncobj, point 0. */
	uint32_t hb = 0;
	if (drmSyncobjCreate(fd, 0, &hb) == 0) {
		struct syncobj_eventfd_args eb = { .handle = hb, .flags = 0, .point = 0, .fd = efd };
		uint64_t junk;
		while (read(efd, &junk, sizeof junk) > 0)
			;
		r = drmIoctl(fd, DRM_IOCTL_SYNCOBJ_EVENTFD, &eb);
		/* A binary syncobj with no fence: EVENTFD without WAIT_AVAILABLE. */
		fact(d->name, "  DRM_IOCTL_SYNCOBJ_EVENTFD (binary, no fence yet, flags 0): %s", res(r));
		drmSyncobjSignal(fd, &hb, 1);
		struct pollfd p = { .fd = efd, .events = POLLIN };
		if (!r)
			fact(d->name, "    readable after drmSyncobjSignal: %s", poll(&p, 1, 1000) > 0 ? "yes" : "no");
		drmSyncobjDestroy(fd, hb);
	}
	close(efd);

	/* Wait semantics a backend needs: timeout on an unsignalled point. */
	uint64_t pt9 = 9;
	uint32_t first = 0;
	r = drmSyncobjTimelineWait(fd, &h, &pt9, 1, 0, DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT, &first);
	fact(d->name, "  drmSyncobjTimelineWait(point 9, timeout 0, WAIT_FOR_SUBMIT): %s", res(r));
	r = drmSyncobjTimelineWait(fd, &h, &pt, 1, 0, 0, &first);
	fact(d->name, "  drmSyncobjTimelineWait(point 5, signalled, timeout 0): %s", res(r));

	if (sfd >= 0)
		close(sfd);
	drmSyncobjDestroy(fd, h);
	if (h2)
		drmSyncobjDestroy(fd, h2);
}

static void virtio_specific(struct drv *d)
{
	static const struct { uint64_t p; const char *n; } params[] = {
		{ VIRTGPU_PARAM_3D_FEATURES, "3D_FEATURES" },
		{ VIRTGPU_PARAM_CAPSET_QUERY_FIX, "CAPSET_QUERY_FIX" },
		{ PROBE_VIRTGPU_PARAM_RESOURCE_BLOB, "RESOURCE_BLOB" },
		{ PROBE_VIRTGPU_PARAM_HOST_VISIBLE, "HOST_VISIBLE" },
		{ PROBE_VIRTGPU_PARAM_CROSS_DEVICE, "CROSS_DEVICE" },
		{ PROBE_VIRTGPU_PARAM_CONTEXT_INIT, "CONTEXT_INIT" },
		{ PROBE_VIRTGPU_PARAM_SUPPORTED_CAPSET_IDS, "SUPPORTED_CAPSET_IDs" },
	};
	char line[500] = "";
	for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
		uint64_t value = 0;
		struct drm_virtgpu_getparam gp = { .param = params[i].p,
						   .value = (uint64_t)(uintptr_t)&value };
		char one[80];
		if (drmIoctl(d->renderfd, DRM_IOCTL_VIRTGPU_GETPARAM, &gp))
			snprintf(one, sizeof one, " %s=%s", params[i].n, en(errno));
		else
			snprintf(one, sizeof one, " %s=%" PRIu64, params[i].n, value);
		strcat(line, one);
	}
	fact(d->name, "VIRTGPU_GETPARAM:%s", line);

	for (int pass = 0; pass < 2; pass++) {
		struct drm_virtgpu_resource_create rc = {
			.target = PIPE_TEXTURE_2D,
			.format = VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM,
			.bind = PIPE_BIND_RENDER_TARGET | PIPE_BIND_SAMPLER_VIEW | PIPE_BIND_SHARED,
			.width = WIDTH, .height = HEIGHT, .depth = 1, .array_size = 1,
			.size = pass ? WIDTH * 4 * HEIGHT : 0,
			.stride = pass ? WIDTH * 4 : 0,
		};
		int r = drmIoctl(d->renderfd, DRM_IOCTL_VIRTGPU_RESOURCE_CREATE, &rc);
		fact(d->name, "VIRTGPU_RESOURCE_CREATE on render (2D, B8G8R8A8, %dx%d, size=%u stride=%u): "
		     "%s bo_handle=%u res_handle=%u",
		     WIDTH, HEIGHT, rc.size, rc.stride, res(r), rc.bo_handle, rc.res_handle);
		if (r)
			continue;
		struct drm_virtgpu_resource_info ri = { .bo_handle = rc.bo_handle };
		r = drmIoctl(d->renderfd, DRM_IOCTL_VIRTGPU_RESOURCE_INFO, &ri);
		fact(d->name, "  RESOURCE_INFO: %s size=%u stride=%u", res(r), ri.size, ri.stride);
		int dfd = -1;
		r = drmPrimeHandleToFD(d->renderfd, rc.bo_handle, DRM_CLOEXEC | DRM_RDWR, &dfd);
		off_t sz = r ? -1 : lseek(dfd, 0, SEEK_END);
		fact(d->name, "  PRIME export (RDWR): %s, dma-buf size %lld", res(r), (long long)sz);
		if (!r && sz > 0) {
			int err;
			char *p = map_fd(dfd, sz, PROT_READ | PROT_WRITE, &err);
			if (p) {
				strcpy(p, "virtio resource");
				fact(d->name, "  mmap(dma-buf) RW + write/read: %s",
				     strcmp(p, "virtio resource") == 0 ? "ok" : "MISMATCH");
				struct drm_virtgpu_map m = { .handle = rc.bo_handle };
				r = drmIoctl(d->renderfd, DRM_IOCTL_VIRTGPU_MAP, &m);
				char *q = r ? MAP_FAILED
					    : mmap(NULL, sz, PROT_READ, MAP_SHARED, d->renderfd, m.offset);
				fact(d->name, "  VIRTGPU_MAP + mmap(render fd): %s%s; sees the dma-buf write: %s",
				     res(r), q == MAP_FAILED && !r ? " (mmap failed)" : "",
				     q != MAP_FAILED && strcmp(q, "virtio resource") == 0 ? "yes" : "no");
				if (q != MAP_FAILED)
					munmap(q, sz);
				munmap(p, sz);
			} else {
				fact(d->name, "  mmap(dma-buf) RW: %s", en(err));
			}
		}
		if (dfd >= 0)
			close(dfd);
		struct drm_gem_close gc = { .handle = rc.bo_handle };
		drmIoctl(d->renderfd, DRM_IOCTL_GEM_CLOSE, &gc);
	}
}

/* vgem fences: attach to a buffer, export as sync_file from the dma-buf,
 * import into a virtio_gpu syncobj, wait, signal. */
static void vgem_fences(struct drv *vg, struct drv *vi)
{
	uint32_t h, pitch;
	uint64_t size;
	if (create_dumb(vg->cardfd, &h, &pitch, &size)) {
		fact("vgem", "fence test: CREATE_DUMB failed: %s", en(errno));
		return;
	}
	/* GEM handles are per fd: the render node needs its own handle. */
	int xfd = -1;
	uint32_t rh = 0;
	int r = drmPrimeHandleToFD(vg->cardfd, h, DRM_CLOEXEC | DRM_RDWR, &xfd);
	if (!r)
		r = drmPrimeFDToHandle(vg->renderfd, xfd, &rh);
	if (xfd >= 0)
		close(xfd);
	struct probe_vgem_fence_attach fa = { .handle = rh, .flags = 1 };
	if (!r)
		r = drmIoctl(vg->renderfd, PROBE_IOCTL_VGEM_FENCE_ATTACH, &fa);
	fact("vgem", "VGEM_FENCE_ATTACH (write fence) on the render node: %s fence=%u", res(r),
	     fa.out_fence);
	if (r)
		return;
	int dfd = -1;
	drmPrimeHandleToFD(vg->cardfd, h, DRM_CLOEXEC | DRM_RDWR, &dfd);
	struct pollfd p = { .fd = dfd, .events = POLLOUT };
	fact("vgem", "  poll(dma-buf, POLLOUT) with the fence unsignalled: %s",
	     poll(&p, 1, 0) > 0 ? "ready" : "not ready");
	struct dma_buf_export_sync_file es = { .flags = DMA_BUF_SYNC_RW, .fd = -1 };
	r = ioctl(dfd, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &es);
	fact("vgem", "  DMA_BUF_IOCTL_EXPORT_SYNC_FILE: %s fd -> %s", res(r),
	     r ? "-" : fd_target(es.fd));
	uint32_t so = 0;
	if (!r && vi && vi->renderfd >= 0 && drmSyncobjCreate(vi->renderfd, 0, &so) == 0) {
		int ri = drmSyncobjImportSyncFile(vi->renderfd, so, es.fd);
		uint32_t first;
		int w0 = drmSyncobjWait(vi->renderfd, &so, 1, 0, 0, &first);
		struct probe_vgem_fence_signal fs = { .fence = fa.out_fence };
		int rs = drmIoctl(vg->renderfd, PROBE_IOCTL_VGEM_FENCE_SIGNAL, &fs);
		int64_t deadline = 0;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		deadline = ts.tv_sec * 1000000000LL + ts.tv_nsec + 1000000000LL;
		int w1 = drmSyncobjWait(vi->renderfd, &so, 1, deadline, 0, &first);
		fact("vgem", "  sync_file -> virtio_gpu syncobj: import %s; wait before VGEM_FENCE_SIGNAL: %s; "
		     "signal: %s; wait after: %s",
		     res(ri), res(w0), res(rs), res(w1));
		drmSyncobjDestroy(vi->renderfd, so);
	} else {
		struct probe_vgem_fence_signal fs = { .fence = fa.out_fence };
		drmIoctl(vg->renderfd, PROBE_IOCTL_VGEM_FENCE_SIGNAL, &fs);
	}
	fact("vgem", "  poll(dma-buf, POLLOUT) after the signal: %s",
	     poll(&p, 1, 0) > 0 ? "ready" : "not ready");
	if (es.fd >= 0)
		close(es.fd);
	close(dfd);
}

static void cross(struct drv *from, int fd, struct drv *to)
{
	uint32_t h = 0;
	int r;
	if (fd < 0 || to->renderfd < 0 || to->cardfd < 0)
		return;
	r = drmPrimeFDToHandle(to->renderfd, fd, &h);
	fact("cross", "%s dma-buf -> drmPrimeFDToHandle(%s render): %s handle=%u", from->name,
	     to->name, res(r), h);
	if (!r) {
		int out = -1;
		struct stat a, b;
		int r2 = drmPrimeHandleToFD(to->renderfd, h, DRM_CLOEXEC | DRM_RDWR, &out);
		fstat(fd, &a);
		if (!r2)
			fstat(out, &b);
		fact("cross", "  re-export from %s: %s; same dma-buf file: %s", to->name, res(r2),
		     r2 ? "-" : (a.st_ino == b.st_ino ? "yes" : "no"));
		if (out >= 0)
			close(out);
	}
	r = drmPrimeFDToHandle(to->cardfd, fd, &h);
	fact("cross", "%s dma-buf -> drmPrimeFDToHandle(%s primary): %s", from->name, to->name,
	     res(r));
}

/* Fresh buffers of FROM, first exported read-write or read-only, imported
 * into TO (no other use before). */
static void cross_fresh(struct drv *from, struct drv *to)
{
	if (from->cardfd < 0 || to->renderfd < 0)
		return;
	for (int rw = 1; rw >= 0; rw--) {
		uint32_t h, pitch, h2 = 0;
		uint64_t size;
		int fd = -1, r;
		if (create_dumb(from->cardfd, &h, &pitch, &size))
			return;
		r = drmPrimeHandleToFD(from->cardfd, h, DRM_CLOEXEC | (rw ? DRM_RDWR : 0), &fd);
		if (r)
			return;
		errno = 0;
		r = drmPrimeFDToHandle(to->renderfd, fd, &h2);
		fact("cross", "fresh %s dumb buffer exported %s -> drmPrimeFDToHandle(%s render): %s",
		     from->name, rw ? "RDWR" : "read-only", to->name, res(r));
		close(fd);
		struct drm_mode_destroy_dumb dd = { .handle = h };
		drmIoctl(from->cardfd, DRM_IOCTL_MODE_DESTROY_DUMB, &dd);
		if (!r) {
			struct drm_gem_close gc = { .handle = h2 };
			drmIoctl(to->renderfd, DRM_IOCTL_GEM_CLOSE, &gc);
		}
	}
}

int main(void)
{
	struct drv drvs[2] = { { .name = "virtio_gpu", .cardfd = -1, .renderfd = -1 },
			       { .name = "vgem", .cardfd = -1, .renderfd = -1 } };
	int exported[2] = { -1, -1 };

	setvbuf(stdout, NULL, _IOLBF, 0);
	fact("probe", "uid=%d", (int)getuid());
	list_nodes();
	list_devices();

	/* Open every driver first: some tests use the other driver too. */
	for (int i = 0; i < 2; i++) {
		struct drv *d = &drvs[i];
		find_nodes(d);
		fact(d->name, "nodes by driver name: primary=%s render=%s", d->card[0] ? d->card : "-",
		     d->render[0] ? d->render : "-");
		if (!d->card[0] || !d->render[0])
			continue;
		d->cardfd = open(d->card, O_RDWR | O_CLOEXEC);
		d->renderfd = open(d->render, O_RDWR | O_CLOEXEC);
		if (d->cardfd < 0 || d->renderfd < 0) {
			fact(d->name, "open failed: %s", en(errno));
			if (d->cardfd >= 0)
				close(d->cardfd);
			if (d->renderfd >= 0)
				close(d->renderfd);
			d->cardfd = d->renderfd = -1;
		}
	}
	for (int i = 0; i < 2; i++) {
		struct drv *d = &drvs[i];
		if (d->cardfd < 0)
			continue;
		caps(d, d->cardfd, "primary");
		caps(d, d->renderfd, "render");
		exported[i] = dumb_and_prime(d);
		readonly_export(d, &drvs[1 - i]);
		dumb_as_nobody(d);
		syncobjs(d, d->renderfd, "render");
		if (strcmp(d->name, "virtio_gpu") == 0)
			virtio_specific(d);
	}
	if (drvs[1].renderfd >= 0)
		vgem_fences(&drvs[1], &drvs[0]);
	cross(&drvs[1], exported[1], &drvs[0]);
	cross(&drvs[0], exported[0], &drvs[1]);
	cross_fresh(&drvs[0], &drvs[1]);
	cross_fresh(&drvs[1], &drvs[0]);
	return drvs[0].renderfd < 0 && drvs[1].renderfd < 0;
}

/*
 * drm-drivers: list the DRM nodes in /dev/dri with the driver behind each
 * (the drmGetVersion name), and optionally check that some drivers are there.
 *
 *   drm-drivers [--require DRIVER[,DRIVER...]]
 *
 * With --require, exits 1 unless every listed driver has a render node that
 * opens. Exit 2 on usage errors. Built and run by scripts/vm-test.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xf86drm.h>

#define MAX_NODES 64

struct node {
	char name[256];
	char driver[64];
	int render;
};

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct node *)a)->name, ((const struct node *)b)->name);
}

int main(int argc, char **argv)
{
	const char *require = NULL;
	struct node nodes[MAX_NODES];
	int count = 0, missing = 0;
	DIR *dir;
	struct dirent *entry;

	if (argc == 3 && strcmp(argv[1], "--require") == 0) {
		require = argv[2];
	} else if (argc != 1) {
		fprintf(stderr, "usage: %s [--require DRIVER[,DRIVER...]]\n", argv[0]);
		return 2;
	}

	dir = opendir("/dev/dri");
	if (!dir) {
		printf("  (no /dev/dri: %s)\n", strerror(errno));
	} else {
		while ((entry = readdir(dir)) && count < MAX_NODES) {
			char path[300];
			int fd;
			drmVersionPtr version;
			struct node *n = &nodes[count];

			if (strncmp(entry->d_name, "card", 4) != 0 &&
			    strncmp(entry->d_name, "renderD", 7) != 0)
				continue;
			snprintf(n->name, sizeof n->name, "%s", entry->d_name);
			n->render = strncmp(entry->d_name, "renderD", 7) == 0;
			snprintf(path, sizeof path, "/dev/dri/%s", entry->d_name);
			fd = open(path, O_RDWR | O_CLOEXEC);
			if (fd < 0) {
				snprintf(n->driver, sizeof n->driver, "(open: %s)", strerror(errno));
				n->render = 0;
			} else {
				version = drmGetVersion(fd);
				if (version) {
					snprintf(n->driver, sizeof n->driver, "%s", version->name);
					drmFreeVersion(version);
				} else {
					snprintf(n->driver, sizeof n->driver, "(drmGetVersion: %s)",
						 strerror(errno));
					n->render = 0;
				}
				close(fd);
			}
			count++;
		}
		closedir(dir);
	}

	qsort(nodes, count, sizeof nodes[0], by_name);
	if (count == 0)
		printf("  (no DRM nodes)\n");
	for (int i = 0; i < count; i++)
		printf("  %-12s /dev/dri/%s\n", nodes[i].driver, nodes[i].name);

	if (require) {
		char *list = strdup(require), *save = NULL;
		for (char *want = strtok_r(list, ",", &save); want;
		     want = strtok_r(NULL, ",", &save)) {
			int found = 0;
			for (int i = 0; i < count; i++)
				if (nodes[i].render && strcmp(nodes[i].driver, want) == 0)
					found = 1;
			if (!found) {
				printf("  MISSING: no render node for driver %s\n", want);
				missing = 1;
			}
		}
		free(list);
	}
	return missing;
}

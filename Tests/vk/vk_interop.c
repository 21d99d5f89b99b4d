/*
 * vk_interop.c - Vulkan memory through the installed libd3dkmt, with
 * lavapipe (Mesa's CPU Vulkan driver), in two processes:
 *
 *   parent: allocates 64 KiB of lavapipe memory exported as OPAQUE_FD (a
 *     memfd whose first 4096 bytes are lavapipe's header), writes a pattern
 *     through vkMapMemory, wraps the fd into an allocation of the software
 *     adapter with a D3DKMT_LINUX_ALLOCATION_DESC2 whose DataOffset is 4096,
 *     shares it;
 *   child: opens it, checks the pattern through Lock2 (which maps from the
 *     data offset), exports the allocation's descriptor again
 *     (D3DKMTLinuxExportAllocationDmaBuf), imports it into its own lavapipe
 *     (VkImportMemoryFdInfoKHR), checks the pattern through vkMapMemory and
 *     writes a second one;
 *   parent: sees the child's pattern through its own mapping;
 *   parent: a library allocation's Lock2 pointer imported into lavapipe
 *     (VK_EXT_external_memory_host) shows the allocation's bytes.
 *
 * Needs lavapipe (mesa-vulkan-drivers) and VK_KHR_external_memory_fd; without
 * them it prints SKIP and exits 77 (reported as skipped by scripts/test).
 * Built against the installed library with -lvulkan.
 */
#define _GNU_SOURCE
#include "../c/support/kmt_test.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <vulkan/vulkan.h>

#define SKIP_STATUS 77
#define MEMORY_SIZE 65536u
#define LAVAPIPE_HEADER 4096u

typedef struct {
    VkInstance instance;
    VkDevice device;
    uint32_t memoryType;
    PFN_vkGetMemoryFdKHR getMemoryFd;
    int hostMemory; /* VK_EXT_external_memory_host is enabled */
} vk_t;

/* lavapipe with VK_KHR_external_memory_fd; 0 when there is none. */
static int vk_start(vk_t *vk)
{
    memset(vk, 0, sizeof *vk);
    VkApplicationInfo app = { .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .apiVersion = VK_API_VERSION_1_1 };
    VkInstanceCreateInfo instance = { .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app };
    if (vkCreateInstance(&instance, NULL, &vk->instance) != VK_SUCCESS)
        return 0;
    uint32_t count = 8;
    VkPhysicalDevice devices[8];
    if (vkEnumeratePhysicalDevices(vk->instance, &count, devices) < 0)
        return 0;
    VkPhysicalDevice lavapipe = VK_NULL_HANDLE;
    for (uint32_t i = 0; i < count; i++) {
        VkPhysicalDeviceProperties properties;
        vkGetPhysicalDeviceProperties(devices[i], &properties);
        if (strstr(properties.deviceName, "llvmpipe"))
            lavapipe = devices[i];
    }
    if (lavapipe == VK_NULL_HANDLE)
        return 0;
    VkPhysicalDeviceMemoryProperties memory;
    vkGetPhysicalDeviceMemoryProperties(lavapipe, &memory);
    vk->memoryType = UINT32_MAX;
    for (uint32_t i = 0; i < memory.memoryTypeCount && vk->memoryType == UINT32_MAX; i++)
        if (memory.memoryTypes[i].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT)
            vk->memoryType = i;
    float priority = 1;
    VkDeviceQueueCreateInfo queue = { .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueCount = 1,
                                      .pQueuePriorities = &priority };
    uint32_t extensionCount = 0;
    vkEnumerateDeviceExtensionProperties(lavapipe, NULL, &extensionCount, NULL);
    VkExtensionProperties *available = calloc(extensionCount ? extensionCount : 1, sizeof *available);
    if (available && vkEnumerateDeviceExtensionProperties(lavapipe, NULL, &extensionCount, available) >= 0)
        for (uint32_t i = 0; i < extensionCount; i++)
            if (strcmp(available[i].extensionName, VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME) == 0)
                vk->hostMemory = 1;
    free(available);
    const char *extensions[] = { VK_KHR_EXTERNAL_MEMORY_FD_EXTENSION_NAME, VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME };
    VkDeviceCreateInfo device = { .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .queueCreateInfoCount = 1,
                                  .pQueueCreateInfos = &queue, .enabledExtensionCount = vk->hostMemory ? 2 : 1,
                                  .ppEnabledExtensionNames = extensions };
    if (vk->memoryType == UINT32_MAX || vkCreateDevice(lavapipe, &device, NULL, &vk->device) != VK_SUCCESS)
        return 0;
    vk->getMemoryFd = (PFN_vkGetMemoryFdKHR)vkGetDeviceProcAddr(vk->device, "vkGetMemoryFdKHR");
    return vk->getMemoryFd != NULL;
}

static void vk_stop(vk_t *vk)
{
    if (vk->device)
        vkDestroyDevice(vk->device, NULL);
    if (vk->instance)
        vkDestroyInstance(vk->instance, NULL);
}

/* Exportable memory (importFd < 0), or memory imported from importFd (Vulkan takes it). */
static VkDeviceMemory vk_memory(vk_t *vk, int importFd)
{
    VkExportMemoryAllocateInfo exporting = { .sType = VK_STRUCTURE_TYPE_EXPORT_MEMORY_ALLOCATE_INFO,
                                             .handleTypes = VK_EXTERNAL_MEMORY_HANDLE_TYPE_OPAQUE_FD_BIT };
    VkImportMemoryFdInfoKHR importing = { .sType = VK_STRUCTURE_TYPE_IMPORT_MEMORY_FD_INFO_KHR,
                                          .handleType = VK_EXTERNAL_MEMORY_HANDLE_TYPE_OPAQUE_FD_BIT,
                                          .fd = importFd };
    VkMemoryAllocateInfo allocate = { .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                                      .pNext = importFd < 0 ? (const void *)&exporting : (const void *)&importing,
                                      .allocationSize = MEMORY_SIZE, .memoryTypeIndex = vk->memoryType };
    VkDeviceMemory memory = VK_NULL_HANDLE;
    VkResult result = vkAllocateMemory(vk->device, &allocate, NULL, &memory);
    CHECK(result == VK_SUCCESS, "%s: vkAllocateMemory (%s): %d", who, importFd < 0 ? "export" : "import", result);
    return result == VK_SUCCESS ? memory : VK_NULL_HANDLE;
}

static uint32_t *vk_map(vk_t *vk, VkDeviceMemory memory)
{
    void *p = NULL;
    VkResult result = vkMapMemory(vk->device, memory, 0, MEMORY_SIZE, 0, &p);
    CHECK(result == VK_SUCCESS && p, "%s: vkMapMemory: %d", who, result);
    return result == VK_SUCCESS ? p : NULL;
}

static int pattern_matches(const uint32_t *words, uint32_t seed)
{
    for (uint32_t i = 0; i < MEMORY_SIZE / 4; i++)
        if (words[i] != seed * 2654435761u + i)
            return 0;
    return 1;
}

static void write_pattern(uint32_t *words, uint32_t seed)
{
    for (uint32_t i = 0; i < MEMORY_SIZE / 4; i++)
        words[i] = seed * 2654435761u + i;
}

static int child_main(int fd, LUID luid)
{
    D3DKMT_HANDLE hAdapter, hDevice;
    if (!start_child("vulkan child", luid, &hAdapter, &hDevice))
        return 1;
    vk_t vk;
    if (!vk_start(&vk)) {
        CHECK(0, "child: lavapipe");
        return test_finish();
    }
    HANDLE h = D3DKMTLinuxFdToHandle(fd);
    open_buffers_t b;
    EXPECT_OK(query_for_open(hDevice, h, &b));
    prepare_open(hDevice, h, &b, 1, b.query.TotalPrivateDriverDataSize);
    b.open.PrivateRuntimeDataSize = b.query.PrivateRuntimeDataSize;
    b.open.ResourcePrivateDriverDataSize = b.query.ResourcePrivateDriverDataSize;
    EXPECT_OK(D3DKMTOpenResourceFromNtHandle(&b.open));
    D3DKMT_HANDLE hAllocation = b.allocs[0].hAllocation;

    D3DKMT_LINUX_ALLOCATION_DESC2 desc;
    memset(&desc, 0, sizeof desc);
    EXPECT_OK(D3DKMTLinuxQueryAllocationDesc2(hDevice, hAllocation, &desc));
    CHECK(desc.DataOffset == LAVAPIPE_HEADER && desc.Size == MEMORY_SIZE,
          "child: the layout says data offset %" PRIu64 ", %" PRIu64 " bytes", (uint64_t)desc.DataOffset,
          (uint64_t)desc.Size);
    uint8_t *p = NULL;
    EXPECT_OK(lock(hDevice, hAllocation, &p));
    CHECK(p && pattern_matches((const uint32_t *)p, 1), "child: Lock2 shows the parent's Vulkan writes");
    if (p)
        EXPECT_OK(unlock(hDevice, hAllocation));

    int exported = -1;
    EXPECT_OK(D3DKMTLinuxExportAllocationDmaBuf(hDevice, hAllocation, &exported));
    VkDeviceMemory memory = exported >= 0 ? vk_memory(&vk, exported) : VK_NULL_HANDLE;
    if (memory == VK_NULL_HANDLE && exported >= 0)
        close(exported); /* not taken */
    uint32_t *words = memory ? vk_map(&vk, memory) : NULL;
    if (words) {
        CHECK(pattern_matches(words, 1), "child: the imported lavapipe memory shows the parent's writes");
        write_pattern(words, 2);
        vkUnmapMemory(vk.device, memory);
    }
    if (memory)
        vkFreeMemory(vk.device, memory, NULL);
    vk_stop(&vk);
    EXPECT_OK(destroy_resource(hDevice, b.open.hResource));
    free_open_buffers(&b);
    close(fd);
    destroy_device(hDevice);
    close_adapter(hAdapter);
    return test_finish();
}

int main(int argc, char **argv)
{
    int fd;
    LUID luid;
    if (argc == 5 && strcmp(argv[1], "child") == 0 && child_args(argc, argv, &fd, &luid))
        return child_main(fd, luid);
    test_start(argc, argv, 120);
    vk_t vk;
    if (!vk_start(&vk)) {
        vk_stop(&vk);
        printf("SKIP: vk_interop: no lavapipe with VK_KHR_external_memory_fd here (mesa-vulkan-drivers)\n");
        return SKIP_STATUS;
    }
    phase("lavapipe memory, exported");
    VkDeviceMemory memory = vk_memory(&vk, -1);
    uint32_t *words = memory ? vk_map(&vk, memory) : NULL;
    if (!words)
        return test_finish();
    write_pattern(words, 1);
    VkMemoryGetFdInfoKHR get = { .sType = VK_STRUCTURE_TYPE_MEMORY_GET_FD_INFO_KHR, .memory = memory,
                                 .handleType = VK_EXTERNAL_MEMORY_HANDLE_TYPE_OPAQUE_FD_BIT };
    int memfd = -1;
    CHECK(vk.getMemoryFd(vk.device, &get, &memfd) == VK_SUCCESS && memfd >= 0, "vkGetMemoryFdKHR");
    off_t bytes = memfd >= 0 ? lseek(memfd, 0, SEEK_END) : -1;
    printf("lavapipe's OPAQUE_FD memory: a %lld-byte memfd for %u bytes\n", (long long)bytes, MEMORY_SIZE);

    phase("wrapping it with a data offset, sharing it");
    ULONG count = 0;
    D3DKMT_ADAPTERINFO *adapters = enum_adapters(&count);
    LUID software = adapters[count - 1].AdapterLuid;  /* the software adapter is last */
    close_adapters(adapters, count);
    D3DKMT_HANDLE hAdapter = 0, hDevice = 0;
    if (!open_device_by_luid(software, &hAdapter, &hDevice))
        return test_finish();
    D3DKMT_LINUX_ALLOCATION_DESC2 desc;
    memset(&desc, 0, sizeof desc);
    desc.Version = D3DKMT_LINUX_ALLOCATION_DESC_VERSION_2;
    desc.Size = MEMORY_SIZE;
    desc.DmaBufFd = memfd;
    desc.DataOffset = LAVAPIPE_HEADER;
    D3DDDI_ALLOCATIONINFO2 info;
    memset(&info, 0, sizeof info);
    info.pPrivateDriverData = &desc;
    info.PrivateDriverDataSize = sizeof desc;
    D3DKMT_CREATEALLOCATION create;
    memset(&create, 0, sizeof create);
    create.hDevice = hDevice;
    create.NumAllocations = 1;
    create.pAllocationInfo2 = &info;
    create.Flags.CreateResource = create.Flags.CreateShared = create.Flags.NtSecuritySharing = 1;
    EXPECT_OK(D3DKMTCreateAllocation2(&create));
    close(memfd);
    uint8_t *p = NULL;
    EXPECT_OK(lock(hDevice, info.hAllocation, &p));
    CHECK(p && pattern_matches((const uint32_t *)p, 1), "Lock2 at the data offset shows what Vulkan wrote");
    if (p)
        EXPECT_OK(unlock(hDevice, info.hAllocation));
    HANDLE shared = NULL;
    EXPECT_OK(D3DKMTShareObjects(1, &create.hResource, NULL, SHARED_ALLOCATION_ALL_ACCESS, &shared));

    phase("the child imports it into its lavapipe");
    pid_t child = spawn_child(argv[0], "child", shared, software, NULL, NULL, NULL, NULL);
    CHECK(child > 0, "started the child");
    check_child_exit("child", wait_child(child));
    CHECK(pattern_matches(words, 2), "the parent's Vulkan mapping shows what the child's lavapipe wrote");

    phase("a library allocation reaches lavapipe through its mapping (VK_EXT_external_memory_host)");
    CHECK(vk.hostMemory, "lavapipe offers VK_EXT_external_memory_host");
    D3DKMT_HANDLE hOwn = 0, hOwnAllocation = 0;
    EXPECT_OK(create_resource(hDevice, 1, 0, &hOwn, &hOwnAllocation));
    uint8_t *mapped = NULL;
    if (vk.hostMemory && hOwnAllocation && lock(hDevice, hOwnAllocation, &mapped) == STATUS_SUCCESS) {
        write_pattern((uint32_t *)mapped, 3);
        VkImportMemoryHostPointerInfoEXT host = { .sType = VK_STRUCTURE_TYPE_IMPORT_MEMORY_HOST_POINTER_INFO_EXT,
                                                  .handleType = VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT,
                                                  .pHostPointer = mapped };
        VkMemoryAllocateInfo allocate = { .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .pNext = &host,
                                          .allocationSize = MEMORY_SIZE, .memoryTypeIndex = vk.memoryType };
        VkDeviceMemory imported = VK_NULL_HANDLE;
        VkResult result = vkAllocateMemory(vk.device, &allocate, NULL, &imported);
        CHECK(result == VK_SUCCESS, "vkAllocateMemory from the Lock2 pointer: %d", result);
        uint32_t *seen = imported ? vk_map(&vk, imported) : NULL;
        CHECK(seen && pattern_matches(seen, 3), "lavapipe sees the allocation's bytes");
        if (seen)
            vkUnmapMemory(vk.device, imported);
        if (imported)
            vkFreeMemory(vk.device, imported, NULL);
        EXPECT_OK(unlock(hDevice, hOwnAllocation));
    }
    if (hOwn)
        EXPECT_OK(destroy_resource(hDevice, hOwn));

    vkUnmapMemory(vk.device, memory);
    vkFreeMemory(vk.device, memory, NULL);
    vk_stop(&vk);
    close_handle(shared, "the handle");
    EXPECT_OK(destroy_resource(hDevice, create.hResource));
    destroy_device(hDevice);
    close_adapter(hAdapter);
    return test_finish();
}

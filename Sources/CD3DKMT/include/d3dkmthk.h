/*
 * d3dkmthk.h - the D3DKMT sharing API of libd3dkmt, for Linux.
 *
 * This is the public C header of libd3dkmt.so. It declares the subset of the
 * Windows "D3DKMT" thunk interface that the library implements on Linux DRM
 * (adapters, devices, allocations, shared NT handles, keyed mutexes, sync
 * objects), under the names, field orders and x64 layouts that Microsoft
 * documents, so that code written against the Windows interface compiles here.
 * The declarations were written for this project from the published
 * documentation; nothing else is declared.
 *
 * Base types
 *   UINT/ULONG/DWORD are uint32_t, INT/LONG are int32_t (LLP64, as on Windows:
 *   ULONG is 32 bits even though a Linux `long` is 64), UINT64/ULONGLONG are
 *   uint64_t, BOOL is int32_t, BOOLEAN is uint8_t, WCHAR is uint16_t (UTF-16,
 *   NOT wchar_t), HANDLE is void *, NTSTATUS is int32_t. With these, every
 *   structure below has the size, alignment and field offsets it has on x64
 *   Windows (see layout_check.c, which the build compiles).
 *   A program that already defines these Windows base types (for example
 *   because it includes another Windows-compatibility header first) can define
 *   D3DKMT_NO_BASE_TYPES before including this header to suppress ours; its
 *   types must then have the sizes above.
 *
 * NT handles are file descriptors
 *   A shared NT handle (the HANDLE that D3DKMTShareObjects,
 *   D3DKMTOpenNtHandleFromName and D3DKMTOpenSyncObjectNtHandleFromName
 *   return) holds a file descriptor: HANDLE h == (HANDLE)(intptr_t)fd.
 *     - CloseHandle(h)           is  close(D3DKMTLinuxHandleToFd(h))
 *     - DuplicateHandle(h)       is  dup() / fcntl(F_DUPFD_CLOEXEC)
 *     - passing h to a process   is  SCM_RIGHTS, inheritance (clear
 *                                    FD_CLOEXEC on a dup) or pidfd_getfd()
 *   The descriptors the library creates are close-on-exec. A NULL HANDLE means
 *   "no handle". The handle pins the shared objects: they stay alive, and can
 *   be opened any number of times by any process holding a copy of the
 *   descriptor, until the last copy is closed.
 *   Local objects (adapters, devices, resources, allocations, keyed mutexes,
 *   sync objects) are named by D3DKMT_HANDLE values that are only meaningful
 *   in the process that received them, as on Windows.
 *
 * Allocations
 *   Every allocation's private driver data (D3DDDI_ALLOCATIONINFO2 and
 *   D3DDDI_OPENALLOCATIONINFO2 pPrivateDriverData) begins with a
 *   D3DKMT_LINUX_ALLOCATION_DESC, which says how big the buffer is and, if the
 *   caller already has one, which dma-buf to wrap. See the "Linux extensions"
 *   section at the end of this file.
 *
 * Building
 *   cc prog.c $(pkg-config --cflags --libs d3dkmt)
 *   The header needs C11 (anonymous structs and unions) or C++ (GCC/Clang).
 */
#ifndef D3DKMTHK_LINUX_H
#define D3DKMTHK_LINUX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* C++ has anonymous unions but not anonymous structs; GCC and Clang accept the
 * nested anonymous bit-field structs below as an extension. */
#if defined(__cplusplus) && defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wnested-anon-types"
#pragma clang diagnostic ignored "-Wgnu-anonymous-struct"
#endif

/* Anonymous structs inside unions are C11; in C++ they are an extension that
 * GCC and Clang accept. This marker keeps -pedantic builds quiet. */
#if defined(__GNUC__) || defined(__clang__)
#define D3DKMT_ANONYMOUS __extension__
#else
#define D3DKMT_ANONYMOUS
#endif

/* Windows calling-convention decoration: nothing on Linux. */
#ifndef APIENTRY
#define APIENTRY
#endif

/* ------------------------------------------------------------------------ */
/* Base types                                                               */
/* ------------------------------------------------------------------------ */

#ifndef D3DKMT_NO_BASE_TYPES

typedef void VOID;
typedef void *PVOID;
typedef void *HANDLE;
typedef HANDLE *PHANDLE;

typedef uint8_t BYTE;
typedef uint8_t UCHAR;
typedef uint8_t BOOLEAN;
typedef uint16_t USHORT;
typedef uint16_t WORD;
typedef uint16_t WCHAR;   /* UTF-16 code unit, not wchar_t */
typedef int32_t INT;
typedef uint32_t UINT;
typedef int32_t LONG;
typedef uint32_t ULONG;
typedef uint32_t DWORD;
typedef int32_t BOOL;
typedef uint32_t UINT32;
typedef int64_t LONGLONG;
typedef uint64_t ULONGLONG;
typedef uint64_t UINT64;
typedef uintptr_t ULONG_PTR;
typedef uintptr_t UINT_PTR;
typedef ULONG_PTR SIZE_T;
typedef int32_t NTSTATUS;
typedef DWORD ACCESS_MASK;

typedef struct _LUID {
    DWORD LowPart;
    LONG HighPart;
} LUID, *PLUID;

typedef union _LARGE_INTEGER {
    D3DKMT_ANONYMOUS struct {
        DWORD LowPart;
        LONG HighPart;
    };
    struct {
        DWORD LowPart;
        LONG HighPart;
    } u;
    LONGLONG QuadPart;
} LARGE_INTEGER, *PLARGE_INTEGER;

/* Length and MaximumLength count bytes, not characters. */
typedef struct _UNICODE_STRING {
    USHORT Length;
    USHORT MaximumLength;
    WCHAR *Buffer;
} UNICODE_STRING, *PUNICODE_STRING;

typedef struct _OBJECT_ATTRIBUTES {
    ULONG Length;                   /* sizeof(OBJECT_ATTRIBUTES) */
    HANDLE RootDirectory;
    PUNICODE_STRING ObjectName;
    ULONG Attributes;               /* OBJ_* */
    PVOID SecurityDescriptor;
    PVOID SecurityQualityOfService;
} OBJECT_ATTRIBUTES, *POBJECT_ATTRIBUTES;

#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif

#endif /* D3DKMT_NO_BASE_TYPES */

#ifndef NT_SUCCESS
#define NT_SUCCESS(Status) (((NTSTATUS)(Status)) >= 0)
#endif

#ifndef InitializeObjectAttributes
#define InitializeObjectAttributes(p, n, a, r, s) \
    do {                                          \
        (p)->Length = sizeof(OBJECT_ATTRIBUTES);  \
        (p)->RootDirectory = (r);                 \
        (p)->ObjectName = (n);                    \
        (p)->Attributes = (a);                    \
        (p)->SecurityDescriptor = (s);            \
        (p)->SecurityQualityOfService = NULL;     \
    } while (0)
#endif

/* ------------------------------------------------------------------------ */
/* NTSTATUS values (the numbers of Windows' ntstatus.h)                      */
/* ------------------------------------------------------------------------ */

/* Written as signed decimals (the hex value follows in a comment) so that a
 * value like 0xC000000D does not overflow NTSTATUS (int32_t) when Swift imports
 * the macro. */

#ifndef STATUS_SUCCESS
#define STATUS_SUCCESS                      ((NTSTATUS)0)             /* 0x00000000 */
#endif
#ifndef STATUS_WAIT_0
#define STATUS_WAIT_0                       ((NTSTATUS)0)             /* 0x00000000 */
#endif
#ifndef STATUS_ABANDONED
#define STATUS_ABANDONED                    ((NTSTATUS)128)           /* 0x00000080 */
#endif
#ifndef STATUS_ABANDONED_WAIT_0
#define STATUS_ABANDONED_WAIT_0             ((NTSTATUS)128)           /* 0x00000080 */
#endif
#ifndef STATUS_TIMEOUT
#define STATUS_TIMEOUT                      ((NTSTATUS)258)           /* 0x00000102 */
#endif
#ifndef STATUS_PENDING
#define STATUS_PENDING                      ((NTSTATUS)259)           /* 0x00000103 */
#endif
#ifndef STATUS_BUFFER_OVERFLOW
#define STATUS_BUFFER_OVERFLOW              ((NTSTATUS)-2147483643)   /* 0x80000005 */
#endif
#ifndef STATUS_DEVICE_BUSY
#define STATUS_DEVICE_BUSY                  ((NTSTATUS)-2147483631)   /* 0x80000011 */
#endif
#ifndef STATUS_UNSUCCESSFUL
#define STATUS_UNSUCCESSFUL                 ((NTSTATUS)-1073741823)   /* 0xC0000001 */
#endif
#ifndef STATUS_NOT_IMPLEMENTED
#define STATUS_NOT_IMPLEMENTED              ((NTSTATUS)-1073741822)   /* 0xC0000002 */
#endif
#ifndef STATUS_INVALID_HANDLE
#define STATUS_INVALID_HANDLE               ((NTSTATUS)-1073741816)   /* 0xC0000008 */
#endif
#ifndef STATUS_INVALID_PARAMETER
#define STATUS_INVALID_PARAMETER            ((NTSTATUS)-1073741811)   /* 0xC000000D */
#endif
#ifndef STATUS_NO_SUCH_DEVICE
#define STATUS_NO_SUCH_DEVICE               ((NTSTATUS)-1073741810)   /* 0xC000000E */
#endif
#ifndef STATUS_INVALID_DEVICE_REQUEST
#define STATUS_INVALID_DEVICE_REQUEST       ((NTSTATUS)-1073741808)   /* 0xC0000010 */
#endif
#ifndef STATUS_NO_MEMORY
#define STATUS_NO_MEMORY                    ((NTSTATUS)-1073741801)   /* 0xC0000017 */
#endif
#ifndef STATUS_ALREADY_COMMITTED
#define STATUS_ALREADY_COMMITTED            ((NTSTATUS)-1073741791)   /* 0xC0000021 */
#endif
#ifndef STATUS_ACCESS_DENIED
#define STATUS_ACCESS_DENIED                ((NTSTATUS)-1073741790)   /* 0xC0000022 */
#endif
#ifndef STATUS_BUFFER_TOO_SMALL
#define STATUS_BUFFER_TOO_SMALL             ((NTSTATUS)-1073741789)   /* 0xC0000023 */
#endif
#ifndef STATUS_OBJECT_TYPE_MISMATCH
#define STATUS_OBJECT_TYPE_MISMATCH         ((NTSTATUS)-1073741788)   /* 0xC0000024 */
#endif
#ifndef STATUS_OBJECT_NAME_INVALID
#define STATUS_OBJECT_NAME_INVALID          ((NTSTATUS)-1073741773)   /* 0xC0000033 */
#endif
#ifndef STATUS_OBJECT_NAME_NOT_FOUND
#define STATUS_OBJECT_NAME_NOT_FOUND        ((NTSTATUS)-1073741772)   /* 0xC0000034 */
#endif
#ifndef STATUS_OBJECT_NAME_COLLISION
#define STATUS_OBJECT_NAME_COLLISION        ((NTSTATUS)-1073741771)   /* 0xC0000035 */
#endif
#ifndef STATUS_OBJECT_PATH_NOT_FOUND
#define STATUS_OBJECT_PATH_NOT_FOUND        ((NTSTATUS)-1073741766)   /* 0xC000003A */
#endif
#ifndef STATUS_MUTANT_NOT_OWNED
#define STATUS_MUTANT_NOT_OWNED             ((NTSTATUS)-1073741754)   /* 0xC0000046 */
#endif
#ifndef STATUS_INVALID_IMAGE_FORMAT
#define STATUS_INVALID_IMAGE_FORMAT         ((NTSTATUS)-1073741701)   /* 0xC000007B */
#endif
#ifndef STATUS_INTEGER_OVERFLOW
#define STATUS_INTEGER_OVERFLOW             ((NTSTATUS)-1073741675)   /* 0xC0000095 */
#endif
#ifndef STATUS_INSUFFICIENT_RESOURCES
#define STATUS_INSUFFICIENT_RESOURCES       ((NTSTATUS)-1073741670)   /* 0xC000009A */
#endif
#ifndef STATUS_IO_TIMEOUT
#define STATUS_IO_TIMEOUT                   ((NTSTATUS)-1073741643)   /* 0xC00000B5 */
#endif
#ifndef STATUS_NOT_SUPPORTED
#define STATUS_NOT_SUPPORTED                ((NTSTATUS)-1073741637)   /* 0xC00000BB */
#endif
#ifndef STATUS_INVALID_USER_BUFFER
#define STATUS_INVALID_USER_BUFFER          ((NTSTATUS)-1073741592)   /* 0xC00000E8 */
#endif
#ifndef STATUS_INVALID_PARAMETER_1
#define STATUS_INVALID_PARAMETER_1          ((NTSTATUS)-1073741585)   /* 0xC00000EF */
#endif
#ifndef STATUS_INVALID_PARAMETER_2
#define STATUS_INVALID_PARAMETER_2          ((NTSTATUS)-1073741584)   /* 0xC00000F0 */
#endif
#ifndef STATUS_INVALID_PARAMETER_3
#define STATUS_INVALID_PARAMETER_3          ((NTSTATUS)-1073741583)   /* 0xC00000F1 */
#endif
#ifndef STATUS_INVALID_PARAMETER_4
#define STATUS_INVALID_PARAMETER_4          ((NTSTATUS)-1073741582)   /* 0xC00000F2 */
#endif
#ifndef STATUS_INVALID_PARAMETER_5
#define STATUS_INVALID_PARAMETER_5          ((NTSTATUS)-1073741581)   /* 0xC00000F3 */
#endif
#ifndef STATUS_NAME_TOO_LONG
#define STATUS_NAME_TOO_LONG                ((NTSTATUS)-1073741562)   /* 0xC0000106 */
#endif
#ifndef STATUS_TOO_MANY_OPENED_FILES
#define STATUS_TOO_MANY_OPENED_FILES        ((NTSTATUS)-1073741537)   /* 0xC000011F */
#endif
#ifndef STATUS_INVALID_DEVICE_STATE
#define STATUS_INVALID_DEVICE_STATE         ((NTSTATUS)-1073741436)   /* 0xC0000184 */
#endif
#ifndef STATUS_DEVICE_REMOVED
#define STATUS_DEVICE_REMOVED               ((NTSTATUS)-1073741130)   /* 0xC00002B6 */
#endif
#ifndef STATUS_GRAPHICS_NO_VIDEO_MEMORY
#define STATUS_GRAPHICS_NO_VIDEO_MEMORY     ((NTSTATUS)-1071775488)   /* 0xC01E0100 */
#endif
#ifndef STATUS_GRAPHICS_ALLOCATION_BUSY
#define STATUS_GRAPHICS_ALLOCATION_BUSY     ((NTSTATUS)-1071775486)   /* 0xC01E0102 */
#endif
#ifndef STATUS_GRAPHICS_TOO_MANY_REFERENCES
#define STATUS_GRAPHICS_TOO_MANY_REFERENCES ((NTSTATUS)-1071775485)   /* 0xC01E0103 */
#endif

/* ------------------------------------------------------------------------ */
/* Access rights and object attributes                                      */
/* ------------------------------------------------------------------------ */

#ifndef DELETE
#define DELETE                      0x00010000u
#endif
#ifndef READ_CONTROL
#define READ_CONTROL                0x00020000u
#endif
#ifndef WRITE_DAC
#define WRITE_DAC                   0x00040000u
#endif
#ifndef WRITE_OWNER
#define WRITE_OWNER                 0x00080000u
#endif
#ifndef SYNCHRONIZE
#define SYNCHRONIZE                 0x00100000u
#endif
#ifndef STANDARD_RIGHTS_REQUIRED
#define STANDARD_RIGHTS_REQUIRED    0x000F0000u
#endif
#ifndef STANDARD_RIGHTS_READ
#define STANDARD_RIGHTS_READ        READ_CONTROL
#endif
#ifndef STANDARD_RIGHTS_WRITE
#define STANDARD_RIGHTS_WRITE       READ_CONTROL
#endif
#ifndef STANDARD_RIGHTS_EXECUTE
#define STANDARD_RIGHTS_EXECUTE     READ_CONTROL
#endif
#ifndef STANDARD_RIGHTS_ALL
#define STANDARD_RIGHTS_ALL         0x001F0000u
#endif
#ifndef SPECIFIC_RIGHTS_ALL
#define SPECIFIC_RIGHTS_ALL         0x0000FFFFu
#endif
#ifndef GENERIC_READ
#define GENERIC_READ                0x80000000u
#endif
#ifndef GENERIC_WRITE
#define GENERIC_WRITE               0x40000000u
#endif
#ifndef GENERIC_EXECUTE
#define GENERIC_EXECUTE             0x20000000u
#endif
#ifndef GENERIC_ALL
#define GENERIC_ALL                 0x10000000u
#endif

/* dwDesiredAccess for shared resources (D3DKMTShareObjects and the Open calls).
 * STANDARD_RIGHTS_READ must be present or the object cannot be opened; without
 * SHARED_ALLOCATION_WRITE the allocations open read-only. */
#define SHARED_ALLOCATION_WRITE         0x00000001u
#define SHARED_ALLOCATION_ALL_ACCESS    0x000F0001u /* STANDARD_RIGHTS_REQUIRED | SHARED_ALLOCATION_WRITE */

/* dwDesiredAccess for shared sync objects. */
#define D3DDDI_SYNC_OBJECT_WAIT         0x00000001u
#define D3DDDI_SYNC_OBJECT_SIGNAL       0x00000002u
/* STANDARD_RIGHTS_REQUIRED | SYNCHRONIZE | D3DDDI_SYNC_OBJECT_WAIT | D3DDDI_SYNC_OBJECT_SIGNAL,
 * written out as one number so that Swift imports it. */
#define D3DDDI_SYNC_OBJECT_ALL_ACCESS   0x001F0003u

/* OBJECT_ATTRIBUTES.Attributes */
#ifndef OBJ_INHERIT
#define OBJ_INHERIT                 0x00000002u
#define OBJ_PERMANENT               0x00000010u
#define OBJ_EXCLUSIVE               0x00000020u
#define OBJ_CASE_INSENSITIVE        0x00000040u
#define OBJ_OPENIF                  0x00000080u
#define OBJ_OPENLINK                0x00000100u
#define OBJ_KERNEL_HANDLE           0x00000200u
#define OBJ_FORCE_ACCESS_CHECK      0x00000400u
#define OBJ_VALID_ATTRIBUTES        0x000007F2u
#endif

/* ------------------------------------------------------------------------ */
/* Kernel-mode-thunk handles and small shared types                          */
/* ------------------------------------------------------------------------ */

typedef UINT D3DKMT_HANDLE;
typedef ULONGLONG D3DGPU_VIRTUAL_ADDRESS;
typedef ULONGLONG D3DGPU_SIZE_T;
typedef UINT D3DDDI_VIDEO_PRESENT_SOURCE_ID;
typedef UINT D3DDDI_VIDEO_PRESENT_TARGET_ID;

#define D3DGPU_NULL                         0
#define D3DDDI_MAX_OBJECT_WAITED_ON         32
#define D3DDDI_MAX_OBJECT_SIGNALED          32
#define D3DDDI_MAX_BROADCAST_CONTEXT        64
#define D3DKMT_MAX_OBJECTS_PER_HANDLE       3
#define D3DKMT_MAX_BUNDLE_OBJECTS_PER_HANDLE 16
#define MAX_ENUM_ADAPTERS                   16

/* ------------------------------------------------------------------------ */
/* Adapters                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct _D3DKMT_ADAPTERINFO {
    D3DKMT_HANDLE hAdapter;
    LUID AdapterLuid;
    ULONG NumOfSources;
    BOOL bPrecisePresentRegionsPreferred;
} D3DKMT_ADAPTERINFO;

/* D3DKMTEnumAdapters2: call once with pAdapters == NULL to learn how many
 * entries to provide, then again with an array of that many. Every returned
 * hAdapter is open and must be closed with D3DKMTCloseAdapter. */
typedef struct _D3DKMT_ENUMADAPTERS2 {
    ULONG NumAdapters;
    D3DKMT_ADAPTERINFO *pAdapters;
} D3DKMT_ENUMADAPTERS2;

typedef struct _D3DKMT_OPENADAPTERFROMLUID {
    LUID AdapterLuid;               /* in */
    D3DKMT_HANDLE hAdapter;         /* out */
} D3DKMT_OPENADAPTERFROMLUID;

typedef struct _D3DKMT_CLOSEADAPTER {
    D3DKMT_HANDLE hAdapter;
} D3DKMT_CLOSEADAPTER;

typedef enum _KMTQUERYADAPTERINFOTYPE {
    KMTQAITYPE_UMDRIVERPRIVATE = 0,
    KMTQAITYPE_UMDRIVERNAME = 1,
    KMTQAITYPE_UMOPENGLINFO = 2,
    KMTQAITYPE_GETSEGMENTSIZE = 3,
    KMTQAITYPE_ADAPTERGUID = 4,
    KMTQAITYPE_FLIPQUEUEINFO = 5,
    KMTQAITYPE_ADAPTERADDRESS = 6,
    KMTQAITYPE_SETWORKINGSETINFO = 7,
    KMTQAITYPE_ADAPTERREGISTRYINFO = 8,
    KMTQAITYPE_CURRENTDISPLAYMODE = 9,
    KMTQAITYPE_MODELIST = 10,
    KMTQAITYPE_CHECKDRIVERUPDATESTATUS = 11,
    KMTQAITYPE_VIRTUALADDRESSINFO = 12,
    KMTQAITYPE_DRIVERVERSION = 13,
    /* 14 is not used */
    KMTQAITYPE_ADAPTERTYPE = 15,
    KMTQAITYPE_OUTPUTDUPLCONTEXTSCOUNT = 16,
    KMTQAITYPE_WDDM_1_2_CAPS = 17,
    KMTQAITYPE_UMD_DRIVER_VERSION = 18,
    KMTQAITYPE_DIRECTFLIP_SUPPORT = 19,
    KMTQAITYPE_MULTIPLANEOVERLAY_SUPPORT = 20,
    KMTQAITYPE_DLIST_DRIVER_NAME = 21,
    KMTQAITYPE_WDDM_1_3_CAPS = 22,
    KMTQAITYPE_MULTIPLANEOVERLAY_HUD_SUPPORT = 23,
    KMTQAITYPE_WDDM_2_0_CAPS = 24,
    KMTQAITYPE_NODEMETADATA = 25,
    KMTQAITYPE_CPDRIVERNAME = 26,
    KMTQAITYPE_XBOX = 27,
    KMTQAITYPE_INDEPENDENTFLIP_SUPPORT = 28,
    KMTQAITYPE_MIRACASTCOMPANIONDRIVERNAME = 29,
    KMTQAITYPE_PHYSICALADAPTERCOUNT = 30,
    KMTQAITYPE_PHYSICALADAPTERDEVICEIDS = 31,
    KMTQAITYPE_DRIVERCAPS_EXT = 32,
    KMTQAITYPE_QUERY_MIRACAST_DRIVER_TYPE = 33,
    KMTQAITYPE_QUERY_GPUMMU_CAPS = 34,
    KMTQAITYPE_QUERY_MULTIPLANEOVERLAY_DECODE_SUPPORT = 35,
    KMTQAITYPE_QUERY_HW_PROTECTION_TEARDOWN_COUNT = 36,
    KMTQAITYPE_QUERY_ISBADDRIVERFORHWPROTECTIONDISABLED = 37,
    KMTQAITYPE_MULTIPLANEOVERLAY_SECONDARY_SUPPORT = 38,
    KMTQAITYPE_INDEPENDENTFLIP_SECONDARY_SUPPORT = 39,
    KMTQAITYPE_PANELFITTER_SUPPORT = 40,
    KMTQAITYPE_PHYSICALADAPTERPNPKEY = 41,
    KMTQAITYPE_GETSEGMENTGROUPSIZE = 42,
    KMTQAITYPE_MPO3DDI_SUPPORT = 43,
    KMTQAITYPE_HWDRM_SUPPORT = 44,
    KMTQAITYPE_MPOKERNELCAPS_SUPPORT = 45,
    KMTQAITYPE_MULTIPLANEOVERLAY_STRETCH_SUPPORT = 46,
    KMTQAITYPE_GET_DEVICE_VIDPN_OWNERSHIP_INFO = 47,
    KMTQAITYPE_QUERYREGISTRY = 48,
    KMTQAITYPE_KMD_DRIVER_VERSION = 49,
    KMTQAITYPE_BLOCKLIST_KERNEL = 50,
    KMTQAITYPE_BLOCKLIST_RUNTIME = 51,
    KMTQAITYPE_ADAPTERGUID_RENDER = 52,
    KMTQAITYPE_ADAPTERADDRESS_RENDER = 53,
    KMTQAITYPE_ADAPTERREGISTRYINFO_RENDER = 54,
    KMTQAITYPE_CHECKDRIVERUPDATESTATUS_RENDER = 55,
    KMTQAITYPE_DRIVERVERSION_RENDER = 56,
    KMTQAITYPE_ADAPTERTYPE_RENDER = 57,
    KMTQAITYPE_WDDM_1_2_CAPS_RENDER = 58,
    KMTQAITYPE_WDDM_1_3_CAPS_RENDER = 59,
    KMTQAITYPE_QUERY_ADAPTER_UNIQUE_GUID = 60,
    KMTQAITYPE_NODEPERFDATA = 61,
    KMTQAITYPE_ADAPTERPERFDATA = 62,
    KMTQAITYPE_ADAPTERPERFDATA_CAPS = 63,
    KMTQUITYPE_GPUVERSION = 64,
    KMTQAITYPE_DRIVER_DESCRIPTION = 65,
    KMTQAITYPE_DRIVER_DESCRIPTION_RENDER = 66,
    KMTQAITYPE_SCANOUT_CAPS = 67,
    KMTQAITYPE_PARAVIRTUALIZATION_RENDER = 68,
    KMTQAITYPE_SERVICENAME = 69,
    KMTQAITYPE_WDDM_2_7_CAPS = 70,
    KMTQAITYPE_DISPLAY_UMDRIVERNAME = 71,
    KMTQAITYPE_TRACKEDWORKLOAD_SUPPORT = 72,
    KMTQAITYPE_HYBRID_DLIST_DLL_SUPPORT = 73,
    KMTQAITYPE_DISPLAY_CAPS = 74,
    KMTQAITYPE_WDDM_2_9_CAPS = 75,
    KMTQAITYPE_CROSSADAPTERRESOURCE_SUPPORT = 76,
    KMTQAITYPE_WDDM_3_0_CAPS = 77,
    KMTQAITYPE_WSAUMDIMAGENAME = 78,
    KMTQAITYPE_VGPUINTERFACEID = 79,
    KMTQAITYPE_WDDM_3_1_CAPS = 80,

    /* Linux extension, outside Microsoft's range: pPrivateDriverData receives a
     * D3DKMT_LINUX_ADAPTER_INFO. ("KM" in the high half.) */
    KMTQAITYPE_LINUX_DRM_INFO = 0x4B4D0001
} KMTQUERYADAPTERINFOTYPE;

typedef struct _D3DKMT_QUERYADAPTERINFO {
    D3DKMT_HANDLE hAdapter;
    KMTQUERYADAPTERINFOTYPE Type;
    VOID *pPrivateDriverData;       /* in/out: layout depends on Type */
    UINT PrivateDriverDataSize;     /* size of the buffer at pPrivateDriverData */
} D3DKMT_QUERYADAPTERINFO;

/* KMTQAITYPE_ADAPTERADDRESS */
typedef struct _D3DKMT_ADAPTERADDRESS {
    UINT BusNumber;
    UINT DeviceNumber;
    UINT FunctionNumber;
} D3DKMT_ADAPTERADDRESS;

/* KMTQAITYPE_ADAPTERTYPE */
typedef struct _D3DKMT_ADAPTERTYPE {
    union {
        D3DKMT_ANONYMOUS struct {
            UINT RenderSupported : 1;
            UINT DisplaySupported : 1;
            UINT SoftwareDevice : 1;
            UINT PostDevice : 1;
            UINT HybridDiscrete : 1;
            UINT HybridIntegrated : 1;
            UINT IndirectDisplayDevice : 1;
            UINT Paravirtualized : 1;
            UINT ACGSupported : 1;
            UINT SupportSetTimingsFromVidPn : 1;
            UINT Detachable : 1;
            UINT ComputeOnly : 1;
            UINT Prototype : 1;
            UINT RuntimePowerManagement : 1;
            UINT Reserved : 18;
        };
        UINT Value;
    };
} D3DKMT_ADAPTERTYPE;

/* KMTQAITYPE_DRIVERVERSION returns one of these as a 32-bit value. */
typedef enum _QAI_DRIVERVERSION {
    KMT_DRIVERVERSION_WDDM_1_0 = 1000,
    KMT_DRIVERVERSION_WDDM_1_1_PRERELEASE = 1102,
    KMT_DRIVERVERSION_WDDM_1_1 = 1105,
    KMT_DRIVERVERSION_WDDM_1_2 = 1200,
    KMT_DRIVERVERSION_WDDM_1_3 = 1300,
    KMT_DRIVERVERSION_WDDM_2_0 = 2000,
    KMT_DRIVERVERSION_WDDM_2_1 = 2100,
    KMT_DRIVERVERSION_WDDM_2_2 = 2200,
    KMT_DRIVERVERSION_WDDM_2_3 = 2300,
    KMT_DRIVERVERSION_WDDM_2_4 = 2400,
    KMT_DRIVERVERSION_WDDM_2_5 = 2500,
    KMT_DRIVERVERSION_WDDM_2_6 = 2600,
    KMT_DRIVERVERSION_WDDM_2_7 = 2700,
    KMT_DRIVERVERSION_WDDM_2_8 = 2800,
    KMT_DRIVERVERSION_WDDM_2_9 = 2900,
    KMT_DRIVERVERSION_WDDM_3_0 = 3000,
    KMT_DRIVERVERSION_WDDM_3_1 = 3100
} D3DKMT_DRIVERVERSION;

/* KMTQAITYPE_DRIVER_DESCRIPTION: a NUL-terminated UTF-16 string. */
typedef struct _D3DKMT_DRIVER_DESCRIPTION {
    WCHAR DriverDescription[4096];
} D3DKMT_DRIVER_DESCRIPTION;

/* KMTQAITYPE_PHYSICALADAPTERCOUNT */
typedef struct _D3DKMT_PHYSICAL_ADAPTER_COUNT {
    UINT Count;
} D3DKMT_PHYSICAL_ADAPTER_COUNT;

/* KMTQAITYPE_PHYSICALADAPTERDEVICEIDS */
typedef struct _D3DKMT_DEVICE_IDS {
    UINT VendorID;
    UINT DeviceID;
    UINT SubVendorID;
    UINT SubSystemID;
    UINT RevisionID;
    UINT BusType;
} D3DKMT_DEVICE_IDS;

typedef struct _D3DKMT_QUERY_DEVICE_IDS {
    UINT PhysicalAdapterIndex;      /* in */
    D3DKMT_DEVICE_IDS DeviceIds;    /* out */
} D3DKMT_QUERY_DEVICE_IDS;

/* ------------------------------------------------------------------------ */
/* Devices                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct _D3DKMT_CREATEDEVICEFLAGS {
    UINT LegacyMode : 1;
    UINT RequestVSync : 1;
    UINT DisableGpuTimeout : 1;
    UINT TestDevice : 1;
    UINT Reserved : 28;
} D3DKMT_CREATEDEVICEFLAGS;

typedef struct _D3DDDI_ALLOCATIONLIST {
    D3DKMT_HANDLE hAllocation;
    union {
        D3DKMT_ANONYMOUS struct {
            UINT WriteOperation : 1;
            UINT DoNotRetireInstance : 1;
            UINT OfferPriority : 3;
            UINT Reserved : 27;
        };
        UINT Value;
    };
} D3DDDI_ALLOCATIONLIST;

typedef struct _D3DDDI_PATCHLOCATIONLIST {
    UINT AllocationIndex;
    union {
        D3DKMT_ANONYMOUS struct {
            UINT SlotId : 24;
            UINT Reserved : 8;
        };
        UINT Value;
    };
    UINT DriverId;
    UINT AllocationOffset;
    UINT PatchOffset;
    UINT SplitOffset;
} D3DDDI_PATCHLOCATIONLIST;

typedef struct _D3DKMT_CREATEDEVICE {
    union {
        D3DKMT_HANDLE hAdapter;     /* in: from EnumAdapters2 / OpenAdapterFromLuid */
        VOID *pAdapter;             /* kernel-mode callers only */
    };
    D3DKMT_CREATEDEVICEFLAGS Flags;
    D3DKMT_HANDLE hDevice;          /* out */
    VOID *pCommandBuffer;           /* out (legacy; NULL here) */
    UINT CommandBufferSize;
    D3DDDI_ALLOCATIONLIST *pAllocationList;
    UINT AllocationListSize;
    D3DDDI_PATCHLOCATIONLIST *pPatchLocationList;
    UINT PatchLocationListSize;
} D3DKMT_CREATEDEVICE;

typedef struct _D3DKMT_DESTROYDEVICE {
    D3DKMT_HANDLE hDevice;
} D3DKMT_DESTROYDEVICE;

/* ------------------------------------------------------------------------ */
/* Allocations                                                              */
/* ------------------------------------------------------------------------ */

typedef struct _D3DDDI_ALLOCATIONINFO {
    D3DKMT_HANDLE hAllocation;              /* out */
    const VOID *pSystemMem;                 /* in */
    VOID *pPrivateDriverData;               /* in: starts with D3DKMT_LINUX_ALLOCATION_DESC */
    UINT PrivateDriverDataSize;             /* in */
    D3DDDI_VIDEO_PRESENT_SOURCE_ID VidPnSourceId;
    union {
        D3DKMT_ANONYMOUS struct {
            UINT Primary : 1;
            UINT Stereo : 1;
            UINT Reserved : 30;
        };
        UINT Value;
    } Flags;
} D3DDDI_ALLOCATIONINFO;

typedef struct _D3DDDI_ALLOCATIONINFO2 {
    D3DKMT_HANDLE hAllocation;              /* out */
    union {
        HANDLE hSection;                    /* in, with ExistingSection */
        const VOID *pSystemMem;             /* in, otherwise */
    };
    VOID *pPrivateDriverData;               /* in: starts with D3DKMT_LINUX_ALLOCATION_DESC */
    UINT PrivateDriverDataSize;             /* in */
    D3DDDI_VIDEO_PRESENT_SOURCE_ID VidPnSourceId;
    union {
        D3DKMT_ANONYMOUS struct {
            UINT Primary : 1;
            UINT Stereo : 1;
            UINT OverridePriority : 1;
            UINT Reserved : 29;
        };
        UINT Value;
    } Flags;
    D3DGPU_VIRTUAL_ADDRESS GpuVirtualAddress;   /* out */
    union {
        UINT Priority;                      /* in */
        ULONG_PTR Unused;
    };
    ULONG_PTR Reserved[5];
} D3DDDI_ALLOCATIONINFO2;

/* Standard allocations are not supported by this library; the type is only
 * named so that D3DKMT_CREATEALLOCATION can be declared. */
typedef struct _D3DKMT_CREATESTANDARDALLOCATION D3DKMT_CREATESTANDARDALLOCATION;

typedef struct _D3DKMT_CREATEALLOCATIONFLAGS {
    UINT CreateResource : 1;
    UINT CreateShared : 1;
    UINT NonSecure : 1;
    UINT CreateProtected : 1;
    UINT RestrictSharedAccess : 1;
    UINT ExistingSysMem : 1;
    UINT NtSecuritySharing : 1;
    UINT ReadOnly : 1;
    UINT CreateWriteCombined : 1;
    UINT CreateCached : 1;
    UINT SwapChainBackBuffer : 1;
    UINT CrossAdapter : 1;
    UINT OpenCrossAdapter : 1;
    UINT PartialSharedCreation : 1;
    UINT Zeroed : 1;
    UINT WriteWatch : 1;
    UINT StandardAllocation : 1;
    UINT ExistingSection : 1;
    UINT AllowNotZeroed : 1;
    UINT PhysicallyContiguous : 1;
    UINT NoKmdAccess : 1;
    UINT SharedDisplayable : 1;
    UINT NoImplicitSynchronization : 1;
    UINT Reserved : 9;
} D3DKMT_CREATEALLOCATIONFLAGS;

/* D3DKMTCreateAllocation / D3DKMTCreateAllocation2. To make a resource shared
 * by NT handle set Flags.CreateResource, Flags.CreateShared and
 * Flags.NtSecuritySharing, then pass hResource to D3DKMTShareObjects. With
 * Flags.CreateResource and Flags.CreateShared alone the resource gets a global
 * (KMT) handle in hGlobalShare instead, which D3DKMTQueryResourceInfo and
 * D3DKMTOpenResource(2) open in any process of the same user. */
typedef struct _D3DKMT_CREATEALLOCATION {
    D3DKMT_HANDLE hDevice;                  /* in */
    D3DKMT_HANDLE hResource;                /* in/out: 0, or a resource to add to */
    D3DKMT_HANDLE hGlobalShare;             /* out: the global handle with CreateShared alone, else 0 */
    const VOID *pPrivateRuntimeData;        /* in: travels with a shared resource */
    UINT PrivateRuntimeDataSize;
    union {
        D3DKMT_CREATESTANDARDALLOCATION *pStandardAllocation;
        const VOID *pPrivateDriverData;     /* in: the resource's driver data */
    };
    UINT PrivateDriverDataSize;
    UINT NumAllocations;
    union {
        D3DDDI_ALLOCATIONINFO *pAllocationInfo;
        D3DDDI_ALLOCATIONINFO2 *pAllocationInfo2;
    };
    D3DKMT_CREATEALLOCATIONFLAGS Flags;
    HANDLE hPrivateRuntimeResourceHandle;
} D3DKMT_CREATEALLOCATION;

/* D3DKMTDestroyAllocation: as D3DKMT_DESTROYALLOCATION2 without Flags. */
typedef struct _D3DKMT_DESTROYALLOCATION {
    D3DKMT_HANDLE hDevice;
    D3DKMT_HANDLE hResource;
    const D3DKMT_HANDLE *phAllocationList;
    UINT AllocationCount;
} D3DKMT_DESTROYALLOCATION;

typedef struct _D3DDDICB_DESTROYALLOCATION2FLAGS {
    union {
        D3DKMT_ANONYMOUS struct {
            UINT AssumeNotInUse : 1;
            UINT SynchronousDestroy : 1;
            UINT Reserved : 29;
            UINT SystemUseOnly : 1;
        };
        UINT Value;
    };
} D3DDDICB_DESTROYALLOCATION2FLAGS;

/* With hResource set and AllocationCount 0, the resource and all of its
 * allocations are destroyed (this is also how an opened resource is closed). */
typedef struct _D3DKMT_DESTROYALLOCATION2 {
    D3DKMT_HANDLE hDevice;
    D3DKMT_HANDLE hResource;
    const D3DKMT_HANDLE *phAllocationList;
    UINT AllocationCount;
    D3DDDICB_DESTROYALLOCATION2FLAGS Flags;
} D3DKMT_DESTROYALLOCATION2;

typedef struct _D3DDDICB_LOCK2FLAGS {
    union {
        D3DKMT_ANONYMOUS struct {
            UINT Reserved : 32;
        };
        UINT Value;
    };
} D3DDDICB_LOCK2FLAGS;

typedef struct _D3DKMT_LOCK2 {
    D3DKMT_HANDLE hDevice;
    D3DKMT_HANDLE hAllocation;
    D3DDDICB_LOCK2FLAGS Flags;
    PVOID pData;                            /* out: CPU mapping of the whole allocation */
} D3DKMT_LOCK2;

typedef struct _D3DKMT_UNLOCK2 {
    D3DKMT_HANDLE hDevice;
    D3DKMT_HANDLE hAllocation;
} D3DKMT_UNLOCK2;

/* ------------------------------------------------------------------------ */
/* Sharing and opening                                                      */
/* ------------------------------------------------------------------------ */

typedef struct _D3DKMT_QUERYRESOURCEINFOFROMNTHANDLE {
    D3DKMT_HANDLE hDevice;                  /* in */
    HANDLE hNtHandle;                       /* in: the shared handle (an fd) */
    VOID *pPrivateRuntimeData;              /* in: NULL to ask for the size */
    UINT PrivateRuntimeDataSize;            /* in/out */
    UINT TotalPrivateDriverDataSize;        /* out: bytes needed for every allocation's driver data */
    UINT ResourcePrivateDriverDataSize;     /* out */
    UINT NumAllocations;                    /* out */
} D3DKMT_QUERYRESOURCEINFOFROMNTHANDLE;

/* D3DKMTQueryResourceInfo: what opening a global handle takes. */
typedef struct _D3DKMT_QUERYRESOURCEINFO {
    D3DKMT_HANDLE hDevice;                  /* in */
    D3DKMT_HANDLE hGlobalShare;             /* in: the global handle */
    VOID *pPrivateRuntimeData;              /* in: never written */
    UINT PrivateRuntimeDataSize;            /* in/out: the runtime data's size */
    UINT TotalPrivateDriverDataSize;        /* out */
    UINT ResourcePrivateDriverDataSize;     /* out */
    UINT NumAllocations;                    /* out */
} D3DKMT_QUERYRESOURCEINFO;

/* D3DKMTOpenResource: one per allocation. */
typedef struct _D3DDDI_OPENALLOCATIONINFO {
    D3DKMT_HANDLE hAllocation;              /* out */
    const VOID *pPrivateDriverData;         /* in: receives the allocation's driver data, or NULL */
    UINT PrivateDriverDataSize;             /* in: its size */
} D3DDDI_OPENALLOCATIONINFO;

typedef struct _D3DDDI_OPENALLOCATIONINFO2 {
    D3DKMT_HANDLE hAllocation;              /* out */
    const VOID *pPrivateDriverData;         /* out: points into pTotalPrivateDriverDataBuffer */
    UINT PrivateDriverDataSize;             /* out */
    D3DGPU_VIRTUAL_ADDRESS GpuVirtualAddress;
    ULONG_PTR Reserved[6];
} D3DDDI_OPENALLOCATIONINFO2;

/* D3DKMTOpenResource (pOpenAllocationInfo) / D3DKMTOpenResource2
 * (pOpenAllocationInfo2): opens a global handle. */
typedef struct _D3DKMT_OPENRESOURCE {
    D3DKMT_HANDLE hDevice;                  /* in */
    D3DKMT_HANDLE hGlobalShare;             /* in: the global handle */
    UINT NumAllocations;                    /* in */
    union {
        D3DDDI_OPENALLOCATIONINFO *pOpenAllocationInfo;
        D3DDDI_OPENALLOCATIONINFO2 *pOpenAllocationInfo2;
    };
    VOID *pPrivateRuntimeData;              /* in: receives the runtime data */
    UINT PrivateRuntimeDataSize;            /* in/out */
    VOID *pResourcePrivateDriverData;
    UINT ResourcePrivateDriverDataSize;     /* in/out */
    VOID *pTotalPrivateDriverDataBuffer;
    UINT TotalPrivateDriverDataBufferSize;  /* in/out */
    D3DKMT_HANDLE hResource;                /* out */
} D3DKMT_OPENRESOURCE;

typedef struct _D3DKMT_OPENRESOURCEFROMNTHANDLE {
    D3DKMT_HANDLE hDevice;                  /* in */
    HANDLE hNtHandle;                       /* in */
    UINT NumAllocations;                    /* in: entries at pOpenAllocationInfo2 */
    D3DDDI_OPENALLOCATIONINFO2 *pOpenAllocationInfo2;
    UINT PrivateRuntimeDataSize;            /* in */
    VOID *pPrivateRuntimeData;              /* in: receives the runtime data */
    UINT ResourcePrivateDriverDataSize;     /* in */
    VOID *pResourcePrivateDriverData;       /* in: receives the resource driver data */
    UINT TotalPrivateDriverDataBufferSize;  /* in: buffer size; out: bytes written */
    VOID *pTotalPrivateDriverDataBuffer;    /* in: receives every allocation's driver data */
    D3DKMT_HANDLE hResource;                /* out */
    D3DKMT_HANDLE hKeyedMutex;              /* out: 0 if none was shared */
    VOID *pKeyedMutexPrivateRuntimeData;    /* in */
    UINT KeyedMutexPrivateRuntimeDataSize;  /* in */
    D3DKMT_HANDLE hSyncObject;              /* out: 0 if none was shared */
} D3DKMT_OPENRESOURCEFROMNTHANDLE;

typedef struct _D3DKMT_OPENNTHANDLEFROMNAME {
    DWORD dwDesiredAccess;
    OBJECT_ATTRIBUTES *pObjAttrib;
    HANDLE hNtHandle;                       /* out */
} D3DKMT_OPENNTHANDLEFROMNAME;

typedef struct _D3DKMT_OPENSYNCOBJECTNTHANDLEFROMNAME {
    DWORD dwDesiredAccess;
    OBJECT_ATTRIBUTES *pObjAttrib;
    HANDLE hNtHandle;                       /* out */
} D3DKMT_OPENSYNCOBJECTNTHANDLEFROMNAME;

/* ------------------------------------------------------------------------ */
/* Keyed mutexes                                                            */
/* ------------------------------------------------------------------------ */

/* The v1 keyed mutex calls: the v2 forms without private runtime data. */
typedef struct _D3DKMT_CREATEKEYEDMUTEX {
    UINT64 InitialValue;                    /* in: the key it starts released to */
    D3DKMT_HANDLE hSharedHandle;            /* out: global handle */
    D3DKMT_HANDLE hKeyedMutex;              /* out */
} D3DKMT_CREATEKEYEDMUTEX;

typedef struct _D3DKMT_OPENKEYEDMUTEX {
    D3DKMT_HANDLE hSharedHandle;            /* in: global handle */
    D3DKMT_HANDLE hKeyedMutex;              /* out */
} D3DKMT_OPENKEYEDMUTEX;

typedef struct _D3DKMT_ACQUIREKEYEDMUTEX {
    D3DKMT_HANDLE hKeyedMutex;              /* in */
    UINT64 Key;                             /* in */
    PLARGE_INTEGER pTimeout;                /* in: NT style, as D3DKMT_ACQUIREKEYEDMUTEX2 */
    UINT64 FenceValue;                      /* out */
} D3DKMT_ACQUIREKEYEDMUTEX;

typedef struct _D3DKMT_RELEASEKEYEDMUTEX {
    D3DKMT_HANDLE hKeyedMutex;              /* in */
    UINT64 Key;                             /* in: the key to release to */
    UINT64 FenceValue;                      /* in */
} D3DKMT_RELEASEKEYEDMUTEX;

typedef struct _D3DKMT_CREATEKEYEDMUTEX2_FLAGS {
    union {
        D3DKMT_ANONYMOUS struct {
            UINT NtSecuritySharing : 1;
            UINT Reserved : 31;
        };
        UINT Value;
    };
} D3DKMT_CREATEKEYEDMUTEX2_FLAGS;

typedef struct _D3DKMT_CREATEKEYEDMUTEX2 {
    UINT64 InitialValue;                    /* in: the key it starts released to */
    D3DKMT_HANDLE hSharedHandle;            /* out: 0 with NtSecuritySharing */
    D3DKMT_HANDLE hKeyedMutex;              /* out */
    VOID *pPrivateRuntimeData;              /* in */
    UINT PrivateRuntimeDataSize;
    D3DKMT_CREATEKEYEDMUTEX2_FLAGS Flags;
} D3DKMT_CREATEKEYEDMUTEX2;

typedef struct _D3DKMT_OPENKEYEDMUTEX2 {
    D3DKMT_HANDLE hSharedHandle;            /* in: global handle */
    D3DKMT_HANDLE hKeyedMutex;              /* out */
    VOID *pPrivateRuntimeData;
    UINT PrivateRuntimeDataSize;
} D3DKMT_OPENKEYEDMUTEX2;

typedef struct _D3DKMT_OPENKEYEDMUTEXFROMNTHANDLE {
    HANDLE hNtHandle;                       /* in */
    D3DKMT_HANDLE hKeyedMutex;              /* out */
    VOID *pPrivateRuntimeData;
    UINT PrivateRuntimeDataSize;
} D3DKMT_OPENKEYEDMUTEXFROMNTHANDLE;

typedef struct _D3DKMT_DESTROYKEYEDMUTEX {
    D3DKMT_HANDLE hKeyedMutex;
} D3DKMT_DESTROYKEYEDMUTEX;

/* pTimeout is NT style: NULL waits forever, a negative value is a relative
 * timeout in 100 ns units, 0 polls. */
typedef struct _D3DKMT_ACQUIREKEYEDMUTEX2 {
    D3DKMT_HANDLE hKeyedMutex;              /* in */
    UINT64 Key;                             /* in */
    PLARGE_INTEGER pTimeout;                /* in */
    UINT64 FenceValue;                      /* out */
    VOID *pPrivateRuntimeData;              /* out */
    UINT PrivateRuntimeDataSize;            /* in */
} D3DKMT_ACQUIREKEYEDMUTEX2;

typedef struct _D3DKMT_RELEASEKEYEDMUTEX2 {
    D3DKMT_HANDLE hKeyedMutex;              /* in */
    UINT64 Key;                             /* in: the key to release to */
    UINT64 FenceValue;                      /* in */
    VOID *pPrivateRuntimeData;              /* in */
    UINT PrivateRuntimeDataSize;            /* in */
} D3DKMT_RELEASEKEYEDMUTEX2;

/* ------------------------------------------------------------------------ */
/* Synchronization objects                                                  */
/* ------------------------------------------------------------------------ */

typedef enum _D3DDDI_SYNCHRONIZATIONOBJECT_TYPE {
    D3DDDI_SYNCHRONIZATION_MUTEX = 1,
    D3DDDI_SEMAPHORE = 2,
    D3DDDI_FENCE = 3,
    D3DDDI_CPU_NOTIFICATION = 4,
    D3DDDI_MONITORED_FENCE = 5,
    D3DDDI_PERIODIC_MONITORED_FENCE = 6,
    D3DDDI_NATIVE_FENCE = 7,
    D3DDDI_SYNCHRONIZATION_TYPE_LIMIT = 8
} D3DDDI_SYNCHRONIZATIONOBJECT_TYPE;

typedef struct _D3DDDI_SYNCHRONIZATIONOBJECT_FLAGS {
    union {
        D3DKMT_ANONYMOUS struct {
            UINT Shared : 1;
            UINT NtSecuritySharing : 1;
            UINT CrossAdapter : 1;
            UINT TopOfPipeline : 1;
            UINT NoSignal : 1;
            UINT NoWait : 1;
            UINT NoSignalMaxValueOnTdr : 1;
            UINT NoGPUAccess : 1;
            UINT SignalByKmd : 1;
            UINT Unused : 1;
            UINT UnwaitCpuWaitersOnlyOnDestroy : 1;
            UINT Reserved : 20;
            UINT Reserved0 : 1;     /* D3DDDI_SYNCHRONIZATIONOBJECT_FLAGS_RESERVED0 */
        };
        UINT Value;
    };
} D3DDDI_SYNCHRONIZATIONOBJECT_FLAGS;

typedef struct _D3DDDI_SYNCHRONIZATIONOBJECTINFO2 {
    D3DDDI_SYNCHRONIZATIONOBJECT_TYPE Type;     /* in */
    D3DDDI_SYNCHRONIZATIONOBJECT_FLAGS Flags;   /* in */
    union {
        struct {
            BOOL InitialState;
        } SynchronizationMutex;
        struct {
            UINT MaxCount;
            UINT InitialCount;
        } Semaphore;
        struct {
            UINT64 FenceValue;
        } Fence;
        struct {
            HANDLE Event;
        } CPUNotification;
        struct {
            UINT64 InitialFenceValue;                   /* in */
            VOID *FenceValueCPUVirtualAddress;          /* out */
            D3DGPU_VIRTUAL_ADDRESS FenceValueGPUVirtualAddress; /* out */
            UINT EngineAffinity;                        /* in */
            UINT Padding;
        } MonitoredFence;
        struct {
            D3DKMT_HANDLE hAdapter;
            D3DDDI_VIDEO_PRESENT_TARGET_ID VidPnTargetId;
            UINT64 Time;
            VOID *FenceValueCPUVirtualAddress;
            D3DGPU_VIRTUAL_ADDRESS FenceValueGPUVirtualAddress;
            UINT EngineAffinity;
            UINT Padding;
        } PeriodicMonitoredFence;
        struct {
            UINT64 Reserved[8];
        } Reserved;
    };
    D3DKMT_HANDLE SharedHandle;                 /* out: 0 with NtSecuritySharing */
} D3DDDI_SYNCHRONIZATIONOBJECTINFO2;

/* D3DKMTCreateSynchronizationObject (v1): only D3DDDI_SYNCHRONIZATION_MUTEX and
 * D3DDDI_SEMAPHORE, as on Windows. */
typedef struct _D3DDDI_SYNCHRONIZATIONOBJECTINFO {
    D3DDDI_SYNCHRONIZATIONOBJECT_TYPE Type;     /* in */
    union {
        struct {
            BOOL InitialState;
        } SynchronizationMutex;
        struct {
            UINT MaxCount;
            UINT InitialCount;
        } Semaphore;
        struct {
            UINT Reserved[16];
        } Reserved;
    };
} D3DDDI_SYNCHRONIZATIONOBJECTINFO;

typedef struct _D3DKMT_CREATESYNCHRONIZATIONOBJECT {
    D3DKMT_HANDLE hDevice;                      /* in */
    D3DDDI_SYNCHRONIZATIONOBJECTINFO Info;      /* in */
    D3DKMT_HANDLE hSyncObject;                  /* out */
} D3DKMT_CREATESYNCHRONIZATIONOBJECT;

typedef struct _D3DKMT_CREATESYNCHRONIZATIONOBJECT2 {
    D3DKMT_HANDLE hDevice;                      /* in */
    D3DDDI_SYNCHRONIZATIONOBJECTINFO2 Info;     /* in/out */
    D3DKMT_HANDLE hSyncObject;                  /* out */
} D3DKMT_CREATESYNCHRONIZATIONOBJECT2;

/* D3DKMTOpenSynchronizationObject: opens a sync object's global handle. */
typedef struct _D3DKMT_OPENSYNCHRONIZATIONOBJECT {
    D3DKMT_HANDLE hSharedHandle;
    D3DKMT_HANDLE hSyncObject;
    UINT64 Reserved[8];
} D3DKMT_OPENSYNCHRONIZATIONOBJECT;

typedef struct _D3DKMT_OPENSYNCOBJECTFROMNTHANDLE {
    HANDLE hNtHandle;                           /* in */
    D3DKMT_HANDLE hSyncObject;                  /* out */
} D3DKMT_OPENSYNCOBJECTFROMNTHANDLE;

typedef struct _D3DKMT_OPENSYNCOBJECTFROMNTHANDLE2 {
    HANDLE hNtHandle;                           /* in */
    D3DKMT_HANDLE hDevice;                      /* in */
    D3DDDI_SYNCHRONIZATIONOBJECT_FLAGS Flags;   /* in */
    D3DKMT_HANDLE hSyncObject;                  /* out */
    union {
        struct {
            VOID *FenceValueCPUVirtualAddress;              /* out */
            D3DGPU_VIRTUAL_ADDRESS FenceValueGPUVirtualAddress; /* out */
            UINT EngineAffinity;                            /* in */
        } MonitoredFence;
        UINT64 Reserved[8];
    };
} D3DKMT_OPENSYNCOBJECTFROMNTHANDLE2;

typedef struct _D3DKMT_DESTROYSYNCHRONIZATIONOBJECT {
    D3DKMT_HANDLE hSyncObject;
} D3DKMT_DESTROYSYNCHRONIZATIONOBJECT;

typedef struct _D3DDDICB_SIGNALFLAGS {
    union {
        D3DKMT_ANONYMOUS struct {
            UINT SignalAtSubmission : 1;
            UINT EnqueueCpuEvent : 1;
            UINT AllowFenceRewind : 1;
            UINT Reserved : 28;
            UINT DXGK_SIGNAL_FLAG_INTERNAL0 : 1;
        };
        UINT Value;
    };
} D3DDDICB_SIGNALFLAGS;

typedef struct _D3DKMT_SIGNALSYNCHRONIZATIONOBJECTFROMCPU {
    D3DKMT_HANDLE hDevice;
    UINT ObjectCount;                           /* <= D3DDDI_MAX_OBJECT_SIGNALED */
    const D3DKMT_HANDLE *ObjectHandleArray;
    const UINT64 *FenceValueArray;
    D3DDDICB_SIGNALFLAGS Flags;
} D3DKMT_SIGNALSYNCHRONIZATIONOBJECTFROMCPU;

typedef struct _D3DDDI_WAITFORSYNCHRONIZATIONOBJECTFROMCPU_FLAGS {
    union {
        D3DKMT_ANONYMOUS struct {
            UINT WaitAny : 1;
            UINT Reserved : 31;
        };
        UINT Value;
    };
} D3DDDI_WAITFORSYNCHRONIZATIONOBJECTFROMCPU_FLAGS;

/* hAsyncEvent: NULL blocks until the condition holds. On Linux a non-NULL
 * value holds an eventfd descriptor ((HANDLE)(intptr_t)efd) that becomes
 * readable when the condition holds; the call then returns at once. */
typedef struct _D3DKMT_WAITFORSYNCHRONIZATIONOBJECTFROMCPU {
    D3DKMT_HANDLE hDevice;
    UINT ObjectCount;                           /* <= D3DDDI_MAX_OBJECT_WAITED_ON */
    const D3DKMT_HANDLE *ObjectHandleArray;
    const UINT64 *FenceValueArray;
    HANDLE hAsyncEvent;
    D3DDDI_WAITFORSYNCHRONIZATIONOBJECTFROMCPU_FLAGS Flags;
} D3DKMT_WAITFORSYNCHRONIZATIONOBJECTFROMCPU;

/* ------------------------------------------------------------------------ */
/* Escapes                                                                  */
/* ------------------------------------------------------------------------ */

typedef enum _D3DKMT_ESCAPETYPE {
    D3DKMT_ESCAPE_DRIVERPRIVATE = 0,
    /* Wine's extension, used by DXVK and vkd3d-proton: hContext is a local
     * resource handle, pPrivateDriverData/PrivateDriverDataSize its new runtime
     * private data (0 bytes clears it). Written as an unsigned-int cast so that
     * the enum keeps Microsoft's int-sized layout. */
    D3DKMT_ESCAPE_UPDATE_RESOURCE_WINE = (int)0x80000000u
} D3DKMT_ESCAPETYPE;

typedef struct _D3DDDI_ESCAPEFLAGS {
    union {
        D3DKMT_ANONYMOUS struct {
            UINT HardwareAccess : 1;
            UINT DeviceStatusQuery : 1;
            UINT ChangeFrameLatency : 1;
            UINT NoAdapterSynchronization : 1;
            UINT Reserved : 1;
            UINT VirtualMachineData : 1;
            UINT DriverKnownEscape : 1;
            UINT DriverCommonEscape : 1;
            UINT Reserved2 : 24;
        };
        UINT Value;
    };
} D3DDDI_ESCAPEFLAGS;

typedef struct _D3DKMT_ESCAPE {
    D3DKMT_HANDLE hAdapter;
    D3DKMT_HANDLE hDevice;
    D3DKMT_ESCAPETYPE Type;
    D3DDDI_ESCAPEFLAGS Flags;
    VOID *pPrivateDriverData;
    UINT PrivateDriverDataSize;
    D3DKMT_HANDLE hContext;
} D3DKMT_ESCAPE;

/* ------------------------------------------------------------------------ */
/* Linux extensions                                                         */
/* ------------------------------------------------------------------------ */

/* KMTQAITYPE_LINUX_DRM_INFO (declared in KMTQUERYADAPTERINFOTYPE above):
 * D3DKMTQueryAdapterInfo fills a D3DKMT_LINUX_ADAPTER_INFO. Strings are
 * NUL-terminated UTF-8 and empty when not applicable. */
#define D3DKMT_LINUX_ADAPTER_INFO_VERSION   1

#define D3DKMT_LINUX_ADAPTER_SOFTWARE           0x00000001u /* the memfd software adapter */
#define D3DKMT_LINUX_ADAPTER_PRIME              0x00000002u /* buffers are shared as dma-bufs */
#define D3DKMT_LINUX_ADAPTER_SYNCOBJ             0x00000004u /* DRM syncobjs */
#define D3DKMT_LINUX_ADAPTER_SYNCOBJ_TIMELINE    0x00000008u /* timeline syncobjs */
#define D3DKMT_LINUX_ADAPTER_SYNCOBJ_EVENTFD     0x00000010u /* DRM_IOCTL_SYNCOBJ_EVENTFD */
#define D3DKMT_LINUX_ADAPTER_VIRGL_3D            0x00000020u /* virtio-gpu with virgl 3D
                                                                (VIRTGPU_PARAM_3D_FEATURES) */

typedef struct _D3DKMT_LINUX_ADAPTER_INFO {
    UINT Version;           /* out: D3DKMT_LINUX_ADAPTER_INFO_VERSION */
    UINT Flags;             /* out: D3DKMT_LINUX_ADAPTER_* */
    char DriverName[64];    /* e.g. "virtio_gpu", "i915", "software" */
    char RenderNode[64];    /* e.g. "/dev/dri/renderD128" */
    char PrimaryNode[64];   /* e.g. "/dev/dri/card0" */
    char BusInfo[64];       /* "pci:0000:00:02.0", "platform:...", or "software" */
    UINT VendorId;          /* PCI ids, 0 when not a PCI device */
    UINT DeviceId;
} D3DKMT_LINUX_ADAPTER_INFO;

/* Every allocation's pPrivateDriverData on create (D3DDDI_ALLOCATIONINFO and
 * D3DDDI_ALLOCATIONINFO2) begins with this descriptor: it is the library's
 * input (we are the driver), saying how big the buffer is and which dma-buf to
 * wrap. Bytes past sizeof(D3DKMT_LINUX_ALLOCATION_DESC) are the runtime's own
 * driver data: they, and only they, are what openers receive in
 * D3DDDI_OPENALLOCATIONINFO2 and what TotalPrivateDriverDataSize counts, so an
 * opener that expects no driver data may pass a 0-byte buffer, as on Windows.
 * An opener learns each allocation's layout with
 * D3DKMTLinuxQueryAllocationDesc. */
#define D3DKMT_LINUX_ALLOCATION_DESC_VERSION 1

typedef struct _D3DKMT_LINUX_ALLOCATION_DESC {
    UINT   Version;     /* D3DKMT_LINUX_ALLOCATION_DESC_VERSION */
    UINT   Flags;       /* reserved, 0 */
    UINT64 Size;        /* bytes; 0 = Height * Stride */
    UINT   Width;       /* pixels (informational) */
    UINT   Height;      /* rows */
    UINT   Stride;      /* bytes per row; 0 = Width * 4 when Fourcc is a 32-bit format */
    UINT   Fourcc;      /* DRM_FORMAT_* (drm_fourcc.h), 0 for a plain buffer */
    UINT64 Modifier;    /* DRM_FORMAT_MOD_*; DRM_FORMAT_MOD_LINEAR = 0 */
    INT    DmaBufFd;    /* -1: the library allocates; >= 0: wrap this dma-buf fd
                           (the library dups it, the caller keeps its fd).
                           Returned as -1 by D3DKMTLinuxQueryAllocationDesc. */
    UINT   Reserved;    /* 0 */
} D3DKMT_LINUX_ALLOCATION_DESC;

/* Version 2 of the allocation descriptor: the v1 fields, then up to four
 * planes and a data offset, for images a real runtime imports into EGL or
 * Vulkan (multi-planar NV12/P010, or a layout a driver chose). On create,
 * pPrivateDriverData may begin with either version (Version says which; the
 * runtime's own bytes follow the descriptor's size); a new allocation's Planes
 * and DataOffset must be 0 (the allocator chooses: through GBM, the driver's
 * stride, modifier and planes, which D3DKMTLinuxQueryAllocationDesc2 returns),
 * a wrapped one says where its planes and bytes are. Modifier
 * DRM_FORMAT_MOD_INVALID on create lets the driver choose the tiling. */
#define D3DKMT_LINUX_ALLOCATION_DESC_VERSION_2 2
#define D3DKMT_LINUX_MAX_PLANES 4

typedef struct _D3DKMT_LINUX_ALLOCATION_PLANE {
    UINT Offset;        /* bytes from the start of the buffer (EGL_DMA_BUF_PLANEn_OFFSET_EXT) */
    UINT Stride;        /* bytes per row (EGL_DMA_BUF_PLANEn_PITCH_EXT) */
} D3DKMT_LINUX_ALLOCATION_PLANE;

typedef struct _D3DKMT_LINUX_ALLOCATION_DESC2 {
    UINT   Version;     /* D3DKMT_LINUX_ALLOCATION_DESC_VERSION_2 */
    UINT   Flags;       /* reserved, 0 */
    UINT64 Size;        /* bytes from DataOffset; 0 = what Width, Height, Stride and Fourcc need */
    UINT   Width;
    UINT   Height;
    UINT   Stride;      /* plane 0's stride */
    UINT   Fourcc;      /* DRM_FORMAT_*: also DRM_FORMAT_NV12, DRM_FORMAT_P010 */
    UINT64 Modifier;
    INT    DmaBufFd;    /* as in D3DKMT_LINUX_ALLOCATION_DESC */
    UINT   PlaneCount;  /* 0: one plane at offset 0 with Stride; else 1..4 entries of Planes */
    UINT64 DataOffset;  /* where the allocation's bytes begin in a wrapped buffer (Lock2 maps from
                           there): e.g. 4096 for lavapipe's OPAQUE_FD memory. 0 for new ones */
    D3DKMT_LINUX_ALLOCATION_PLANE Planes[D3DKMT_LINUX_MAX_PLANES];
    UINT64 Reserved[2]; /* 0 */
} D3DKMT_LINUX_ALLOCATION_DESC2;

/* The file descriptor a shared NT handle holds, and back. */
static inline int D3DKMTLinuxHandleToFd(HANDLE h)
{
    return (int)(intptr_t)h;
}

static inline HANDLE D3DKMTLinuxFdToHandle(int fd)
{
    return (HANDLE)(intptr_t)fd;
}

/* ------------------------------------------------------------------------ */
/* Functions                                                                */
/* ------------------------------------------------------------------------ */

/* Adapters. (EnumAdapters2, OpenAdapterFromLuid and QueryAdapterInfo take a
 * const pointer, as Microsoft declares them, although they write results
 * through it.) */
NTSTATUS APIENTRY D3DKMTEnumAdapters2(const D3DKMT_ENUMADAPTERS2 *pData);
NTSTATUS APIENTRY D3DKMTOpenAdapterFromLuid(const D3DKMT_OPENADAPTERFROMLUID *pData);
NTSTATUS APIENTRY D3DKMTCloseAdapter(const D3DKMT_CLOSEADAPTER *pData);
NTSTATUS APIENTRY D3DKMTQueryAdapterInfo(const D3DKMT_QUERYADAPTERINFO *pData);

/* Devices */
NTSTATUS APIENTRY D3DKMTCreateDevice(D3DKMT_CREATEDEVICE *pData);
NTSTATUS APIENTRY D3DKMTDestroyDevice(const D3DKMT_DESTROYDEVICE *pData);

/* Allocations */
NTSTATUS APIENTRY D3DKMTCreateAllocation(D3DKMT_CREATEALLOCATION *pData);
NTSTATUS APIENTRY D3DKMTCreateAllocation2(D3DKMT_CREATEALLOCATION *pData);
NTSTATUS APIENTRY D3DKMTDestroyAllocation(const D3DKMT_DESTROYALLOCATION *pData);
NTSTATUS APIENTRY D3DKMTDestroyAllocation2(const D3DKMT_DESTROYALLOCATION2 *pData);
NTSTATUS APIENTRY D3DKMTLock2(D3DKMT_LOCK2 *pData);
NTSTATUS APIENTRY D3DKMTUnlock2(const D3DKMT_UNLOCK2 *pData);

/* Sharing and opening */
NTSTATUS APIENTRY D3DKMTShareObjects(UINT cObjects, const D3DKMT_HANDLE *hObjects,
                                     POBJECT_ATTRIBUTES pObjectAttributes,
                                     DWORD dwDesiredAccess, HANDLE *phSharedNtHandle);
NTSTATUS APIENTRY D3DKMTQueryResourceInfoFromNtHandle(D3DKMT_QUERYRESOURCEINFOFROMNTHANDLE *pData);
NTSTATUS APIENTRY D3DKMTOpenResourceFromNtHandle(D3DKMT_OPENRESOURCEFROMNTHANDLE *pData);
NTSTATUS APIENTRY D3DKMTOpenNtHandleFromName(D3DKMT_OPENNTHANDLEFROMNAME *pData);
/* Global (KMT) handles: values valid in every process of the same user while
 * some process holds the object (see the README, "Global share handles"). */
NTSTATUS APIENTRY D3DKMTQueryResourceInfo(D3DKMT_QUERYRESOURCEINFO *pData);
NTSTATUS APIENTRY D3DKMTOpenResource(D3DKMT_OPENRESOURCE *pData);
NTSTATUS APIENTRY D3DKMTOpenResource2(D3DKMT_OPENRESOURCE *pData);
NTSTATUS APIENTRY D3DKMTOpenSyncObjectNtHandleFromName(D3DKMT_OPENSYNCOBJECTNTHANDLEFROMNAME *pData);

/* Keyed mutexes */
NTSTATUS APIENTRY D3DKMTCreateKeyedMutex(D3DKMT_CREATEKEYEDMUTEX *pData);
NTSTATUS APIENTRY D3DKMTCreateKeyedMutex2(D3DKMT_CREATEKEYEDMUTEX2 *pData);
NTSTATUS APIENTRY D3DKMTOpenKeyedMutex(D3DKMT_OPENKEYEDMUTEX *pData);
NTSTATUS APIENTRY D3DKMTOpenKeyedMutex2(D3DKMT_OPENKEYEDMUTEX2 *pData);
NTSTATUS APIENTRY D3DKMTOpenKeyedMutexFromNtHandle(D3DKMT_OPENKEYEDMUTEXFROMNTHANDLE *pData);
NTSTATUS APIENTRY D3DKMTDestroyKeyedMutex(const D3DKMT_DESTROYKEYEDMUTEX *pData);
NTSTATUS APIENTRY D3DKMTAcquireKeyedMutex(D3DKMT_ACQUIREKEYEDMUTEX *pData);
NTSTATUS APIENTRY D3DKMTAcquireKeyedMutex2(D3DKMT_ACQUIREKEYEDMUTEX2 *pData);
NTSTATUS APIENTRY D3DKMTReleaseKeyedMutex(D3DKMT_RELEASEKEYEDMUTEX *pData);
NTSTATUS APIENTRY D3DKMTReleaseKeyedMutex2(D3DKMT_RELEASEKEYEDMUTEX2 *pData);

/* Synchronization objects */
NTSTATUS APIENTRY D3DKMTCreateSynchronizationObject(D3DKMT_CREATESYNCHRONIZATIONOBJECT *pData);
NTSTATUS APIENTRY D3DKMTCreateSynchronizationObject2(D3DKMT_CREATESYNCHRONIZATIONOBJECT2 *pData);
NTSTATUS APIENTRY D3DKMTOpenSyncObjectFromNtHandle(D3DKMT_OPENSYNCOBJECTFROMNTHANDLE *pData);
NTSTATUS APIENTRY D3DKMTOpenSyncObjectFromNtHandle2(D3DKMT_OPENSYNCOBJECTFROMNTHANDLE2 *pData);
NTSTATUS APIENTRY D3DKMTOpenSynchronizationObject(D3DKMT_OPENSYNCHRONIZATIONOBJECT *pData);
NTSTATUS APIENTRY D3DKMTDestroySynchronizationObject(const D3DKMT_DESTROYSYNCHRONIZATIONOBJECT *pData);
NTSTATUS APIENTRY D3DKMTSignalSynchronizationObjectFromCpu(const D3DKMT_SIGNALSYNCHRONIZATIONOBJECTFROMCPU *pData);
NTSTATUS APIENTRY D3DKMTWaitForSynchronizationObjectFromCpu(const D3DKMT_WAITFORSYNCHRONIZATIONOBJECTFROMCPU *pData);

/* Escapes: D3DKMT_ESCAPE_UPDATE_RESOURCE_WINE; every other type returns
 * STATUS_NOT_SUPPORTED. */
NTSTATUS APIENTRY D3DKMTEscape(const D3DKMT_ESCAPE *pData);

/* Linux extensions */

/* Why the calling thread's last failing D3DKMT call failed: "D3DKMTName failed:
 * STATUS_... (0x...): reason", NUL-terminated and cut to BufferSize bytes.
 * Returns the message's full length without the NUL (0 when no call has failed
 * on this thread). pBuffer may be NULL with BufferSize 0. Set D3DKMT_DEBUG=1 to
 * have every failure reported on stderr, D3DKMT_DEBUG=calls for every call. */
UINT APIENTRY D3DKMTLinuxGetLastFailure(char *pBuffer, UINT BufferSize);

/* Returns in *pFd a new close-on-exec dma-buf fd for the allocation (for
 * Vulkan/GL import: VK_EXT_external_memory_dma_buf, EGL_EXT_image_dma_buf_import).
 * The caller owns and closes it. */
NTSTATUS APIENTRY D3DKMTLinuxExportAllocationDmaBuf(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE hAllocation,
                                                    int *pFd);

/* Returns in *pDesc the allocation's layout as its creator described it
 * (Size resolved, Width, Height, Stride, Fourcc, Modifier; DmaBufFd = -1): on
 * an opened allocation, what the sharer created. */
NTSTATUS APIENTRY D3DKMTLinuxQueryAllocationDesc(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE hAllocation,
                                                 D3DKMT_LINUX_ALLOCATION_DESC *pDesc);

/* Returns in *pSize the allocation's size in bytes. */
NTSTATUS APIENTRY D3DKMTLinuxQueryAllocationSize(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE hAllocation,
                                                 UINT64 *pSize);

/* Returns in *pFd a new close-on-exec DRM syncobj fd for a sync object (a
 * timeline: import it into Vulkan as a VK_EXTERNAL_SEMAPHORE_HANDLE_TYPE_OPAQUE_FD
 * timeline semaphore). STATUS_NOT_SUPPORTED for a software sync object. */
NTSTATUS APIENTRY D3DKMTLinuxExportSyncObjectFd(D3DKMT_HANDLE hSyncObject, int *pFd);

/* Returns in *pFd a sync_file that signals when the sync object reaches
 * FenceValue. STATUS_INVALID_PARAMETER when nothing was submitted for that value
 * yet; STATUS_NOT_SUPPORTED for a software sync object. */
NTSTATUS APIENTRY D3DKMTLinuxExportSyncFile(D3DKMT_HANDLE hSyncObject, UINT64 FenceValue, int *pFd);

#define D3DKMT_LINUX_IMPORT_SYNCOBJ     0u  /* Fd is a timeline DRM syncobj */
#define D3DKMT_LINUX_IMPORT_SYNC_FILE   1u  /* Fd is a sync_file: the fence reaches 1 when it signals */

/* Creates a D3DDDI_FENCE sync object on hDevice from a DRM syncobj fd or a
 * sync_file (Kind: D3DKMT_LINUX_IMPORT_*). The library duplicates what it needs;
 * the caller keeps and closes Fd. */
NTSTATUS APIENTRY D3DKMTLinuxImportSyncObjectFd(D3DKMT_HANDLE hDevice, int Fd, UINT Kind,
                                                D3DKMT_HANDLE *phSyncObject);

/* Returns in *pFd a new close-on-exec fd for the keyed mutex's DRM timeline
 * syncobj: FenceValue of Acquire/Release are points on it. STATUS_NOT_SUPPORTED
 * when the machine had no DRM device with timeline syncobjs at creation. */
NTSTATUS APIENTRY D3DKMTLinuxExportKeyedMutexTimelineFd(D3DKMT_HANDLE hKeyedMutex, int *pFd);

/* Linux extensions of version 1.1 (symbol version D3DKMT_1.1) */

/* Returns in *pDesc the allocation's layout in version 2: as
 * D3DKMTLinuxQueryAllocationDesc, with the planes (PlaneCount >= 1) and data
 * offset; for an allocation made through GBM, the stride, modifier and planes
 * GBM chose. The opener of a shared allocation gets the same. */
NTSTATUS APIENTRY D3DKMTLinuxQueryAllocationDesc2(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE hAllocation,
                                                  D3DKMT_LINUX_ALLOCATION_DESC2 *pDesc);

/* GPU signal (the Linux counterpart of D3DKMTSignalSynchronizationObjectFromGpu):
 * the sync object reaches FenceValue when SyncFileFd's fence signals (GPU work
 * done: an EGL_ANDROID_native_fence_sync fd, a Vulkan SYNC_FD export, an
 * execbuffer out-fence). Returns at once: the CPU does not wait; CPU waiters in
 * any process wake when the fence signals. The caller keeps SyncFileFd.
 * STATUS_INVALID_PARAMETER when FenceValue is not above every value already
 * signalled or submitted, or SyncFileFd is not a sync_file; STATUS_NOT_SUPPORTED
 * for a software sync object (it has no kernel timeline). */
NTSTATUS APIENTRY D3DKMTLinuxSignalSyncObjectFromSyncFile(D3DKMT_HANDLE hSyncObject, UINT64 FenceValue,
                                                          int SyncFileFd);

/* The keyed mutex's timeline reaches FenceValue when SyncFileFd's fence signals:
 * call it with the fence of the GPU work that used the resource, then
 * D3DKMTReleaseKeyedMutex2 with the same FenceValue. hDevice is a DRM device
 * (the timeline is used through it). Statuses as
 * D3DKMTLinuxSignalSyncObjectFromSyncFile; STATUS_NOT_SUPPORTED when the mutex has
 * no timeline or hDevice is the software adapter's. */
NTSTATUS APIENTRY D3DKMTLinuxSignalKeyedMutexFromSyncFile(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE hKeyedMutex,
                                                          UINT64 FenceValue, int SyncFileFd);

/* Returns in *pFd a sync_file that signals when the keyed mutex's timeline
 * reaches FenceValue (what D3DKMTAcquireKeyedMutex2 returned), for the GPU
 * work of the new owner to wait on (EGL_SYNC_NATIVE_FENCE_ANDROID +
 * eglWaitSyncKHR, a Vulkan SYNC_FD import). The caller owns it.
 * STATUS_INVALID_PARAMETER when nothing was submitted for FenceValue. */
NTSTATUS APIENTRY D3DKMTLinuxExportKeyedMutexSyncFile(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE hKeyedMutex,
                                                      UINT64 FenceValue, int *pFd);

#if defined(__cplusplus) && defined(__clang__)
#pragma clang diagnostic pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* D3DKMTHK_LINUX_H */

// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "D3DKMT",
    products: [
        // The Swift API.
        .library(name: "D3DKMT", targets: ["D3DKMT"]),
        // The C ABI: libd3dkmt.so + <d3dkmthk.h>.
        .library(name: "d3dkmt", type: .dynamic, targets: ["D3DKMTCABI"]),
        // The command-line tool.
        .executable(name: "kmt", targets: ["kmt"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // libdrm, found through pkg-config.
        .systemLibrary(
            name: "CLibDRM",
            path: "CShims/CLibDRM",
            pkgConfig: "libdrm",
            providers: [.apt(["libdrm-dev"])]
        ),
        // The little C that Swift cannot import: ioctl request numbers, CMSG_* helpers, futex, and
        // what glibc declares only under _GNU_SOURCE (memfd_create, accept4, seals).
        .target(
            name: "CKMTShims",
            dependencies: ["CLibDRM"],
            path: "CShims/KMTShims",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        // Core, kernel layer, DRM and software backends, Swift API.
        .target(
            name: "D3DKMT",
            dependencies: ["CKMTShims", "CLibDRM"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // The C header <d3dkmthk.h> (Microsoft's names and layouts on Linux base types).
        .target(name: "CD3DKMT"),
        // The C ABI, implemented in Swift against the header with @c @implementation.
        .target(
            name: "D3DKMTCABI",
            dependencies: ["D3DKMT", "CD3DKMT"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "kmt",
            dependencies: [
                "D3DKMT",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // The second process the tests spawn.
        .executableTarget(
            name: "KMTTestPeer",
            dependencies: ["D3DKMT", "KMTTestSupport"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // Test-only kernel calls (vgem fences), kept out of the library.
        .target(
            name: "CKMTTestSupport",
            dependencies: ["CLibDRM"],
            path: "Tests/CKMTTestSupport"
        ),
        .target(
            name: "KMTTestSupport",
            dependencies: ["D3DKMT", "CKMTTestSupport"],
            path: "Tests/KMTTestSupport",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .testTarget(
            name: "D3DKMTTests",
            dependencies: ["D3DKMT", "D3DKMTCABI", "CD3DKMT", "KMTTestSupport"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)

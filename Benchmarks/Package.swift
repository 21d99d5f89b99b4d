// swift-tools-version: 6.1
// The benchmark harness (issue #6): a package of its own, so that nothing it needs enters the
// library's package graph. It depends on the library by path.
//
//   swift build -c release --package-path Benchmarks --scratch-path .build-bench
//   scripts/bench            (builds this, runs it on the host and in the VM guest)
import PackageDescription

// SwiftPM names a package depended on by path after its directory: the checkout's name.
let library = Context.packageDirectory.split(separator: "/").dropLast().last.map(String.init) ?? "main"

let package = Package(
    name: "D3DKMTBenchmarks",
    products: [
        .executable(name: "kmt-bench", targets: ["kmt-bench"]),
    ],
    dependencies: [
        .package(path: ".."),
    ],
    targets: [
        // libdrm for the raw primitives (the library's own CLibDRM target is not a product).
        .systemLibrary(
            name: "CBenchLibDRM",
            path: "Sources/CBenchLibDRM",
            pkgConfig: "libdrm",
            providers: [.apt(["libdrm-dev"])]
        ),
        // The raw primitives each benchmark is compared with, in plain C: futex, SCM_RIGHTS,
        // pipes, memfd, PRIME, DRM syncobjs, GBM.
        // GBM (Mesa's libgbm) for the raw side of gbm-allocate-share.
        .target(name: "CBenchSupport", dependencies: ["CBenchLibDRM"], linkerSettings: [.linkedLibrary("gbm")]),
        .executableTarget(
            name: "kmt-bench",
            dependencies: [
                "CBenchSupport",
                .product(name: "D3DKMT", package: library),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)

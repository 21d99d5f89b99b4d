// swift-tools-version: 6.1
// The fuzz target for the share package parser and the entry points that read a shared handle: a
// package of its own, so that nothing it needs enters the library's package graph. It depends on
// the library by path and uses its internals (`@testable import D3DKMT`), so it is built with
// testing enabled and with libFuzzer:
//
//   swift build --package-path Fuzz -c debug --scratch-path .build-fuzz \
//       -Xswiftc -enable-testing -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
//   scripts/fuzz [SECONDS]         (builds this, seeds the corpus, runs it for a bounded time)
import PackageDescription

// The library is the package one directory up; SwiftPM names a path dependency after its
// directory (the clone's name), so that name is looked up rather than written down.
let library = String(Context.packageDirectory.split(separator: "/").dropLast().last ?? "main").lowercased()

let package = Package(
    name: "D3DKMTFuzz",
    products: [
        .executable(name: "kmt-fuzz", targets: ["kmt-fuzz"]),
    ],
    dependencies: [
        .package(path: ".."),
    ],
    targets: [
        // The little C the harness needs to forge handles: SCM_RIGHTS, memfd seals, eventfd.
        .target(name: "CFuzzSupport"),
        .executableTarget(
            name: "kmt-fuzz",
            dependencies: [
                "CFuzzSupport",
                .product(name: "D3DKMT", package: library),
                .product(name: "d3dkmt", package: library),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)

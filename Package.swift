// swift-tools-version: 6.2
// SPDX-License-Identifier: Apache-2.0
//
// The Swift client of vmnet-broker. This manifest sits at the repository
// root because SwiftPM resolves a remote package only from there; the
// sources live under swift/. The package builds only on macOS 26 (it uses
// libxpc), and nobody has built it yet: see swift/README.md.

import PackageDescription

let package = Package(
    name: "VmnetBroker",
    platforms: [.macOS(.v26)],
    products: [
        .library(name: "VmnetBroker", targets: ["VmnetBroker"]),
        .library(name: "vmnet_broker", targets: ["vmnet_broker"]),
    ],
    targets: [
        // The libxpc client, in C. Its include/ directory is the public
        // header. The module is named `vmnet_broker`, as the original's, so
        // that programs written for it (`import vmnet_broker`) build
        // unchanged.
        .target(
            name: "vmnet_broker",
            path: "swift/Sources/vmnet_broker"
        ),
        .target(
            name: "VmnetBroker",
            dependencies: ["vmnet_broker"],
            path: "swift/Sources/VmnetBroker"
        ),
        .testTarget(
            name: "VmnetBrokerTests",
            dependencies: ["VmnetBroker", "vmnet_broker"],
            path: "swift/Tests/VmnetBrokerTests"
        ),
    ]
)

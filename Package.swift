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
        .library(name: "VmnetBroker", targets: ["VmnetBroker"])
    ],
    targets: [
        // The libxpc client, in C. Its include/ directory is the public header.
        .target(
            name: "CVmnetBroker",
            path: "swift/Sources/CVmnetBroker"
        ),
        .target(
            name: "VmnetBroker",
            dependencies: ["CVmnetBroker"],
            path: "swift/Sources/VmnetBroker"
        ),
        .testTarget(
            name: "VmnetBrokerTests",
            dependencies: ["VmnetBroker"],
            path: "swift/Tests/VmnetBrokerTests"
        ),
    ]
)

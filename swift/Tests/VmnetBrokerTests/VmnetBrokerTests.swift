// SPDX-License-Identifier: Apache-2.0
//
// Run with `swift test` on macOS 26. The tests in BrokerTests need the broker
// installed as a launchd daemon (com.github.nirs.vmnet-broker) with its
// default configuration; they are skipped when its launchd plist is absent.

import Foundation
import Testing
import VmnetBroker
import vmnet
import vmnet_broker

@Suite struct ErrorTests {
    @Test func namedStatusesHaveTheProtocolNumbers() {
        #expect(VmnetBroker.Error.xpcFailure.status == VMNET_BROKER_XPC_FAILURE)
        #expect(VmnetBroker.Error.invalidReply.status.rawValue == 2)
        #expect(VmnetBroker.Error.notAllowed.status.rawValue == 3)
        #expect(VmnetBroker.Error.invalidRequest.status.rawValue == 4)
        #expect(VmnetBroker.Error.notFound.status == VMNET_BROKER_NOT_FOUND)
        #expect(VmnetBroker.Error.createFailure.status.rawValue == 6)
        #expect(VmnetBroker.Error.internalError.status.rawValue == 7)
    }

    // The original client's strerror texts ("strerror" in
    // testdata/protocol-vectors.json).
    @Test(arguments: [
        (UInt32(1), "Failed to send XPC message to broker"),
        (2, "Broker returned invalid reply"),
        (3, "You are not allowed to create a network"),
        (4, "Invalid broker request"),
        (5, "Network name not found"),
        (6, "Failed to create network"),
        (7, "Internal or unknown error"),
        (999, "(unknown status)"),
    ])
    func descriptions(code: UInt32, text: String) {
        let error = VmnetBroker.Error(vmnet_broker_return_t(rawValue: code))
        #expect(error.errorDescription == text)
        #expect(error.localizedDescription == text)
    }

    @Test func unknownStatusesAreKept() {
        let error = VmnetBroker.Error(vmnet_broker_return_t(rawValue: 999))
        #expect(error.code == 999)
        #expect(!error.isKnown)
        #expect(error != VmnetBroker.Error.internalError)
    }

    @Test func catchClausesMatchByStatus() {
        func fail(_ status: vmnet_broker_return_t) throws {
            throw VmnetBroker.Error(status)
        }
        var matched = false
        do {
            try fail(VMNET_BROKER_NOT_FOUND)
        } catch VmnetBroker.Error.invalidRequest {
            Issue.record("status 5 matched invalidRequest")
        } catch VmnetBroker.Error.notFound {
            matched = true
        } catch {
            Issue.record("status 5 did not match notFound: \(error)")
        }
        #expect(matched)
    }
}

/// Whether the broker is installed as a launchd daemon on this Mac.
let brokerInstalled = FileManager.default.fileExists(
    atPath: "/Library/LaunchDaemons/\(VmnetBroker.machServiceName).plist")

@Suite(.enabled(if: brokerInstalled, "needs the broker installed as a launchd daemon"))
struct BrokerTests {
    // A thrown error fails the test; success returns the serialization.
    @Test func acquireBuiltinNetworks() throws {
        _ = try VmnetBroker.acquireNetwork(named: "shared")
        _ = try VmnetBroker.acquireNetwork(named: "host")
        // Acquiring a network this process already holds is not an error.
        _ = try VmnetBroker.acquireNetwork(named: "shared")
    }

    @Test func unknownNetworkIsNotFound() {
        #expect(throws: VmnetBroker.Error.notFound) {
            try VmnetBroker.acquireNetwork(named: "no-such-network")
        }
    }

    // Like the original broker, any string is looked up: a name that is
    // not configured is notFound whatever its form.
    @Test(arguments: ["", "../etc/passwd", ".hidden", "a b", String(repeating: "a", count: 65)])
    func unconfiguredNamesOfAnyFormAreNotFound(name: String) {
        #expect(throws: VmnetBroker.Error.notFound) {
            try VmnetBroker.acquireNetwork(named: name)
        }
    }

    // What a VM program does with the reply: turn the serialization into a
    // network of its own, and read the subnet the broker's network has.
    @Test func serializationBecomesANetwork() throws {
        let serialization = try VmnetBroker.acquireNetwork(named: "shared")
        var status = vmnet_return_t.VMNET_SUCCESS
        let network = try #require(vmnet_network_create_with_serialization(serialization, &status))
        #expect(status == .VMNET_SUCCESS)
        defer { Unmanaged<AnyObject>.fromOpaque(UnsafeRawPointer(network)).release() }
        var subnet = in_addr()
        var mask = in_addr()
        vmnet_network_get_ipv4_subnet(network, &subnet, &mask)
        #expect(subnet.s_addr != 0)
        #expect(mask.s_addr != 0)
    }
}

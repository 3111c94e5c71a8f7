// SPDX-License-Identifier: Apache-2.0
//
// Run with `swift test` on macOS 26. The tests in BrokerTests need the broker
// installed as a launchd daemon (com.github.nirs.vmnet-broker) with its
// default configuration; they are skipped when its launchd plist is absent.

import Foundation
import Testing
import VmnetBroker

@Suite struct ErrorTests {
    @Test func namedStatusesHaveTheProtocolNumbers() {
        #expect(VmnetBroker.Error.xpcFailure.status == 1)
        #expect(VmnetBroker.Error.invalidReply.status == 2)
        #expect(VmnetBroker.Error.notAllowed.status == 3)
        #expect(VmnetBroker.Error.invalidRequest.status == 4)
        #expect(VmnetBroker.Error.notFound.status == 5)
        #expect(VmnetBroker.Error.createFailure.status == 6)
        #expect(VmnetBroker.Error.internalError.status == 7)
    }

    // The texts of testdata/protocol-vectors.json, "statuses".
    @Test(arguments: [
        (Int32(1), "cannot communicate with the broker"),
        (2, "invalid reply from the broker"),
        (3, "not allowed to use this network"),
        (4, "invalid request"),
        (5, "network not found"),
        (6, "failed to create the network"),
        (7, "internal error in the broker"),
    ])
    func descriptions(status: Int32, text: String) {
        let error = VmnetBroker.Error(status: status)
        #expect(error.errorDescription == "\(text) (status \(status))")
        #expect(error.localizedDescription == "\(text) (status \(status))")
    }

    @Test func unknownStatusesAreKept() {
        let error = VmnetBroker.Error(status: 999)
        #expect(error.status == 999)
        #expect(!error.isKnown)
        #expect(error.errorDescription == "unknown status 999")
        #expect(error != VmnetBroker.Error.internalError)
    }

    @Test func catchClausesMatchByStatus() {
        func fail(_ status: Int32) throws {
            throw VmnetBroker.Error(status: status)
        }
        var matched = false
        do {
            try fail(5)
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

    // Name rules of this project's broker; the original broker may answer
    // notFound instead.
    @Test(arguments: ["", "../etc/passwd", ".hidden", String(repeating: "a", count: 65)])
    func badNamesAreInvalidRequests(name: String) {
        #expect(throws: VmnetBroker.Error.invalidRequest) {
            try VmnetBroker.acquireNetwork(named: name)
        }
    }
}

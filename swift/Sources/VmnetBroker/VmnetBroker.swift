// SPDX-License-Identifier: Apache-2.0

import CVmnetBroker
import Foundation
import XPC

/// Client of vmnet-broker, the daemon that shares vmnet networks between
/// virtual machine programs.
public enum VmnetBroker {
    /// The broker's launchd Mach service.
    public static let machServiceName = "com.github.nirs.vmnet-broker"

    /// Asks the broker for the named network, creating it on first use, and
    /// returns its serialization, ready for
    /// `vmnet_network_create_with_serialization`.
    ///
    /// All calls share one XPC connection, opened on first use and never
    /// closed, so the broker keeps the network for as long as this process
    /// lives.
    ///
    /// - Throws: ``VmnetBroker/Error``, for example ``VmnetBroker/Error/notFound``
    ///   for a name the broker does not know.
    public static func acquireNetwork(named name: String) throws -> xpc_object_t {
        var status = vmnet_broker_return_t(rawValue: 0)
        guard let serialization = vmnet_broker_acquire_network(name, &status) else {
            throw Error(status: Int32(truncatingIfNeeded: status.rawValue))
        }
        return serialization
    }
}

extension VmnetBroker {
    /// A failure status from the broker or from talking to it.
    ///
    /// The codes 1 to 7 have names below. A code this version does not know
    /// (sent by a newer broker) is kept as it is in ``status``.
    ///
    /// Match a status in a `catch` clause:
    ///
    /// ```swift
    /// do {
    ///     let network = try VmnetBroker.acquireNetwork(named: "shared")
    /// } catch VmnetBroker.Error.notFound {
    ///     // no such network
    /// }
    /// ```
    public struct Error: Swift.Error, LocalizedError, Equatable, Hashable, Sendable {
        /// The numeric status (`vmnet_broker_return_t`).
        public let status: Int32

        public init(status: Int32) {
            self.status = status
        }

        /// The broker cannot be reached.
        public static let xpcFailure = Error(status: 1)
        /// The broker's reply was not understood.
        public static let invalidReply = Error(status: 2)
        /// The caller may not use this network.
        public static let notAllowed = Error(status: 3)
        /// The request was malformed, for example a bad network name.
        public static let invalidRequest = Error(status: 4)
        /// No such network.
        public static let notFound = Error(status: 5)
        /// vmnet could not create the network.
        public static let createFailure = Error(status: 6)
        /// Anything else, including holding too many networks.
        public static let internalError = Error(status: 7)

        /// Whether the status is one of the codes 0 to 7.
        public var isKnown: Bool {
            (0...7).contains(status)
        }

        /// For example "network not found (status 5)", or
        /// "unknown status 999".
        public var errorDescription: String? {
            guard isKnown else {
                return "unknown status \(status)"
            }
            let code = vmnet_broker_return_t(rawValue: .init(truncatingIfNeeded: status))
            return "\(String(cString: vmnet_broker_strerror(code))) (status \(status))"
        }

        /// Lets `catch VmnetBroker.Error.notFound` match a thrown error.
        public static func ~= (pattern: Error, value: any Swift.Error) -> Bool {
            guard let error = value as? Error else {
                return false
            }
            return error == pattern
        }
    }
}

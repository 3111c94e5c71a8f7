// SPDX-License-Identifier: Apache-2.0

import Foundation
import XPC
import vmnet_broker

/// Client of vmnet-broker, the daemon that shares vmnet networks between
/// virtual machine programs.
public enum VmnetBroker {
    /// The broker's launchd Mach service.
    public static let machServiceName = "com.github.nirs.vmnet-broker"

    /// Asks the broker for the named network, creating it on first use, and
    /// returns its serialization, ready for
    /// `vmnet_network_create_with_serialization`.
    ///
    /// All calls share one XPC connection, opened on first use, so the
    /// broker keeps the network for as long as this process lives. Each
    /// call waits at most 30 seconds, or `VMNET_BROKER_TIMEOUT` seconds
    /// (0.001 to 86400; another value throws `invalidRequest`). A broker
    /// that went away while the process was idle makes the next call throw
    /// `xpcFailure` once (its networks are gone: acquire them again); the
    /// call after reaches the broker that serves by then. The whole
    /// contract, the same in every client: docs/client-contract.md.
    ///
    /// - Throws: ``VmnetBroker/Error``, for example ``VmnetBroker/Error/notFound``
    ///   for a name the broker does not know.
    public static func acquireNetwork(named name: String) throws -> xpc_object_t {
        var status = VMNET_BROKER_SUCCESS
        guard let serialization = vmnet_broker_acquire_network(name, &status) else {
            throw Error(status)
        }
        return serialization
    }
}

extension VmnetBroker {
    /// A failure status from the broker or from talking to it.
    ///
    /// The shape is the original Swift client's: `status` is the C
    /// `vmnet_broker_return_t`, `init(_:)` takes one, the seven codes have
    /// static members, and `errorDescription` is `vmnet_broker_strerror`'s
    /// text. A code this version does not know (sent by a newer broker) is
    /// kept as it is in ``status``.
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
        /// The status code.
        public let status: vmnet_broker_return_t

        public init(_ status: vmnet_broker_return_t) {
            self.status = status
        }

        /// The broker cannot be reached.
        public static let xpcFailure = Error(VMNET_BROKER_XPC_FAILURE)
        /// The broker's reply was not understood.
        public static let invalidReply = Error(VMNET_BROKER_INVALID_REPLY)
        /// The caller may not use this network.
        public static let notAllowed = Error(VMNET_BROKER_NOT_ALLOWED)
        /// The request was malformed: no network name, an unknown command.
        public static let invalidRequest = Error(VMNET_BROKER_INVALID_REQUEST)
        /// No such network.
        public static let notFound = Error(VMNET_BROKER_NOT_FOUND)
        /// vmnet could not create the network.
        public static let createFailure = Error(VMNET_BROKER_CREATE_FAILURE)
        /// Anything else, including holding too many networks.
        public static let internalError = Error(VMNET_BROKER_INTERNAL_ERROR)

        /// The original client's text, from `vmnet_broker_strerror`:
        /// "Network name not found", or "(unknown status)".
        public var errorDescription: String? {
            String(cString: vmnet_broker_strerror(status))
        }

        // Additions of this client (not in the original):

        /// The numeric code.
        public var code: UInt32 {
            status.rawValue
        }

        /// Whether the status is one of the codes 0 to 7.
        public var isKnown: Bool {
            (0...7).contains(status.rawValue)
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

// SPDX-License-Identifier: Apache-2.0
//
// The C client of the Swift package: the API of the original vmnet-broker C
// client (nirs/vmnet-broker 0.3), same names and semantics.

#ifndef VMNET_BROKER_H
#define VMNET_BROKER_H

#include <xpc/xpc.h>

// In Objective-C and Swift, mark the result of vmnet_broker_acquire_network
// as returned retained, as libxpc marks its own create functions, so that
// ARC takes ownership. In C the caller releases it with xpc_release().
#if defined(XPC_RETURNS_RETAINED)
#define VMNET_BROKER_RETURNS_RETAINED XPC_RETURNS_RETAINED
#elif defined(OS_OBJECT_RETURNS_RETAINED)
#define VMNET_BROKER_RETURNS_RETAINED OS_OBJECT_RETURNS_RETAINED
#else
#define VMNET_BROKER_RETURNS_RETAINED
#endif

#ifdef __cplusplus
extern "C" {
#endif

// The broker's launchd Mach service.
#define MACH_SERVICE_NAME "com.github.nirs.vmnet-broker"

// Request keys and the command.
#define REQUEST_COMMAND "command"
#define REQUEST_NETWORK_NAME "network_name"
#define COMMAND_ACQUIRE "acquire"

// Reply keys.
#define REPLY_NETWORK "network"
#define REPLY_ERROR "error"

// Status codes. The numbers are fixed by the protocol. A newer broker may
// send a number not listed here; it is passed on unchanged.
typedef enum {
    // Success.
    VMNET_BROKER_SUCCESS = 0,
    // The broker could not be reached (client side).
    VMNET_BROKER_XPC_FAILURE = 1,
    // The reply is not a dictionary or lacks "network" (client side).
    VMNET_BROKER_INVALID_REPLY = 2,
    // The caller may not use this network.
    VMNET_BROKER_NOT_ALLOWED = 3,
    // The request was malformed: no network name, an unknown command.
    VMNET_BROKER_INVALID_REQUEST = 4,
    // No such network, whatever the form of the name.
    VMNET_BROKER_NOT_FOUND = 5,
    // vmnet could not create the network.
    VMNET_BROKER_CREATE_FAILURE = 6,
    // Anything else, including holding too many networks.
    VMNET_BROKER_INTERNAL_ERROR = 7
} vmnet_broker_return_t;

// Asks the broker for the named network, creating it on first use, and
// returns its serialization for vmnet_network_create_with_serialization().
//
// All calls share one XPC connection, made on first use and never closed;
// the broker keeps the network while the process lives. Safe to call from
// any thread.
//
// Returns a retained object, or NULL on failure. `status`, when not NULL,
// receives the status on success and on failure.
VMNET_BROKER_RETURNS_RETAINED xpc_object_t _Nullable
vmnet_broker_acquire_network(const char *_Nonnull network_name, vmnet_broker_return_t *_Nullable status);

// A static description of a status, never NULL, with the original client's
// texts: "Network name not found", or "(unknown status)" for a number not
// listed above.
const char *_Nonnull vmnet_broker_strerror(vmnet_broker_return_t status);

#ifdef __cplusplus
}
#endif

#endif // VMNET_BROKER_H

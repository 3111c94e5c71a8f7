/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The Swift package's C header: the original vmnet-broker C client's API
 * (nirs/vmnet-broker 0.3) and vmnet_broker_last_error(), which
 * swift/Sources/vmnet_broker/client.c implements.
 *
 * GENERATED from crates/ffi/include/vmnet-broker.h by scripts/gen-swift-header.
 * Do not edit: edit that file and run the script (CI checks the two agree).
 */

#ifndef VMNET_BROKER_H
#define VMNET_BROKER_H

/*
 * VMNET_BROKER_FAKE_XPC: a Linux test build against the fakes of libxpc
 * (crates/fake-apple-c, docs/macos-fakes.md), which has the XPC entry point
 * too; never defined by users.
 */
#if defined(__APPLE__) || defined(VMNET_BROKER_FAKE_XPC)
#include <xpc/xpc.h>
#else
/* No XPC outside Apple systems; the type only keeps declarations alike. */
typedef void *xpc_object_t;
#endif

/*
 * Marks vmnet_broker_acquire_network()'s result as returned retained, as
 * libxpc marks its own create functions (XPC_RETURNS_RETAINED in
 * <xpc/base.h>), so that ARC (Objective-C, Swift) takes ownership instead of
 * leaking it. Plain C callers release it with xpc_release().
 */
#if defined(XPC_RETURNS_RETAINED)
#define VMNET_BROKER_RETURNS_RETAINED XPC_RETURNS_RETAINED
#elif defined(OS_OBJECT_RETURNS_RETAINED)
#define VMNET_BROKER_RETURNS_RETAINED OS_OBJECT_RETURNS_RETAINED
#else
#define VMNET_BROKER_RETURNS_RETAINED
#endif

/* Nullability qualifiers are a clang extension; other compilers drop them. */
#ifndef __clang__
#ifndef _Nullable
#define _Nullable
#endif
#ifndef _Nonnull
#define _Nonnull
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The broker's launchd Mach service. */
#define MACH_SERVICE_NAME "com.github.nirs.vmnet-broker"

/* Request keys. */
#define REQUEST_COMMAND "command"
#define REQUEST_NETWORK_NAME "network_name"

/* Request commands. "release" and "status" are additions of this
 * implementation; the original broker answers them with
 * VMNET_BROKER_INVALID_REQUEST. */
#define COMMAND_ACQUIRE "acquire"
#define COMMAND_RELEASE "release"
#define COMMAND_STATUS "status"

/* Reply keys. "network_info" and "status" are additions. */
#define REPLY_NETWORK "network"
#define REPLY_ERROR "error"
#define REPLY_NETWORK_INFO "network_info"
#define REPLY_STATUS "status"

/* Environment variable naming the broker's development socket. */
#define VMNET_BROKER_SOCKET_ENV "VMNET_BROKER_SOCKET"

/*
 * Environment variable with the timeout, in decimal seconds (0.001 to
 * 86400), of every connection made without an explicit one, read when the
 * connection is made. Unset or empty: 30 seconds. Any other value fails the
 * call that would make the connection with VMNET_BROKER_INVALID_REQUEST
 * before the broker is contacted. See docs/client-contract.md.
 */
#define VMNET_BROKER_TIMEOUT_ENV "VMNET_BROKER_TIMEOUT"

/*
 * Status codes. The numbers are fixed. A broker newer than this library may
 * send other numbers; they are passed on unchanged, and
 * vmnet_broker_strerror() describes them as unknown.
 */
typedef enum {
    /* The operation succeeded. */
    VMNET_BROKER_SUCCESS = 0,
    /* The broker could not be reached, or the connection failed. */
    VMNET_BROKER_XPC_FAILURE = 1,
    /* The broker's reply broke the protocol. */
    VMNET_BROKER_INVALID_REPLY = 2,
    /* The caller may not use this network. */
    VMNET_BROKER_NOT_ALLOWED = 3,
    /* The request was malformed: a bad or NULL argument, no network name,
     * an unknown command. */
    VMNET_BROKER_INVALID_REQUEST = 4,
    /* No such network, whatever the form of the name (or, for a release,
     * the network is not held). */
    VMNET_BROKER_NOT_FOUND = 5,
    /* The network could not be created. */
    VMNET_BROKER_CREATE_FAILURE = 6,
    /* Anything else, including holding too many networks. */
    VMNET_BROKER_INTERNAL_ERROR = 7
} vmnet_broker_return_t;

/*
 * Describes a status code with the original C client's text, byte for byte:
 * 0 "Broker session started", 1 "Failed to send XPC message to broker",
 * 2 "Broker returned invalid reply", 3 "You are not allowed to create a
 * network", 4 "Invalid broker request", 5 "Network name not found",
 * 6 "Failed to create network", 7 "Internal or unknown error".
 *
 * Returns a static string; never NULL; do not free it. Unknown codes give
 * "(unknown status)".
 */
const char *_Nonnull vmnet_broker_strerror(vmnet_broker_return_t status);

#if defined(__APPLE__) || defined(VMNET_BROKER_FAKE_XPC)
/*
 * Acquires a network from the broker's XPC service and returns its
 * serialization, ready for vmnet_network_create_with_serialization().
 *
 * Uses one process-wide XPC connection, made on first use; the hold lasts
 * until the process exits. VMNET_BROKER_SOCKET is ignored. Each request
 * waits at most 30 seconds, or VMNET_BROKER_TIMEOUT_ENV seconds. A
 * connection that timed out or found no service is replaced by the next
 * call; a broker that went away while the process was idle fails the next
 * call once with VMNET_BROKER_XPC_FAILURE (its networks are gone: acquire
 * them again); a reply from a process that runs neither as root nor as
 * this user is refused (docs/client-contract.md).
 *
 * Returns a retained object that the caller releases with xpc_release(), or
 * NULL on failure. `status`, if not NULL, receives the status.
 */
VMNET_BROKER_RETURNS_RETAINED xpc_object_t _Nullable vmnet_broker_acquire_network(
    const char *_Nonnull network_name,
    vmnet_broker_return_t *_Nullable status);
#endif

/*
 * (An addition of this project, also in the Swift package's C target.)
 * Says why the last call of this library on the calling thread that reports
 * a status failed, in words a user can act on: which socket could not be
 * reached, how long the broker was waited for, which uid serves it, which
 * timeout value was refused. NULL if that call succeeded (or none was made).
 * The string belongs to the library and stays valid until the next such call
 * on this thread; do not free it.
 */
const char *_Nullable vmnet_broker_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* VMNET_BROKER_H */

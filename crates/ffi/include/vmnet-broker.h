/* SPDX-License-Identifier: Apache-2.0 */

/*
 * vmnet-broker client library (libvmnet_broker).
 *
 * The broker shares vmnet networks between processes: ask for a network by
 * name, and the broker creates it on first use (or returns the live one) and
 * keeps it while any client holds it. A hold belongs to the connection it
 * was made on; when the connection closes (or the process exits) the broker
 * drops it.
 *
 * Two APIs are declared here:
 *
 *  - The original C client's API (Apple systems only):
 *    vmnet_broker_acquire_network() and vmnet_broker_strerror(), source and
 *    binary compatible with nirs/vmnet-broker 0.3.
 *
 *  - A portable API, also available on Linux where the broker is reached over
 *    a development socket: network handles with their addresses, explicit
 *    clients and the broker status.
 *
 * Conventions for every function below:
 *
 *  - A NULL pointer where an argument is required never crashes: functions
 *    returning a status return VMNET_BROKER_INVALID_REQUEST, functions
 *    returning a pointer return NULL (and report VMNET_BROKER_INVALID_REQUEST
 *    through their status argument).
 *  - A `status` output argument may be NULL; when it is not, it is written
 *    on success and on failure. Other output arguments are written only on
 *    success.
 *  - Ownership of every returned pointer is stated with the function.
 *  - All functions may be called from any thread.
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

/* The original C client's API, and vmnet_broker_last_error(), end here:
 * everything above is also the Swift package's C header, which
 * scripts/gen-swift-header makes from this file. */

/* An acquired network (opaque). */
typedef struct vmnet_broker_network vmnet_broker_network;

/* A connection to the broker (opaque). */
typedef struct vmnet_broker_client vmnet_broker_client;

/*
 * Acquires a network through the process-wide client, which is connected on
 * first successful use and never closed: on Apple systems the XPC service
 * unless VMNET_BROKER_SOCKET is set, elsewhere the development socket
 * ($VMNET_BROKER_SOCKET, else $XDG_RUNTIME_DIR/vmnet-broker.sock, else
 * /tmp/vmnet-broker-$UID.sock).
 *
 * Returns a new handle owned by the caller, or NULL on failure. `status`, if
 * not NULL, receives the status. The hold lasts until vmnet_broker_release().
 */
vmnet_broker_network *_Nullable vmnet_broker_acquire(
    const char *_Nonnull network_name,
    vmnet_broker_return_t *_Nullable status);

/*
 * Releases the hold and frees the handle; the handle must not be used again,
 * whatever the result. Two handles for the same name from one client share
 * one hold at the broker, which ends with the last of them.
 *
 * Returns VMNET_BROKER_SUCCESS, or why the broker could not release the hold
 * (VMNET_BROKER_XPC_FAILURE if the connection was lost, in which case the
 * broker has dropped the hold already). NULL is a no-op returning
 * VMNET_BROKER_SUCCESS.
 */
vmnet_broker_return_t vmnet_broker_release(
    vmnet_broker_network *_Nullable network);

/*
 * Accessors. Returned strings belong to the handle and stay valid until
 * vmnet_broker_release(); do not free them. All return NULL (or -1) for a
 * NULL handle. Mode and addresses come from the broker's "network_info";
 * a broker that does not send it (the original one) gives NULL and -1.
 */

/* The network's name. */
const char *_Nullable vmnet_broker_network_name(
    const vmnet_broker_network *_Nullable network);

/* "shared" or "host". */
const char *_Nullable vmnet_broker_network_mode(
    const vmnet_broker_network *_Nullable network);

/* IPv4 network address, dotted ("192.168.64.0"). */
const char *_Nullable vmnet_broker_network_subnet(
    const vmnet_broker_network *_Nullable network);

/* IPv4 netmask, dotted ("255.255.255.0"). */
const char *_Nullable vmnet_broker_network_mask(
    const vmnet_broker_network *_Nullable network);

/* IPv6 prefix ("fd9c:1a2b:3c4d:1::"). */
const char *_Nullable vmnet_broker_network_ipv6_prefix(
    const vmnet_broker_network *_Nullable network);

/* IPv6 prefix length in bits, or -1 when unknown. */
int vmnet_broker_network_ipv6_prefix_length(
    const vmnet_broker_network *_Nullable network);

/* The serialization as JSON text when the network came over the development
 * socket; NULL when it came over XPC. */
const char *_Nullable vmnet_broker_network_serialization_json(
    const vmnet_broker_network *_Nullable network);

#ifdef __APPLE__
/* The serialization when the network came over XPC, for
 * vmnet_network_create_with_serialization(); NULL over the development
 * socket. Borrowed: valid until vmnet_broker_release(); xpc_retain() it to
 * keep it longer. */
xpc_object_t _Nullable vmnet_broker_network_serialization(
    const vmnet_broker_network *_Nullable network);
#endif

/*
 * Connects a new client, choosing the transport as vmnet_broker_acquire()
 * does. This, vmnet_broker_client_connect_socket() and the process-wide
 * client of vmnet_broker_acquire() take their timeout from
 * VMNET_BROKER_TIMEOUT_ENV (vmnet_broker_last_error() names a bad value). Returns a client owned by the caller (free it with
 * vmnet_broker_client_free()), or NULL on failure: VMNET_BROKER_XPC_FAILURE
 * when the development socket cannot be reached. An XPC connection is made
 * lazily, so on Apple systems a missing broker shows up on the first request.
 */
vmnet_broker_client *_Nullable vmnet_broker_client_connect(
    vmnet_broker_return_t *_Nullable status);

/*
 * Connects a new client to the development socket at `path`. Returns a
 * client owned by the caller, or NULL on failure.
 */
vmnet_broker_client *_Nullable vmnet_broker_client_connect_socket(
    const char *_Nonnull path,
    vmnet_broker_return_t *_Nullable status);

/*
 * Sets how long `client` waits to connect again (development socket) and
 * for each reply (socket and XPC). The default is $VMNET_BROKER_TIMEOUT
 * when the client was connected, else 30 seconds; a broker that does not answer in time fails the request with
 * VMNET_BROKER_XPC_FAILURE. Every client connection also checks that the
 * process serving the socket runs as root or as this user, and fails with
 * VMNET_BROKER_XPC_FAILURE otherwise. Returns VMNET_BROKER_INVALID_REQUEST
 * for a NULL client or a timeout that is not a number of seconds from
 * 0.001 to 86400.
 */
vmnet_broker_return_t vmnet_broker_client_set_timeout(
    const vmnet_broker_client *_Nullable client,
    double seconds);

/*
 * Frees a client. Networks acquired through it stay valid and keep the
 * connection open until they are released; then the connection closes and
 * the broker drops any hold left. NULL is a no-op.
 */
void vmnet_broker_client_free(vmnet_broker_client *_Nullable client);

/*
 * Acquires a network through `client`. Returns a new handle owned by the
 * caller (free it with vmnet_broker_release()), or NULL on failure.
 */
vmnet_broker_network *_Nullable vmnet_broker_client_acquire(
    const vmnet_broker_client *_Nonnull client,
    const char *_Nonnull network_name,
    vmnet_broker_return_t *_Nullable status);

/*
 * Asks the broker for its status report as JSON text (networks with their
 * holders, peers, counters; see docs/protocol.md). On success stores a new
 * string in *json_out, which the caller frees with vmnet_broker_string_free().
 */
vmnet_broker_return_t vmnet_broker_client_status_json(
    const vmnet_broker_client *_Nonnull client,
    char *_Nullable *_Nonnull json_out);

/* Frees a string returned through a char ** output. NULL is a no-op. */
void vmnet_broker_string_free(char *_Nullable string);

#ifdef __cplusplus
}
#endif

#endif /* VMNET_BROKER_H */

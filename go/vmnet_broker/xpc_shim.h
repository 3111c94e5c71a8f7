// SPDX-License-Identifier: Apache-2.0
//
// The C side of the Go package on macOS: a small libxpc client for the
// vmnet-broker protocol. XPC objects cross into Go as void * so that the Go
// files never need the XPC headers. Used only by xpc_cgo.go.

#ifndef VMNET_BROKER_GO_XPC_SHIM_H
#define VMNET_BROKER_GO_XPC_SHIM_H

#include <stddef.h>
#include <stdint.h>

#define VBGO_MACH_SERVICE_NAME "com.github.nirs.vmnet-broker"

// Status codes, as in vmnet_broker_return_t.
#define VBGO_SUCCESS 0
#define VBGO_XPC_FAILURE 1
#define VBGO_INVALID_REPLY 2
#define VBGO_INVALID_REQUEST 4

// Returned instead of a status when the reply is an XPC connection error:
// the broker went away (XPC_ERROR_CONNECTION_INTERRUPTED; libxpc connects
// again on the next message, but the broker has dropped this connection's
// networks), or the service cannot be reached at all
// (XPC_ERROR_CONNECTION_INVALID). Both are status 1 for the caller.
#define VBGO_CONNECTION_INTERRUPTED (-1)
#define VBGO_CONNECTION_INVALID (-2)
// The reply came from a process that runs neither as root nor as this
// process's effective user (xpc_connection_get_euid): it was discarded.
// vbgo_server_euid tells who it was.
#define VBGO_UNTRUSTED_SERVICE (-3)

// The network_info of an acquire reply, copied out of the reply. valid is 0
// when the reply has no network_info or one of its fields is missing, of
// the wrong type, or too long for its buffer.
typedef struct {
    int valid;
    char mode[32];
    char subnet[64];
    char mask[64];
    char ipv6_prefix[64];
    int64_t ipv6_prefix_length;
} vbgo_network_info;

// What vbgo_kind reports.
enum {
    VBGO_KIND_OTHER = 0,
    VBGO_KIND_DICTIONARY,
    VBGO_KIND_ARRAY,
    VBGO_KIND_STRING,
    VBGO_KIND_INT64,
    VBGO_KIND_UINT64,
    VBGO_KIND_DOUBLE,
    VBGO_KIND_BOOL,
    VBGO_KIND_NULL,
};

// Creates and resumes a connection to the broker's Mach service. Never
// fails: a missing service shows up as an error reply to the first request.
void *vbgo_connect(void);

// Cancels and releases a connection from vbgo_connect.
void vbgo_disconnect(void *connection);

// Cancels a connection from vbgo_connect without releasing it: a request
// waiting for its reply returns VBGO_CONNECTION_INVALID at once (used when
// the broker does not answer in time). Release it with vbgo_disconnect.
void vbgo_cancel(void *connection);

// How many times the connection has been interrupted (the broker went away)
// since vbgo_connect; counted by the connection's event handler, so it also
// moves when no request is in flight. XPC_ERROR_TERMINATION_IMMINENT, which
// Apple's header reserves for a service's peers, counts too if it comes.
uint64_t vbgo_interruptions(void *connection);

// VBGO_MACH_SERVICE_NAME, for messages.
const char *vbgo_service_name(void);

// The effective user id of the process serving the connection
// (xpc_connection_get_euid; meaningful once a reply has arrived).
uint32_t vbgo_server_euid(void *connection);

// Sends {command: "acquire", network_name: name}. On success returns 0,
// stores the retained serialization in *network (release it with
// vbgo_object_release) and fills *info. Otherwise returns the status and
// leaves *network NULL.
int64_t vbgo_acquire(void *connection, const char *name, void **network, vbgo_network_info *info);

// Sends {command: "release", network_name: name}; returns the status.
int64_t vbgo_release(void *connection, const char *name);

// Sends {command: "status"}. On success returns 0 and stores the retained
// report dictionary in *report.
int64_t vbgo_status(void *connection, void **report);

// xpc_release.
void vbgo_object_release(void *object);

// Read access to the objects of a status report, for converting it in Go.
// Returned objects and strings are borrowed from their parent.
int vbgo_kind(void *object);
const char *vbgo_string(void *object);
int64_t vbgo_int64(void *object);
uint64_t vbgo_uint64(void *object);
double vbgo_double(void *object);
int vbgo_bool(void *object);
size_t vbgo_array_count(void *array);
void *vbgo_array_get(void *array, size_t index);
void *vbgo_dictionary_get(void *dictionary, const char *key);

// Copies a dictionary's keys into a malloc'd array of malloc'd strings;
// *count receives their number. Free it with vbgo_free_keys.
char **vbgo_dictionary_copy_keys(void *dictionary, size_t *count);
void vbgo_free_keys(char **keys, size_t count);

#endif

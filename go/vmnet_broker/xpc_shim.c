// SPDX-License-Identifier: Apache-2.0

//go:build (darwin && cgo) || (linux && cgo && vmnet_broker_fake_xpc)

// The libxpc client behind xpc_cgo.go. It follows the original C client:
// one request dictionary sent with xpc_connection_send_message_with_reply_sync,
// an error reply means the broker cannot be reached, the reply's "error" is
// read first and then "network" is required. The connection handling and
// the process-wide connection live on the Go side.

#include "xpc_shim.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xpc/xpc.h>

// What the event handler learns about a connection. Both the handle given
// to Go and the handler hold a reference; the last one to let go frees it.
// The handler lets go on XPC_ERROR_CONNECTION_INVALID, the last event libxpc
// delivers to a connection (after a cancel, or when the service cannot be
// found).
typedef struct {
    _Atomic uint64_t interruptions;
    _Atomic int refs;
} vbgo_events;

typedef struct {
    xpc_connection_t connection;
    vbgo_events *events;
} vbgo_connection;

static void events_unref(vbgo_events *events) {
    if (atomic_fetch_sub(&events->refs, 1) == 1) {
        free(events);
    }
}

void *vbgo_connect(void) {
    vbgo_connection *c = calloc(1, sizeof *c);
    vbgo_events *events = calloc(1, sizeof *events);
    if (c == NULL || events == NULL) {
        free(c);
        free(events);
        return NULL;
    }
    c->connection = xpc_connection_create_mach_service(VBGO_MACH_SERVICE_NAME, NULL, 0);
    if (c->connection == NULL) {
        free(c);
        free(events);
        return NULL;
    }
    atomic_init(&events->interruptions, 0);
    atomic_init(&events->refs, 2);
    c->events = events;
    // libxpc requires a handler before resume. XPC_ERROR_CONNECTION_INTERRUPTED
    // means the broker went away (it restarted, or crashed): libxpc connects
    // again on the next message, but the broker has dropped every network
    // this connection held. Counting interruptions lets the Go side notice
    // even when no request was in flight, as the Rust client does.
    xpc_connection_set_event_handler(c->connection, ^(xpc_object_t event) {
        if (event == XPC_ERROR_CONNECTION_INTERRUPTED || event == XPC_ERROR_TERMINATION_IMMINENT) {
            atomic_fetch_add(&events->interruptions, 1);
        } else if (event == XPC_ERROR_CONNECTION_INVALID) {
            events_unref(events);
        }
    });
    xpc_connection_resume(c->connection);
    return c;
}

uint64_t vbgo_interruptions(void *connection) {
    vbgo_connection *c = connection;
    if (c == NULL) {
        return 0;
    }
    return atomic_load(&c->events->interruptions);
}

const char *vbgo_service_name(void) {
    return VBGO_MACH_SERVICE_NAME;
}

uint32_t vbgo_server_euid(void *connection) {
    vbgo_connection *c = connection;
    if (c == NULL) {
        return 0;
    }
    return (uint32_t)xpc_connection_get_euid(c->connection);
}

void vbgo_cancel(void *connection) {
    vbgo_connection *c = connection;
    if (c != NULL) {
        xpc_connection_cancel(c->connection);
    }
}

void vbgo_disconnect(void *connection) {
    vbgo_connection *c = connection;
    if (c == NULL) {
        return;
    }
    xpc_connection_cancel(c->connection);
    xpc_release(c->connection);
    events_unref(c->events);
    free(c);
}

// Sends one request and returns the retained reply dictionary with status 0,
// or NULL with the failure's status. name may be NULL.
static xpc_object_t send_request(void *handle, const char *command, const char *name, int64_t *status) {
    vbgo_connection *c = handle;
    if (c == NULL) {
        *status = VBGO_XPC_FAILURE;
        return NULL;
    }
    // Our own reference: a request that timed out may still be waiting
    // here when the Go side disconnects and frees the handle.
    xpc_connection_t connection = xpc_retain(c->connection);
    xpc_object_t message = xpc_dictionary_create(NULL, NULL, 0);
    xpc_dictionary_set_string(message, "command", command);
    if (name != NULL) {
        xpc_dictionary_set_string(message, "network_name", name);
    }
    xpc_object_t reply = xpc_connection_send_message_with_reply_sync(connection, message);
    xpc_release(message);

    if (reply == NULL) {
        xpc_release(connection);
        *status = VBGO_XPC_FAILURE;
        return NULL;
    }
    if (xpc_get_type(reply) == XPC_TYPE_DICTIONARY) {
        // Only root or this user may serve the broker: anyone else's reply
        // is discarded before anything of it is used.
        uid_t server = xpc_connection_get_euid(connection);
        if (server != 0 && server != geteuid()) {
            xpc_release(reply);
            xpc_release(connection);
            *status = VBGO_UNTRUSTED_SERVICE;
            return NULL;
        }
    }
    xpc_release(connection);
    xpc_type_t type = xpc_get_type(reply);
    if (type == XPC_TYPE_ERROR) {
        if (reply == XPC_ERROR_CONNECTION_INTERRUPTED) {
            *status = VBGO_CONNECTION_INTERRUPTED;
        } else if (reply == XPC_ERROR_CONNECTION_INVALID) {
            *status = VBGO_CONNECTION_INVALID;
        } else {
            *status = VBGO_XPC_FAILURE;
        }
        xpc_release(reply);
        return NULL;
    }
    if (type != XPC_TYPE_DICTIONARY) {
        xpc_release(reply);
        *status = VBGO_INVALID_REPLY;
        return NULL;
    }
    // Absent, or not an int64: 0, meaning no error.
    int64_t error = xpc_dictionary_get_int64(reply, "error");
    if (error != 0) {
        xpc_release(reply);
        // Negative codes are not statuses (vmnet_broker_return_t is
        // unsigned); they would also be mistaken for the markers above.
        *status = error > 0 ? error : VBGO_INVALID_REPLY;
        return NULL;
    }
    *status = VBGO_SUCCESS;
    return reply;
}

static bool copy_string(xpc_object_t dictionary, const char *key, char *buffer, size_t size) {
    const char *value = xpc_dictionary_get_string(dictionary, key);
    if (value == NULL) {
        return false;
    }
    size_t length = strlen(value);
    if (length >= size) {
        return false;
    }
    memcpy(buffer, value, length + 1);
    return true;
}

static void copy_network_info(xpc_object_t reply, vbgo_network_info *info) {
    xpc_object_t dictionary = xpc_dictionary_get_value(reply, "network_info");
    if (dictionary == NULL || xpc_get_type(dictionary) != XPC_TYPE_DICTIONARY) {
        return;
    }
    xpc_object_t length = xpc_dictionary_get_value(dictionary, "ipv6_prefix_length");
    if (length == NULL) {
        return;
    }
    if (xpc_get_type(length) == XPC_TYPE_INT64) {
        info->ipv6_prefix_length = xpc_int64_get_value(length);
    } else if (xpc_get_type(length) == XPC_TYPE_UINT64 && xpc_uint64_get_value(length) <= 128) {
        info->ipv6_prefix_length = (int64_t)xpc_uint64_get_value(length);
    } else {
        return;
    }
    if (!copy_string(dictionary, "mode", info->mode, sizeof info->mode) ||
        !copy_string(dictionary, "subnet", info->subnet, sizeof info->subnet) ||
        !copy_string(dictionary, "mask", info->mask, sizeof info->mask) ||
        !copy_string(dictionary, "ipv6_prefix", info->ipv6_prefix, sizeof info->ipv6_prefix)) {
        return;
    }
    info->valid = 1;
}

int64_t vbgo_acquire(void *connection, const char *name, void **network, vbgo_network_info *info) {
    int64_t status;
    *network = NULL;
    memset(info, 0, sizeof *info);

    xpc_object_t reply = send_request(connection, "acquire", name, &status);
    if (reply == NULL) {
        return status;
    }
    xpc_object_t value = xpc_dictionary_get_value(reply, "network");
    if (value == NULL) {
        xpc_release(reply);
        return VBGO_INVALID_REPLY;
    }
    *network = xpc_retain(value);
    copy_network_info(reply, info);
    xpc_release(reply);
    return VBGO_SUCCESS;
}

int64_t vbgo_release(void *connection, const char *name) {
    int64_t status;
    xpc_object_t reply = send_request(connection, "release", name, &status);
    if (reply != NULL) {
        xpc_release(reply);
    }
    return status;
}

int64_t vbgo_status(void *connection, void **report) {
    int64_t status;
    *report = NULL;

    xpc_object_t reply = send_request(connection, "status", NULL, &status);
    if (reply == NULL) {
        return status;
    }
    xpc_object_t value = xpc_dictionary_get_value(reply, "status");
    if (value == NULL || xpc_get_type(value) != XPC_TYPE_DICTIONARY) {
        xpc_release(reply);
        return VBGO_INVALID_REPLY;
    }
    *report = xpc_retain(value);
    xpc_release(reply);
    return VBGO_SUCCESS;
}

void vbgo_object_release(void *object) {
    if (object != NULL) {
        xpc_release((xpc_object_t)object);
    }
}

int vbgo_kind(void *object) {
    if (object == NULL) {
        return VBGO_KIND_OTHER;
    }
    xpc_type_t type = xpc_get_type((xpc_object_t)object);
    if (type == XPC_TYPE_DICTIONARY) {
        return VBGO_KIND_DICTIONARY;
    }
    if (type == XPC_TYPE_ARRAY) {
        return VBGO_KIND_ARRAY;
    }
    if (type == XPC_TYPE_STRING) {
        return VBGO_KIND_STRING;
    }
    if (type == XPC_TYPE_INT64) {
        return VBGO_KIND_INT64;
    }
    if (type == XPC_TYPE_UINT64) {
        return VBGO_KIND_UINT64;
    }
    if (type == XPC_TYPE_DOUBLE) {
        return VBGO_KIND_DOUBLE;
    }
    if (type == XPC_TYPE_BOOL) {
        return VBGO_KIND_BOOL;
    }
    if (type == XPC_TYPE_NULL) {
        return VBGO_KIND_NULL;
    }
    return VBGO_KIND_OTHER;
}

const char *vbgo_string(void *object) {
    return xpc_string_get_string_ptr((xpc_object_t)object);
}

int64_t vbgo_int64(void *object) {
    return xpc_int64_get_value((xpc_object_t)object);
}

uint64_t vbgo_uint64(void *object) {
    return xpc_uint64_get_value((xpc_object_t)object);
}

double vbgo_double(void *object) {
    return xpc_double_get_value((xpc_object_t)object);
}

int vbgo_bool(void *object) {
    return xpc_bool_get_value((xpc_object_t)object) ? 1 : 0;
}

size_t vbgo_array_count(void *array) {
    return xpc_array_get_count((xpc_object_t)array);
}

void *vbgo_array_get(void *array, size_t index) {
    return xpc_array_get_value((xpc_object_t)array, index);
}

void *vbgo_dictionary_get(void *dictionary, const char *key) {
    return xpc_dictionary_get_value((xpc_object_t)dictionary, key);
}

char **vbgo_dictionary_copy_keys(void *dictionary, size_t *count) {
    *count = 0;
    size_t capacity = xpc_dictionary_get_count((xpc_object_t)dictionary);
    char **keys = calloc(capacity > 0 ? capacity : 1, sizeof *keys);
    if (keys == NULL) {
        return NULL;
    }
    __block size_t used = 0;
    xpc_dictionary_apply((xpc_object_t)dictionary, ^bool(const char *key, xpc_object_t value) {
        (void)value;
        if (used >= capacity) {
            return false;
        }
        char *copy = strdup(key);
        if (copy == NULL) {
            return false;
        }
        keys[used++] = copy;
        return true;
    });
    *count = used;
    return keys;
}

void vbgo_free_keys(char **keys, size_t count) {
    if (keys == NULL) {
        return;
    }
    for (size_t i = 0; i < count; i++) {
        free(keys[i]);
    }
    free(keys);
}

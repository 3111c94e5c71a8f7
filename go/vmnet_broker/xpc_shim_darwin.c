// SPDX-License-Identifier: Apache-2.0

//go:build cgo

// The libxpc client behind xpc_darwin.go. It follows the original C client:
// one request dictionary sent with xpc_connection_send_message_with_reply_sync,
// an error reply means the broker cannot be reached, the reply's "error" is
// read first and then "network" is required. The connection handling and
// the process-wide connection live on the Go side.

#include "xpc_shim.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xpc/xpc.h>

void *vbgo_connect(void) {
    xpc_connection_t connection = xpc_connection_create_mach_service(VBGO_MACH_SERVICE_NAME, NULL, 0);
    if (connection == NULL) {
        return NULL;
    }
    // libxpc requires a handler before resume. Failures also arrive as the
    // reply to the pending request, which is where we look at them.
    xpc_connection_set_event_handler(connection, ^(xpc_object_t event) {
        (void)event;
    });
    xpc_connection_resume(connection);
    return connection;
}

void vbgo_disconnect(void *connection) {
    if (connection == NULL) {
        return;
    }
    xpc_connection_cancel((xpc_connection_t)connection);
    xpc_release((xpc_object_t)connection);
}

// Sends one request and returns the retained reply dictionary with status 0,
// or NULL with the failure's status. name may be NULL.
static xpc_object_t send_request(void *connection, const char *command, const char *name, int64_t *status) {
    if (connection == NULL) {
        *status = VBGO_XPC_FAILURE;
        return NULL;
    }
    xpc_object_t message = xpc_dictionary_create(NULL, NULL, 0);
    xpc_dictionary_set_string(message, "command", command);
    if (name != NULL) {
        xpc_dictionary_set_string(message, "network_name", name);
    }
    xpc_object_t reply = xpc_connection_send_message_with_reply_sync((xpc_connection_t)connection, message);
    xpc_release(message);

    if (reply == NULL) {
        *status = VBGO_XPC_FAILURE;
        return NULL;
    }
    xpc_type_t type = xpc_get_type(reply);
    if (type == XPC_TYPE_ERROR) {
        xpc_release(reply);
        *status = VBGO_XPC_FAILURE;
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
        *status = error;
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

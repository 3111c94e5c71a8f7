// SPDX-License-Identifier: Apache-2.0

#include "vmnet-broker.h"

#include <dispatch/dispatch.h>
#include <stdint.h>
#include <xpc/xpc.h>

// The process-wide connection. The broker ties the networks it hands out to
// this connection, so it stays open until the process exits.
static xpc_connection_t connection;
static dispatch_once_t connection_once;

static void connect_to_broker(void *context) {
    (void)context;
    connection = xpc_connection_create_mach_service(MACH_SERVICE_NAME, NULL, 0);
    // libxpc requires an event handler before resume. Failures also come
    // back as the reply to the pending request, which is where we see them.
    xpc_connection_set_event_handler(connection, ^(xpc_object_t event) {
        (void)event;
    });
    xpc_connection_resume(connection);
}

xpc_object_t vmnet_broker_acquire_network(const char *network_name, vmnet_broker_return_t *status) {
    vmnet_broker_return_t result;
    xpc_object_t serialization = NULL;
    xpc_object_t message = NULL;
    xpc_object_t reply = NULL;
    xpc_object_t network = NULL;
    int64_t error = 0;

    if (network_name == NULL) {
        result = VMNET_BROKER_INVALID_REQUEST;
        goto out;
    }
    dispatch_once_f(&connection_once, NULL, connect_to_broker);
    if (connection == NULL) {
        result = VMNET_BROKER_XPC_FAILURE;
        goto out;
    }

    message = xpc_dictionary_create(NULL, NULL, 0);
    xpc_dictionary_set_string(message, REQUEST_COMMAND, COMMAND_ACQUIRE);
    xpc_dictionary_set_string(message, REQUEST_NETWORK_NAME, network_name);
    reply = xpc_connection_send_message_with_reply_sync(connection, message);
    xpc_release(message);

    if (reply == NULL || xpc_get_type(reply) == XPC_TYPE_ERROR) {
        result = VMNET_BROKER_XPC_FAILURE;
        goto out;
    }
    if (xpc_get_type(reply) != XPC_TYPE_DICTIONARY) {
        result = VMNET_BROKER_INVALID_REPLY;
        goto out;
    }
    // The error comes first; absent or not an int64 reads as 0.
    error = xpc_dictionary_get_int64(reply, REPLY_ERROR);
    if (error != 0) {
        // A code that does not fit the status type cannot be passed on
        // faithfully; treat it as a broken reply.
        result = (error >= INT32_MIN && error <= INT32_MAX) ? (vmnet_broker_return_t)error
                                                            : VMNET_BROKER_INVALID_REPLY;
        goto out;
    }
    network = xpc_dictionary_get_value(reply, REPLY_NETWORK);
    if (network == NULL) {
        result = VMNET_BROKER_INVALID_REPLY;
        goto out;
    }
    serialization = xpc_retain(network);
    result = VMNET_BROKER_SUCCESS;

out:
    if (reply != NULL) {
        xpc_release(reply);
    }
    if (status != NULL) {
        *status = result;
    }
    return serialization;
}

const char *vmnet_broker_strerror(vmnet_broker_return_t status) {
    // The original C client's texts, byte for byte (the "strerror" texts of
    // testdata/protocol-vectors.json).
    switch (status) {
    case VMNET_BROKER_SUCCESS:
        return "Broker session started";
    case VMNET_BROKER_XPC_FAILURE:
        return "Failed to send XPC message to broker";
    case VMNET_BROKER_INVALID_REPLY:
        return "Broker returned invalid reply";
    case VMNET_BROKER_NOT_ALLOWED:
        return "You are not allowed to create a network";
    case VMNET_BROKER_INVALID_REQUEST:
        return "Invalid broker request";
    case VMNET_BROKER_NOT_FOUND:
        return "Network name not found";
    case VMNET_BROKER_CREATE_FAILURE:
        return "Failed to create network";
    case VMNET_BROKER_INTERNAL_ERROR:
        return "Internal or unknown error";
    default:
        return "(unknown status)";
    }
}

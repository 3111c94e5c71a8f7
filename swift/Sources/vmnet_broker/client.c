// SPDX-License-Identifier: Apache-2.0

// The Swift package's C client: the original C client's API over libxpc,
// following the client contract of this project (docs/client-contract.md):
//
//  - every request is bounded: 30 s, or $VMNET_BROKER_TIMEOUT seconds (0.001
//    to 86400) read when the process-wide connection is made; any other
//    value fails the call with VMNET_BROKER_INVALID_REQUEST before the
//    broker is contacted;
//  - a connection that timed out, turned out invalid (no such service) or
//    is served by another user is dropped, and the next call makes a new
//    one, so that a broker installed or relaunched later is found;
//  - an interruption seen while the process was idle (the broker exited or
//    was relaunched, and dropped every network it held for us) fails the
//    next call once with VMNET_BROKER_XPC_FAILURE;
//  - a reply from a process that runs neither as root nor as this user
//    (xpc_connection_get_euid) is discarded;
//  - vmnet_broker_last_error() says, in the words of the other clients, why
//    the calling thread's last call failed.

#include "vmnet-broker.h"

#include <ctype.h>
#include <dispatch/dispatch.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <xpc/xpc.h>

#define TIMEOUT_ENV "VMNET_BROKER_TIMEOUT"
#define DEFAULT_TIMEOUT_SECONDS 30.0
#define MIN_TIMEOUT_SECONDS 0.001
#define MAX_TIMEOUT_SECONDS 86400.0

// Why the calling thread's last call failed ("" after a success).
static _Thread_local char last_error[768];

static vmnet_broker_return_t fail(vmnet_broker_return_t status, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static vmnet_broker_return_t fail(vmnet_broker_return_t status, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(last_error, sizeof last_error, format, args);
    va_end(args);
    return status;
}

const char *vmnet_broker_last_error(void) {
    return last_error[0] == '\0' ? NULL : last_error;
}

// `text` for a message, quoted, with anything but printable ASCII escaped.
static void quote(const char *text, char *out, size_t size) {
    size_t n = 0;
    if (size < 8) {
        if (size > 0) {
            out[0] = '\0';
        }
        return;
    }
    out[n++] = '"';
    for (const unsigned char *c = (const unsigned char *)text; *c != '\0' && n + 8 < size; c++) {
        if (*c == '"' || *c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)*c;
        } else if (*c >= 0x20 && *c < 0x7f) {
            out[n++] = (char)*c;
        } else {
            n += (size_t)snprintf(out + n, size - n, "\\x%02x", *c);
        }
    }
    out[n++] = '"';
    out[n] = '\0';
}

// The description libxpc gives an error object.
static const char *description_of(xpc_object_t error) {
    const char *text = xpc_dictionary_get_string(error, XPC_ERROR_KEY_DESCRIPTION);
    return text != NULL ? text : "no description";
}

// "root (uid 0) or this user (uid N)", as the other clients say it.
static void trusted_servers(char *out, size_t size) {
    uid_t own = geteuid();
    if (own == 0) {
        snprintf(out, size, "root (uid 0)");
    } else {
        snprintf(out, size, "root (uid 0) or this user (uid %u)", (unsigned)own);
    }
}

// The other clients' text for a status the broker sent.
static const char *status_text(int64_t status) {
    switch (status) {
    case VMNET_BROKER_XPC_FAILURE:
        return "cannot communicate with the broker";
    case VMNET_BROKER_INVALID_REPLY:
        return "invalid reply from the broker";
    case VMNET_BROKER_NOT_ALLOWED:
        return "not allowed to use this network";
    case VMNET_BROKER_INVALID_REQUEST:
        return "invalid request";
    case VMNET_BROKER_NOT_FOUND:
        return "network not found";
    case VMNET_BROKER_CREATE_FAILURE:
        return "failed to create the network";
    case VMNET_BROKER_INTERNAL_ERROR:
        return "internal error in the broker";
    default:
        return NULL;
    }
}

// What a connection's event handler learns. The handler and the
// process-wide state each hold a reference (and a request in flight one
// more); the last one to let go frees it. The handler lets go on
// XPC_ERROR_CONNECTION_INVALID, the last event of a connection.
typedef struct {
    _Atomic int lost;
    _Atomic int refs;
} events_t;

static void events_unref(events_t *events) {
    if (atomic_fetch_sub(&events->refs, 1) == 1) {
        free(events);
    }
}

// The process-wide connection, under `state_lock`. The broker ties the
// networks it hands out to it, so it stays open while it works.
static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;
static xpc_connection_t connection; // NULL: none yet, or dropped
static events_t *connection_events;
static double timeout_seconds;

// Decimal seconds within the bounds, the whole string (strtod would also
// skip leading white space, which the other clients refuse).
static bool parse_timeout(const char *text, double *seconds) {
    if (text[0] == '\0' || isspace((unsigned char)text[0])) {
        return false;
    }
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    if (end == text || *end != '\0' || errno == ERANGE || isnan(value) ||
        value < MIN_TIMEOUT_SECONDS || value > MAX_TIMEOUT_SECONDS) {
        return false;
    }
    *seconds = value;
    return true;
}

// Cancels and forgets `c` if it is still the process-wide connection.
static void drop_connection(xpc_connection_t c) {
    pthread_mutex_lock(&state_lock);
    if (connection == c && c != NULL) {
        connection = NULL;
        events_unref(connection_events);
        connection_events = NULL;
        xpc_connection_cancel(c);
        xpc_release(c);
    }
    pthread_mutex_unlock(&state_lock);
}

// Gives the caller the process-wide connection (retained) with its events
// (referenced) and the timeout, making the connection first if needed.
static vmnet_broker_return_t take_connection(xpc_connection_t *c, events_t **events, double *timeout) {
    vmnet_broker_return_t result = VMNET_BROKER_SUCCESS;
    pthread_mutex_lock(&state_lock);
    if (connection == NULL) {
        double seconds = DEFAULT_TIMEOUT_SECONDS;
        const char *env = getenv(TIMEOUT_ENV);
        if (env != NULL && env[0] != '\0' && !parse_timeout(env, &seconds)) {
            char value[256];
            quote(env, value, sizeof value);
            result = fail(VMNET_BROKER_INVALID_REQUEST,
                          "%s=%s is not a valid timeout: give seconds from 0.001 to 86400", TIMEOUT_ENV,
                          value);
            goto out;
        }
        events_t *ev = calloc(1, sizeof *ev);
        if (ev == NULL) {
            result = fail(VMNET_BROKER_XPC_FAILURE, "out of memory");
            goto out;
        }
        xpc_connection_t made = xpc_connection_create_mach_service(MACH_SERVICE_NAME, NULL, 0);
        if (made == NULL) {
            free(ev);
            result = fail(VMNET_BROKER_XPC_FAILURE, "libxpc made no connection to %s", MACH_SERVICE_NAME);
            goto out;
        }
        atomic_init(&ev->lost, 0);
        atomic_init(&ev->refs, 2);
        // XPC_ERROR_CONNECTION_INTERRUPTED: the broker went away; libxpc
        // connects again on the next message, but the broker has dropped
        // every network of this connection. TERMINATION_IMMINENT is
        // reserved for a service's peers by Apple's header; if it comes, it
        // means the same.
        xpc_connection_set_event_handler(made, ^(xpc_object_t event) {
          if (event == XPC_ERROR_CONNECTION_INTERRUPTED || event == XPC_ERROR_TERMINATION_IMMINENT) {
              atomic_store(&ev->lost, 1);
          } else if (event == XPC_ERROR_CONNECTION_INVALID) {
              events_unref(ev);
          }
        });
        xpc_connection_resume(made);
        connection = made;
        connection_events = ev;
        timeout_seconds = seconds;
    } else if (atomic_exchange(&connection_events->lost, 0)) {
        // Lost while idle: say so once; the broker that serves now gets the
        // next call.
        result = fail(VMNET_BROKER_XPC_FAILURE,
                      "the connection to the broker was lost (the broker exited or was restarted); "
                      "its networks were released: acquire them again");
        goto out;
    }
    *c = xpc_retain(connection);
    atomic_fetch_add(&connection_events->refs, 1);
    *events = connection_events;
    *timeout = timeout_seconds;
out:
    pthread_mutex_unlock(&state_lock);
    return result;
}

// One request's rendezvous with its reply handler, which may run after the
// caller gave up waiting. Two references: the caller's and the handler's.
typedef struct {
    dispatch_semaphore_t done;
    xpc_object_t reply;
    _Atomic int refs;
} pending_t;

static void pending_unref(pending_t *p) {
    if (atomic_fetch_sub(&p->refs, 1) == 1) {
        if (p->reply != NULL) {
            xpc_release(p->reply);
        }
        dispatch_release(p->done);
        free(p);
    }
}

// Sends `message` on `c` and waits at most `timeout` seconds for the reply.
// Returns the reply (retained) or NULL when none came in time.
static xpc_object_t request_within(xpc_connection_t c, xpc_object_t message, double timeout) {
    pending_t *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return NULL;
    }
    p->done = dispatch_semaphore_create(0);
    if (p->done == NULL) {
        free(p);
        return NULL;
    }
    atomic_init(&p->refs, 2);
    xpc_connection_send_message_with_reply(c, message, NULL, ^(xpc_object_t reply) {
      p->reply = xpc_retain(reply);
      dispatch_semaphore_signal(p->done);
      pending_unref(p);
    });
    xpc_object_t reply = NULL;
    dispatch_time_t deadline = dispatch_time(DISPATCH_TIME_NOW, (int64_t)(timeout * (double)NSEC_PER_SEC));
    if (dispatch_semaphore_wait(p->done, deadline) == 0) {
        reply = p->reply;
        p->reply = NULL;
    }
    pending_unref(p);
    return reply;
}

xpc_object_t vmnet_broker_acquire_network(const char *network_name, vmnet_broker_return_t *status) {
    vmnet_broker_return_t result;
    xpc_object_t serialization = NULL;
    xpc_object_t reply = NULL;
    xpc_connection_t c = NULL;
    events_t *events = NULL;
    double timeout = DEFAULT_TIMEOUT_SECONDS;
    xpc_object_t message = NULL;
    xpc_object_t network = NULL;
    uid_t server = 0;
    int64_t error = 0;

    last_error[0] = '\0';
    if (network_name == NULL) {
        result = fail(VMNET_BROKER_INVALID_REQUEST, "invalid request: no network name");
        goto out;
    }
    result = take_connection(&c, &events, &timeout);
    if (result != VMNET_BROKER_SUCCESS) {
        goto out;
    }

    message = xpc_dictionary_create(NULL, NULL, 0);
    xpc_dictionary_set_string(message, REQUEST_COMMAND, COMMAND_ACQUIRE);
    xpc_dictionary_set_string(message, REQUEST_NETWORK_NAME, network_name);
    reply = request_within(c, message, timeout);
    xpc_release(message);

    if (reply == NULL) {
        // No reply in time: cancel, which ends the pending handler with
        // XPC_ERROR_CONNECTION_INVALID; the broker drops what it held.
        drop_connection(c);
        result = fail(VMNET_BROKER_XPC_FAILURE,
                      "the broker %s did not answer within %gs (the connection was cancelled)",
                      MACH_SERVICE_NAME, timeout);
        goto out;
    }
    if (xpc_get_type(reply) == XPC_TYPE_ERROR) {
        if (reply == XPC_ERROR_CONNECTION_INTERRUPTED) {
            // Reported by this call; not again by the next.
            atomic_store(&events->lost, 0);
            result = fail(VMNET_BROKER_XPC_FAILURE,
                          "the broker %s closed the connection before replying (%s): it exited or "
                          "was restarted; look at its log",
                          MACH_SERVICE_NAME, description_of(reply));
        } else if (reply == XPC_ERROR_CONNECTION_INVALID) {
            // No such service, or cancelled: the next call makes a new
            // connection.
            drop_connection(c);
            result = fail(VMNET_BROKER_XPC_FAILURE,
                          "the XPC connection to %s is invalid (%s): is the broker installed "
                          "(`vmnet-broker install`) and is the service name right?",
                          MACH_SERVICE_NAME, description_of(reply));
        } else {
            drop_connection(c);
            result = fail(VMNET_BROKER_XPC_FAILURE, "XPC error from %s: %s", MACH_SERVICE_NAME,
                          description_of(reply));
        }
        goto out;
    }
    if (xpc_get_type(reply) != XPC_TYPE_DICTIONARY) {
        result = fail(VMNET_BROKER_INVALID_REPLY, "invalid reply from the broker to acquire: not a dictionary");
        goto out;
    }
    server = xpc_connection_get_euid(c);
    if (server != 0 && server != geteuid()) {
        // Another user serves the name: discard its reply.
        drop_connection(c);
        char trusted[64];
        trusted_servers(trusted, sizeof trusted);
        result = fail(VMNET_BROKER_XPC_FAILURE,
                      "refusing the broker on the XPC service %s: it runs as uid %u, but only %s may "
                      "serve it; another user may have registered the service",
                      MACH_SERVICE_NAME, (unsigned)server, trusted);
        goto out;
    }
    // The error comes first; absent or not an int64 reads as 0.
    error = xpc_dictionary_get_int64(reply, REPLY_ERROR);
    if (error != 0) {
        // A code that does not fit the status type cannot be passed on
        // faithfully; treat it as a broken reply.
        char name[256];
        quote(network_name, name, sizeof name);
        if (error < INT32_MIN || error > INT32_MAX) {
            result = fail(VMNET_BROKER_INVALID_REPLY,
                          "invalid reply from the broker to acquire: status %lld is out of range",
                          (long long)error);
        } else if (status_text(error) != NULL) {
            result = fail((vmnet_broker_return_t)error, "acquire %s: %s (status %lld)", name,
                          status_text(error), (long long)error);
        } else {
            result = fail((vmnet_broker_return_t)error, "acquire %s: unknown status %lld", name,
                          (long long)error);
        }
        goto out;
    }
    network = xpc_dictionary_get_value(reply, REPLY_NETWORK);
    if (network == NULL) {
        result = fail(VMNET_BROKER_INVALID_REPLY, "invalid reply from the broker to acquire: no \"%s\"",
                      REPLY_NETWORK);
        goto out;
    }
    serialization = xpc_retain(network);
    result = VMNET_BROKER_SUCCESS;

out:
    if (reply != NULL) {
        xpc_release(reply);
    }
    if (c != NULL) {
        xpc_release(c);
    }
    if (events != NULL) {
        events_unref(events);
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

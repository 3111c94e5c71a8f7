/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The part of libxpc's C interface that the project's C code uses, declared
 * for Linux against the fakes of crates/fake-apple (linked from
 * libvmnet_broker_fake_apple.so). Each declaration follows the C (not
 * Objective-C, OS_OBJECT_USE_OBJC=0) form of Apple's SDK headers
 * xpc/base.h, xpc/xpc.h and xpc/connection.h; compile with clang -fblocks.
 * On macOS the SDK's own headers are used; this file is never installed.
 */

#ifndef VMNET_BROKER_FAKE_XPC_H
#define VMNET_BROKER_FAKE_XPC_H

#if defined(__APPLE__)
#error "this is the Linux fakes' xpc.h; on macOS use the SDK's"
#endif

#include <dispatch/dispatch.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* xpc/base.h: without Objective-C, retained returns carry no attribute. */
#define XPC_RETURNS_RETAINED

/* xpc/xpc.h: objects, types and handlers. */
typedef void *xpc_object_t;
typedef struct _xpc_connection_s *xpc_connection_t;
typedef const struct _xpc_type_s *xpc_type_t;
typedef void (^xpc_handler_t)(xpc_object_t object);
typedef bool (^xpc_dictionary_applier_t)(const char *key, xpc_object_t value);

extern const struct _xpc_type_s _xpc_type_connection;
extern const struct _xpc_type_s _xpc_type_null;
extern const struct _xpc_type_s _xpc_type_bool;
extern const struct _xpc_type_s _xpc_type_int64;
extern const struct _xpc_type_s _xpc_type_uint64;
extern const struct _xpc_type_s _xpc_type_double;
extern const struct _xpc_type_s _xpc_type_string;
extern const struct _xpc_type_s _xpc_type_array;
extern const struct _xpc_type_s _xpc_type_dictionary;
extern const struct _xpc_type_s _xpc_type_error;
#define XPC_TYPE_CONNECTION (&_xpc_type_connection)
#define XPC_TYPE_NULL (&_xpc_type_null)
#define XPC_TYPE_BOOL (&_xpc_type_bool)
#define XPC_TYPE_INT64 (&_xpc_type_int64)
#define XPC_TYPE_UINT64 (&_xpc_type_uint64)
#define XPC_TYPE_DOUBLE (&_xpc_type_double)
#define XPC_TYPE_STRING (&_xpc_type_string)
#define XPC_TYPE_ARRAY (&_xpc_type_array)
#define XPC_TYPE_DICTIONARY (&_xpc_type_dictionary)
#define XPC_TYPE_ERROR (&_xpc_type_error)

/* xpc/xpc.h and xpc/connection.h: the well-known error objects. */
extern const struct _xpc_dictionary_s _xpc_error_connection_interrupted;
extern const struct _xpc_dictionary_s _xpc_error_connection_invalid;
extern const struct _xpc_dictionary_s _xpc_error_termination_imminent;
#define XPC_ERROR_CONNECTION_INTERRUPTED ((xpc_object_t)&_xpc_error_connection_interrupted)
#define XPC_ERROR_CONNECTION_INVALID ((xpc_object_t)&_xpc_error_connection_invalid)
#define XPC_ERROR_TERMINATION_IMMINENT ((xpc_object_t)&_xpc_error_termination_imminent)
extern const char *const _xpc_error_key_description;
#define XPC_ERROR_KEY_DESCRIPTION _xpc_error_key_description

xpc_object_t xpc_retain(xpc_object_t object);
void xpc_release(xpc_object_t object);
xpc_type_t xpc_get_type(xpc_object_t object);

bool xpc_bool_get_value(xpc_object_t xbool);
int64_t xpc_int64_get_value(xpc_object_t xint);
uint64_t xpc_uint64_get_value(xpc_object_t xuint);
double xpc_double_get_value(xpc_object_t xdouble);
const char *xpc_string_get_string_ptr(xpc_object_t xstring);

size_t xpc_array_get_count(xpc_object_t xarray);
xpc_object_t xpc_array_get_value(xpc_object_t xarray, size_t index);

xpc_object_t xpc_dictionary_create(const char *const *keys, const xpc_object_t *values,
                                   size_t count);
size_t xpc_dictionary_get_count(xpc_object_t xdict);
bool xpc_dictionary_apply(xpc_object_t xdict, xpc_dictionary_applier_t applier);
xpc_object_t xpc_dictionary_get_value(xpc_object_t xdict, const char *key);
const char *xpc_dictionary_get_string(xpc_object_t xdict, const char *key);
int64_t xpc_dictionary_get_int64(xpc_object_t xdict, const char *key);
void xpc_dictionary_set_string(xpc_object_t xdict, const char *key, const char *string);
void xpc_dictionary_set_int64(xpc_object_t xdict, const char *key, int64_t value);

/* xpc/connection.h */
#define XPC_CONNECTION_MACH_SERVICE_LISTENER (1 << 0)
#define XPC_CONNECTION_MACH_SERVICE_PRIVILEGED (1 << 1)
xpc_connection_t xpc_connection_create_mach_service(const char *name, dispatch_queue_t targetq,
                                                    uint64_t flags);
void xpc_connection_set_event_handler(xpc_connection_t connection, xpc_handler_t handler);
void xpc_connection_resume(xpc_connection_t connection);
void xpc_connection_cancel(xpc_connection_t connection);
void xpc_connection_send_message_with_reply(xpc_connection_t connection, xpc_object_t message,
                                            dispatch_queue_t replyq, xpc_handler_t handler);
xpc_object_t xpc_connection_send_message_with_reply_sync(xpc_connection_t connection,
                                                         xpc_object_t message);
uid_t xpc_connection_get_euid(xpc_connection_t connection);

#endif

/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The part of libdispatch's C interface that the project's C code uses,
 * declared for Linux against the fakes of crates/fake-apple (linked from
 * libvmnet_broker_fake_apple.so). Each declaration follows the C (not
 * Objective-C) form of Apple's SDK headers dispatch/object.h,
 * dispatch/queue.h, dispatch/time.h and dispatch/semaphore.h; compile with
 * clang -fblocks. On macOS the SDK's own headers are used; this file is
 * never installed.
 */

#ifndef VMNET_BROKER_FAKE_DISPATCH_H
#define VMNET_BROKER_FAKE_DISPATCH_H

#if defined(__APPLE__)
#error "this is the Linux fakes' dispatch.h; on macOS use the SDK's"
#endif

#include <stdint.h>

typedef struct dispatch_queue_s *dispatch_queue_t;
typedef struct dispatch_semaphore_s *dispatch_semaphore_t;
typedef struct dispatch_source_s *dispatch_source_t;

/* dispatch/object.h: in C, any dispatch object is passed as this union. */
typedef union {
    struct dispatch_object_s *_do;
    struct dispatch_queue_s *_dq;
    struct dispatch_semaphore_s *_dsema;
    struct dispatch_source_s *_ds;
} dispatch_object_t __attribute__((__transparent_union__));

void dispatch_retain(dispatch_object_t object);
void dispatch_release(dispatch_object_t object);

/* dispatch/queue.h: the fakes implement serial queues only (attr NULL). */
dispatch_queue_t dispatch_queue_create(const char *label, const void *attr);

/* dispatch/time.h */
typedef uint64_t dispatch_time_t;
#define DISPATCH_TIME_NOW (0ull)
#define DISPATCH_TIME_FOREVER (~0ull)
#ifndef NSEC_PER_SEC
#define NSEC_PER_SEC 1000000000ull
#endif
#ifndef NSEC_PER_MSEC
#define NSEC_PER_MSEC 1000000ull
#endif
dispatch_time_t dispatch_time(dispatch_time_t when, int64_t delta);

/* dispatch/semaphore.h */
dispatch_semaphore_t dispatch_semaphore_create(intptr_t value);
intptr_t dispatch_semaphore_wait(dispatch_semaphore_t dsema, dispatch_time_t timeout);
intptr_t dispatch_semaphore_signal(dispatch_semaphore_t dsema);

#endif

/* Shared by the C test programs: checks that stop the program with the status,
 * the last error message and the line, and a few byte helpers. */
#ifndef EDGEPIPE_TEST_SUPPORT_H
#define EDGEPIPE_TEST_SUPPORT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgepipe.h"

static inline void support_fail(const char *what, int status, const char *file, int line) {
    char message[512];
    size_t written = 0;
    edgepipe_error_message(message, sizeof message, &written);
    fprintf(stderr, "%s:%d: %s: status %d: %s\n", file, line, what, status, message);
    exit(1);
}

/* The call must succeed. */
#define CHECK(call)                                                     \
    do {                                                                \
        edgepipe_status status_ = (call);                               \
        if (status_ != EDGEPIPE_STATUS_OK) {                            \
            support_fail(#call, (int)status_, __FILE__, __LINE__);      \
        }                                                               \
    } while (0)

/* The call must fail with exactly `expected`. */
#define CHECK_STATUS(expected, call)                                              \
    do {                                                                          \
        edgepipe_status status_ = (call);                                         \
        if (status_ != (expected)) {                                              \
            fprintf(stderr, "%s:%d: %s: expected status %d, got %d\n", __FILE__,  \
                    __LINE__, #call, (int)(expected), (int)status_);              \
            exit(1);                                                              \
        }                                                                         \
    } while (0)

#define EXPECT(condition)                                                              \
    do {                                                                               \
        if (!(condition)) {                                                            \
            fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #condition);    \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

/* A string literal or array as (pointer, length) without its NUL. */
#define STR(text) (text), (sizeof(text) - 1)

/* Copies the last error message into `buf` (512 bytes). */
static inline const char *last_error(char *buf) {
    size_t written = 0;
    edgepipe_error_message(buf, 512, &written);
    return buf;
}

/* Whether `len` bytes at `data` contain `needle`. */
static inline int bytes_contain(const uint8_t *data, size_t len, const char *needle) {
    size_t needle_len = strlen(needle);
    for (size_t at = 0; at + needle_len <= len; at++) {
        if (memcmp(data + at, needle, needle_len) == 0) {
            return 1;
        }
    }
    return 0;
}

static inline size_t count_lines(const uint8_t *data, size_t len) {
    size_t lines = 0;
    for (size_t at = 0; at < len; at++) {
        lines += data[at] == '\n';
    }
    return lines;
}

/* $EDGEPIPE_TEST_DIR/name, the per-run scratch directory the test harness gives. */
static inline void test_path(char *out, size_t size, const char *name) {
    const char *dir = getenv("EDGEPIPE_TEST_DIR");
    if (dir == NULL) {
        fprintf(stderr, "EDGEPIPE_TEST_DIR is not set (the harness in tests/c_programs.rs sets it)\n");
        exit(1);
    }
    int written = snprintf(out, size, "%s/%s", dir, name);
    EXPECT(written > 0 && (size_t)written < size);
}

#endif

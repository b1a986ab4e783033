/* Failures: NULL arguments, _free(NULL), refused configs with their status and
 * message, outputs left alone on failure, short message buffers, and the last error
 * being per thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

#include "edgepipe.h"

static int failures = 0;

#define EXPECT(condition, description)                                              \
    do {                                                                            \
        if (condition) {                                                            \
            printf("ok - %s\n", description);                                       \
        } else {                                                                    \
            printf("FAILED - %s\n", description);                                   \
            fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #condition); \
            failures++;                                                             \
        }                                                                           \
    } while (0)

static char message[512];

/* Copies the last error message into `message`. */
static edgepipe_status last_message(void) {
    size_t written = 0;
    edgepipe_status status = edgepipe_error_message(message, sizeof message, &written);
    if (status == EDGEPIPE_STATUS_OK && written != strlen(message)) {
        return EDGEPIPE_STATUS_INTERNAL;
    }
    return status;
}

static int other_thread(void *unused) {
    (void)unused;
    size_t count = 0;
    /* A failure on this thread must not touch the main thread's message. */
    return edgepipe_pipeline_stage_count(NULL, &count) == EDGEPIPE_STATUS_NULL_ARGUMENT ? 0 : 1;
}

int main(void) {
    EXPECT(last_message() == EDGEPIPE_STATUS_OK && message[0] == '\0',
           "no failure yet: empty message");

    edgepipe_pipeline_free(NULL);
    edgepipe_buffer_free(NULL);
    EXPECT(1, "_free(NULL) is a no-op");
    EXPECT(edgepipe_buffer_data(NULL) == NULL && edgepipe_buffer_len(NULL) == 0,
           "buffer getters on NULL");

    static const char good[] = "{\"transforms\": [{\"type\": \"add_metadata\", "
                               "\"metadata\": {\"site\": \"factory-1\"}}]}";
    edgepipe_pipeline *pipeline = NULL;
    EXPECT(edgepipe_pipeline_new_from_json(NULL, 10, &pipeline) ==
                   EDGEPIPE_STATUS_NULL_ARGUMENT &&
               pipeline == NULL,
           "NULL config: NULL_ARGUMENT, no output");
    EXPECT(last_message() == EDGEPIPE_STATUS_OK && strstr(message, "`config`") != NULL,
           "the message names the argument");
    EXPECT(edgepipe_pipeline_new_from_json(good, sizeof good - 1, NULL) ==
               EDGEPIPE_STATUS_NULL_ARGUMENT,
           "NULL out: NULL_ARGUMENT");

    static const char not_utf8[] = "{\"transforms\": [], \"x\": \"\xff\"}";
    EXPECT(edgepipe_pipeline_new_from_json(not_utf8, sizeof not_utf8 - 1, &pipeline) ==
                   EDGEPIPE_STATUS_INVALID_UTF8 &&
               pipeline == NULL,
           "config that is not UTF-8: INVALID_UTF8");

    static const char misspelt[] =
        "{\"transforms\": [{\"type\": \"rename_fields\", \"mapingg\": {}}]}";
    EXPECT(edgepipe_pipeline_new_from_json(misspelt, sizeof misspelt - 1, &pipeline) ==
                   EDGEPIPE_STATUS_CONFIG &&
               pipeline == NULL,
           "misspelt key: CONFIG, no output");
    EXPECT(last_message() == EDGEPIPE_STATUS_OK && strstr(message, "transforms[0]") != NULL &&
               strstr(message, "mapingg") != NULL,
           "the message names the key");

    static const char bad_toml[] = "[[transforms]]\ntype = \"no_such_transform\"\n";
    EXPECT(edgepipe_pipeline_new_from_toml(bad_toml, sizeof bad_toml - 1, &pipeline) ==
                   EDGEPIPE_STATUS_CONFIG &&
               pipeline == NULL,
           "unknown transform in TOML: CONFIG");
    EXPECT(last_message() == EDGEPIPE_STATUS_OK && strstr(message, "no_such_transform") != NULL,
           "the message names the transform");

    char small[8];
    size_t written = 99;
    EXPECT(edgepipe_error_message(small, sizeof small, &written) ==
                   EDGEPIPE_STATUS_BUFFER_TOO_SMALL &&
               written == 7 && small[7] == '\0' && strncmp(small, message, 7) == 0,
           "short buffer: BUFFER_TOO_SMALL, truncated and terminated");
    EXPECT(edgepipe_error_message(NULL, 0, &written) == EDGEPIPE_STATUS_NULL_ARGUMENT &&
               last_message() == EDGEPIPE_STATUS_OK &&
               strstr(message, "no_such_transform") != NULL,
           "edgepipe_error_message never replaces the last error");

    thrd_t thread;
    int thread_result = -1;
    EXPECT(thrd_create(&thread, other_thread, NULL) == thrd_success &&
               thrd_join(thread, &thread_result) == thrd_success && thread_result == 0 &&
               last_message() == EDGEPIPE_STATUS_OK &&
               strstr(message, "no_such_transform") != NULL,
           "another thread's failure leaves this thread's message alone");

    if (edgepipe_pipeline_new_from_json(good, sizeof good - 1, &pipeline) !=
        EDGEPIPE_STATUS_OK) {
        fprintf(stderr, "could not build the good pipeline\n");
        return 1;
    }
    edgepipe_buffer *records = NULL;
    edgepipe_buffer *quarantine = NULL;
    edgepipe_buffer *errors = NULL;
    EXPECT(edgepipe_pipeline_process_jsonl(NULL, (const uint8_t *)"", 0, &records,
                                           &quarantine, &errors) ==
                   EDGEPIPE_STATUS_NULL_ARGUMENT &&
               records == NULL && quarantine == NULL && errors == NULL,
           "NULL pipeline: NULL_ARGUMENT, no outputs");
    EXPECT(edgepipe_pipeline_process_jsonl(pipeline, NULL, 5, &records, &quarantine, &errors) ==
                   EDGEPIPE_STATUS_NULL_ARGUMENT &&
               records == NULL,
           "NULL input with a length: NULL_ARGUMENT");
    EXPECT(edgepipe_pipeline_process_jsonl(pipeline, (const uint8_t *)"", 0, &records, NULL,
                                           &errors) == EDGEPIPE_STATUS_NULL_ARGUMENT &&
               records == NULL && errors == NULL,
           "one NULL output: NULL_ARGUMENT, the others untouched");
    EXPECT(edgepipe_pipeline_process_jsonl(pipeline, NULL, 0, &records, &quarantine, &errors) ==
                   EDGEPIPE_STATUS_OK &&
               edgepipe_buffer_len(records) == 0 && edgepipe_buffer_len(quarantine) == 0 &&
               edgepipe_buffer_len(errors) == 0,
           "(NULL, 0) is an empty batch");
    edgepipe_buffer_free(records);
    edgepipe_buffer_free(quarantine);
    edgepipe_buffer_free(errors);

    edgepipe_stage_stats stats;
    EXPECT(edgepipe_pipeline_stats(pipeline, 1, &stats) == EDGEPIPE_STATUS_INDEX_OUT_OF_RANGE &&
               last_message() == EDGEPIPE_STATUS_OK && strstr(message, "1 stages") != NULL,
           "stats past the last stage: INDEX_OUT_OF_RANGE");
    EXPECT(edgepipe_pipeline_stats(pipeline, 0, NULL) == EDGEPIPE_STATUS_NULL_ARGUMENT,
           "stats into NULL: NULL_ARGUMENT");

    edgepipe_pipeline_free(pipeline);
    pipeline = NULL;
    edgepipe_pipeline_free(pipeline);
    EXPECT(1, "free, set to NULL, free again");

    return failures == 0 ? 0 : 1;
}

/* A pipeline from JSON config, one JSON Lines batch through it, every output checked. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgepipe.h"

static void fail(const char *what, edgepipe_status status) {
    char message[512];
    size_t written = 0;
    edgepipe_error_message(message, sizeof message, &written);
    fprintf(stderr, "%s: status %d: %s\n", what, (int)status, message);
    exit(1);
}

#define CHECK(call)                                   \
    do {                                              \
        edgepipe_status status_ = (call);             \
        if (status_ != EDGEPIPE_STATUS_OK) {          \
            fail(#call, status_);                     \
        }                                             \
    } while (0)

#define EXPECT(condition)                                                     \
    do {                                                                      \
        if (!(condition)) {                                                   \
            fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #condition); \
            exit(1);                                                          \
        }                                                                     \
    } while (0)

/* Whether the buffer's bytes contain `needle` (buffers are not NUL-terminated). */
static int contains(const edgepipe_buffer *buffer, const char *needle) {
    const uint8_t *data = edgepipe_buffer_data(buffer);
    size_t len = edgepipe_buffer_len(buffer);
    size_t needle_len = strlen(needle);
    for (size_t at = 0; at + needle_len <= len; at++) {
        if (memcmp(data + at, needle, needle_len) == 0) {
            return 1;
        }
    }
    return 0;
}

static size_t count_lines(const edgepipe_buffer *buffer) {
    const uint8_t *data = edgepipe_buffer_data(buffer);
    size_t lines = 0;
    for (size_t at = 0; at < edgepipe_buffer_len(buffer); at++) {
        lines += data[at] == '\n';
    }
    return lines;
}

int main(void) {
    EXPECT(strcmp(edgepipe_version(), EDGEPIPE_VERSION) == 0);
    printf("version %d.%d.%d\n", EDGEPIPE_VERSION_MAJOR, EDGEPIPE_VERSION_MINOR,
           EDGEPIPE_VERSION_PATCH);

    static const char config[] =
        "{\"transforms\": ["
        "{\"type\": \"add_metadata\", \"metadata\": {\"site\": \"factory-1\"}},"
        "{\"type\": \"validate_schema\", \"fields\": {\"temperature\": \"number\"}},"
        "{\"type\": \"rename_fields\", \"mapping\": {\"temperature\": \"temp_c\"}}"
        "]}";
    edgepipe_pipeline *pipeline = NULL;
    CHECK(edgepipe_pipeline_new_from_json(config, sizeof config - 1, &pipeline));

    static const char input[] =
        "{\"record_id\":\"r1\",\"device_id\":\"dev-0001\",\"timestamp\":\"2026-01-01T00:00:00.100Z\","
        "\"data_type\":\"sensors\",\"payload\":{\"temperature\":22.87,\"humidity\":50.3}}\n"
        "{\"record_id\":\"r2\",\"device_id\":\"dev-0001\",\"timestamp\":\"2026-01-01T00:00:00.200Z\","
        "\"data_type\":\"sensors\",\"payload\":{\"temperature\":\"broken\"}}\n"
        "\n"
        "{not json\n"
        "{\"record_id\":\"r3\",\"device_id\":\"dev-0002\",\"timestamp\":\"2026-01-01T00:00:00.300Z\","
        "\"data_type\":\"sensors\",\"payload\":{\"temperature\":-4,\"ok\":true}}\n";
    edgepipe_buffer *records = NULL;
    edgepipe_buffer *quarantine = NULL;
    edgepipe_buffer *errors = NULL;
    CHECK(edgepipe_pipeline_process_jsonl(pipeline, (const uint8_t *)input, sizeof input - 1,
                                          &records, &quarantine, &errors));

    printf("records: %zu lines\n", count_lines(records));
    fwrite(edgepipe_buffer_data(records), 1, edgepipe_buffer_len(records), stdout);

    /* Shown on failure by the test harness; not compared. */
    fwrite(edgepipe_buffer_data(quarantine), 1, edgepipe_buffer_len(quarantine), stderr);
    fwrite(edgepipe_buffer_data(errors), 1, edgepipe_buffer_len(errors), stderr);

    EXPECT(count_lines(quarantine) == 1);
    EXPECT(contains(quarantine, "{\"stage\":\"validate_schema\",\"stage_index\":1,"
                                "\"reason\":{\"code\":\"schema.wrong_type\",\"field\":\"temperature\""));
    EXPECT(contains(quarantine, "\"record\":{\"record_id\":\"r2\""));
    printf("quarantine: %zu line, r2 at validate_schema\n", count_lines(quarantine));

    EXPECT(count_lines(errors) == 1);
    EXPECT(contains(errors, "{\"line\":4,\"status\":200,\"message\":\"line 4: invalid record JSON"));
    printf("errors: %zu line, line 4 status %d\n", count_lines(errors),
           (int)EDGEPIPE_STATUS_INVALID_JSON);

    size_t stages = 0;
    CHECK(edgepipe_pipeline_stage_count(pipeline, &stages));
    for (size_t index = 0; index < stages; index++) {
        edgepipe_stage_stats stats;
        CHECK(edgepipe_pipeline_stats(pipeline, index, &stats));
        EXPECT(stats.records_in == stats.records_out + stats.dropped + stats.quarantined);
        printf("stage %zu %s: in=%" PRIu64 " out=%" PRIu64 " dropped=%" PRIu64
               " quarantined=%" PRIu64 "\n",
               index, stats.name, stats.records_in, stats.records_out, stats.dropped,
               stats.quarantined);
    }

    edgepipe_buffer_free(records);
    edgepipe_buffer_free(quarantine);
    edgepipe_buffer_free(errors);
    edgepipe_pipeline_free(pipeline);
    return 0;
}

/* A window stage from C: readings built field by field and as JSON Lines,
 * tumbling windows closed by the watermark and by flush, the aggregates taken
 * into the caller's buffer, refused readings, counters. */
#include <inttypes.h>

#include "support.h"

#define START INT64_C(1767225600000000000)
#define SECOND INT64_C(1000000000)

int main(void) {
    static const char config[] = "{\"kind\": \"tumbling\", \"size_seconds\": 10, "
                                 "\"aggregates\": [\"count\", \"mean\", \"max\"], "
                                 "\"fields\": [\"temperature\"]}";
    edgepipe_window *window = NULL;
    CHECK(edgepipe_window_new_from_json(STR(config), &window));

    edgepipe_record *record = NULL;
    CHECK(edgepipe_record_new(STR("dev-1"), STR("sensors"), &record));
    for (int second = 0; second < 25; second += 5) {
        char id[32];
        int len = snprintf(id, sizeof id, "r-%d", second);
        CHECK(edgepipe_record_set_id(record, id, (size_t)len));
        CHECK(edgepipe_record_set_timestamp(record, START + second * SECOND));
        CHECK(edgepipe_record_set_f64(record, STR("temperature"), 20.0 + second));
        CHECK(edgepipe_window_push(window, record));
    }
    edgepipe_record_free(record);

    static const char lines[] =
        "{\"record_id\":\"j1\",\"device_id\":\"dev-2\",\"timestamp\":\"2026-01-01T00:00:01Z\","
        "\"data_type\":\"sensors\",\"payload\":{\"temperature\":5}}\n"
        "not a record\n"
        "{\"record_id\":\"j2\",\"device_id\":\"dev-2\",\"timestamp\":\"2026-01-01T00:00:03Z\","
        "\"data_type\":\"sensors\",\"payload\":{\"temperature\":\"hot\"}}\n";
    edgepipe_buffer *errors = NULL;
    CHECK(edgepipe_window_push_jsonl(window, (const uint8_t *)lines, sizeof lines - 1, &errors));
    EXPECT(count_lines(edgepipe_buffer_data(errors), edgepipe_buffer_len(errors)) == 1);
    EXPECT(bytes_contain(edgepipe_buffer_data(errors), edgepipe_buffer_len(errors), "{\"line\":2,\"status\":200"));
    edgepipe_buffer_free(errors);

    /* dev-1's watermark passed [0, 10) and [10, 20): two aggregates wait. */
    edgepipe_window_counters stats;
    CHECK(edgepipe_window_stats(window, &stats));
    printf("pushed %" PRIu64 ", emitted %" PRIu64 ", waiting %" PRIu64 ", open %" PRIu64 "\n",
           stats.records_in, stats.windows_emitted, stats.aggregates_waiting, stats.open_windows);

    uint8_t small[16];
    size_t needed = 0;
    CHECK_STATUS(EDGEPIPE_STATUS_BUFFER_TOO_SMALL,
                 edgepipe_window_take_aggregates_into(window, small, sizeof small, &needed));
    CHECK(edgepipe_window_stats(window, &stats));
    EXPECT(stats.aggregates_waiting == 2); /* nothing was lost to the short buffer */
    uint8_t *buffer = malloc(needed);
    EXPECT(buffer != NULL);
    size_t len = 0;
    CHECK(edgepipe_window_take_aggregates_into(window, buffer, needed, &len));
    EXPECT(len == needed);
    fwrite(buffer, 1, len, stdout);
    free(buffer);

    CHECK(edgepipe_window_flush(window));
    edgepipe_buffer *aggregates = NULL;
    CHECK(edgepipe_window_take_aggregates(window, &aggregates));
    printf("after flush: %zu aggregates\n",
           count_lines(edgepipe_buffer_data(aggregates), edgepipe_buffer_len(aggregates)));
    fwrite(edgepipe_buffer_data(aggregates), 1, edgepipe_buffer_len(aggregates), stdout);
    edgepipe_buffer_free(aggregates);

    edgepipe_buffer *rejected = NULL;
    CHECK(edgepipe_window_take_rejected(window, &rejected));
    printf("rejected: %zu\n", count_lines(edgepipe_buffer_data(rejected), edgepipe_buffer_len(rejected)));
    fwrite(edgepipe_buffer_data(rejected), 1, edgepipe_buffer_len(rejected), stdout);
    edgepipe_buffer_free(rejected);
    edgepipe_buffer *late = NULL;
    CHECK(edgepipe_window_take_late(window, &late));
    EXPECT(edgepipe_buffer_len(late) == 0);
    edgepipe_buffer_free(late);

    CHECK(edgepipe_window_advance_to(window, START + 3600 * SECOND));
    edgepipe_buffer *json = NULL;
    CHECK(edgepipe_window_stats_json(window, &json));
    printf("%.*s\n", (int)edgepipe_buffer_len(json), (const char *)edgepipe_buffer_data(json));
    edgepipe_buffer_free(json);

    static const char bad[] = "kind = \"tumbling\"\nsize_seconds = -1\n";
    edgepipe_window *refused = NULL;
    CHECK_STATUS(EDGEPIPE_STATUS_CONFIG, edgepipe_window_new_from_toml(STR(bad), &refused));
    char message[512];
    printf("size_seconds = -1: CONFIG, %s\n",
           strstr(last_error(message), "size_seconds") != NULL ? "names the key" : message);
    EXPECT(refused == NULL);
    edgepipe_window_free(window);
    return 0;
}

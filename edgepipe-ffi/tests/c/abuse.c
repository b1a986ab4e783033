/* Abuse of every new call: NULL for each pointer argument, a NULL pointer with a
 * length, invalid UTF-8, bad enum values and options, invalid configs and bytes,
 * a use after free, a double free and a handle of the wrong type. Each must give
 * its status, leave outputs alone, and never crash (valgrind runs this too). */
#include <inttypes.h>

#include "support.h"

static int checks = 0;

#define NULL_ARG(call)                                             \
    do {                                                           \
        CHECK_STATUS(EDGEPIPE_STATUS_NULL_ARGUMENT, (call));       \
        checks++;                                                  \
    } while (0)

#define IS(expected, call)                     \
    do {                                       \
        CHECK_STATUS((expected), (call));      \
        checks++;                              \
    } while (0)

static const char bad_utf8[] = "\xff\xfe";

int main(void) {
    edgepipe_record *record = NULL;
    CHECK(edgepipe_record_new(STR("d"), STR("t"), &record));
    edgepipe_pipeline *pipeline = NULL;
    CHECK(edgepipe_pipeline_new_from_json(STR("{\"transforms\": []}"), &pipeline));
    edgepipe_window *window = NULL;
    CHECK(edgepipe_window_new_from_json(STR("{\"size_seconds\": 1}"), &window));
    edgepipe_batcher *batcher = NULL;
    CHECK(edgepipe_batcher_new(STR("s"), NULL, &batcher));
    edgepipe_batch *batch = NULL;
    CHECK(edgepipe_batch_new_from_jsonl(STR("s"), NULL, NULL, 0, 0, &batch));
    edgepipe_queue *queue = NULL;
    CHECK(edgepipe_queue_new_memory(NULL, &queue));
    uint64_t id = 0;
    CHECK(edgepipe_queue_enqueue_batch(queue, batch, &id));
    edgepipe_queue_entry *entry = NULL;
    CHECK(edgepipe_queue_take(queue, 0, &entry));
    EXPECT(entry != NULL);

    /* Every output and every input pointer, one at a time. */
    edgepipe_record *no_record = NULL;
    NULL_ARG(edgepipe_record_new(NULL, 1, STR("t"), &no_record));
    NULL_ARG(edgepipe_record_new(STR("d"), NULL, 1, &no_record));
    NULL_ARG(edgepipe_record_new(STR("d"), STR("t"), NULL));
    NULL_ARG(edgepipe_record_new_from_json(NULL, 2, &no_record));
    NULL_ARG(edgepipe_record_new_from_json(STR("{}"), NULL));
    EXPECT(no_record == NULL);
    NULL_ARG(edgepipe_record_set_id(NULL, STR("x")));
    NULL_ARG(edgepipe_record_set_id(record, NULL, 1));
    NULL_ARG(edgepipe_record_set_timestamp(NULL, 0));
    NULL_ARG(edgepipe_record_set_timestamp_iso8601(NULL, STR("2026-01-01T00:00:00Z")));
    NULL_ARG(edgepipe_record_set_timestamp_iso8601(record, NULL, 3));
    NULL_ARG(edgepipe_record_set_str(NULL, STR("k"), STR("v")));
    NULL_ARG(edgepipe_record_set_str(record, NULL, 1, STR("v")));
    NULL_ARG(edgepipe_record_set_str(record, STR("k"), NULL, 1));
    NULL_ARG(edgepipe_record_set_f64(NULL, STR("k"), 1.0));
    NULL_ARG(edgepipe_record_set_f64(record, NULL, 1, 1.0));
    NULL_ARG(edgepipe_record_set_i64(NULL, STR("k"), 1));
    NULL_ARG(edgepipe_record_set_i64(record, NULL, 1, 1));
    NULL_ARG(edgepipe_record_set_bool(NULL, STR("k"), 1));
    NULL_ARG(edgepipe_record_set_bool(record, NULL, 1, 1));
    NULL_ARG(edgepipe_record_set_null(NULL, STR("k")));
    NULL_ARG(edgepipe_record_set_null(record, NULL, 1));
    NULL_ARG(edgepipe_record_set_metadata(NULL, STR("k"), STR("v")));
    NULL_ARG(edgepipe_record_set_metadata(record, NULL, 1, STR("v")));
    NULL_ARG(edgepipe_record_set_metadata(record, STR("k"), NULL, 1));
    NULL_ARG(edgepipe_record_clear_fields(NULL));
    size_t len = 0;
    uint8_t buf[64];
    NULL_ARG(edgepipe_record_to_json(NULL, buf, sizeof buf, &len));
    NULL_ARG(edgepipe_record_to_json(record, NULL, sizeof buf, &len));
    NULL_ARG(edgepipe_record_to_json(record, buf, sizeof buf, NULL));
    edgepipe_buffer *buffer = NULL;
    NULL_ARG(edgepipe_record_to_json_buffer(NULL, &buffer));
    NULL_ARG(edgepipe_record_to_json_buffer(record, NULL));

    edgepipe_outcome outcome;
    NULL_ARG(edgepipe_pipeline_process_record(NULL, record, &outcome));
    NULL_ARG(edgepipe_pipeline_process_record(pipeline, NULL, &outcome));
    NULL_ARG(edgepipe_pipeline_process_record(pipeline, record, NULL));
    NULL_ARG(edgepipe_pipeline_stats_json(NULL, &buffer));
    NULL_ARG(edgepipe_pipeline_stats_json(pipeline, NULL));

    edgepipe_window *no_window = NULL;
    NULL_ARG(edgepipe_window_new_from_json(NULL, 2, &no_window));
    NULL_ARG(edgepipe_window_new_from_json(STR("{}"), NULL));
    NULL_ARG(edgepipe_window_new_from_toml(NULL, 2, &no_window));
    NULL_ARG(edgepipe_window_push(NULL, record));
    NULL_ARG(edgepipe_window_push(window, NULL));
    NULL_ARG(edgepipe_window_push_jsonl(NULL, NULL, 0, &buffer));
    NULL_ARG(edgepipe_window_push_jsonl(window, NULL, 4, &buffer));
    NULL_ARG(edgepipe_window_push_jsonl(window, NULL, 0, NULL));
    NULL_ARG(edgepipe_window_advance_to(NULL, 0));
    NULL_ARG(edgepipe_window_flush(NULL));
    NULL_ARG(edgepipe_window_take_aggregates(NULL, &buffer));
    NULL_ARG(edgepipe_window_take_aggregates(window, NULL));
    NULL_ARG(edgepipe_window_take_aggregates_into(NULL, buf, sizeof buf, &len));
    NULL_ARG(edgepipe_window_take_aggregates_into(window, buf, sizeof buf, NULL));
    NULL_ARG(edgepipe_window_take_late(NULL, &buffer));
    NULL_ARG(edgepipe_window_take_late(window, NULL));
    NULL_ARG(edgepipe_window_take_rejected(NULL, &buffer));
    NULL_ARG(edgepipe_window_take_rejected(window, NULL));
    edgepipe_window_counters window_stats;
    NULL_ARG(edgepipe_window_stats(NULL, &window_stats));
    NULL_ARG(edgepipe_window_stats(window, NULL));
    NULL_ARG(edgepipe_window_stats_json(NULL, &buffer));
    NULL_ARG(edgepipe_window_stats_json(window, NULL));
    EXPECT(no_window == NULL && buffer == NULL);

    NULL_ARG(edgepipe_batch_options_default(NULL));
    NULL_ARG(edgepipe_decode_limits_default(NULL));
    edgepipe_batcher *no_batcher = NULL;
    NULL_ARG(edgepipe_batcher_new(NULL, 1, NULL, &no_batcher));
    NULL_ARG(edgepipe_batcher_new(STR("s"), NULL, NULL));
    NULL_ARG(edgepipe_batcher_push(NULL, record, 0));
    NULL_ARG(edgepipe_batcher_push(batcher, NULL, 0));
    NULL_ARG(edgepipe_batcher_push_jsonl(NULL, NULL, 0, 0, &buffer));
    NULL_ARG(edgepipe_batcher_push_jsonl(batcher, NULL, 3, 0, &buffer));
    NULL_ARG(edgepipe_batcher_push_jsonl(batcher, NULL, 0, 0, NULL));
    NULL_ARG(edgepipe_batcher_poll(NULL, 0));
    NULL_ARG(edgepipe_batcher_flush(NULL, 0));
    NULL_ARG(edgepipe_batcher_ready_count(NULL, &len));
    NULL_ARG(edgepipe_batcher_ready_count(batcher, NULL));
    NULL_ARG(edgepipe_batcher_open_records(NULL, &len));
    NULL_ARG(edgepipe_batcher_open_records(batcher, NULL));
    edgepipe_batch *no_batch = NULL;
    NULL_ARG(edgepipe_batcher_next_batch(NULL, &no_batch));
    NULL_ARG(edgepipe_batcher_next_batch(batcher, NULL));
    NULL_ARG(edgepipe_batch_new_from_jsonl(NULL, 1, NULL, NULL, 0, 0, &no_batch));
    NULL_ARG(edgepipe_batch_new_from_jsonl(STR("s"), NULL, NULL, 5, 0, &no_batch));
    NULL_ARG(edgepipe_batch_new_from_jsonl(STR("s"), NULL, NULL, 0, 0, NULL));
    edgepipe_envelope envelope;
    NULL_ARG(edgepipe_batch_envelope(NULL, &envelope));
    NULL_ARG(edgepipe_batch_envelope(batch, NULL));
    const uint8_t *data = NULL;
    NULL_ARG(edgepipe_batch_payload(NULL, &data, &len));
    NULL_ARG(edgepipe_batch_payload(batch, NULL, &len));
    NULL_ARG(edgepipe_batch_payload(batch, &data, NULL));
    NULL_ARG(edgepipe_batch_to_bytes(NULL, buf, sizeof buf, &len));
    NULL_ARG(edgepipe_batch_to_bytes(batch, NULL, sizeof buf, &len));
    NULL_ARG(edgepipe_batch_to_bytes(batch, buf, sizeof buf, NULL));
    NULL_ARG(edgepipe_batch_to_buffer(NULL, &buffer));
    NULL_ARG(edgepipe_batch_to_buffer(batch, NULL));
    NULL_ARG(edgepipe_batch_from_bytes(NULL, 10, NULL, &no_batch));
    NULL_ARG(edgepipe_batch_from_bytes(buf, sizeof buf, NULL, NULL));
    NULL_ARG(edgepipe_batch_verify(NULL));
    NULL_ARG(edgepipe_batch_decode(NULL, NULL, &buffer));
    NULL_ARG(edgepipe_batch_decode(batch, NULL, NULL));
    NULL_ARG(edgepipe_batch_decode_into(NULL, NULL, buf, sizeof buf, &len));
    NULL_ARG(edgepipe_batch_decode_into(batch, NULL, NULL, 5, &len));
    NULL_ARG(edgepipe_batch_decode_into(batch, NULL, buf, sizeof buf, NULL));
    EXPECT(no_batcher == NULL && no_batch == NULL && data == NULL && buffer == NULL);

    edgepipe_queue *no_queue = NULL;
    NULL_ARG(edgepipe_queue_options_default(NULL));
    NULL_ARG(edgepipe_queue_open(NULL, 3, NULL, &no_queue));
    NULL_ARG(edgepipe_queue_open(STR("/nonexistent-edgepipe-dir"), NULL, NULL));
    NULL_ARG(edgepipe_queue_new_memory(NULL, NULL));
    NULL_ARG(edgepipe_queue_new_from_callbacks(NULL, &no_queue));
    NULL_ARG(edgepipe_queue_enqueue_batch(NULL, batch, &id));
    NULL_ARG(edgepipe_queue_enqueue_batch(queue, NULL, &id));
    NULL_ARG(edgepipe_queue_enqueue_batch(queue, batch, NULL));
    NULL_ARG(edgepipe_queue_enqueue(NULL, STR("s"), STR("b"), 0, NULL, 0, &id));
    NULL_ARG(edgepipe_queue_enqueue(queue, NULL, 1, STR("b"), 0, NULL, 0, &id));
    NULL_ARG(edgepipe_queue_enqueue(queue, STR("s"), NULL, 1, 0, NULL, 0, &id));
    NULL_ARG(edgepipe_queue_enqueue(queue, STR("s"), STR("b"), 0, NULL, 9, &id));
    NULL_ARG(edgepipe_queue_enqueue(queue, STR("s"), STR("b"), 0, NULL, 0, NULL));
    edgepipe_queue_entry *no_entry = NULL;
    NULL_ARG(edgepipe_queue_take(NULL, 0, &no_entry));
    NULL_ARG(edgepipe_queue_take(queue, 0, NULL));
    NULL_ARG(edgepipe_queue_ack(NULL, 1));
    edgepipe_nack_result nacked;
    NULL_ARG(edgepipe_queue_nack(NULL, 1, 0, &nacked));
    NULL_ARG(edgepipe_queue_nack(queue, 1, 0, NULL));
    NULL_ARG(edgepipe_queue_release(NULL, 1));
    edgepipe_queue_counters queue_stats;
    NULL_ARG(edgepipe_queue_stats(NULL, &queue_stats));
    NULL_ARG(edgepipe_queue_stats(queue, NULL));
    NULL_ARG(edgepipe_queue_stats_json(NULL, &buffer));
    NULL_ARG(edgepipe_queue_stats_json(queue, NULL));
    edgepipe_queue_entry_fields fields;
    NULL_ARG(edgepipe_queue_entry_info(NULL, &fields));
    NULL_ARG(edgepipe_queue_entry_info(entry, NULL));
    NULL_ARG(edgepipe_queue_entry_batch(NULL, NULL, &no_batch));
    NULL_ARG(edgepipe_queue_entry_batch(entry, NULL, NULL));
    EXPECT(no_queue == NULL && no_entry == NULL && no_batch == NULL && buffer == NULL);
    printf("NULL arguments: NULL_ARGUMENT every time (%d calls)\n", checks);

    /* Invalid UTF-8 in every kind of text argument. */
    checks = 0;
    IS(EDGEPIPE_STATUS_INVALID_UTF8, edgepipe_record_new(STR(bad_utf8), STR("t"), &no_record));
    IS(EDGEPIPE_STATUS_INVALID_UTF8, edgepipe_record_set_str(record, STR(bad_utf8), STR("v")));
    IS(EDGEPIPE_STATUS_INVALID_UTF8, edgepipe_record_set_str(record, STR("k"), STR(bad_utf8)));
    IS(EDGEPIPE_STATUS_INVALID_UTF8, edgepipe_record_set_metadata(record, STR("k"), STR(bad_utf8)));
    IS(EDGEPIPE_STATUS_INVALID_UTF8, edgepipe_record_set_id(record, STR(bad_utf8)));
    IS(EDGEPIPE_STATUS_INVALID_UTF8, edgepipe_window_new_from_json(STR(bad_utf8), &no_window));
    IS(EDGEPIPE_STATUS_INVALID_UTF8, edgepipe_batcher_new(STR(bad_utf8), NULL, &no_batcher));
    IS(EDGEPIPE_STATUS_INVALID_UTF8, edgepipe_queue_open(STR(bad_utf8), NULL, &no_queue));
    IS(EDGEPIPE_STATUS_INVALID_UTF8,
       edgepipe_queue_enqueue(queue, STR(bad_utf8), STR("b"), 0, NULL, 0, &id));
    IS(EDGEPIPE_STATUS_INVALID_JSON, edgepipe_record_new_from_json(STR(bad_utf8), &no_record));
    printf("invalid UTF-8: INVALID_UTF8 (%d calls)\n", checks);

    /* Bad values: enums out of range, limits of 0, levels out of range, bad text. */
    checks = 0;
    edgepipe_batch_options options;
    CHECK(edgepipe_batch_options_default(&options));
    options.codec = 99;
    IS(EDGEPIPE_STATUS_UNSUPPORTED, edgepipe_batcher_new(STR("s"), &options, &no_batcher));
    CHECK(edgepipe_batch_options_default(&options));
    options.compression = 7;
    IS(EDGEPIPE_STATUS_UNSUPPORTED, edgepipe_batcher_new(STR("s"), &options, &no_batcher));
    CHECK(edgepipe_batch_options_default(&options));
    options.compression_level = 42;
    IS(EDGEPIPE_STATUS_CONFIG, edgepipe_batcher_new(STR("s"), &options, &no_batcher));
    options.compression_level = -5;
    IS(EDGEPIPE_STATUS_CONFIG, edgepipe_batcher_new(STR("s"), &options, &no_batcher));
    CHECK(edgepipe_batch_options_default(&options));
    options.max_records = 0;
    IS(EDGEPIPE_STATUS_CONFIG, edgepipe_batcher_new(STR("s"), &options, &no_batcher));
    CHECK(edgepipe_batch_options_default(&options));
    options.max_age_nanos = -1;
    IS(EDGEPIPE_STATUS_CONFIG, edgepipe_batcher_new(STR("s"), &options, &no_batcher));
    edgepipe_queue_options queue_options;
    CHECK(edgepipe_queue_options_default(&queue_options));
    queue_options.full_policy = 5;
    IS(EDGEPIPE_STATUS_UNSUPPORTED, edgepipe_queue_new_memory(&queue_options, &no_queue));
    CHECK(edgepipe_queue_options_default(&queue_options));
    queue_options.sync = 5;
    IS(EDGEPIPE_STATUS_UNSUPPORTED, edgepipe_queue_open(STR("unused"), &queue_options, &no_queue));
    IS(EDGEPIPE_STATUS_INVALID_TIMESTAMP,
       edgepipe_record_set_timestamp_iso8601(record, STR("yesterday")));
    IS(EDGEPIPE_STATUS_INVALID_JSON, edgepipe_record_new_from_json(STR("{\"record_id\": 3}"), &no_record));
    IS(EDGEPIPE_STATUS_CONFIG, edgepipe_window_new_from_json(STR("{\"kind\": \"square\"}"), &no_window));
    IS(EDGEPIPE_STATUS_CONFIG, edgepipe_window_new_from_json(STR("{\"size_seconds\": 1, \"colour\": 2}"), &no_window));
    IS(EDGEPIPE_STATUS_INVALID_JSON,
       edgepipe_batch_new_from_jsonl(STR("s"), NULL, (const uint8_t *)"{oops\n", 6, 0, &no_batch));
    IS(EDGEPIPE_STATUS_CORRUPT_DATA, edgepipe_batch_from_bytes(buf, 0, NULL, &no_batch));
    IS(EDGEPIPE_STATUS_CORRUPT_DATA, edgepipe_batch_from_bytes((const uint8_t *)"EPX\x01", 4, NULL, &no_batch));
    IS(EDGEPIPE_STATUS_UNKNOWN_ENTRY, edgepipe_queue_ack(queue, 999));
    IS(EDGEPIPE_STATUS_UNKNOWN_ENTRY, edgepipe_queue_nack(queue, 999, 0, &nacked));
    IS(EDGEPIPE_STATUS_UNKNOWN_ENTRY, edgepipe_queue_release(queue, 999));
    /* NaN cannot be written as JSON: refused by the batcher, which stays as it was. */
    CHECK(edgepipe_record_set_f64(record, STR("v"), 0.0 / 0.0));
    IS(EDGEPIPE_STATUS_NON_FINITE_FLOAT, edgepipe_batcher_push(batcher, record, 0));
    IS(EDGEPIPE_STATUS_NON_FINITE_FLOAT, edgepipe_record_to_json_buffer(record, &buffer));
    CHECK(edgepipe_batcher_open_records(batcher, &len));
    EXPECT(len == 0 && no_batcher == NULL && no_queue == NULL && no_record == NULL &&
           no_window == NULL && no_batch == NULL && buffer == NULL);
    printf("bad values: their own status, no output (%d calls)\n", checks);

    /* A use after free, a double free and a handle of the wrong type. */
    edgepipe_record *freed = NULL;
    CHECK(edgepipe_record_new(STR("d"), STR("t"), &freed));
    edgepipe_record_free(freed);
    char message[512];
    CHECK_STATUS(EDGEPIPE_STATUS_INVALID_HANDLE, edgepipe_record_set_f64(freed, STR("v"), 1.0));
    printf("use after free: INVALID_HANDLE (%s)\n", last_error(message));
    CHECK_STATUS(EDGEPIPE_STATUS_INVALID_HANDLE, edgepipe_batcher_push(batcher, freed, 0));
    edgepipe_record_free(freed);
    EXPECT(strstr(last_error(message), "not a live edgepipe_record") != NULL);
    printf("double free: ignored, the last error says so\n");
    CHECK_STATUS(EDGEPIPE_STATUS_INVALID_HANDLE,
                 edgepipe_record_set_f64((edgepipe_record *)(void *)batch, STR("v"), 1.0));
    CHECK_STATUS(EDGEPIPE_STATUS_INVALID_HANDLE,
                 edgepipe_queue_ack((const edgepipe_queue *)(const void *)pipeline, 1));
    printf("a handle of another type: INVALID_HANDLE\n");
    uint8_t on_stack[64] = {0};
    CHECK_STATUS(EDGEPIPE_STATUS_INVALID_HANDLE, edgepipe_batch_verify((const edgepipe_batch *)(void *)on_stack));
    printf("a pointer edgepipe never made: INVALID_HANDLE\n");

    /* Every _free takes NULL. */
    edgepipe_record_free(NULL);
    edgepipe_window_free(NULL);
    edgepipe_batcher_free(NULL);
    edgepipe_batch_free(NULL);
    edgepipe_queue_free(NULL);
    edgepipe_queue_entry_free(NULL);

    edgepipe_queue_entry_free(entry);
    edgepipe_queue_free(queue);
    edgepipe_batch_free(batch);
    edgepipe_batcher_free(batcher);
    edgepipe_window_free(window);
    edgepipe_pipeline_free(pipeline);
    edgepipe_record_free(record);
    return 0;
}

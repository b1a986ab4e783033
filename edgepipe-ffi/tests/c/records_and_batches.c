/* Records built field by field, run through a pipeline, batched with every codec
 * and compression, written to bytes (into the caller's buffer), read back,
 * verified and decoded to the same records. The batches are also left in
 * $EDGEPIPE_TEST_DIR for tests/c_programs.rs to decode in Rust. Then the checksum,
 * the decode limits and truncation. */
#include <inttypes.h>

#include "support.h"

#define RECORDS 5
#define START_NANOS INT64_C(1767225600000000000) /* 2026-01-01T00:00:00Z */

static const char *const codec_names[] = {"json", "json-python", "jsonl", "msgpack", "columnar"};
static const char *const compression_names[] = {"none", "gzip", "lz4", "zstd"};

/* Reading `index` of the fixed series, built without JSON. */
static edgepipe_record *make_record(int index) {
    edgepipe_record *record = NULL;
    CHECK(edgepipe_record_new(STR("dev-0001"), STR("sensors"), &record));
    char id[32];
    int id_len = snprintf(id, sizeof id, "gw-1:0:%d", index);
    CHECK(edgepipe_record_set_id(record, id, (size_t)id_len));
    CHECK(edgepipe_record_set_timestamp(record, START_NANOS + (int64_t)index * 100000000));
    CHECK(edgepipe_record_set_f64(record, STR("temperature"), 20.5 + index * 0.25));
    CHECK(edgepipe_record_set_i64(record, STR("count"), -3 + index));
    CHECK(edgepipe_record_set_bool(record, STR("ok"), index % 2));
    CHECK(edgepipe_record_set_str(record, STR("state"), STR("r\xc3\xa9gl\xc3\xa9")));
    CHECK(edgepipe_record_set_null(record, STR("spare")));
    CHECK(edgepipe_record_set_metadata(record, STR("site"), STR("factory-1")));
    /* Setting a field again replaces it in place. */
    CHECK(edgepipe_record_set_i64(record, STR("count"), index));
    return record;
}

static void write_file(const char *name, const uint8_t *data, size_t len) {
    char path[1024];
    test_path(path, sizeof path, name);
    FILE *file = fopen(path, "wb");
    EXPECT(file != NULL);
    EXPECT(len == 0 || fwrite(data, 1, len, file) == len);
    EXPECT(fclose(file) == 0);
}

/* The records' JSON Lines, the reference every decode is compared with. */
static uint8_t expected[4096];
static size_t expected_len = 0;

static void append_expected(const edgepipe_record *record) {
    size_t len = 0;
    /* (NULL, 0) asks for the size; a short buffer gets BUFFER_TOO_SMALL and the size. */
    CHECK_STATUS(EDGEPIPE_STATUS_BUFFER_TOO_SMALL, edgepipe_record_to_json(record, NULL, 0, &len));
    size_t needed = len;
    uint8_t small[8];
    len = 0;
    CHECK_STATUS(EDGEPIPE_STATUS_BUFFER_TOO_SMALL,
                 edgepipe_record_to_json(record, small, sizeof small, &len));
    EXPECT(len == needed);
    EXPECT(expected_len + needed + 1 <= sizeof expected);
    CHECK(edgepipe_record_to_json(record, expected + expected_len, sizeof expected - expected_len,
                                  &len));
    EXPECT(len == needed);
    expected_len += len;
    expected[expected_len++] = '\n';
}

static int round_trip(uint32_t codec, uint32_t compression, edgepipe_record *const *records) {
    edgepipe_batch_options options;
    CHECK(edgepipe_batch_options_default(&options));
    options.codec = codec;
    options.compression = compression;
    options.max_records = 3;
    options.max_age_nanos = 0;
    edgepipe_batcher *batcher = NULL;
    CHECK(edgepipe_batcher_new(STR("gw-1"), &options, &batcher));
    for (int index = 0; index < RECORDS; index++) {
        CHECK(edgepipe_batcher_push(batcher, records[index], START_NANOS));
    }
    size_t ready = 0, open = 0;
    CHECK(edgepipe_batcher_ready_count(batcher, &ready));
    CHECK(edgepipe_batcher_open_records(batcher, &open));
    EXPECT(ready == 1 && open == 2);
    CHECK(edgepipe_batcher_flush(batcher, START_NANOS + 1));

    uint8_t decoded[4096];
    size_t decoded_len = 0;
    static uint8_t bytes[8192];
    int batches = 0;
    for (;;) {
        edgepipe_batch *batch = NULL;
        CHECK(edgepipe_batcher_next_batch(batcher, &batch));
        if (batch == NULL) {
            break;
        }
        edgepipe_envelope envelope;
        CHECK(edgepipe_batch_envelope(batch, &envelope));
        EXPECT(envelope.codec == codec && envelope.compression == compression);
        EXPECT(envelope.record_count == (batches == 0 ? 3u : 2u));
        EXPECT(envelope.has_sequence && envelope.sequence_first == (batches == 0 ? 0u : 3u));
        EXPECT(envelope.batch_id_len == 32 && strlen(envelope.batch_id) == 32);
        EXPECT(strcmp(envelope.source_id, "gw-1") == 0 && strlen(envelope.checksum) == 64);
        const uint8_t *payload = NULL;
        size_t payload_len = 0;
        CHECK(edgepipe_batch_payload(batch, &payload, &payload_len));
        EXPECT(payload_len == envelope.compressed_size);

        /* Into the caller's buffer: first the size, then the bytes. */
        size_t needed = 0, len = 0;
        CHECK_STATUS(EDGEPIPE_STATUS_BUFFER_TOO_SMALL, edgepipe_batch_to_bytes(batch, NULL, 0, &needed));
        EXPECT(needed <= sizeof bytes && needed > payload_len);
        CHECK(edgepipe_batch_to_bytes(batch, bytes, sizeof bytes, &len));
        EXPECT(len == needed);
        edgepipe_buffer *owned = NULL;
        CHECK(edgepipe_batch_to_buffer(batch, &owned));
        EXPECT(edgepipe_buffer_len(owned) == len &&
               memcmp(edgepipe_buffer_data(owned), bytes, len) == 0);
        edgepipe_buffer_free(owned);

        char name[64];
        snprintf(name, sizeof name, "batch-%s-%s-%d.bin", codec_names[codec],
                 compression_names[compression], batches);
        write_file(name, bytes, len);

        edgepipe_batch *back = NULL;
        CHECK(edgepipe_batch_from_bytes(bytes, len, NULL, &back));
        CHECK(edgepipe_batch_verify(back));
        edgepipe_envelope back_envelope;
        CHECK(edgepipe_batch_envelope(back, &back_envelope));
        EXPECT(strcmp(back_envelope.batch_id, envelope.batch_id) == 0);
        size_t part = 0;
        CHECK(edgepipe_batch_decode_into(back, NULL, decoded + decoded_len,
                                         sizeof decoded - decoded_len, &part));
        decoded_len += part;
        edgepipe_batch_free(back);
        edgepipe_batch_free(batch);
        batches++;
    }
    edgepipe_batcher_free(batcher);
    EXPECT(batches == 2);
    if (decoded_len != expected_len || memcmp(decoded, expected, expected_len) != 0) {
        fprintf(stderr, "decoded:\n%.*s", (int)decoded_len, (const char *)decoded);
        return 0;
    }
    return 1;
}

int main(void) {
    edgepipe_record *records[RECORDS];
    for (int index = 0; index < RECORDS; index++) {
        records[index] = make_record(index);
        append_expected(records[index]);
    }
    write_file("records.jsonl", expected, expected_len);
    const uint8_t *first_end = memchr(expected, '\n', expected_len);
    EXPECT(first_end != NULL);
    printf("%.*s\n", (int)(first_end - expected), (const char *)expected);

    /* One record through a pipeline, in place. */
    static const char config[] =
        "{\"transforms\": [{\"type\": \"rename_fields\", \"mapping\": {\"temperature\": \"temp_c\"}},"
        "{\"type\": \"validate_schema\", \"fields\": {\"temp_c\": \"number\"}}]}";
    edgepipe_pipeline *pipeline = NULL;
    CHECK(edgepipe_pipeline_new_from_json(STR(config), &pipeline));
    edgepipe_record *reading = make_record(7);
    edgepipe_outcome outcome;
    CHECK(edgepipe_pipeline_process_record(pipeline, reading, &outcome));
    EXPECT(outcome == EDGEPIPE_OUTCOME_KEEP);
    edgepipe_buffer *json = NULL;
    CHECK(edgepipe_record_to_json_buffer(reading, &json));
    EXPECT(bytes_contain(edgepipe_buffer_data(json), edgepipe_buffer_len(json), "\"temp_c\":22.25"));
    edgepipe_buffer_free(json);
    CHECK(edgepipe_record_clear_fields(reading));
    CHECK(edgepipe_record_set_str(reading, STR("temperature"), STR("broken")));
    CHECK(edgepipe_pipeline_process_record(pipeline, reading, &outcome));
    EXPECT(outcome == EDGEPIPE_OUTCOME_QUARANTINED);
    CHECK(edgepipe_pipeline_stats_json(pipeline, &json));
    printf("pipeline: %.*s\n", (int)edgepipe_buffer_len(json), (const char *)edgepipe_buffer_data(json));
    edgepipe_buffer_free(json);
    edgepipe_record_free(reading);
    edgepipe_pipeline_free(pipeline);

    for (uint32_t codec = EDGEPIPE_CODEC_JSON; codec <= EDGEPIPE_CODEC_COLUMNAR; codec++) {
        for (uint32_t compression = EDGEPIPE_COMPRESSION_NONE;
             compression <= EDGEPIPE_COMPRESSION_ZSTD; compression++) {
            EXPECT(round_trip(codec, compression, records));
            printf("%s/%s: 2 batches, %d records, same records back\n", codec_names[codec],
                   compression_names[compression], RECORDS);
        }
    }

    /* One batch from JSON Lines, then damage. */
    edgepipe_batch_options options;
    CHECK(edgepipe_batch_options_default(&options));
    edgepipe_batch *batch = NULL;
    CHECK(edgepipe_batch_new_from_jsonl(STR("gw-1"), &options, expected, expected_len,
                                        START_NANOS, &batch));
    edgepipe_buffer *bytes = NULL;
    CHECK(edgepipe_batch_to_buffer(batch, &bytes));
    uint8_t damaged[4096];
    size_t len = edgepipe_buffer_len(bytes);
    EXPECT(len <= sizeof damaged);
    memcpy(damaged, edgepipe_buffer_data(bytes), len);
    damaged[len - 1] ^= 0x01;
    edgepipe_batch *bad = NULL;
    CHECK(edgepipe_batch_from_bytes(damaged, len, NULL, &bad));
    CHECK_STATUS(EDGEPIPE_STATUS_CHECKSUM_MISMATCH, edgepipe_batch_verify(bad));
    edgepipe_buffer *out = NULL;
    CHECK_STATUS(EDGEPIPE_STATUS_CHECKSUM_MISMATCH, edgepipe_batch_decode(bad, NULL, &out));
    EXPECT(out == NULL);
    edgepipe_batch_free(bad);
    printf("a flipped payload bit: CHECKSUM_MISMATCH\n");

    edgepipe_batch *truncated = NULL;
    CHECK_STATUS(EDGEPIPE_STATUS_CORRUPT_DATA,
                 edgepipe_batch_from_bytes(edgepipe_buffer_data(bytes), 20, NULL, &truncated));
    EXPECT(truncated == NULL);
    printf("truncated bytes: CORRUPT_DATA\n");

    edgepipe_decode_limits limits;
    CHECK(edgepipe_decode_limits_default(&limits));
    limits.max_records = 4;
    CHECK_STATUS(EDGEPIPE_STATUS_LIMIT_EXCEEDED, edgepipe_batch_decode(batch, &limits, &out));
    CHECK(edgepipe_decode_limits_default(&limits));
    limits.max_decompressed_bytes = 100;
    CHECK_STATUS(EDGEPIPE_STATUS_LIMIT_EXCEEDED, edgepipe_batch_decode(batch, &limits, &out));
    CHECK(edgepipe_decode_limits_default(&limits));
    limits.max_compressed_bytes = 10;
    CHECK_STATUS(EDGEPIPE_STATUS_LIMIT_EXCEEDED, edgepipe_batch_decode(batch, &limits, &out));
    EXPECT(out == NULL);
    printf("records, decompressed and compressed bytes over the limits: LIMIT_EXCEEDED\n");
    CHECK(edgepipe_batch_decode(batch, NULL, &out));
    EXPECT(edgepipe_buffer_len(out) == expected_len &&
           memcmp(edgepipe_buffer_data(out), expected, expected_len) == 0);
    edgepipe_buffer_free(out);
    edgepipe_buffer_free(bytes);
    edgepipe_batch_free(batch);

    for (int index = 0; index < RECORDS; index++) {
        edgepipe_record_free(records[index]);
    }
    return 0;
}

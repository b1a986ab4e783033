/* The durable queue from C: batches enqueued, taken, acked and nacked; the queue
 * closed and reopened (what was in flight comes back, nothing acked does);
 * dead-lettering after max_attempts; the directory locked while open. */
#include <inttypes.h>

#include "support.h"

#define NOW INT64_C(1767225600000000000)
#define SECOND INT64_C(1000000000)

static char dir[1024];

static edgepipe_queue *open_queue(void) {
    edgepipe_queue_options options;
    CHECK(edgepipe_queue_options_default(&options));
    options.max_attempts = 2;
    options.segment_bytes = 4096;
    edgepipe_queue *queue = NULL;
    CHECK(edgepipe_queue_open(dir, strlen(dir), &options, &queue));
    return queue;
}

static void print_stats(const char *when, const edgepipe_queue *queue) {
    edgepipe_queue_counters stats;
    CHECK(edgepipe_queue_stats(queue, &stats));
    printf("%s: pending=%" PRIu64 " in_flight=%" PRIu64 " dead=%" PRIu64 " acked=%" PRIu64
           " lost=%" PRIu64 " bytes>0=%d\n",
           when, stats.pending, stats.in_flight, stats.dead, stats.acked, stats.lost,
           stats.bytes > 0);
}

/* Takes the next entry and returns the number in its batch's first record id. */
static edgepipe_queue_entry *take(const edgepipe_queue *queue, int64_t now) {
    edgepipe_queue_entry *entry = NULL;
    CHECK(edgepipe_queue_take(queue, now, &entry));
    return entry;
}

static void describe(const char *what, const edgepipe_queue_entry *entry) {
    edgepipe_queue_entry_fields fields;
    CHECK(edgepipe_queue_entry_info(entry, &fields));
    edgepipe_batch *batch = NULL;
    CHECK(edgepipe_queue_entry_batch(entry, NULL, &batch));
    edgepipe_envelope envelope;
    CHECK(edgepipe_batch_envelope(batch, &envelope));
    EXPECT(fields.batch_id_len == envelope.batch_id_len &&
           memcmp(fields.batch_id, envelope.batch_id, fields.batch_id_len) == 0);
    EXPECT(fields.source_id_len == 4 && memcmp(fields.source_id, "gw-7", 4) == 0);
    printf("%s: entry %" PRIu64 ", attempts %" PRIu32 ", records %" PRIu64 "..%" PRIu64 "\n",
           what, fields.id, fields.attempts, envelope.sequence_first, envelope.sequence_last);
    edgepipe_batch_free(batch);
}

int main(void) {
    test_path(dir, sizeof dir, "queue");
    edgepipe_queue *queue = open_queue();

    /* Three batches of two records each, through a batcher. */
    edgepipe_batch_options options;
    CHECK(edgepipe_batch_options_default(&options));
    options.max_records = 2;
    options.compression = EDGEPIPE_COMPRESSION_LZ4;
    edgepipe_batcher *batcher = NULL;
    CHECK(edgepipe_batcher_new(STR("gw-7"), &options, &batcher));
    edgepipe_record *record = NULL;
    CHECK(edgepipe_record_new(STR("dev-3"), STR("sensors"), &record));
    for (int index = 0; index < 7; index++) {
        char id[32];
        int len = snprintf(id, sizeof id, "gw-7:0:%d", index);
        CHECK(edgepipe_record_set_id(record, id, (size_t)len));
        CHECK(edgepipe_record_set_timestamp(record, NOW + index * SECOND));
        CHECK(edgepipe_record_set_f64(record, STR("v"), index * 1.5));
        CHECK(edgepipe_batcher_push(batcher, record, NOW));
    }
    edgepipe_record_free(record);
    for (;;) {
        edgepipe_batch *batch = NULL;
        CHECK(edgepipe_batcher_next_batch(batcher, &batch));
        if (batch == NULL) {
            break;
        }
        uint64_t id = 0;
        CHECK(edgepipe_queue_enqueue_batch(queue, batch, &id));
        edgepipe_batch_free(batch);
    }
    /* Bytes that are not a batch are queued as given. */
    uint64_t raw_id = 0;
    CHECK(edgepipe_queue_enqueue(queue, STR("raw"), STR("raw-1"), NOW, (const uint8_t *)"hello", 5,
                                 &raw_id));
    print_stats("after enqueue", queue);

    /* The directory is locked while a queue holds it. */
    edgepipe_queue *second = NULL;
    CHECK_STATUS(EDGEPIPE_STATUS_IO, edgepipe_queue_open(dir, strlen(dir), NULL, &second));
    EXPECT(second == NULL);

    edgepipe_queue_entry *first = take(queue, NOW);
    describe("take", first);
    edgepipe_queue_entry_fields fields;
    CHECK(edgepipe_queue_entry_info(first, &fields));
    CHECK(edgepipe_queue_ack(queue, fields.id));
    CHECK_STATUS(EDGEPIPE_STATUS_UNKNOWN_ENTRY, edgepipe_queue_ack(queue, fields.id));
    edgepipe_queue_entry_free(first);

    edgepipe_queue_entry *in_flight = take(queue, NOW);
    describe("take, left in flight", in_flight);
    edgepipe_queue_entry_free(in_flight);
    print_stats("before close", queue);
    edgepipe_queue_free(queue);

    /* Reopened: the entry that was in flight is handed out again, first. */
    queue = open_queue();
    print_stats("after reopen", queue);
    edgepipe_queue_entry *again = take(queue, NOW);
    describe("take after reopen", again);
    CHECK(edgepipe_queue_entry_info(again, &fields));
    edgepipe_nack_result nacked;
    CHECK(edgepipe_queue_nack(queue, fields.id, NOW + 60 * SECOND, &nacked));
    printf("nack: attempts %" PRIu32 ", dead-lettered %d\n", nacked.attempts, nacked.dead_lettered);
    edgepipe_queue_entry_free(again);

    /* Its source waits for the retry: nothing of gw-7 is ready before it. */
    edgepipe_queue_entry *next = take(queue, NOW + SECOND);
    CHECK(edgepipe_queue_entry_info(next, &fields));
    EXPECT(fields.source_id_len == 3 && memcmp(fields.source_id, "raw", 3) == 0);
    EXPECT(fields.payload_len == 5 && memcmp(fields.payload, "hello", 5) == 0);
    CHECK(edgepipe_queue_release(queue, fields.id));
    edgepipe_queue_entry_free(next);
    printf("before the retry time: only the other source's entry, released\n");

    /* At the retry time it comes back and a second failure dead-letters it. */
    again = take(queue, NOW + 61 * SECOND);
    describe("take at the retry time", again);
    CHECK(edgepipe_queue_entry_info(again, &fields));
    CHECK(edgepipe_queue_nack(queue, fields.id, NOW + 120 * SECOND, &nacked));
    printf("nack: attempts %" PRIu32 ", dead-lettered %d\n", nacked.attempts, nacked.dead_lettered);
    edgepipe_queue_entry_free(again);

    /* The rest drains in order. */
    int drained = 0;
    for (;;) {
        edgepipe_queue_entry *entry = take(queue, NOW + 200 * SECOND);
        if (entry == NULL) {
            break;
        }
        CHECK(edgepipe_queue_entry_info(entry, &fields));
        CHECK(edgepipe_queue_ack(queue, fields.id));
        edgepipe_queue_entry_free(entry);
        drained++;
    }
    printf("drained %d more\n", drained);
    print_stats("at the end", queue);
    edgepipe_buffer *json = NULL;
    CHECK(edgepipe_queue_stats_json(queue, &json));
    EXPECT(bytes_contain(edgepipe_buffer_data(json), edgepipe_buffer_len(json), "\"dead\":1"));
    edgepipe_buffer_free(json);
    edgepipe_batcher_free(batcher);
    edgepipe_queue_free(queue);
    return 0;
}

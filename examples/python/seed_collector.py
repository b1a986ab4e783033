"""A seed-style edge collector, switched to edgepipe by its imports alone.

Everything below the imports is written against the seed's modules
(edge_collector.py, transforms.py, batching.py, delivery.py), unchanged: collect
readings, transform them, batch and gzip them, and keep the batch in the SQLite
delivery queue until it is sent. See docs/migrating-from-seed.md.
"""

import asyncio
import os
import tempfile

# The seed's imports were:
# from edge_collector import DataCollector, DataRecord, collect_sensor_data
# from transforms import TransformPipeline, add_metadata, filter_fields, validate_schema
# from batching import BatchProcessor, DataBatch
# from delivery import DataDeliveryService, PersistentDeliveryQueue
# edgepipe's, the only lines that change:
from edgepipe.edge_collector import DataCollector, DataRecord, collect_sensor_data
from edgepipe.transforms import TransformPipeline, add_metadata, filter_fields, validate_schema
from edgepipe.batching import BatchProcessor, DataBatch
from edgepipe.delivery import DataDeliveryService, PersistentDeliveryQueue


async def main() -> None:
    collector = DataCollector(device_id="gateway-1", max_buffer_size=1000)
    collector.register_source("sensors", collect_sensor_data)

    pipeline = (
        TransformPipeline()
        .add(validate_schema({"temperature": float, "humidity": float}))
        .add(filter_fields(["temperature", "humidity"]))
        .add(add_metadata({"site": "factory-1", "region": "us-west"}))
    )
    collector.register_transform(pipeline.process)

    for _ in range(250):
        await collector.collect()
    print(f"collected {collector.buffer_size} readings")

    processor = BatchProcessor(device_id="gateway-1", max_batch_size=100, compression="gzip")
    with tempfile.TemporaryDirectory() as work:
        queue = PersistentDeliveryQueue(db_path=os.path.join(work, "delivery_queue.db"))
        try:
            while collector.buffer_size:
                records = collector.get_batch(100)
                batch: DataBatch = processor.create_batch(records)
                queue.enqueue(batch)
                # What the cloud will read back: the seed's to_dict() of every record.
                decoded = BatchProcessor.decompress_batch(batch)
                assert [r.to_dict() for r in records] == decoded
                assert isinstance(records[0], DataRecord)
                print(
                    f"batch {batch.batch_id[:12]}: {batch.record_count} records, "
                    f"{batch.size_bytes} bytes gzip ({batch.original_size_bytes} as JSON)"
                )
            pending = queue.get_pending(limit=10)
            print(f"{len(pending)} batches waiting in the delivery queue")
            assert all(row["status"] == "pending" for row in pending)
            # A DataDeliveryService(queue, endpoint, api_key) would send them next.
            assert DataDeliveryService is not None
        finally:
            queue.close()


asyncio.run(main())

//! Cutting a run of records into plugin calls: the boundary crossing is
//! paid once per batch, while count and byte caps bound what one call holds
//! in guest memory.

use super::records::KafkaRecord;

/// Consecutive batches of one topic and partition (a WIT `batch` has one
/// of each), of at most `max_records` records and `max_bytes` bytes of
/// keys, values and headers; a record larger than `max_bytes` goes alone.
pub fn batches<'r, 'a>(
    records: &'r [KafkaRecord<'a>],
    max_records: usize,
    max_bytes: u64,
) -> Batches<'r, 'a> {
    Batches {
        rest: records,
        max_records: max_records.max(1),
        max_bytes,
    }
}

pub struct Batches<'r, 'a> {
    rest: &'r [KafkaRecord<'a>],
    max_records: usize,
    max_bytes: u64,
}

impl<'r, 'a> Iterator for Batches<'r, 'a> {
    type Item = &'r [KafkaRecord<'a>];

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let mut len = 0;
        let first = &self.rest[0];
        for record in self.rest.iter().take(self.max_records) {
            bytes += record.data_len() as u64;
            if len > 0 && (bytes > self.max_bytes || !record.same_partition(first)) {
                break;
            }
            len += 1;
        }
        let (batch, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: &[u8]) -> KafkaRecord<'_> {
        on("t", 0, value)
    }

    fn on<'a>(topic: &'a str, partition: i32, value: &'a [u8]) -> KafkaRecord<'a> {
        KafkaRecord {
            topic,
            partition,
            offset: 0,
            timestamp: None,
            key: None,
            value: Some(value),
            headers: &[],
            schema_id: None,
        }
    }

    fn sizes(records: &[KafkaRecord<'_>], max_records: usize, max_bytes: u64) -> Vec<usize> {
        batches(records, max_records, max_bytes)
            .map(<[_]>::len)
            .collect()
    }

    #[test]
    fn caps_by_count_and_bytes_and_loses_nothing() {
        let small = [0u8; 10];
        let big = [0u8; 100];
        let records: Vec<_> = (0..10).map(|_| record(&small)).collect();
        assert_eq!(sizes(&records, 4, 1000), [4, 4, 2]);
        assert_eq!(sizes(&records, 100, 30), [3, 3, 3, 1]);

        let mixed = [record(&small), record(&big), record(&small), record(&small)];
        assert_eq!(sizes(&mixed, 100, 50), [1, 1, 2]);
        assert!(sizes(&[], 4, 100).is_empty());
    }

    #[test]
    fn a_batch_never_spans_two_partitions() {
        let v = [0u8; 1];
        let records = [
            on("a", 0, &v),
            on("a", 0, &v),
            on("a", 1, &v),
            on("b", 1, &v),
            on("b", 1, &v),
            on("a", 0, &v),
        ];
        assert_eq!(sizes(&records, 100, 1000), [2, 1, 2, 1]);
        assert_eq!(sizes(&records, 1, 1000), [1; 6]);
    }
}

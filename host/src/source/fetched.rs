//! Records of one partition copied out of the consumer's buffers into one
//! arena, so that they can cross to a worker thread with one allocation
//! per batch instead of one per record.

use std::ops::Range;

use rdkafka::message::{BorrowedMessage, Headers, Message};

use crate::partition::TopicPartition;
use crate::plugin::{Header, KafkaRecord};

#[derive(Debug, Clone)]
struct Meta {
    offset: i64,
    timestamp: Option<i64>,
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
    headers: Range<usize>,
}

#[derive(Debug, Clone)]
struct HeaderMeta {
    key: Range<usize>,
    value: Option<Range<usize>>,
}

/// Consecutive records of one partition.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub source: TopicPartition,
    /// The claim (commit sequence) the records were consumed under.
    pub claim: u64,
    data: Vec<u8>,
    records: Vec<Meta>,
    headers: Vec<HeaderMeta>,
}

impl Fetched {
    pub fn new(source: TopicPartition, claim: u64) -> Self {
        Self::with_capacity(source, claim, (0, 0))
    }

    /// With room for `records` records of `bytes` bytes, so that a batch
    /// sized like the last one of its partition does not grow by doubling
    /// (copying itself) as it fills.
    pub fn with_capacity(
        source: TopicPartition,
        claim: u64,
        (records, bytes): (usize, usize),
    ) -> Self {
        Self {
            source,
            claim,
            data: Vec::with_capacity(bytes),
            records: Vec::with_capacity(records),
            headers: Vec::new(),
        }
    }

    /// Records held, and bytes of their keys, values and headers: the
    /// size to give the next batch of the partition.
    pub fn size(&self) -> (usize, usize) {
        (self.records.len(), self.data.len())
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Bytes held, for batch caps and the memory budget.
    pub fn bytes(&self) -> usize {
        self.data.len() + self.records.len() * std::mem::size_of::<Meta>()
    }

    pub fn first_offset(&self) -> Option<i64> {
        self.records.first().map(|m| m.offset)
    }

    pub fn last_offset(&self) -> Option<i64> {
        self.records.last().map(|m| m.offset)
    }

    fn push_bytes(&mut self, bytes: &[u8]) -> Range<usize> {
        let start = self.data.len();
        self.data.extend_from_slice(bytes);
        start..self.data.len()
    }

    pub fn push_message(&mut self, m: &BorrowedMessage<'_>) {
        let key = m.key().map(|k| self.push_bytes(k));
        let value = m.payload().map(|v| self.push_bytes(v));
        let first_header = self.headers.len();
        if let Some(headers) = m.headers() {
            for h in headers.iter() {
                let key = self.push_bytes(h.key.as_bytes());
                let value = h.value.map(|v| self.push_bytes(v));
                self.headers.push(HeaderMeta { key, value });
            }
        }
        self.records.push(Meta {
            offset: m.offset(),
            timestamp: m.timestamp().to_millis(),
            key,
            value,
            headers: first_header..self.headers.len(),
        });
    }

    /// Appends a record from its parts (benchmarks, tests, the demo).
    pub fn push(
        &mut self,
        offset: i64,
        timestamp: Option<i64>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) {
        let key = key.map(|k| self.push_bytes(k));
        let value = value.map(|v| self.push_bytes(v));
        let at = self.headers.len();
        self.records.push(Meta {
            offset,
            timestamp,
            key,
            value,
            headers: at..at,
        });
    }

    /// The headers of every record, to lend to [`Fetched::records`].
    pub fn header_views(&self) -> Vec<Header<'_>> {
        self.headers
            .iter()
            .map(|h| Header {
                // Kafka header keys are strings; a non-UTF-8 one is shown
                // lossily rather than failing the batch.
                key: std::str::from_utf8(&self.data[h.key.clone()]).unwrap_or("<non-utf8 key>"),
                value: h.value.clone().map(|r| &self.data[r]),
            })
            .collect()
    }

    /// The records as the plugin sees them.
    pub fn records<'a>(&'a self, headers: &'a [Header<'a>]) -> Vec<KafkaRecord<'a>> {
        self.records
            .iter()
            .map(|m| KafkaRecord {
                topic: &self.source.topic,
                partition: self.source.partition,
                offset: m.offset,
                timestamp: m.timestamp,
                key: m.key.clone().map(|r| &self.data[r]),
                value: m.value.clone().map(|r| &self.data[r]),
                headers: &headers[m.headers.clone()],
                schema_id: None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_as_pushed() {
        let mut f = Fetched::new(
            TopicPartition {
                topic: "t".into(),
                partition: 2,
            },
            1,
        );
        f.push(10, Some(5), Some(b"k"), Some(b"value"));
        f.push(11, None, None, None);
        f.push(13, Some(7), None, Some(b""));
        let headers = f.header_views();
        let records = f.records(&headers);
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].key, Some(&b"k"[..]));
        assert_eq!(records[0].value, Some(&b"value"[..]));
        assert_eq!(records[1].value, None);
        assert_eq!(records[2].value, Some(&b""[..]));
        assert_eq!(records[2].offset, 13);
        assert_eq!(f.first_offset(), Some(10));
        assert_eq!(f.last_offset(), Some(13));
        assert_eq!(records[0].partition, 2);
    }
}

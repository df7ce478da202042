//! Where a file goes in its output: `year=YYYY/month=MM/day=DD/hour=HH/`
//! by event time, then a name that says its partition, first offset and id.

use chrono::{DateTime, Datelike, Timelike};

use crate::partition::TopicPartition;

/// An hour of event time: the directory a record goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hour {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
}

impl Hour {
    /// Where a dropped record with no usable time goes.
    pub const EPOCH: Hour = Hour {
        year: 1970,
        month: 1,
        day: 1,
        hour: 0,
    };

    /// The UTC hour of an epoch-millisecond time, if it has a four-digit
    /// year.
    pub fn of_millis(ms: i64) -> Option<Self> {
        let t = DateTime::from_timestamp_millis(ms)?;
        (0..=9999).contains(&t.year()).then(|| Hour {
            year: t.year(),
            month: t.month(),
            day: t.day(),
            hour: t.hour(),
        })
    }

    pub fn dir(&self) -> String {
        format!(
            "year={:04}/month={:02}/day={:02}/hour={:02}",
            self.year, self.month, self.day, self.hour
        )
    }
}

/// Where a file of `source` starting at `first_offset` goes: under its
/// hour, named for its partition, so that the files of one partition can
/// be found among all (see [`of_partition`]).
pub fn file_key(hour: &Hour, source: &TopicPartition, first_offset: i64, id: &str) -> String {
    format!(
        "{}/part-{}-{}-{first_offset:020}-{}.parquet",
        hour.dir(),
        source.topic,
        source.partition,
        &id[..12]
    )
}

/// Whether `key` (inside its location) is a file of `source` as
/// [`file_key`] lays it out: `year=YYYY/month=MM/day=DD/hour=HH/` and the
/// partition's name. Exact, so that neither a location nested in this one
/// nor another topic matches: a topic name may hold dashes and digits (`a`
/// partition 1 and `a-1` partition 2 share the prefix `part-a-1-`), so the
/// rest of the name must be the 20-digit offset and the 12-character id.
pub fn of_partition(key: &str, source: &TopicPartition) -> bool {
    let parts: Vec<&str> = key.split('/').collect();
    let [year, month, day, hour, name] = parts[..] else {
        return false;
    };
    let digits = |part: &str, field: &str, n: usize| {
        part.strip_prefix(field)
            .is_some_and(|d| d.len() == n && d.bytes().all(|b| b.is_ascii_digit()))
    };
    if !(digits(year, "year=", 4)
        && digits(month, "month=", 2)
        && digits(day, "day=", 2)
        && digits(hour, "hour=", 2))
    {
        return false;
    }
    let prefix = format!("part-{}-{}-", source.topic, source.partition);
    let Some(rest) = name
        .strip_prefix(&prefix)
        .and_then(|r| r.strip_suffix(".parquet"))
    else {
        return false;
    };
    // Bytes, not characters: a name need not be ASCII.
    let rest = rest.as_bytes();
    rest.len() == 33
        && rest[..20].iter().all(u8::is_ascii_digit)
        && rest[20] == b'-'
        && rest[21..].iter().all(u8::is_ascii_alphanumeric)
}

/// Hidden directory, in each output location, for files being written on
/// stores without multipart uploads. Its files never end in `.parquet`.
pub const STAGING_DIR: &str = ".lineage-staging";

/// The staging key of a file on a store without multipart uploads.
pub fn staging_key(source: &TopicPartition, file_id: &str) -> String {
    format!(
        "{STAGING_DIR}/{}/{}/{file_id}.parquet.inprogress",
        source.topic, source.partition
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_are_utc_and_bounded() {
        let h = Hour::of_millis(1_732_550_400_000).unwrap();
        assert_eq!(h.dir(), "year=2024/month=11/day=25/hour=16");
        assert_eq!(Hour::of_millis(0).unwrap(), Hour::EPOCH);
        assert_eq!(
            Hour::of_millis(-1).unwrap().dir(),
            "year=1969/month=12/day=31/hour=23"
        );
        assert!(Hour::of_millis(i64::MAX).is_none());
        assert!(Hour::of_millis(253_402_300_800_000).is_none(), "year 10000");
    }

    #[test]
    fn files_are_told_apart_by_partition_exactly() {
        let tp = |topic: &str, partition| TopicPartition {
            topic: topic.into(),
            partition,
        };
        let id = "0123456789abcdef0123456789abcdef";
        let key = file_key(&Hour::EPOCH, &tp("a-1", 2), 7, id);
        assert!(of_partition(&key, &tp("a-1", 2)), "{key}");
        assert!(!of_partition(&key, &tp("a", 1)), "{key}");
        assert!(!of_partition(&key, &tp("a-1", 22)), "{key}");
        assert!(
            !of_partition(
                &format!("dropped/{}", file_key(&Hour::EPOCH, &tp("a", 1), 7, id)),
                &tp("a", 1)
            ),
            "a location nested in this one is not this one"
        );
        assert!(!of_partition(
            "year=1970/month=01/day=01/hour=00/part-a-1-x.parquet",
            &tp("a", 1)
        ));
        assert!(!of_partition(
            "year=1970/month=01/day=01/hour=00/part-a-1-ééééééééééééééééé.parquet",
            &tp("a", 1)
        ));
    }
}

//! The Confluent wire format: magic byte 0, a big-endian u32 schema id,
//! then the Avro body.

/// How record values are laid out on the topic (INPUT_FORMAT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum InputFormat {
    /// A bare Avro datum, as the seed's producer writes.
    #[default]
    Avro,
    /// Confluent framing on every value.
    Confluent,
    /// Framed where byte 0 is 0 (and a registry is configured), bare
    /// otherwise.
    Auto,
}

impl InputFormat {
    pub fn framed(self) -> bool {
        self != InputFormat::Avro
    }
}

/// What a value is, by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framed<'a> {
    Bare,
    Framed {
        id: u32,
        body: &'a [u8],
    },
    /// Framing required and broken: the drop reason.
    Bad(BadFraming),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadFraming {
    #[error("confluent framing: the value is {0} bytes, shorter than the 5-byte header")]
    Short(usize),
    #[error("confluent framing: magic byte is {0:#04x}, not 0x00")]
    Magic(u8),
}

/// Reads the framing of a value (tombstones pass as bare: they have none).
pub fn unframe(format: InputFormat, value: Option<&[u8]>) -> Framed<'_> {
    let Some(value) = value else {
        return Framed::Bare;
    };
    match (format, value) {
        (InputFormat::Avro, _) => Framed::Bare,
        (_, [0, a, b, c, d, body @ ..]) => Framed::Framed {
            id: u32::from_be_bytes([*a, *b, *c, *d]),
            body,
        },
        (InputFormat::Auto, _) => Framed::Bare,
        (_, [magic, ..]) if *magic != 0 => Framed::Bad(BadFraming::Magic(*magic)),
        (_, short) => Framed::Bad(BadFraming::Short(short.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_header_and_refuses_what_is_not_one() {
        let framed = [0, 0, 0, 0, 17, 0xaa, 0xbb];
        assert_eq!(
            unframe(InputFormat::Confluent, Some(&framed)),
            Framed::Framed {
                id: 17,
                body: &[0xaa, 0xbb]
            }
        );
        assert_eq!(
            unframe(InputFormat::Confluent, Some(&[0, 0, 1])),
            Framed::Bad(BadFraming::Short(3))
        );
        assert_eq!(
            unframe(InputFormat::Confluent, Some(&[])),
            Framed::Bad(BadFraming::Short(0))
        );
        let bare = [0x48, 1, 2, 3, 4, 5];
        assert_eq!(
            unframe(InputFormat::Confluent, Some(&bare)),
            Framed::Bad(BadFraming::Magic(0x48))
        );
        assert_eq!(
            BadFraming::Magic(0x48).to_string(),
            "confluent framing: magic byte is 0x48, not 0x00"
        );
        assert_eq!(unframe(InputFormat::Auto, Some(&bare)), Framed::Bare);
        assert_eq!(unframe(InputFormat::Auto, Some(&[0, 1])), Framed::Bare);
        assert!(matches!(
            unframe(InputFormat::Auto, Some(&framed)),
            Framed::Framed { id: 17, .. }
        ));
        assert_eq!(unframe(InputFormat::Avro, Some(&framed)), Framed::Bare);
        assert_eq!(unframe(InputFormat::Confluent, None), Framed::Bare);
    }
}

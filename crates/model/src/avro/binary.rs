//! The primitives of Avro's binary encoding: zig-zag varints, length-prefixed
//! bytes and strings, and the block headers of arrays and maps.
//!
//! Both the generic codec and the direct fast paths are built on these, so
//! the two read and write the same bytes and refuse the same malformed input.
//! Every length read here comes from untrusted input and is checked against
//! the bytes actually left before anything is taken or reserved.

/// A codec error with the path to where it happened, built while unwinding.
#[derive(Debug)]
pub(super) struct CodecError {
    path: String,
    message: String,
}

impl CodecError {
    pub(super) fn new(message: impl Into<String>) -> Self {
        CodecError { path: String::new(), message: message.into() }
    }

    /// Prefixes a path segment: a field name, or `[i]` for an array item.
    pub(super) fn within(mut self, segment: &str) -> Self {
        self.path = if self.path.is_empty() || self.path.starts_with('[') {
            format!("{segment}{}", self.path)
        } else {
            format!("{segment}.{}", self.path)
        };
        self
    }
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "at `{}`: {}", self.path, self.message)
        }
    }
}

pub(super) fn write_long(n: i64, out: &mut Vec<u8>) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

pub(super) fn write_bytes(b: &[u8], out: &mut Vec<u8>) {
    write_long(b.len() as i64, out);
    out.extend_from_slice(b);
}

pub(super) fn truncated(what: &str) -> CodecError {
    CodecError::new(format!("input ends in the middle of {what} (truncated datum)"))
}

pub(super) fn read_long(input: &mut &[u8]) -> Result<i64, CodecError> {
    let mut acc: u64 = 0;
    for i in 0..10 {
        let (&b, rest) = input.split_first().ok_or_else(|| truncated("a varint"))?;
        *input = rest;
        // The tenth byte holds bit 63 only; anything more overflows 64 bits.
        if i == 9 && b > 1 {
            return Err(CodecError::new("varint overflows 64 bits"));
        }
        acc |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((acc >> 1) as i64 ^ -((acc & 1) as i64));
        }
    }
    Err(CodecError::new("varint overflows 64 bits"))
}

pub(super) fn read_int(input: &mut &[u8]) -> Result<i32, CodecError> {
    let n = read_long(input)?;
    i32::try_from(n).map_err(|_| CodecError::new(format!("{n} does not fit an Avro int")))
}

pub(super) fn read_bytes<'a>(input: &mut &'a [u8], what: &str) -> Result<&'a [u8], CodecError> {
    let n = read_long(input)?;
    let len = usize::try_from(n).map_err(|_| CodecError::new(format!("negative {what} length {n}")))?;
    if len > input.len() {
        return Err(truncated(&format!("a {len}-byte {what} ({} bytes left)", input.len())));
    }
    let (b, rest) = input.split_at(len);
    *input = rest;
    Ok(b)
}

/// Reads one block header of an array or map: the item count, or `None` at
/// the terminating empty block. A negative count is followed by the block's
/// size in bytes, which we do not need.
///
/// Every array item and map entry in our schemas takes at least one byte, so
/// a count larger than the bytes left is corrupt; refusing it here is what
/// keeps a bad count from reserving gigabytes.
pub(super) fn read_block_count(input: &mut &[u8], what: &str) -> Result<Option<usize>, CodecError> {
    let n = read_long(input)?;
    if n == 0 {
        return Ok(None);
    }
    if n < 0 {
        let size = read_long(input)?;
        if size < 0 {
            return Err(CodecError::new(format!("negative {what} block size {size}")));
        }
    }
    let count = n.unsigned_abs();
    if count > input.len() as u64 {
        return Err(CodecError::new(format!(
            "{what} block claims {count} items but only {} bytes are left (truncated or corrupt datum)",
            input.len()
        )));
    }
    Ok(Some(count as usize))
}

pub(super) fn read_string(input: &mut &[u8]) -> Result<String, CodecError> {
    let b = read_bytes(input, "string")?;
    String::from_utf8(b.to_vec()).map_err(|e| CodecError::new(format!("string is not valid UTF-8: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_the_edges() {
        for n in [0, 1, -1, 63, -64, 64, i32::MAX as i64, i32::MIN as i64, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            write_long(n, &mut out);
            let mut input = out.as_slice();
            assert_eq!(read_long(&mut input).unwrap(), n);
            assert!(input.is_empty());
        }
        // Eleven continuation bytes, and a tenth byte carrying more than bit 63.
        assert!(read_long(&mut [0xFFu8; 11].as_slice()).is_err());
        let mut too_big = vec![0xFF; 9];
        too_big.push(0x02);
        assert!(read_long(&mut too_big.as_slice()).is_err());
    }
}

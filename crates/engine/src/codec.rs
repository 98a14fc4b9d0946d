//! A small binary encoding for engine state: LEB128 varints, zigzag for
//! signed values, length-prefixed strings. State is read on every event, so
//! it is neither JSON nor Avro (which goes through a dynamic value tree).

use chrono::NaiveDate;

/// Appends encoded values to a buffer.
#[derive(Default)]
pub struct Enc {
    pub buf: Vec<u8>,
}

impl Enc {
    pub fn new() -> Self {
        Enc { buf: Vec::with_capacity(64) }
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub fn uvar(&mut self, mut v: u64) -> &mut Self {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
        self
    }
    pub fn ivar(&mut self, v: i64) -> &mut Self {
        self.uvar(((v << 1) ^ (v >> 63)) as u64)
    }
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.uvar(s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
        self
    }
    pub fn opt_str(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            None => self.u8(0),
            Some(s) => self.u8(1).str(s),
        }
    }
    pub fn date(&mut self, d: NaiveDate) -> &mut Self {
        self.ivar(day_number(d) as i64)
    }
}

/// Reads values back; every read checks bounds.
pub struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// State bytes that do not decode: a bug or a corrupted store, never user input.
#[derive(Debug, thiserror::Error)]
#[error("corrupt state record at byte {pos}: {what}")]
pub struct CodecError {
    pub pos: usize,
    pub what: &'static str,
}

impl<'a> Dec<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Dec { buf, pos: 0 }
    }
    fn err(&self, what: &'static str) -> CodecError {
        CodecError { pos: self.pos, what }
    }
    pub fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
    pub fn u8(&mut self) -> Result<u8, CodecError> {
        let b = *self.buf.get(self.pos).ok_or_else(|| self.err("unexpected end"))?;
        self.pos += 1;
        Ok(b)
    }
    pub fn uvar(&mut self) -> Result<u64, CodecError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint too long"))
    }
    pub fn ivar(&mut self) -> Result<i64, CodecError> {
        let u = self.uvar()?;
        Ok((u >> 1) as i64 ^ -((u & 1) as i64))
    }
    pub fn str(&mut self) -> Result<String, CodecError> {
        let n = self.uvar()? as usize;
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len()).ok_or_else(|| self.err("string past end"))?;
        let s = std::str::from_utf8(&self.buf[self.pos..end]).map_err(|_| self.err("string not UTF-8"))?;
        self.pos = end;
        Ok(s.to_string())
    }
    pub fn opt_str(&mut self) -> Result<Option<String>, CodecError> {
        match self.u8()? {
            0 => Ok(None),
            _ => self.str().map(Some),
        }
    }
    pub fn date(&mut self) -> Result<NaiveDate, CodecError> {
        let n = self.ivar()?;
        date_from_number(n as i32).ok_or_else(|| self.err("date out of range"))
    }
}

const EPOCH_CE_DAYS: i32 = 719_163; // days from 0001-01-01 to 1970-01-01

/// Days since 1970-01-01.
pub fn day_number(d: NaiveDate) -> i32 {
    use chrono::Datelike;
    d.num_days_from_ce() - EPOCH_CE_DAYS
}

pub fn date_from_number(n: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(n.checked_add(EPOCH_CE_DAYS)?)
}

/// Big-endian, sign-flipped so that byte order is numeric order in keys.
pub fn key_i64(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

pub fn key_date(d: NaiveDate) -> [u8; 4] {
    ((day_number(d) as u32) ^ (1 << 31)).to_be_bytes()
}

pub fn date_from_key(b: &[u8]) -> Option<NaiveDate> {
    let a: [u8; 4] = b.get(..4)?.try_into().ok()?;
    date_from_number((u32::from_be_bytes(a) ^ (1 << 31)) as i32)
}

pub fn i64_from_key(b: &[u8]) -> Option<i64> {
    let a: [u8; 8] = b.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(a) ^ (1 << 63)) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let d = NaiveDate::from_ymd_opt(2020, 10, 5).unwrap();
        let mut e = Enc::new();
        e.u8(7).uvar(300).ivar(-5).str("héllo").opt_str(None).opt_str(Some("x")).date(d).ivar(i64::MIN);
        let mut r = Dec::new(&e.buf);
        assert_eq!(r.u8().unwrap(), 7);
        assert_eq!(r.uvar().unwrap(), 300);
        assert_eq!(r.ivar().unwrap(), -5);
        assert_eq!(r.str().unwrap(), "héllo");
        assert_eq!(r.opt_str().unwrap(), None);
        assert_eq!(r.opt_str().unwrap().as_deref(), Some("x"));
        assert_eq!(r.date().unwrap(), d);
        assert_eq!(r.ivar().unwrap(), i64::MIN);
        assert!(r.done());
        assert!(r.u8().is_err());
    }

    #[test]
    fn keys_sort_numerically() {
        assert!(key_i64(-1) < key_i64(0) && key_i64(0) < key_i64(1));
        let a = NaiveDate::from_ymd_opt(1969, 12, 31).unwrap();
        let b = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
        assert!(key_date(a) < key_date(b));
        assert_eq!(date_from_key(&key_date(a)), Some(a));
        assert_eq!(i64_from_key(&key_i64(-42)), Some(-42));
    }

    #[test]
    fn truncated_input_is_an_error() {
        let mut e = Enc::new();
        e.str("abcdef");
        let mut r = Dec::new(&e.buf[..3]);
        assert!(r.str().is_err());
    }
}

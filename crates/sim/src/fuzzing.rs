//! The check of the simulation file reader on arbitrary bytes, shared by the
//! fuzz target under `fuzz/` and the corpus test in `tests/fuzz_corpus.rs`.

use crate::file::{write_entries, Entry, SimReader};

/// [`SimReader`] must not panic on any bytes, opening the file or reading
/// its entries. A file it reads through must write back (with
/// [`write_entries`]) to a file that reads as the same metadata and entries.
/// Returns whether the whole input read as a simulation file.
pub fn sim_file(data: &[u8]) -> bool {
    let Ok(reader) = SimReader::new(data) else {
        return false;
    };
    let meta = reader.meta().clone();
    let mut entries: Vec<Entry> = Vec::new();
    for e in reader {
        match e {
            Ok(e) => entries.push(e),
            Err(_) => return false,
        }
    }
    let mut written = Vec::new();
    write_entries(&meta, &entries, &mut written).unwrap_or_else(|e| panic!("entries read from a file do not write back: {e}"));
    let back = SimReader::new(written.as_slice()).unwrap_or_else(|e| panic!("a written-back file does not open: {e}"));
    assert_eq!(back.meta(), &meta, "the metadata changed on its way through a file");
    let back: Vec<Entry> = back.map(|e| e.unwrap_or_else(|e| panic!("a written-back entry does not read: {e}"))).collect();
    assert_eq!(back, entries, "the entries changed on their way through a file");
    true
}

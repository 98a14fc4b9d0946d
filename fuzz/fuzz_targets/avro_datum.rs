//! The Avro datum decoder of every record type (`AvroRecord::from_avro_datum`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rollcall_model::fuzzing::avro_datum(data);
});

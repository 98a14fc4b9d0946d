//! Ed-Fi attendance documents (coming).

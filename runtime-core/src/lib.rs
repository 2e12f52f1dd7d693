//! runrs core

//! protos

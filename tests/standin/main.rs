//! The local Azure stand-in over real HTTP on 127.0.0.1:0: its routes answer with the official
//! example shapes, and its host deliveries decode through patchwave's own decoders.

mod adu;
mod arm;
mod clients;
mod delivery;
mod iothub;
mod maintenance;
mod support;

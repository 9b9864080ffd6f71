//! The Azure clients over real HTTP against a recording server: paths, query strings,
//! api-versions and bodies checked against the official examples; retries and errors.

mod clients;
mod credentials;
mod events;
mod iot_hub;
mod recorder;
mod retries;

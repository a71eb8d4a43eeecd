//! The engine's side of networking: the few calls into [`crate::network`].

use super::record::Record;
use crate::Result;
pub use crate::network::Endpoint;
use crate::network::Network;

/// Plugs the container whose init is `pid` into the bridge and publishes its ports;
/// returns what it got (the supervisor keeps it in `network.json` for `inspect`).
///
/// # Errors
/// As [`Network::open`] and [`Network::attach`].
pub fn attach(paths: &kthw_lab::Paths, record: &Record, pid: i32) -> Result<Option<Endpoint>> {
    if record.network != "bridge" {
        return Ok(None);
    }
    Network::open(paths)?.attach(&record.id, pid, &record.ports).map(Some)
}

/// Undoes [`attach`]; fine if there is nothing to undo, and makes nothing (see
/// [`Network::existing`]).
///
/// # Errors
/// As [`Network::existing`] and [`Network::detach`].
pub fn detach(paths: &kthw_lab::Paths, record: &Record) -> Result<()> {
    if record.network != "bridge" {
        return Ok(());
    }
    match Network::existing(paths)? {
        Some(network) => network.detach(&record.id),
        None => Ok(()),
    }
}

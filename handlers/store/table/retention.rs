//! Dead-letter retention on Table Storage, where there is no `ORDER BY`, no count and no bulk
//! delete.
//!
//! A letter is two rows of the `letters` partition: the `id_{id}` marker and the listing row
//! `at_{inverted time}_{id}`, whose keys run newest first. So:
//! - By age: the letters received before a time are one range of listing keys, from the
//!   inverted time on to the end of the `at_` rows: one range query (`$select=RowKey`).
//! - By count: the letters past the newest `keep` are the listing keys after the `keep`-th
//!   one. Finding that key means reading `keep` keys from the front; a call reads at most
//!   [`DeadLetterRetention::at_most`] × 2 of them and carries on from there in the next call
//!   ([`Tally`], kept by the store). Once found, every key after it goes (the rest next call);
//!   once none is left the tally only counts the letters newer than the newest it has seen,
//!   and counts afresh when they could reach `keep` (or every [`RECOUNT_EVERY`] calls).
//! - Deleting: the listing row and its marker together, 50 letters (100 operations) per
//!   entity group transaction, `If-Match: *`; a transaction that finds a row gone (another
//!   instance pruned it) is redone one row at a time.
//!
//! Every count is a lower bound of the letters at or before a key: new letters land in front
//! of it (they are newer) and another instance only deletes letters past its own `keep`-th
//! or too old. So nothing among the newest `keep` is ever deleted for the count. Deletions by
//! age of letters at or before a counted key make a count too high: the tally starts over.

use super::batch::{Operation, Outcome, MAX_OPERATIONS};
use super::client::Client;
use super::entity::{entity, literal, string};
use super::LETTERS_PARTITION;
use crate::store::{DeadLetterRetention, StoreError};
use chrono::{DateTime, Utc};

/// The listing rows' key prefix, and the key just past every listing row.
pub(super) const LISTING: &str = "at_";
const LISTING_END: &str = "at`";
/// The dedupe markers' key prefix.
pub(super) const MARKER: &str = "id_";
/// The latest time (Unix milliseconds) a listing key holds; keys invert it in 15 digits.
const LATEST: i64 = 999_999_999_999_999;
/// Letters per entity group transaction: each is two deletes.
const LETTERS_PER_BATCH: usize = MAX_OPERATIONS / 2;
/// Delete transactions in flight at once.
const BATCHES_IN_FLIGHT: usize = 4;
/// Calls after which a tally that only counted new letters counts them all again.
const RECOUNT_EVERY: u32 = 60;

/// The listing row key of a letter received at `millis` (Unix milliseconds).
pub(super) fn listing_key(millis: i64, id_key: &str) -> String {
    format!("{LISTING}{:015}_{id_key}", LATEST - millis.clamp(0, LATEST))
}

/// The first listing key of the letters received before `before`; `None` when none can be.
fn aged_from(before: DateTime<Utc>) -> Option<String> {
    let millis = before.timestamp_millis();
    if millis <= 0 {
        return None;
    }
    // received at m < millis  ⇔  LATEST - m ≥ LATEST + 1 - millis
    let inverted = LATEST + 1 - millis.min(LATEST + 1);
    Some(format!("{LISTING}{inverted:015}"))
}

/// The marker row of a listing row (`at_{15 digits}_{id}` → `id_{id}`).
fn marker_of(listing: &str) -> Option<String> {
    let rest = listing.strip_prefix(LISTING)?;
    let id = rest
        .get(16..)
        .filter(|_| rest.as_bytes().get(15) == Some(&b'_'))?;
    Some(format!("{MARKER}{id}"))
}

/// What this store knows of how many letters there are (see the module's notes).
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// The `keep` the state below was counted for.
    keep: usize,
    state: State,
}

#[derive(Debug, Default)]
enum State {
    /// Nothing: count from the front.
    #[default]
    Unknown,
    /// Counting from the front: at least `counted` letters are at or before `last`; `front`
    /// is the newest key seen.
    Counting {
        front: Option<String>,
        last: String,
        counted: usize,
    },
    /// At least `keep` letters are at or before `boundary`: every letter after it goes.
    Beyond { front: String, boundary: String },
    /// At most `total` letters are at or after `front` (the newest one counted), fewer than
    /// `keep` or just `keep`; `calls` since they were all counted.
    Below {
        front: String,
        total: usize,
        calls: u32,
    },
}

impl Tally {
    /// Letters at or after `from` were deleted for their age, `deleted` of them: a count that
    /// may have included some of them starts over.
    fn aged(&mut self, from: &str, deleted: usize) {
        match &mut self.state {
            State::Counting { last, .. } if from > last.as_str() => {}
            State::Beyond { boundary, .. } if from > boundary.as_str() => {}
            State::Below { front, total, .. } if from > front.as_str() => {
                *total = total.saturating_sub(deleted)
            }
            _ => self.state = State::Unknown,
        }
    }
}

/// The RowKeys of the listing rows from `from` (itself only if `inclusive`) to before `to`,
/// in key order, at most `limit`.
async fn listing_keys(
    client: &Client,
    table: &str,
    from: &str,
    inclusive: bool,
    to: &str,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let filter = format!(
        "PartitionKey eq {} and RowKey {} {} and RowKey lt {}",
        literal(LETTERS_PARTITION),
        if inclusive { "ge" } else { "gt" },
        literal(from),
        literal(to)
    );
    client
        .query(table, &filter, Some("RowKey"), Some(limit))
        .await?
        .iter()
        .map(|row| string(row, "RowKey"))
        .collect()
}

/// Deletes the letters of these listing rows (each with its marker); returns how many
/// listing rows this call deleted (not those another instance deleted first).
async fn delete_letters(
    client: &Client,
    table: &str,
    listing: &[String],
) -> Result<usize, StoreError> {
    use futures::stream::{StreamExt, TryStreamExt};
    let chunks: Vec<Vec<String>> = listing
        .chunks(LETTERS_PER_BATCH)
        .map(<[String]>::to_vec)
        .collect();
    futures::stream::iter(chunks)
        .map(|chunk| async move { delete_batch(client, table, &chunk).await })
        .buffer_unordered(BATCHES_IN_FLIGHT)
        .try_fold(0, |sum, deleted| async move { Ok(sum + deleted) })
        .await
}

async fn delete_batch(
    client: &Client,
    table: &str,
    listing: &[String],
) -> Result<usize, StoreError> {
    let mut operations = Vec::with_capacity(listing.len() * 2);
    for row in listing {
        operations.push(Operation::Delete(entity(LETTERS_PARTITION, row)));
        if let Some(marker) = marker_of(row) {
            operations.push(Operation::Delete(entity(LETTERS_PARTITION, &marker)));
        }
    }
    match client.batch(table, &operations).await? {
        Outcome::Applied(_) => Ok(listing.len()),
        // a row was gone: deleted by another instance meanwhile; one at a time, then
        Outcome::Failed { status: 404, .. } => {
            let mut deleted = 0;
            for row in listing {
                if client.delete(table, LETTERS_PARTITION, row).await? {
                    deleted += 1;
                }
                if let Some(marker) = marker_of(row) {
                    client.delete(table, LETTERS_PARTITION, &marker).await?;
                }
            }
            Ok(deleted)
        }
        Outcome::Failed {
            status,
            code,
            message,
        } => Err(StoreError::Status {
            what: "deleting dead letters".into(),
            status,
            detail: format!("{code} {message}"),
        }),
    }
}

/// Applies `retention` (see the module's notes); `tally` is the store's, held for the call.
pub(super) async fn prune(
    client: &Client,
    table: &str,
    tally: &mut Tally,
    retention: &DeadLetterRetention,
) -> Result<usize, StoreError> {
    if tally.keep != retention.keep {
        *tally = Tally {
            keep: retention.keep,
            state: State::Unknown,
        };
    }
    let mut left = retention.at_most;
    let mut deleted = 0;
    if let Some(from) = aged_from(retention.received_before) {
        let aged = listing_keys(client, table, &from, true, LISTING_END, left).await?;
        left -= aged.len();
        let count = delete_letters(client, table, &aged).await?;
        deleted += count;
        if !aged.is_empty() {
            tally.aged(&from, count);
        }
    }
    if left > 0 {
        let scan = retention.at_most.saturating_mul(2);
        deleted += surplus(client, table, tally, left, scan).await?;
    }
    Ok(deleted)
}

/// Deletes up to `left` letters past the newest `keep`, reading up to `scan` keys to count.
async fn surplus(
    client: &Client,
    table: &str,
    tally: &mut Tally,
    left: usize,
    scan: usize,
) -> Result<usize, StoreError> {
    let mut pass = Pass {
        client,
        table,
        keep: tally.keep,
        scan,
    };
    // each turn either ends the call or moves the state on; the bound is a backstop
    for _ in 0..8 {
        let turn = match std::mem::take(&mut tally.state) {
            State::Unknown => Turn::Next(State::Counting {
                front: None,
                last: LISTING.into(),
                counted: 0,
            }),
            State::Counting {
                front,
                last,
                counted,
            } if counted >= pass.keep => Turn::Next(State::Beyond {
                front: front.unwrap_or_else(|| LISTING_END.into()),
                boundary: last,
            }),
            State::Counting {
                front,
                last,
                counted,
            } => pass.count(front, last, counted).await?,
            State::Beyond { front, boundary } => pass.delete_beyond(front, boundary, left).await?,
            State::Below { calls, .. } if calls >= RECOUNT_EVERY => Turn::Next(State::Unknown),
            State::Below {
                front,
                total,
                calls,
            } => pass.check_newer(front, total, calls).await?,
        };
        match turn {
            Turn::Next(state) => tally.state = state,
            Turn::Done(state, deleted) => {
                tally.state = state;
                return Ok(deleted);
            }
        }
    }
    Ok(0)
}

/// What one turn of [`surplus`] came to: the next state, and whether the call ends there
/// (with the letters it deleted).
enum Turn {
    Next(State),
    Done(State, usize),
}

/// One pruning call's reads: where, how many to keep, and how many keys it may still read.
struct Pass<'a> {
    client: &'a Client,
    table: &'a str,
    keep: usize,
    scan: usize,
}

impl Pass<'_> {
    /// Counts on from `last`, up to `keep` in all.
    async fn count(
        &mut self,
        front: Option<String>,
        last: String,
        counted: usize,
    ) -> Result<Turn, StoreError> {
        let wanted = self.scan.min(self.keep - counted);
        let keys = listing_keys(self.client, self.table, &last, false, LISTING_END, wanted).await?;
        self.scan -= keys.len();
        let front = front.or_else(|| keys.first().cloned());
        if keys.len() < wanted {
            // the end: all counted
            let below = State::Below {
                front: front.unwrap_or_else(|| LISTING_END.into()),
                total: counted + keys.len(),
                calls: 0,
            };
            return Ok(Turn::Done(below, 0));
        }
        let counting = State::Counting {
            front,
            last: keys.last().cloned().unwrap_or(last),
            counted: counted + keys.len(),
        };
        if counted + keys.len() < self.keep {
            // out of keys to read for this call
            return Ok(Turn::Done(counting, 0));
        }
        Ok(Turn::Next(counting))
    }

    /// Deletes up to `left` letters after `boundary`.
    async fn delete_beyond(
        &mut self,
        front: String,
        boundary: String,
        left: usize,
    ) -> Result<Turn, StoreError> {
        let keys =
            listing_keys(self.client, self.table, &boundary, false, LISTING_END, left).await?;
        let deleted = delete_letters(self.client, self.table, &keys).await?;
        let state = if keys.len() < left {
            // none left past the boundary: at most `keep` letters, until new ones
            State::Below {
                front,
                total: self.keep,
                calls: 0,
            }
        } else {
            State::Beyond { front, boundary }
        };
        Ok(Turn::Done(state, deleted))
    }

    /// Whether the letters newer than `front` could take the count past `keep`.
    async fn check_newer(
        &mut self,
        front: String,
        total: usize,
        calls: u32,
    ) -> Result<Turn, StoreError> {
        // the letters newer than the newest counted: reading one more than there is
        // room for tells whether they could take the count past `keep`
        let room = self.keep.saturating_sub(total);
        let wanted = self.scan.min(room.saturating_add(1));
        if wanted == 0 {
            let below = State::Below {
                front,
                total,
                calls,
            };
            return Ok(Turn::Done(below, 0));
        }
        let newer = listing_keys(self.client, self.table, LISTING, true, &front, wanted).await?;
        self.scan -= newer.len();
        if newer.len() < wanted {
            let below = State::Below {
                front: newer.first().cloned().unwrap_or(front),
                total: total + newer.len(),
                calls: calls + 1,
            };
            return Ok(Turn::Done(below, 0));
        }
        // too many for the room, or to read now: count them all
        if self.scan == 0 {
            return Ok(Turn::Done(State::Unknown, 0));
        }
        Ok(Turn::Next(State::Unknown))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_aged_range_starts_at_the_first_letter_older_than_the_cutoff() {
        let cutoff = Utc
            .timestamp_millis_opt(1_790_000_000_000)
            .single()
            .expect("time");
        let from = aged_from(cutoff).expect("a range");
        let older = listing_key(1_790_000_000_000 - 1, "a");
        let same = listing_key(1_790_000_000_000, "a");
        let newer = listing_key(1_790_000_000_001, "a");
        assert!(older.as_str() >= from.as_str(), "{older} {from}");
        assert!(same.as_str() < from.as_str(), "{same} {from}");
        assert!(newer.as_str() < from.as_str());
        assert!(older.as_str() < LISTING_END);
        let epoch = Utc.timestamp_millis_opt(0).single().expect("time");
        assert_eq!(aged_from(epoch), None);
    }

    #[test]
    fn a_listing_row_names_its_marker() {
        let row = listing_key(1_790_000_000_000, "0a1b_c~3A");
        assert_eq!(marker_of(&row).as_deref(), Some("id_0a1b_c~3A"));
        assert_eq!(marker_of("at_123"), None);
        assert_eq!(marker_of("id_x"), None);
    }
}
